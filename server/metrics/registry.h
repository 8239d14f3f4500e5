// Prometheus metrics kept in memory: counters, gauges and histograms, each a family of series told
// apart by label values, and families computed when scraped (process figures, jobs by state).
// There is no global registry: the server creates one and passes it to whatever records metrics,
// so every test gets its own and two servers in one process never share series.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace selene::metrics {

enum class MetricType { kCounter, kGauge, kHistogram };

// One series as collected for a scrape.
struct Sample {
  std::vector<std::string> label_values;  // in the order of the family's label names
  double value = 0.0;                     // counters and gauges
  // Histograms: observations per bucket (not cumulative), the last entry counting those above
  // every bound (the +Inf bucket's own share); their sum and count.
  std::vector<uint64_t> bucket_counts;
  double sum = 0.0;
  uint64_t count = 0;
};

// One family as collected for a scrape: what the text format writes.
struct FamilySnapshot {
  std::string name;
  std::string help;
  MetricType type = MetricType::kGauge;
  std::vector<std::string> label_names;
  std::vector<double> bucket_bounds;  // histograms: increasing upper bounds, +Inf implied
  std::vector<Sample> samples;        // ordered by label values
};

// Only ever goes up. Thread-safe.
class Counter {
 public:
  // `amount` must be >= 0; a negative amount is ignored (a counter never goes down).
  void Increment(double amount = 1.0);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// Goes up and down. Thread-safe.
class Gauge {
 public:
  void Set(double value) { value_.store(value, std::memory_order_relaxed); }
  void Add(double amount);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// Counts observations into buckets by upper bound (value <= bound), with their sum. Thread-safe.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void Observe(double value) ABSL_LOCKS_EXCLUDED(mu_);
  // Per-bucket counts (bounds.size() + 1 entries, the last for values above every bound),
  // sum and count, taken together.
  Sample Snapshot() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  const std::vector<double> bounds_;
  mutable absl::Mutex mu_;
  std::vector<uint64_t> counts_ ABSL_GUARDED_BY(mu_);
  double sum_ ABSL_GUARDED_BY(mu_) = 0.0;
  uint64_t count_ ABSL_GUARDED_BY(mu_) = 0;
};

// Bucket bounds: start, start*factor, ... (count of them). start > 0, factor > 1, count >= 1.
std::vector<double> ExponentialBuckets(double start, double factor, int count);

// The series of one metric, one per combination of label values, made on first use.
// Thread-safe; references returned by WithLabels stay valid until that series is removed.
template <typename Metric>
class Family {
 public:
  // Label values in the order of the family's label names. Throws std::invalid_argument when
  // their number differs from the label names' (a programming error, named in the message).
  Metric& WithLabels(const std::vector<std::string>& label_values) ABSL_LOCKS_EXCLUDED(mu_);
  // The series without labels (a family declared with none).
  Metric& Get() { return WithLabels({}); }

  // Drops a series (e.g. a finished job's); it no longer appears in scrapes. Absent: no-op.
  void Remove(const std::vector<std::string>& label_values) ABSL_LOCKS_EXCLUDED(mu_);

  const std::string& name() const { return name_; }

 private:
  friend class Registry;
  Family(std::string name, std::vector<std::string> label_names,
         std::function<std::unique_ptr<Metric>()> make)
      : name_(std::move(name)), label_names_(std::move(label_names)), make_(std::move(make)) {}
  std::vector<Sample> Collect() const ABSL_LOCKS_EXCLUDED(mu_);

  const std::string name_;
  const std::vector<std::string> label_names_;
  const std::function<std::unique_ptr<Metric>()> make_;
  mutable absl::Mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<Metric>> series_ ABSL_GUARDED_BY(mu_);
};

// Computes a family's samples at scrape time. Runs on the scraping thread; must not block long.
using CollectFunction = std::function<std::vector<Sample>()>;

class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Each Add* throws std::invalid_argument naming the problem when the name is not a valid
  // metric name, a label name is invalid or reserved ("le" in histograms, "__" prefixes), or
  // the name is taken. Families live as long as the registry.
  Family<Counter>& AddCounter(const std::string& name, const std::string& help,
                              std::vector<std::string> label_names = {});
  Family<Gauge>& AddGauge(const std::string& name, const std::string& help,
                          std::vector<std::string> label_names = {});
  // `bounds`: increasing finite upper bounds; the +Inf bucket is always added.
  Family<Histogram>& AddHistogram(const std::string& name, const std::string& help,
                                  std::vector<std::string> label_names, std::vector<double> bounds);
  // A counter or gauge family whose samples `collect` returns at each scrape.
  void AddCollected(const std::string& name, const std::string& help, MetricType type,
                    std::vector<std::string> label_names, CollectFunction collect);

  // Every family, in the order added.
  std::vector<FamilySnapshot> Collect() const ABSL_LOCKS_EXCLUDED(mu_);
  // Collect() in the Prometheus text exposition format.
  std::string Scrape() const;

 private:
  struct Entry {
    FamilySnapshot shape;  // name, help, type, label names, bounds; no samples
    CollectFunction collect;
    std::shared_ptr<void> owner;  // the family object, when there is one
  };
  void Add(FamilySnapshot shape, CollectFunction collect, std::shared_ptr<void> owner)
      ABSL_LOCKS_EXCLUDED(mu_);

  mutable absl::Mutex mu_;
  std::vector<Entry> entries_ ABSL_GUARDED_BY(mu_);
};

}  // namespace selene::metrics
