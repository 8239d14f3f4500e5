#include "server/data/class_palette.h"

#include <fstream>
#include <set>
#include <unordered_map>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace selene::data {
namespace {

StatusOr<std::vector<std::string>> ReadLines(const std::string& path) {
  std::ifstream file(path);
  if (!file) return NotFoundError(absl::StrCat("cannot read ", path));
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(file, line)) lines.push_back(line);
  if (file.bad()) return NotFoundError(absl::StrCat("error reading ", path));
  return lines;
}

std::string Unquote(absl::string_view text) {
  text = absl::StripAsciiWhitespace(text);
  if (text.size() >= 2 && text.front() == '"' && text.back() == '"') {
    text = text.substr(1, text.size() - 2);
  }
  return std::string(text);
}

uint32_t Pack(int r, int g, int b) {
  return (static_cast<uint32_t>(r) << 16) | (static_cast<uint32_t>(g) << 8) |
         static_cast<uint32_t>(b);
}

}  // namespace

StatusOr<std::vector<std::string>> ReadClassNames(const std::string& path) {
  SELENE_ASSIGN_OR_RETURN(std::vector<std::string> lines, ReadLines(path));
  std::vector<std::string> names;
  std::set<std::string> seen;
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string name(absl::StripAsciiWhitespace(lines[i]));
    if (name.empty()) continue;
    if (!seen.insert(name).second) {
      return InvalidArgumentError(
          absl::StrCat(path, " line ", i + 1, ": class name \"", name, "\" appears twice"));
    }
    names.push_back(name);
  }
  if (names.empty()) return InvalidArgumentError(absl::StrCat(path, " lists no class names"));
  return names;
}

StatusOr<ClassPalette> ReadClassDict(const std::string& path) {
  SELENE_ASSIGN_OR_RETURN(std::vector<std::string> lines, ReadLines(path));
  ClassPalette palette;
  std::set<uint32_t> colours;
  bool header = true;
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string line(absl::StripAsciiWhitespace(lines[i]));
    if (line.empty()) continue;
    std::vector<std::string> fields;
    for (absl::string_view field : absl::StrSplit(line, ',')) fields.push_back(Unquote(field));
    if (header) {
      header = false;
      if (fields.size() < 4 || absl::AsciiStrToLower(fields[0]) != "name" ||
          absl::AsciiStrToLower(fields[1]) != "r" || absl::AsciiStrToLower(fields[2]) != "g" ||
          absl::AsciiStrToLower(fields[3]) != "b") {
        return InvalidArgumentError(
            absl::StrCat(path, " line ", i + 1, ": header \"", line, "\" is not \"name,r,g,b\""));
      }
      continue;
    }
    if (fields.size() < 4) {
      return InvalidArgumentError(
          absl::StrCat(path, " line ", i + 1, ": \"", line, "\" needs name,r,g,b"));
    }
    std::array<uint8_t, 3> rgb{};
    for (int c = 0; c < 3; ++c) {
      int value = -1;
      if (!absl::SimpleAtoi(fields[1 + c], &value) || value < 0 || value > 255) {
        return InvalidArgumentError(absl::StrCat(path, " line ", i + 1, ": channel value \"",
                                                 fields[1 + c], "\" is not in 0..255"));
      }
      rgb[c] = static_cast<uint8_t>(value);
    }
    if (!colours.insert(Pack(rgb[0], rgb[1], rgb[2])).second) {
      return InvalidArgumentError(absl::StrCat(path, " line ", i + 1, ": colour (", rgb[0], ",",
                                               rgb[1], ",", rgb[2], ") of \"", fields[0],
                                               "\" is used by an earlier class"));
    }
    palette.names.push_back(fields[0]);
    palette.colours.push_back(rgb);
  }
  if (palette.names.empty()) {
    return InvalidArgumentError(absl::StrCat(path, " lists no classes"));
  }
  return palette;
}

cv::Mat ColourMaskToIds(const cv::Mat& bgr, const ClassPalette& palette, int32_t unmatched_id,
                        int64_t* unmatched) {
  std::unordered_map<uint32_t, int32_t> ids;
  for (size_t i = 0; i < palette.colours.size(); ++i) {
    const auto& c = palette.colours[i];
    ids.emplace(Pack(c[0], c[1], c[2]), static_cast<int32_t>(i));
  }
  const int step = bgr.channels();
  cv::Mat out(bgr.rows, bgr.cols, CV_32SC1);
  int64_t misses = 0;
  // Masks have few colours and long runs of one: remember the last lookup.
  uint32_t last_key = 0xffffffffu;
  int32_t last_id = unmatched_id;
  bool last_matched = false;
  for (int y = 0; y < bgr.rows; ++y) {
    const uint8_t* p = bgr.ptr<uint8_t>(y);
    int32_t* o = out.ptr<int32_t>(y);
    for (int x = 0; x < bgr.cols; ++x, p += step) {
      const uint32_t key = Pack(p[2], p[1], p[0]);
      if (key != last_key) {
        auto it = ids.find(key);
        last_key = key;
        last_matched = it != ids.end();
        last_id = last_matched ? it->second : unmatched_id;
      }
      if (!last_matched) ++misses;
      o[x] = last_id;
    }
  }
  if (unmatched) *unmatched += misses;
  return out;
}

}  // namespace selene::data
