#include "server/data/data_summary.h"

#include <algorithm>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace selene::data {
namespace {

constexpr size_t kListLimit = 8;  // entries shown per list in the human text

// Thousands separators: "5,500".
std::string Count(int64_t value) {
  std::string digits = absl::StrCat(value < 0 ? -value : value);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return value < 0 ? "-" + out : out;
}

std::string Percent(int64_t part, int64_t whole) {
  if (whole <= 0) return "-";
  return absl::StrFormat("%.2f%%", 100.0 * static_cast<double>(part) / static_cast<double>(whole));
}

void AddLine(std::string* out, const std::string& label, const std::string& value) {
  absl::StrAppend(out, absl::StrFormat("  %-18s %s\n", label + ":", value));
}

void AddList(std::string* out, const std::string& title, const std::vector<std::string>& items) {
  if (items.empty()) return;
  absl::StrAppend(out, absl::StrFormat("%s (%d):\n", title, items.size()));
  const size_t shown = std::min(items.size(), kListLimit);
  for (size_t i = 0; i < shown; ++i) absl::StrAppend(out, "  ", items[i], "\n");
  if (items.size() > shown) {
    absl::StrAppend(out, "  ... and ", Count(static_cast<int64_t>(items.size() - shown)),
                    " more\n");
  }
}

// Per-class counts as "name  count  share" lines, the largest lists truncated.
void AddClassTable(std::string* out, const std::string& title,
                   const std::vector<std::string>& names, const std::vector<int64_t>& counts) {
  if (counts.empty()) return;
  int64_t total = 0;
  for (int64_t c : counts) total += c;
  size_t width = 5;
  for (const std::string& name : names) width = std::max(width, name.size());
  width = std::min<size_t>(width, 32);
  const size_t limit = 2 * kListLimit;
  const size_t shown = std::min(counts.size(), limit);
  absl::StrAppend(out, title, " (", counts.size(), " classes, ", Count(total), " total):\n");
  for (size_t i = 0; i < shown; ++i) {
    const std::string name = i < names.size() ? names[i] : absl::StrCat("#", i);
    absl::StrAppend(
        out, absl::StrFormat("  %3d %-*s %12s  %7s\n", i, static_cast<int>(width),
                             name.substr(0, width), Count(counts[i]), Percent(counts[i], total)));
  }
  if (counts.size() > shown) {
    absl::StrAppend(out, "  ... and ", Count(static_cast<int64_t>(counts.size() - shown)),
                    " more\n");
  }
}

// JSON string with escapes; bytes that are not valid UTF-8 become U+FFFD so the output always
// parses (file names need not be UTF-8).
std::string JsonString(const std::string& text) {
  std::string out = "\"";
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  for (size_t i = 0; i < n;) {
    const unsigned char c = s[i];
    if (c == '"') {
      out += "\\\"";
    } else if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      out += absl::StrFormat("\\u%04x", c);
    } else if (c < 0x80) {
      out.push_back(static_cast<char>(c));
    } else {
      const size_t length = c >= 0xc2 && c < 0xe0   ? 2
                            : c >= 0xe0 && c < 0xf0 ? 3
                            : c >= 0xf0 && c < 0xf5 ? 4
                                                    : 0;
      bool valid = length > 0 && i + length <= n;
      for (size_t k = 1; valid && k < length; ++k) valid = (s[i + k] & 0xc0) == 0x80;
      // No overlong forms, surrogates or code points above U+10FFFF.
      if (valid && c == 0xe0) valid = s[i + 1] >= 0xa0;
      if (valid && c == 0xed) valid = s[i + 1] < 0xa0;
      if (valid && c == 0xf0) valid = s[i + 1] >= 0x90;
      if (valid && c == 0xf4) valid = s[i + 1] < 0x90;
      if (valid) {
        out.append(text, i, length);
        i += length;
        continue;
      }
      out += "\\ufffd";
    }
    ++i;
  }
  out += "\"";
  return out;
}

std::string JsonStrings(const std::vector<std::string>& items) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i)
    absl::StrAppend(&out, i ? "," : "", JsonString(items[i]));
  return out + "]";
}

std::string JsonInts(const std::vector<int64_t>& items) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) absl::StrAppend(&out, i ? "," : "", items[i]);
  return out + "]";
}

}  // namespace

