#include "server/metrics/registry.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/metrics/text_format.h"

namespace selene::metrics {
namespace {

// std::atomic<double> has no fetch_add before C++20.
void AtomicAdd(std::atomic<double>& target, double amount) {
  double current = target.load(std::memory_order_relaxed);
  while (!target.compare_exchange_weak(current, current + amount, std::memory_order_relaxed)) {
  }
}

bool IsNameChar(char c, bool first, bool colon_allowed) {
  const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  if (letter || (colon_allowed && c == ':')) return true;
  return !first && c >= '0' && c <= '9';
}

bool IsValidName(const std::string& name, bool colon_allowed) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    if (!IsNameChar(name[i], i == 0, colon_allowed)) return false;
  }
  return true;
}

void CheckShape(const FamilySnapshot& shape) {
  if (!IsValidName(shape.name, /*colon_allowed=*/true)) {
    throw std::invalid_argument(
        absl::StrCat("metric name '", shape.name, "' is not [a-zA-Z_:][a-zA-Z0-9_:]*"));
  }
  for (size_t i = 0; i < shape.label_names.size(); ++i) {
    const std::string& label = shape.label_names[i];
    if (!IsValidName(label, /*colon_allowed=*/false) || absl::StartsWith(label, "__")) {
      throw std::invalid_argument(absl::StrCat("metric ", shape.name, ": label name '", label,
                                               "' is not [a-zA-Z_][a-zA-Z0-9_]* without a "
                                               "leading '__'"));
    }
    if (shape.type == MetricType::kHistogram && label == "le") {
      throw std::invalid_argument(
          absl::StrCat("histogram ", shape.name, ": the label 'le' is reserved for buckets"));
    }
    if (std::count(shape.label_names.begin(), shape.label_names.end(), label) > 1) {
      throw std::invalid_argument(
          absl::StrCat("metric ", shape.name, ": label '", label, "' appears twice"));
    }
  }
  const std::vector<double>& bounds = shape.bucket_bounds;
  for (size_t i = 0; i < bounds.size(); ++i) {
    if (!std::isfinite(bounds[i]) || (i > 0 && bounds[i] <= bounds[i - 1])) {
      throw std::invalid_argument(absl::StrCat("histogram ", shape.name,
                                               ": bucket bounds must be finite and increasing, "
                                               "got ",
                                               absl::StrJoin(bounds, ", ")));
    }
  }
}

}  // namespace

void Counter::Increment(double amount) {
  if (amount > 0) AtomicAdd(value_, amount);
}

void Gauge::Add(double amount) { AtomicAdd(value_, amount); }

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::Observe(double value) {
  // The first bound >= value: buckets hold values <= their bound ("le").
  const size_t bucket = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  absl::MutexLock lock(&mu_);
  ++counts_[bucket];
  sum_ += value;
  ++count_;
}

Sample Histogram::Snapshot() const {
  absl::MutexLock lock(&mu_);
  Sample sample;
  sample.bucket_counts = counts_;
  sample.sum = sum_;
  sample.count = count_;
  return sample;
}

std::vector<double> ExponentialBuckets(double start, double factor, int count) {
  if (start <= 0 || factor <= 1 || count < 1) {
    throw std::invalid_argument(absl::StrCat("ExponentialBuckets(", start, ", ", factor, ", ",
                                             count, "): need start > 0, factor > 1, count >= 1"));
  }
  std::vector<double> bounds;
  double bound = start;
  for (int i = 0; i < count; ++i, bound *= factor) bounds.push_back(bound);
  return bounds;
}

template <typename Metric>
Metric& Family<Metric>::WithLabels(const std::vector<std::string>& label_values) {
  if (label_values.size() != label_names_.size()) {
    throw std::invalid_argument(absl::StrCat("metric ", name_, ": ", label_values.size(),
                                             " label values for ", label_names_.size(), " labels (",
                                             absl::StrJoin(label_names_, ", "), ")"));
  }
  absl::MutexLock lock(&mu_);
  std::unique_ptr<Metric>& series = series_[label_values];
  if (series == nullptr) series = make_();
  return *series;
}

