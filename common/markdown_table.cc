#include "common/markdown_table.h"

#include <algorithm>

#include "absl/strings/str_replace.h"

namespace selene {
namespace {

// A '|' in a class name would otherwise split the cell.
std::string Escape(const std::string& text) { return absl::StrReplaceAll(text, {{"|", "\\|"}}); }

std::string Pad(const std::string& text, size_t width, MarkdownTable::Align align) {
  if (text.size() >= width) return text;
  const std::string fill(width - text.size(), ' ');
  return align == MarkdownTable::Align::kRight ? fill + text : text + fill;
}

}  // namespace

MarkdownTable& MarkdownTable::AddColumn(std::string header, Align align) {
  headers_.push_back(Escape(header));
  aligns_.push_back(align);
  return *this;
}

MarkdownTable& MarkdownTable::AddRow(std::vector<std::string> cells) {
  cells.resize(headers_.size());
  for (std::string& cell : cells) cell = Escape(cell);
  rows_.push_back(std::move(cells));
  return *this;
}

std::string MarkdownTable::Render() const {
  std::vector<size_t> widths(headers_.size(), 3);  // "---" is the shortest separator
  for (size_t c = 0; c < headers_.size(); ++c) {
    widths[c] = std::max(widths[c], headers_[c].size());
    for (const auto& row : rows_) widths[c] = std::max(widths[c], row[c].size());
  }
  std::string out = "|";
  for (size_t c = 0; c < headers_.size(); ++c) {
    out += " " + Pad(headers_[c], widths[c], aligns_[c]) + " |";
  }
  out += "\n|";
  for (size_t c = 0; c < headers_.size(); ++c) {
    const std::string dashes(widths[c] - 1, '-');
    out += aligns_[c] == Align::kRight ? " " + dashes + ": |" : " :" + dashes + " |";
  }
  out += "\n";
  for (const auto& row : rows_) {
    out += "|";
    for (size_t c = 0; c < headers_.size(); ++c) {
      out += " " + Pad(row[c], widths[c], aligns_[c]) + " |";
    }
    out += "\n";
  }
  return out;
}

}  // namespace selene
