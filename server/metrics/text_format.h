// The Prometheus text exposition format (version 0.0.4): HELP and TYPE lines, one line per
// sample, label values escaped, histograms as cumulative `_bucket{le="..."}` lines ending with
// le="+Inf", then `_sum` and `_count`.
#pragma once

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "server/metrics/registry.h"

namespace selene::metrics {

// The Content-Type a scrape answer carries.
inline constexpr char kTextFormatContentType[] = "text/plain; version=0.0.4; charset=utf-8";

std::string WriteTextFormat(const std::vector<FamilySnapshot>& families);

// A label value between double quotes: backslash, double quote and line feed escaped.
std::string EscapeLabelValue(absl::string_view value);
// HELP text: backslash and line feed escaped.
std::string EscapeHelp(absl::string_view help);
// A sample value: integers without a fraction, others with the shortest exact decimal form,
// "+Inf", "-Inf" and "NaN" as the format spells them.
std::string FormatValue(double value);

}  // namespace selene::metrics
