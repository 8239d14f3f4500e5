#include "server/train/run_artifacts.h"

#include <cmath>
#include <iomanip>
#include <limits>
#include <set>
#include <sstream>

#include "common/durable_file.h"
#include "common/json_string.h"

namespace selene::train {
namespace {

// JSON has no NaN or infinity: undefined scores (e.g. a class absent from a pass) become null.
std::string JsonNumber(double value) {
  if (!std::isfinite(value)) return "null";
  std::ostringstream out;
  out << std::setprecision(std::numeric_limits<double>::max_digits10) << value;
  return out.str();
}

// A CSV cell: quoted when it holds a comma or quote (class names such as "goldfish, carp").
std::string CsvCell(const std::string& text) {
  if (text.find_first_of(",\"\n") == std::string::npos) return text;
  std::string out = "\"";
  for (char c : text) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string CsvNumber(double value) {
  if (std::isnan(value)) return "";
  std::ostringstream out;
  out << std::setprecision(8) << value;
  return out.str();
}

void WriteEpochJson(std::ostream& out, const EpochRecord& r, const std::string& indent) {
  out << "{\n"
      << indent << "  \"epoch\": " << r.epoch + 1 << ",\n"
      << indent << "  \"train_loss\": " << JsonNumber(r.train_loss) << ",\n"
      << indent << "  \"val_loss\": " << JsonNumber(r.val_loss) << ",\n"
      << indent << "  \"learning_rate\": " << JsonNumber(r.learning_rate) << ",\n"
      << indent << "  \"seconds\": " << JsonNumber(r.seconds) << ",\n"
      << indent << "  \"images_per_second\": " << JsonNumber(r.images_per_second) << ",\n"
      << indent << "  \"val_metrics\": {";
  bool first = true;
  for (const auto& [name, value] : r.val_metrics) {
    out << (first ? "\n" : ",\n") << indent << "    " << JsonString(name) << ": "
        << JsonNumber(value);
    first = false;
  }
  out << "\n" << indent << "  }\n" << indent << "}";
}

// Composed in memory, then written in one durable step: a full disk leaves the old file.
Status Finish(const std::ostringstream& out, const std::string& path) {
  return WriteFileDurably(path, out.str());
}

}  // namespace

Status WriteHistoryCsv(const std::string& path, const std::vector<EpochRecord>& history) {
  // Columns: fixed ones, then every metric name seen in any epoch (train_ and val_ prefixed).
  std::set<std::string> train_names, val_names;
  for (const EpochRecord& r : history) {
    for (const auto& item : r.train_metrics) train_names.insert(item.first);
    for (const auto& item : r.val_metrics) val_names.insert(item.first);
  }
  std::ostringstream out;
  out << "epoch,train_loss,val_loss,learning_rate,seconds,images_per_second,data_wait_fraction";
  for (const auto& name : train_names) out << "," << CsvCell("train_" + name);
  for (const auto& name : val_names) out << "," << CsvCell("val_" + name);
  out << "\n";
  auto cell = [](const MetricValues& values, const std::string& name) {
    auto it = values.find(name);
    return it == values.end() ? std::string() : CsvNumber(it->second);
  };
  for (const EpochRecord& r : history) {
    out << r.epoch + 1 << "," << CsvNumber(r.train_loss) << "," << CsvNumber(r.val_loss) << ","
        << CsvNumber(r.learning_rate) << "," << CsvNumber(r.seconds) << ","
        << CsvNumber(r.images_per_second) << "," << CsvNumber(r.data_wait_fraction);
    for (const auto& name : train_names) out << "," << cell(r.train_metrics, name);
    for (const auto& name : val_names) out << "," << cell(r.val_metrics, name);
    out << "\n";
  }
  return Finish(out, path);
}

// Epochs are written 1-based in both files, as people count them.
Status WriteMetricsJson(const std::string& path, const TrainResult& result,
                        const std::string& monitor) {
  std::ostringstream out;
  out << "{\n"
      << "  \"monitor\": " << JsonString(monitor) << ",\n"
      << "  \"higher_is_better\": " << (HigherIsBetter(monitor) ? "true" : "false") << ",\n"
      << "  \"epochs_run\": " << result.history.size() << ",\n"
      << "  \"stopped_early\": " << (result.stopped_early ? "true" : "false") << ",\n"
      << "  \"cancelled\": " << (result.cancelled ? "true" : "false") << ",\n"
      << "  \"best_value\": " << (result.best_epoch >= 0 ? JsonNumber(result.best_value) : "null")
      << ",\n";
  const EpochRecord* best = nullptr;
  for (const EpochRecord& r : result.history) {
    if (r.epoch == result.best_epoch) best = &r;
  }
  out << "  \"best\": ";
  if (best != nullptr) {
    WriteEpochJson(out, *best, "  ");
  } else {
    out << "null";
  }
  out << ",\n  \"final\": ";
  if (!result.history.empty()) {
    WriteEpochJson(out, result.history.back(), "  ");
  } else {
    out << "null";
  }
  out << "\n}\n";
  return Finish(out, path);
}

}  // namespace selene::train