std::string FormatDataSummary(const DataSummary& s) {
  std::string out = absl::StrCat("Data set ", s.dataset, " (", s.task, ") at ", s.root, "\n");
  AddLine(&out, "split", s.split);
  AddLine(&out, "items",
          absl::StrCat(Count(s.train_items), " train, ", Count(s.val_items), " val"));
  AddLine(&out, "files",
          s.masks_found > 0 || s.task != "classification"
              ? absl::StrCat(Count(s.images_found), " images, ", Count(s.masks_found), " masks")
              : absl::StrCat(Count(s.images_found), " images"));
  AddLine(
      &out, "stored as",
      absl::StrCat(s.storage_size, "x", s.storage_size, (s.cache_hit ? " (disk cache hit)" : ""),
                   absl::StrFormat(", %.2f s", s.seconds)));
  std::string sizes;
  size_t shown = 0;
  for (const auto& [size, count] : s.image_sizes) {
    if (shown == kListLimit) {
      absl::StrAppend(&sizes, ", ... and ", s.image_sizes.size() - shown, " more");
      break;
    }
    absl::StrAppend(&sizes, shown ? ", " : "", size, " x", Count(count));
    ++shown;
  }
  AddLine(&out, "image sizes", sizes.empty() ? "-" : sizes);
  AddLine(&out, "problems",
          absl::StrCat(s.unreadable.size(), " unreadable, ", s.unpaired.size(), " unpaired, ",
                       s.warnings.size(), " warnings"));
  if (!s.images_per_class.empty()) {
    AddClassTable(&out, "Images per class", s.class_names, s.images_per_class);
  }
  if (!s.pixels_per_class.empty()) {
    std::vector<std::string> names = s.class_names;
    if (s.task == "binary_segmentation") {
      names = {"background", s.class_names.empty() ? "foreground" : s.class_names[0]};
    }
    AddClassTable(&out, "Pixels per class", names, s.pixels_per_class);
    int64_t labelled = 0;
    for (int64_t c : s.pixels_per_class) labelled += c;
    AddLine(&out, "ignored pixels",
            absl::StrCat(Count(s.ignored_pixels), " (",
                         Percent(s.ignored_pixels, labelled + s.ignored_pixels), ")"));
    if (s.unmatched_colour_pixels > 0) {
      AddLine(&out, "unmatched colours", absl::StrCat(Count(s.unmatched_colour_pixels), " pixels"));
    }
    std::string empty = Count(s.empty_masks);
    if (!s.empty_mask_examples.empty()) {
      absl::StrAppend(&empty, " (e.g. ", s.empty_mask_examples.front(), ")");
    }
    AddLine(&out, "empty masks", empty);
  }
  AddList(&out, "Unreadable", s.unreadable);
  AddList(&out, "Unpaired", s.unpaired);
  AddList(&out, "Warnings", s.warnings);
  return out;
}

std::string DataSummaryToJson(const DataSummary& s) {
  std::string out = "{";
  absl::StrAppend(&out, "\"dataset\":", JsonString(s.dataset), ",\"task\":", JsonString(s.task),
                  ",\"root\":", JsonString(s.root), ",\"split\":", JsonString(s.split),
                  ",\"storage_size\":", s.storage_size, ",\"images_found\":", s.images_found,
                  ",\"masks_found\":", s.masks_found, ",\"train_items\":", s.train_items,
                  ",\"val_items\":", s.val_items, ",\"unpaired\":", JsonStrings(s.unpaired),
                  ",\"unreadable\":", JsonStrings(s.unreadable),
                  ",\"warnings\":", JsonStrings(s.warnings), ",\"image_sizes\":{");
  bool first = true;
  for (const auto& [size, count] : s.image_sizes) {
    absl::StrAppend(&out, first ? "" : ",", JsonString(size), ":", count);
    first = false;
  }
  absl::StrAppend(&out, "},\"class_names\":", JsonStrings(s.class_names),
                  ",\"images_per_class\":", JsonInts(s.images_per_class),
                  ",\"pixels_per_class\":", JsonInts(s.pixels_per_class),
                  ",\"ignored_pixels\":", s.ignored_pixels,
                  ",\"unmatched_colour_pixels\":", s.unmatched_colour_pixels,
                  ",\"empty_masks\":", s.empty_masks,
                  ",\"empty_mask_examples\":", JsonStrings(s.empty_mask_examples),
                  ",\"cache_hit\":", s.cache_hit ? "true" : "false",
                  ",\"seconds\":", absl::StrFormat("%.3f", s.seconds), "}");
  return out;
}

}  // namespace selene::data
