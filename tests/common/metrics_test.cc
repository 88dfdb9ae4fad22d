#include "common/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <thread>
#include <vector>

namespace sluice {
namespace {

TEST(MetricsTest, CounterFamilyRendersExactly) {
  MetricsRegistry registry;
  auto& requests = registry.Counter("sluice_http_requests_total", "HTTP requests", {"route", "status"});
  auto& ok = requests.WithLabels({"/import", "200"});
  ok.Inc();
  ok.Inc(4);
  requests.WithLabels({"/track", "400"}).Inc();
  EXPECT_EQ(&ok, &requests.WithLabels({"/import", "200"}));  // stable reference
  EXPECT_EQ(ok.Value(), 5u);
  EXPECT_EQ(registry.Render(),
            "# HELP sluice_http_requests_total HTTP requests\n"
            "# TYPE sluice_http_requests_total counter\n"
            "sluice_http_requests_total{route=\"/import\",status=\"200\"} 5\n"
            "sluice_http_requests_total{route=\"/track\",status=\"400\"} 1\n");
}

TEST(MetricsTest, UnlabelledSeriesRenderZeroBeforeFirstUse) {
  MetricsRegistry registry;
  registry.Counter("a_total", "A");
  registry.Gauge("b", "B");
  registry.Counter("c_total", "C", {"x"});  // labelled: no series until used
  EXPECT_EQ(registry.Render(),
            "# HELP a_total A\n# TYPE a_total counter\na_total 0\n"
            "# HELP b B\n# TYPE b gauge\nb 0\n"
            "# HELP c_total C\n# TYPE c_total counter\n");
}

TEST(MetricsTest, EscapesLabelValuesAndHelp) {
  MetricsRegistry registry;
  registry.Counter("x_total", "line one\nback\\slash \"quoted\"", {"v"}).WithLabels({"a\"b\\c\nd"}).Inc();
  EXPECT_EQ(registry.Render(),
            "# HELP x_total line one\\nback\\\\slash \"quoted\"\n"
            "# TYPE x_total counter\n"
            "x_total{v=\"a\\\"b\\\\c\\nd\"} 1\n");
}

TEST(MetricsTest, GaugeSetAddAndSpecialValues) {
  MetricsRegistry registry;
  auto& g = registry.Gauge("queue_depth", "Depth", {"queue"});
  g.WithLabels({"a"}).Set(2.5);
  g.WithLabels({"a"}).Add(-1);
  g.WithLabels({"b"}).Set(std::numeric_limits<double>::infinity());
  g.WithLabels({"c"}).Set(std::nan(""));
  g.WithLabels({"d"}).Set(1e-7);
  EXPECT_EQ(registry.Render(),
            "# HELP queue_depth Depth\n# TYPE queue_depth gauge\n"
            "queue_depth{queue=\"a\"} 1.5\n"
            "queue_depth{queue=\"b\"} +Inf\n"
            "queue_depth{queue=\"c\"} NaN\n"
            "queue_depth{queue=\"d\"} 1e-07\n");
}

TEST(MetricsTest, GaugeCallbackEvaluatedAtScrape) {
  MetricsRegistry registry;
  double size = 10;
  registry.GaugeCallback("store_bytes", "Store size", [&] { return size; });
  EXPECT_EQ(registry.Render(), "# HELP store_bytes Store size\n# TYPE store_bytes gauge\nstore_bytes 10\n");
  size = 1234567890123;
  EXPECT_EQ(registry.Render(), "# HELP store_bytes Store size\n# TYPE store_bytes gauge\nstore_bytes 1234567890123\n");
  EXPECT_THROW(registry.GaugeCallback("store_bytes", "again", [] { return 0.0; }), std::logic_error);
}

TEST(MetricsTest, CounterCallbackRendersAsACounter) {
  MetricsRegistry registry;
  double stalled = 0.25;
  registry.CounterCallback("stall_seconds_total", "Stalls", [&] { return stalled; });
  EXPECT_EQ(registry.Render(),
            "# HELP stall_seconds_total Stalls\n# TYPE stall_seconds_total counter\nstall_seconds_total 0.25\n");
  EXPECT_THROW(registry.CounterCallback("stall_seconds_total", "again", [] { return 0.0; }), std::logic_error);
}

TEST(MetricsTest, HistogramBucketsAreCumulativeAndInclusive) {
  MetricsRegistry registry;
  auto& latency = registry.Histogram("latency_seconds", "Latency", {"route"}, {0.005, 0.1, 1});
  auto& h = latency.WithLabels({"/import"});
  h.Observe(0.005);  // le is inclusive
  h.Observe(0.05);
  h.Observe(0.5);
  h.Observe(3);
  EXPECT_EQ(registry.Render(),
            "# HELP latency_seconds Latency\n# TYPE latency_seconds histogram\n"
            "latency_seconds_bucket{route=\"/import\",le=\"0.005\"} 1\n"
            "latency_seconds_bucket{route=\"/import\",le=\"0.1\"} 2\n"
            "latency_seconds_bucket{route=\"/import\",le=\"1\"} 3\n"
            "latency_seconds_bucket{route=\"/import\",le=\"+Inf\"} 4\n"
            "latency_seconds_sum{route=\"/import\"} 3.555\n"
            "latency_seconds_count{route=\"/import\"} 4\n");
}

TEST(MetricsTest, UnlabelledHistogram) {
  MetricsRegistry registry;
  registry.Histogram("batch_events", "Events per batch", {}, {10, 2000}).WithLabels({}).Observe(2000);
  EXPECT_EQ(registry.Render(),
            "# HELP batch_events Events per batch\n# TYPE batch_events histogram\n"
            "batch_events_bucket{le=\"10\"} 0\n"
            "batch_events_bucket{le=\"2000\"} 1\n"
            "batch_events_bucket{le=\"+Inf\"} 1\n"
            "batch_events_sum 2000\n"
            "batch_events_count 1\n");
}

TEST(MetricsTest, ReRegistrationReturnsSameFamilyOrThrowsOnConflict) {
  MetricsRegistry registry;
  auto& a = registry.Counter("x_total", "X", {"a"});
  EXPECT_EQ(&a, &registry.Counter("x_total", "X", {"a"}));
  EXPECT_THROW(registry.Counter("x_total", "X", {"b"}), std::logic_error);
  EXPECT_THROW(registry.Gauge("x_total", "X", {"a"}), std::logic_error);
  registry.Histogram("h", "H", {}, {1, 2});
  EXPECT_THROW(registry.Histogram("h", "H", {}, {1, 3}), std::logic_error);
}

TEST(MetricsTest, MisuseThrows) {
  MetricsRegistry registry;
  EXPECT_THROW(registry.Counter("bad-name", "X"), std::logic_error);
  EXPECT_THROW(registry.Counter("x_total", "X", {"le"}), std::logic_error);
  EXPECT_THROW(registry.Histogram("h", "H", {}, {2, 1}), std::logic_error);
  EXPECT_THROW(registry.Histogram("h2", "H", {}, {}), std::logic_error);
  auto& c = registry.Counter("y_total", "Y", {"a", "b"});
  EXPECT_THROW(c.WithLabels({"only-one"}), std::logic_error);
}

TEST(MetricsTest, ConcurrentIncrementsAreExact) {
  MetricsRegistry registry;
  auto& family = registry.Counter("n_total", "N", {"k"});
  auto& hist = registry.Histogram("h", "H", {"k"}, {1});
  constexpr int kThreads = 4;
  constexpr int kPerThread = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        family.WithLabels({(i % 2) ? "odd" : "even"}).Inc();
        hist.WithLabels({"x"}).Observe(t % 2 ? 0.5 : 2);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(family.WithLabels({"odd"}).Value(), kThreads * kPerThread / 2u);
  EXPECT_EQ(family.WithLabels({"even"}).Value(), kThreads * kPerThread / 2u);
  auto& h = hist.WithLabels({"x"});
  EXPECT_EQ(h.BucketCount(0) + h.BucketCount(1), static_cast<uint64_t>(kThreads * kPerThread));
  EXPECT_DOUBLE_EQ(h.Sum(), 2.0 * kPerThread * 0.5 + 2.0 * kPerThread * 2);
}

}  // namespace
}  // namespace sluice
