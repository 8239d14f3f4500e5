#include "server/metrics/text_format.h"

#include <cmath>
#include <limits>

#include "gtest/gtest.h"

namespace selene::metrics {
namespace {

TEST(TextFormatTest, WritesHelpTypeAndSamplesWithEscapedLabels) {
  Registry registry;
  registry
      .AddCounter("selene_requests_total", "Requests by model.\nSecond \\ line.", {"model", "code"})
      .WithLabels({"job \"7\"\\a\nb", "OK"})
      .Increment(3);
  registry.AddGauge("selene_models_loaded", "Models in memory.").Get().Set(2);
  EXPECT_EQ(registry.Scrape(),
            "# HELP selene_requests_total Requests by model.\\nSecond \\\\ line.\n"
            "# TYPE selene_requests_total counter\n"
            "selene_requests_total{model=\"job \\\"7\\\"\\\\a\\nb\",code=\"OK\"} 3\n"
            "# HELP selene_models_loaded Models in memory.\n"
            "# TYPE selene_models_loaded gauge\n"
            "selene_models_loaded 2\n");
}

TEST(TextFormatTest, HistogramsHaveCumulativeBucketsInfSumAndCount) {
  Registry registry;
  Family<Histogram>& latency =
      registry.AddHistogram("rpc_seconds", "Latency.", {"method"}, {0.005, 0.1, 2.5});
  Histogram& segment = latency.WithLabels({"Segment"});
  for (double seconds : {0.001, 0.004, 0.05, 3.0}) segment.Observe(seconds);
  EXPECT_EQ(registry.Scrape(),
            "# HELP rpc_seconds Latency.\n"
            "# TYPE rpc_seconds histogram\n"
            "rpc_seconds_bucket{method=\"Segment\",le=\"0.005\"} 2\n"
            "rpc_seconds_bucket{method=\"Segment\",le=\"0.1\"} 3\n"
            "rpc_seconds_bucket{method=\"Segment\",le=\"2.5\"} 3\n"
            "rpc_seconds_bucket{method=\"Segment\",le=\"+Inf\"} 4\n"
            "rpc_seconds_sum{method=\"Segment\"} 3.055\n"
            "rpc_seconds_count{method=\"Segment\"} 4\n");
}

TEST(TextFormatTest, AFamilyWithoutSeriesStillDeclaresItself) {
  Registry registry;
  registry.AddGauge("selene_job_epoch", "Epoch.", {"job_id"});
  EXPECT_EQ(registry.Scrape(), "# HELP selene_job_epoch Epoch.\n# TYPE selene_job_epoch gauge\n");
}

TEST(TextFormatTest, ValuesUseTheFormatsSpellings) {
  EXPECT_EQ(FormatValue(0), "0");
  EXPECT_EQ(FormatValue(12345678901), "12345678901");
  EXPECT_EQ(FormatValue(-2), "-2");
  EXPECT_EQ(FormatValue(0.1), "0.1");
  EXPECT_EQ(FormatValue(1.0 / 3.0), "0.3333333333333333");
  EXPECT_EQ(FormatValue(1e300), "1e+300");
  EXPECT_EQ(FormatValue(0.1 + 0.2), "0.30000000000000004");
  EXPECT_EQ(FormatValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(FormatValue(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(FormatValue(std::nan("")), "NaN");
}

TEST(TextFormatTest, EscapesOnlyWhatTheFormatNames) {
  EXPECT_EQ(EscapeLabelValue("a\\b\"c\nd\te"), "a\\\\b\\\"c\\nd\te");
  EXPECT_EQ(EscapeHelp("say \"hi\"\\\n"), "say \"hi\"\\\\\\n");
}

}  // namespace
}  // namespace selene::metrics
