#include "server/data/dataset_decoder.h"

#include <opencv2/imgcodecs.hpp>

#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/data/image_decoding.h"
#include "server/data/mask_encoding.h"

namespace selene::data {
namespace {

constexpr int64_t kNoBadLabel = std::numeric_limits<int64_t>::min();

// Per-item results, each slot written by exactly one decoding thread.
struct ItemResults {
  explicit ItemResults(size_t n)
      : size(n), empty(n, 0), unmatched(n, 0), bad_label(n, kNoBadLabel) {}
  std::vector<std::string> size;
  std::vector<uint8_t> empty;
  std::vector<int64_t> unmatched;
  std::vector<int64_t> bad_label;
};

// The first id that is neither a class (0..classes-1) nor the ignore id, or kNoBadLabel.
int64_t FirstBadLabel(const cv::Mat& ids, int64_t classes, int64_t ignore_index) {
  for (int y = 0; y < ids.rows; ++y) {
    const int32_t* p = ids.ptr<int32_t>(y);
    for (int x = 0; x < ids.cols; ++x) {
      const int64_t v = p[x];
      if ((v < 0 || v >= classes) && v != ignore_index) return v;
    }
  }
  return kNoBadLabel;
}

bool AllEqual(const cv::Mat& ids, int64_t value) {
  for (int y = 0; y < ids.rows; ++y) {
    const int32_t* p = ids.ptr<int32_t>(y);
    for (int x = 0; x < ids.cols; ++x) {
      if (p[x] != value) return false;
    }
  }
  return true;
}

}  // namespace

StatusOr<DecodedSet> DecodeScan(const DatasetScan& scan, int64_t ignore_index, int threads,
                                const std::function<void(int64_t, int64_t)>& on_progress,
                                const std::atomic<bool>* stop) {
  const auto stopped = [stop] { return stop != nullptr && stop->load(); };
  const int64_t n = static_cast<int64_t>(scan.items.size());
  const int64_t s = scan.storage_size;
  const int64_t plane = s * s;
  const bool segmentation = scan.mask_mode != MaskMode::kNone;
  const bool binary =
      scan.mask_mode == MaskMode::kBinaryAuto || scan.mask_mode == MaskMode::kNonzero;

  torch::Tensor images = torch::empty({n, 3, s, s}, torch::kUInt8);
  torch::Tensor targets;
  if (!segmentation) {
    targets = torch::empty({n}, torch::kInt64);
    int64_t* labels = targets.data_ptr<int64_t>();
    for (int64_t i = 0; i < n; ++i) labels[i] = scan.items[i].label;
  } else {
    targets = torch::empty({n, s, s}, binary ? torch::kUInt8 : torch::kInt64);
  }
  uint8_t* image_data = images.data_ptr<uint8_t>();
  uint8_t* binary_data = segmentation && binary ? targets.data_ptr<uint8_t>() : nullptr;
  int64_t* id_data = segmentation && !binary ? targets.data_ptr<int64_t>() : nullptr;

  ItemResults results(static_cast<size_t>(n));
  auto decode_one = [&](int64_t i) -> std::string {
    const ScanItem& item = scan.items[i];
    StatusOr<cv::Mat> image = DecodeColourImage(item.image.path);
    if (!image.ok()) return absl::StrCat(item.name, ": ", image.status().message());
    if (segmentation) {
      const std::string mask_name = RelativePath(item.mask.path, scan.folder);
      const int flags = scan.mask_mode == MaskMode::kPalette
                            ? cv::IMREAD_COLOR | cv::IMREAD_IGNORE_ORIENTATION
                            : cv::IMREAD_UNCHANGED;
      StatusOr<cv::Mat> mask = DecodeImageFile(item.mask.path, flags);
      if (!mask.ok()) return absl::StrCat(mask_name, ": ", mask.status().message());
      if (mask->size() != image->size()) {
        return absl::StrCat(mask_name, ": wrong size, ", SizeText(*mask), " for its image's ",
                            SizeText(*image), " (", item.name, ")");
      }
      if (binary) {
        StatusOr<cv::Mat> bits =
            scan.mask_mode == MaskMode::kBinaryAuto ? DecodeBinaryMask(*mask) : NonzeroMask(*mask);
        if (!bits.ok()) return absl::StrCat(mask_name, ": ", bits.status().message());
        const cv::Mat stored = ResizeNearest(*bits, s);
        uint8_t* out = binary_data + i * plane;
        for (int y = 0; y < stored.rows; ++y) std::memcpy(out + y * s, stored.ptr<uint8_t>(y), s);
        results.empty[i] = cv::countNonZero(stored) == 0;
      } else {
        cv::Mat ids;
        if (scan.mask_mode == MaskMode::kPalette) {
          ids = ColourMaskToIds(*mask, scan.palette, static_cast<int32_t>(ignore_index),
                                &results.unmatched[i]);
        } else {
          StatusOr<cv::Mat> grey = LabelIds(*mask);
          if (!grey.ok()) return absl::StrCat(mask_name, ": ", grey.status().message());
          ids = *std::move(grey);
        }
        results.bad_label[i] = FirstBadLabel(ids, scan.num_classes, ignore_index);
        const cv::Mat stored = ResizeNearest(ids, s);
        int64_t* out = id_data + i * plane;
        for (int y = 0; y < stored.rows; ++y) {
          const int32_t* row = stored.ptr<int32_t>(y);
          for (int x = 0; x < stored.cols; ++x) out[y * s + x] = row[x];
        }
        results.empty[i] = AllEqual(stored, ignore_index);
      }
    }
    StoreImageChw(*image, s, image_data + i * 3 * plane);
    results.size[i] = SizeText(*image);
    return "";
  };
  const auto decode_unless_stopped = [&](int64_t i) -> std::string {
    return stopped() ? "not decoded: the load was cancelled" : decode_one(i);
  };
  const std::vector<std::string> reasons =
      DecodeInParallel(n, threads, decode_unless_stopped, on_progress);
  if (stopped()) {
    return CancelledError(absl::StrCat("cancelled while decoding ", scan.folder));
  }

  // Label ids outside the class count mean the request (or the data) is wrong: refuse loudly.
  std::vector<std::string> bad;
  for (int64_t i = 0; i < n; ++i) {
    if (reasons[i].empty() && results.bad_label[i] != kNoBadLabel) {
      bad.push_back(absl::StrCat(RelativePath(scan.items[i].mask.path, scan.folder), " holds id ",
                                 results.bad_label[i]));
    }
  }
  if (!bad.empty()) {
    const size_t shown = std::min<size_t>(bad.size(), 3);
    return InvalidArgumentError(absl::StrCat(
        "label value out of range: ", absl::StrJoin(bad.begin(), bad.begin() + shown, "; "),
        bad.size() > shown ? absl::StrCat(" (and ", bad.size() - shown, " more label images)") : "",
        "; num_classes is ", scan.num_classes, " (ids 0..", scan.num_classes - 1,
        ") and the ignore id is ", ignore_index));
  }

  DecodedSet decoded;
  std::vector<int64_t> kept;
  kept.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    if (!reasons[i].empty()) {
      decoded.unreadable.push_back(reasons[i]);
      continue;
    }
    kept.push_back(i);
    const ScanItem& item = scan.items[i];
    decoded.names.push_back(item.name);
    decoded.in_val.push_back(item.in_val ? 1 : 0);
    ++decoded.image_sizes[results.size[i]];
    decoded.unmatched_colour_pixels += results.unmatched[i];
    if (segmentation && results.empty[i]) {
      ++decoded.empty_masks;
      if (decoded.empty_mask_examples.size() < kEmptyMaskExamples) {
        decoded.empty_mask_examples.push_back(RelativePath(item.mask.path, scan.folder));
      }
    }
  }
  if (static_cast<int64_t>(kept.size()) == n) {
    decoded.images = images;
    decoded.targets = targets;
  } else {
    const torch::Tensor index = torch::tensor(kept, torch::kInt64);
    decoded.images = images.index_select(0, index);
    decoded.targets = targets.index_select(0, index);
  }
  return decoded;
}

}  // namespace selene::data
