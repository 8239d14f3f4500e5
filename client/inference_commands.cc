// segment, classify and models: image files go to the server as they are (it decodes, resizes
// and runs the model); the CLI only writes the masks it gets back and, for --overlay, blends one
// over its image with OpenCV.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "client/commands.h"
#include "common/markdown_table.h"
#include "common/number_format.h"

namespace selene::client {
namespace {

namespace fs = std::filesystem;

StatusOr<std::string> ReadImageFile(const std::string& path) {
  std::error_code error;
  if (!fs::is_regular_file(path, error)) {
    return InvalidArgumentError(absl::StrCat("cannot read image ", path, ": no such file"));
  }
  std::ifstream file(path, std::ios::binary);
  std::stringstream bytes;
  bytes << file.rdbuf();
  if (!file) return InvalidArgumentError(absl::StrCat("cannot read image ", path));
  return bytes.str();
}

// Every file is read before the first call, so a typo fails fast and writes nothing.
StatusOr<std::vector<std::string>> ReadImageFiles(const std::vector<std::string>& paths) {
  std::vector<std::string> images;
  for (const std::string& path : paths) {
    SELENE_ASSIGN_OR_RETURN(std::string bytes, ReadImageFile(path));
    images.push_back(std::move(bytes));
  }
  return images;
}

bool WriteBytes(const fs::path& path, const std::string& bytes) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return static_cast<bool>(file);
}

// BGR colours for class ids 1, 2, ... (class 0, the background, is left untinted).
cv::Vec3b PaletteColor(int class_id) {
  static const cv::Vec3b kPalette[] = {{0, 0, 255},   {0, 200, 0},   {255, 80, 0},  {0, 220, 255},
                                       {255, 0, 200}, {255, 255, 0}, {0, 128, 255}, {128, 0, 255}};
  return kPalette[(class_id - 1) % (sizeof(kPalette) / sizeof(kPalette[0]))];
}

// The image with mask pixels tinted at 50%: red for a binary mask, a palette colour per class.
Status WriteOverlay(const std::string& image_bytes, const std::string& mask_png, bool binary,
                    const fs::path& path) {
  const cv::Mat raw(1, static_cast<int>(image_bytes.size()), CV_8UC1,
                    const_cast<char*>(image_bytes.data()));
  cv::Mat image = cv::imdecode(raw, cv::IMREAD_COLOR);
  const cv::Mat mask_raw(1, static_cast<int>(mask_png.size()), CV_8UC1,
                         const_cast<char*>(mask_png.data()));
  const cv::Mat mask = cv::imdecode(mask_raw, cv::IMREAD_GRAYSCALE);
  if (image.empty() || mask.empty() || image.size() != mask.size()) {
    return InternalError(absl::StrCat("cannot draw the overlay ", path.string(),
                                      ": image and mask do not decode to the same size"));
  }
  for (int y = 0; y < image.rows; ++y) {
    for (int x = 0; x < image.cols; ++x) {
      const int value = mask.at<uint8_t>(y, x);
      if (value == 0) continue;
      const cv::Vec3b tint = binary ? cv::Vec3b(0, 0, 255) : PaletteColor(value);
      cv::Vec3b& pixel = image.at<cv::Vec3b>(y, x);
      for (int c = 0; c < 3; ++c) pixel[c] = static_cast<uint8_t>((pixel[c] + tint[c] + 1) / 2);
    }
  }
  if (!cv::imwrite(path.string(), image)) {
    return InternalError(absl::StrCat("cannot write ", path.string()));
  }
  return OkStatus();
}

std::string TaskName(v1::Task task) {
  return absl::AsciiStrToLower(std::string(absl::StripPrefix(v1::Task_Name(task), "TASK_")));
}

}  // namespace

