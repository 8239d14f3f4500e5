// A GitHub-flavoured Markdown table whose raw text is aligned too (cells padded to their
// column's width), so report.md and comparison tables read well in a terminal as rendered.
#pragma once

#include <string>
#include <vector>

namespace selene {

class MarkdownTable {
 public:
  enum class Align { kLeft, kRight };

  MarkdownTable& AddColumn(std::string header, Align align = Align::kLeft);
  // Missing cells are left empty; extra cells are dropped.
  MarkdownTable& AddRow(std::vector<std::string> cells);

  size_t num_rows() const { return rows_.size(); }

  // Header, separator (":---" or "---:"), rows; every line ends with '\n'. Pipes inside cells
  // are escaped.
  std::string Render() const;

 private:
  std::vector<std::string> headers_;
  std::vector<Align> aligns_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace selene
