// How reports print numbers: one spelling for every table and plot label, so a value reads the
// same in report.md, the comparison table and selene-train's progress line.
#pragma once

#include <cstdint>
#include <string>

namespace selene::report {

// 1942577 -> "1,942,577".
std::string Grouped(int64_t value);

// Fixed precision ("0.8123" with 4 decimals); NaN and infinities (undefined scores) -> "-".
std::string FormatValue(double value, int decimals = 4);

}  // namespace selene::report
