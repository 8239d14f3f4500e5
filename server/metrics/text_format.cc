#include "server/metrics/text_format.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace selene::metrics {
namespace {

const char* TypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

// {a="x",b="y"} with an optional extra label last (a histogram bucket's le); "" when empty.
std::string LabelSet(const std::vector<std::string>& names, const std::vector<std::string>& values,
                     const std::string& extra_name = "", const std::string& extra_value = "") {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    absl::StrAppend(&out, out.empty() ? "{" : ",", names[i], "=\"", EscapeLabelValue(values[i]),
                    "\"");
  }
  if (!extra_name.empty()) {
    absl::StrAppend(&out, out.empty() ? "{" : ",", extra_name, "=\"", extra_value, "\"");
  }
  if (!out.empty()) out += "}";
  return out;
}

void WriteHistogram(const FamilySnapshot& family, const Sample& sample, std::string* out) {
  uint64_t cumulative = 0;
  for (size_t i = 0; i < sample.bucket_counts.size(); ++i) {
    cumulative += sample.bucket_counts[i];
    const std::string le =
        i < family.bucket_bounds.size() ? FormatValue(family.bucket_bounds[i]) : "+Inf";
    absl::StrAppend(out, family.name, "_bucket",
                    LabelSet(family.label_names, sample.label_values, "le", le), " ", cumulative,
                    "\n");
  }
  const std::string labels = LabelSet(family.label_names, sample.label_values);
  absl::StrAppend(out, family.name, "_sum", labels, " ", FormatValue(sample.sum), "\n");
  absl::StrAppend(out, family.name, "_count", labels, " ", sample.count, "\n");
}

}  // namespace

std::string EscapeLabelValue(absl::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string EscapeHelp(absl::string_view help) {
  std::string out;
  out.reserve(help.size());
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string FormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  // Integers up to 2^53 are exact in a double: print them whole, as counters usually are.
  if (value == std::floor(value) && std::fabs(value) < 9007199254740992.0) {
    return absl::StrCat(static_cast<int64_t>(value));
  }
  // The shortest of %.15g..%.17g that reads back as the same double.
  char buffer[32];
  for (int precision = 15; precision <= 17; ++precision) {
    std::snprintf(buffer, sizeof(buffer), "%.*g", precision, value);
    if (std::strtod(buffer, nullptr) == value) break;
  }
  return buffer;
}

std::string WriteTextFormat(const std::vector<FamilySnapshot>& families) {
  std::string out;
  for (const FamilySnapshot& family : families) {
    absl::StrAppend(&out, "# HELP ", family.name, " ", EscapeHelp(family.help), "\n");
    absl::StrAppend(&out, "# TYPE ", family.name, " ", TypeName(family.type), "\n");
    for (const Sample& sample : family.samples) {
      if (family.type == MetricType::kHistogram) {
        WriteHistogram(family, sample, &out);
      } else {
        absl::StrAppend(&out, family.name, LabelSet(family.label_names, sample.label_values), " ",
                        FormatValue(sample.value), "\n");
      }
    }
  }
  return out;
}

}  // namespace selene::metrics