int RunSegment(const ParsedArgs& args, Connection& connection) {
  if (!args.Has("model") || args.positional.empty()) {
    PrintError(
        "usage: selene segment --model JOB|ALIAS IMAGE... [--out DIR] [--overlay] "
        "[--threshold T]");
    return kExitUsage;
  }
  double threshold = 0.5;
  if (args.Has("threshold") &&
      (!absl::SimpleAtod(args.Get("threshold"), &threshold) || threshold <= 0 || threshold >= 1)) {
    PrintError(
        absl::StrCat("--threshold: '", args.Get("threshold"), "' is not a number in (0, 1)"));
    return kExitUsage;
  }
  StatusOr<std::vector<std::string>> read = ReadImageFiles(args.positional);
  if (!read.ok()) return ReportUsageError(read.status());
  const std::vector<std::string>& images = *read;
  const fs::path out_dir = args.Get("out", ".");
  std::error_code error;
  fs::create_directories(out_dir, error);
  if (error) {
    PrintError(absl::StrCat("cannot create ", out_dir.string(), ": ", error.message()));
    return kExitFailed;
  }
  for (size_t i = 0; i < images.size(); ++i) {
    const std::string& path = args.positional[i];
    v1::SegmentRequest request;
    request.set_model(args.Get("model"));
    request.set_image(images[i]);
    if (args.Has("threshold")) request.set_threshold(threshold);
    v1::SegmentResponse response;
    grpc::ClientContext context;
    connection.Prepare(&context);
    const grpc::Status status = connection.inference().Segment(&context, request, &response);
    if (!status.ok()) {
      return ReportRpcError(
          grpc::Status(status.error_code(), absl::StrCat(path, ": ", status.error_message())),
          connection.server());
    }
    const std::string stem = fs::path(path).stem().string();
    const fs::path mask_path = out_dir / absl::StrCat(stem, "_mask.png");
    if (!WriteBytes(mask_path, response.mask_png())) {
      PrintError(absl::StrCat("cannot write ", mask_path.string()));
      return kExitFailed;
    }
    const bool binary = response.task() == v1::TASK_BINARY_SEGMENTATION;
    std::string summary;
    if (binary) {
      summary = absl::StrFormat("foreground %.1f%%", 100.0 * response.foreground_fraction());
    } else {
      std::vector<std::pair<std::string, double>> shares(response.class_shares().begin(),
                                                         response.class_shares().end());
      std::sort(shares.begin(), shares.end(),
                [](const auto& a, const auto& b) { return a.second > b.second; });
      std::vector<std::string> parts;
      for (const auto& [name, share] : shares) {
        parts.push_back(absl::StrFormat("%s %.1f%%", name, 100.0 * share));
      }
      summary = absl::StrJoin(parts, ", ");
    }
    std::cout << path << ": mask " << mask_path.string() << " (" << response.width() << " x "
              << response.height() << ", " << summary << ")";
    if (args.Enabled("overlay")) {
      const fs::path overlay_path = out_dir / absl::StrCat(stem, "_overlay.png");
      if (const Status drawn = WriteOverlay(images[i], response.mask_png(), binary, overlay_path);
          !drawn.ok()) {
        std::cout << std::endl;
        PrintError(std::string(drawn.message()));
        return kExitFailed;
      }
      std::cout << ", overlay " << overlay_path.string();
    }
    std::cout << "  [" << response.model_job_id() << ", "
              << absl::StrFormat("%.1f ms", response.inference_ms()) << "]" << std::endl;
  }
  return kExitOk;
}

int RunClassify(const ParsedArgs& args, Connection& connection) {
  if (!args.Has("model") || args.positional.empty()) {
    PrintError("usage: selene classify --model JOB|ALIAS IMAGE... [--top-k K]");
    return kExitUsage;
  }
  int top_k = 5;
  if (args.Has("top-k") && (!absl::SimpleAtoi(args.Get("top-k"), &top_k) || top_k < 1)) {
    PrintError(absl::StrCat("--top-k: '", args.Get("top-k"), "' is not a positive integer"));
    return kExitUsage;
  }
  StatusOr<std::vector<std::string>> read = ReadImageFiles(args.positional);
  if (!read.ok()) return ReportUsageError(read.status());
  const std::vector<std::string>& images = *read;
  for (size_t i = 0; i < images.size(); ++i) {
    const std::string& path = args.positional[i];
    v1::ClassifyRequest request;
    request.set_model(args.Get("model"));
    request.set_image(images[i]);
    request.set_top_k(top_k);
    v1::ClassifyResponse response;
    grpc::ClientContext context;
    connection.Prepare(&context);
    const grpc::Status status = connection.inference().Classify(&context, request, &response);
    if (!status.ok()) {
      return ReportRpcError(
          grpc::Status(status.error_code(), absl::StrCat(path, ": ", status.error_message())),
          connection.server());
    }
    std::vector<std::string> labels;
    for (const v1::LabelProbability& label : response.labels()) {
      labels.push_back(absl::StrFormat("%s %.1f%%", label.label(), 100.0 * label.probability()));
    }
    std::cout << path << ": " << absl::StrJoin(labels, ", ") << "  [" << response.model_job_id()
              << "]" << std::endl;
  }
  return kExitOk;
}

int RunModels(const ParsedArgs& args, Connection& connection) {
  if (!args.positional.empty()) {
    PrintError("usage: selene models");
    return kExitUsage;
  }
  v1::ListModelsRequest request;
  v1::ListModelsResponse response;
  grpc::ClientContext context;
  connection.Prepare(&context);
  const grpc::Status status = connection.inference().ListModels(&context, request, &response);
  if (!status.ok()) return connection.Fail(status);
  MarkdownTable table;
  table.AddColumn("model")
      .AddColumn("name")
      .AddColumn("task")
      .AddColumn("family")
      .AddColumn("params", MarkdownTable::Align::kRight)
      .AddColumn("input", MarkdownTable::Align::kRight)
      .AddColumn("best")
      .AddColumn("aliases")
      .AddColumn("loaded");
  for (const v1::ModelInfo& model : response.models()) {
    table.AddRow({model.job_id(), model.name(), TaskName(model.task()), model.model_family(),
                  Grouped(model.parameters()), absl::StrCat(model.input_size()),
                  absl::StrCat(model.monitor(), " ", FormatValue(model.best_value())),
                  absl::StrJoin(model.aliases(), ","), model.loaded() ? "yes" : "no"});
  }
  std::cout << table.Render();
  return kExitOk;
}

}  // namespace selene::client
