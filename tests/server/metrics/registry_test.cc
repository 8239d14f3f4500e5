#include "server/metrics/registry.h"

#include <stdexcept>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace selene::metrics {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

const FamilySnapshot& Find(const std::vector<FamilySnapshot>& families, const std::string& name) {
  for (const FamilySnapshot& family : families) {
    if (family.name == name) return family;
  }
  throw std::runtime_error("no family " + name);
}

TEST(RegistryTest, CountersGaugesAndHistogramsCollectTheirSeriesByLabels) {
  Registry registry;
  Family<Counter>& requests = registry.AddCounter("requests_total", "Requests.", {"code"});
  Family<Gauge>& running = registry.AddGauge("running", "Running jobs.");
  Family<Histogram>& latency = registry.AddHistogram("latency_seconds", "Latency.", {}, {0.1, 1.0});

  requests.WithLabels({"OK"}).Increment();
  requests.WithLabels({"OK"}).Increment(2);
  requests.WithLabels({"NOT_FOUND"}).Increment();
  running.Get().Set(3);
  running.Get().Add(-1);
  latency.Get().Observe(0.05);
  latency.Get().Observe(0.1);  // on a bound: counted in that bucket (le)
  latency.Get().Observe(0.5);
  latency.Get().Observe(7);

  const std::vector<FamilySnapshot> families = registry.Collect();
  ASSERT_EQ(families.size(), 3u);
  EXPECT_EQ(families[0].name, "requests_total");  // in the order added
  const FamilySnapshot& counts = Find(families, "requests_total");
  ASSERT_EQ(counts.samples.size(), 2u);
  EXPECT_THAT(counts.samples[0].label_values, ElementsAre("NOT_FOUND"));  // sorted by labels
  EXPECT_EQ(counts.samples[0].value, 1);
  EXPECT_EQ(counts.samples[1].value, 3);
  EXPECT_EQ(Find(families, "running").samples.at(0).value, 2);
  const Sample& histogram = Find(families, "latency_seconds").samples.at(0);
  EXPECT_THAT(histogram.bucket_counts, ElementsAre(2, 1, 1));
  EXPECT_EQ(histogram.count, 4u);
  EXPECT_DOUBLE_EQ(histogram.sum, 7.65);
}

TEST(RegistryTest, CountersIgnoreNegativeIncrements) {
  Registry registry;
  Counter& counter = registry.AddCounter("c_total", "C.").Get();
  counter.Increment(5);
  counter.Increment(-3);
  EXPECT_EQ(counter.value(), 5);
}

TEST(RegistryTest, RemovedSeriesLeaveTheScrape) {
  Registry registry;
  Family<Gauge>& epoch = registry.AddGauge("job_epoch", "Epoch.", {"job_id"});
  epoch.WithLabels({"job-1"}).Set(2);
  epoch.WithLabels({"job-2"}).Set(5);
  epoch.Remove({"job-1"});
  epoch.Remove({"job-9"});  // absent: no-op
  const std::vector<FamilySnapshot> families = registry.Collect();
  ASSERT_EQ(families[0].samples.size(), 1u);
  EXPECT_THAT(families[0].samples[0].label_values, ElementsAre("job-2"));
}

TEST(RegistryTest, CollectedFamiliesAreComputedAtEachScrapeSortedAndChecked) {
  Registry registry;
  double value = 1;
  registry.AddCollected("jobs", "Jobs by state.", MetricType::kGauge, {"state"}, [&value] {
    std::vector<Sample> samples(3);
    samples[0].label_values = {"running"};
    samples[0].value = value;
    samples[1].label_values = {"queued"};
    samples[1].value = 4;
    samples[2].label_values = {"a", "b"};  // wrong label count: left out, not written
    return samples;
  });
  value = 7;
  const FamilySnapshot family = registry.Collect().at(0);
  ASSERT_EQ(family.samples.size(), 2u);
  EXPECT_THAT(family.samples[0].label_values, ElementsAre("queued"));
  EXPECT_EQ(family.samples[1].value, 7);
}

TEST(RegistryTest, BadNamesLabelsAndDuplicatesAreRefusedByName) {
  Registry registry;
  registry.AddCounter("ok_total", "Fine.");
  auto message = [](auto add) {
    try {
      add();
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no exception");
  };
  EXPECT_THAT(message([&] { registry.AddCounter("ok_total", "Again."); }),
              HasSubstr("ok_total is already registered"));
  EXPECT_THAT(message([&] { registry.AddGauge("9lives", "Bad."); }), HasSubstr("'9lives'"));
  EXPECT_THAT(message([&] { registry.AddGauge("g", "Bad.", {"bad-label"}); }),
              HasSubstr("'bad-label'"));
  EXPECT_THAT(message([&] { registry.AddGauge("g2", "Bad.", {"__reserved"}); }),
              HasSubstr("'__reserved'"));
  EXPECT_THAT(message([&] { registry.AddHistogram("h", "Bad.", {"le"}, {1}); }),
              HasSubstr("'le' is reserved"));
  EXPECT_THAT(message([&] {
                registry.AddHistogram("h2", "Bad.", {}, {1, 1});
              }),
              HasSubstr("increasing"));
  Family<Counter>& labelled = registry.AddCounter("l_total", "L.", {"a", "b"});
  EXPECT_THAT(message([&] { labelled.WithLabels({"x"}); }),
              HasSubstr("1 label values for 2 labels (a, b)"));
}

TEST(RegistryTest, ExponentialBucketsMultiply) {
  EXPECT_THAT(ExponentialBuckets(0.001, 10, 4), ElementsAre(0.001, 0.01, 0.1, 1.0));
  EXPECT_THROW(ExponentialBuckets(0, 2, 3), std::invalid_argument);
}

TEST(RegistryTest, ConcurrentUpdatesAreAllCounted) {
  Registry registry;
  Family<Counter>& counter = registry.AddCounter("hits_total", "Hits.", {"thread"});
  Family<Histogram>& histogram = registry.AddHistogram("h_seconds", "H.", {}, {0.5});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10000; ++i) {
        counter.WithLabels({"shared"}).Increment();
        histogram.Get().Observe(t % 2 == 0 ? 0.25 : 1.0);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  const std::vector<FamilySnapshot> families = registry.Collect();
  EXPECT_EQ(families[0].samples.at(0).value, 40000);
  EXPECT_THAT(families[1].samples.at(0).bucket_counts, ElementsAre(20000, 20000));
}

}  // namespace
}  // namespace selene::metrics