template <typename Metric>
void Family<Metric>::Remove(const std::vector<std::string>& label_values) {
  absl::MutexLock lock(&mu_);
  series_.erase(label_values);
}

template <typename Metric>
std::vector<Sample> Family<Metric>::Collect() const {
  absl::MutexLock lock(&mu_);
  std::vector<Sample> samples;
  samples.reserve(series_.size());
  for (const auto& [label_values, metric] : series_) {
    Sample sample;
    if constexpr (std::is_same_v<Metric, Histogram>) {
      sample = metric->Snapshot();
    } else {
      sample.value = metric->value();
    }
    sample.label_values = label_values;
    samples.push_back(std::move(sample));
  }
  return samples;
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

Family<Counter>& Registry::AddCounter(const std::string& name, const std::string& help,
                                      std::vector<std::string> label_names) {
  auto family = std::shared_ptr<Family<Counter>>(
      new Family<Counter>(name, label_names, [] { return std::make_unique<Counter>(); }));
  Add(
      {name, help, MetricType::kCounter, std::move(label_names), {}, {}},
      [f = family.get()] { return f->Collect(); }, family);
  return *family;
}

Family<Gauge>& Registry::AddGauge(const std::string& name, const std::string& help,
                                  std::vector<std::string> label_names) {
  auto family = std::shared_ptr<Family<Gauge>>(
      new Family<Gauge>(name, label_names, [] { return std::make_unique<Gauge>(); }));
  Add(
      {name, help, MetricType::kGauge, std::move(label_names), {}, {}},
      [f = family.get()] { return f->Collect(); }, family);
  return *family;
}

Family<Histogram>& Registry::AddHistogram(const std::string& name, const std::string& help,
                                          std::vector<std::string> label_names,
                                          std::vector<double> bounds) {
  auto family = std::shared_ptr<Family<Histogram>>(new Family<Histogram>(
      name, label_names, [bounds] { return std::make_unique<Histogram>(bounds); }));
  Add(
      {name, help, MetricType::kHistogram, std::move(label_names), std::move(bounds), {}},
      [f = family.get()] { return f->Collect(); }, family);
  return *family;
}

void Registry::AddCollected(const std::string& name, const std::string& help, MetricType type,
                            std::vector<std::string> label_names, CollectFunction collect) {
  if (type == MetricType::kHistogram) {
    throw std::invalid_argument(
        absl::StrCat("metric ", name, ": collected families are counters or gauges"));
  }
  Add({name, help, type, std::move(label_names), {}, {}}, std::move(collect), nullptr);
}

void Registry::Add(FamilySnapshot shape, CollectFunction collect, std::shared_ptr<void> owner) {
  CheckShape(shape);
  absl::MutexLock lock(&mu_);
  for (const Entry& entry : entries_) {
    if (entry.shape.name == shape.name) {
      throw std::invalid_argument(absl::StrCat("metric ", shape.name, " is already registered"));
    }
  }
  entries_.push_back({std::move(shape), std::move(collect), std::move(owner)});
}

std::vector<FamilySnapshot> Registry::Collect() const {
  std::vector<Entry> entries;
  {
    absl::MutexLock lock(&mu_);
    entries = entries_;
  }
  // Collected outside the lock: a collect function may take its own locks (the job store's).
  std::vector<FamilySnapshot> families;
  families.reserve(entries.size());
  for (const Entry& entry : entries) {
    FamilySnapshot family = entry.shape;
    family.samples = entry.collect();
    if (entry.owner == nullptr) {
      // A collect function's samples may come in any order and, by mistake, with the wrong
      // number of label values: such a sample would make the whole scrape unparsable, so it is
      // left out rather than written.
      const size_t labels = family.label_names.size();
      family.samples.erase(std::remove_if(family.samples.begin(), family.samples.end(),
                                          [labels](const Sample& sample) {
                                            return sample.label_values.size() != labels;
                                          }),
                           family.samples.end());
      std::sort(family.samples.begin(), family.samples.end(),
                [](const Sample& a, const Sample& b) { return a.label_values < b.label_values; });
    }
    families.push_back(std::move(family));
  }
  return families;
}

std::string Registry::Scrape() const { return WriteTextFormat(Collect()); }

}  // namespace selene::metrics
