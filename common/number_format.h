// How Selene prints numbers: one spelling for every table and plot label, so a value reads the
// same in report.md, the comparison table, selene-train's progress line and the CLI's tables.
#pragma once

#include <cstdint>
#include <string>

namespace selene {

// 1942577 -> "1,942,577".
std::string Grouped(int64_t value);

// Fixed precision ("0.8123" with 4 decimals); NaN and infinities (undefined scores) -> "-".
std::string FormatValue(double value, int decimals = 4);

}  // namespace selene
