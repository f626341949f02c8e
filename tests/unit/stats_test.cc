// Unit tests for src/common/stats.{h,cc}. The Store is a process-wide singleton shared with every
// other test in this binary, so each test defines metrics under its own unique names and renders
// only the snapshots it owns.
#include "common/stats.h"

#include <re2/re2.h>

#include <unistd.h>

#include <sys/wait.h>
#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace sluice::stats {
namespace {

using ::testing::HasSubstr;

// Bumped by each test's SetUp, so names stay unique under --gtest_repeat too.
int g_generation = 0;

// "stats_test.<TestName>_<generation>.<stat>": unique per test run across the process.
std::string Unique(std::string_view stat) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  return fmt::format("stats_test.{}_{}.{}", info->name(), g_generation, stat);
}

class Stats : public ::testing::Test {
 protected:
  void SetUp() override { ++g_generation; }
};

MetricName Plain(std::string_view stat) {
  const std::string dotted = Unique(stat);
  return MetricName{dotted, dotted, {}};
}

// The Store's snapshots of the metrics whose dotted name starts with this test's prefix.
std::vector<MetricSnapshot> OwnSnapshots() {
  const std::string prefix = Unique("");
  std::vector<MetricSnapshot> out;
  for (MetricSnapshot& s : Store::instance().snapshot()) {
    if (s.name->dotted.starts_with(prefix)) out.push_back(std::move(s));
  }
  return out;
}

const MetricSnapshot* Find(const std::vector<MetricSnapshot>& snaps, std::string_view dotted) {
  for (const MetricSnapshot& s : snaps) {
    if (s.name->dotted == dotted) return &s;
  }
  return nullptr;
}

template <typename Fn>
void RunThreads(int n, Fn fn) {
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) threads.emplace_back([&fn, i] { fn(i); });
  for (auto& t : threads) t.join();
}

MetricSnapshot CounterSnap(const MetricName* name, uint64_t v) {
  MetricSnapshot s{};
  s.name = name;
  s.type = MetricType::Counter;
  s.counter = v;
  return s;
}

MetricSnapshot GaugeSnap(const MetricName* name, int64_t v) {
  MetricSnapshot s{};
  s.name = name;
  s.type = MetricType::Gauge;
  s.gauge = v;
  return s;
}

MetricSnapshot HistogramSnap(const MetricName* name, std::vector<double> bounds,
                             std::vector<uint64_t> cumulative, uint64_t sum) {
  MetricSnapshot s{};
  s.name = name;
  s.type = MetricType::Histogram;
  s.histogram.bounds = std::move(bounds);
  s.histogram.cumulative = std::move(cumulative);
  s.histogram.count = s.histogram.cumulative.empty() ? 0 : s.histogram.cumulative.back();
  s.histogram.sum = sum;
  return s;
}

// ---- Counters, gauges, histograms ------------------------------------------------------------

TEST_F(Stats, HandlesStartInvalid) {
  EXPECT_FALSE(Counter().valid());
  EXPECT_FALSE(Gauge().valid());
  EXPECT_FALSE(Histogram().valid());
  Store& store = Store::instance();
  EXPECT_TRUE(store.counter(Plain("c")).valid());
  EXPECT_TRUE(store.gauge(Plain("g")).valid());
  EXPECT_TRUE(store.histogram(Plain("h")).valid());
}

TEST_F(Stats, CounterStartsAtZeroAndIncrements) {
  Counter c = Store::instance().counter(Plain("requests"));
  EXPECT_EQ(c.value(), 0u);
  c.inc();
  c.inc(41);
  EXPECT_EQ(c.value(), 42u);
}

TEST_F(Stats, CounterSummedAcrossThreads) {
  constexpr int kThreads = 8;
  constexpr int kIncrements = 20000;
  Counter c = Store::instance().counter(Plain("hits"));
  c.inc(7);  // the main thread's share
  RunThreads(kThreads, [&](int i) {
    for (int j = 0; j < kIncrements; ++j) c.inc();
    c.inc(static_cast<uint64_t>(i));
  });
  // Threads have exited: their counts stay part of the total.
  const uint64_t expected = 7 + uint64_t{kThreads} * kIncrements + (kThreads * (kThreads - 1)) / 2;
  EXPECT_EQ(c.value(), expected);
  const auto snaps = OwnSnapshots();
  const MetricSnapshot* s = Find(snaps, Unique("hits"));
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->type, MetricType::Counter);
  EXPECT_EQ(s->counter, expected);
}

TEST_F(Stats, ScrapingWhileThreadsWriteIsSafeAndFinalSumExact) {
  constexpr int kThreads = 4;
  constexpr int kIncrements = 50000;
  Counter c = Store::instance().counter(Plain("busy"));
  std::atomic<bool> done{false};
  std::thread scraper([&] {
    uint64_t last = 0;
    while (!done.load()) {
      const uint64_t v = c.value();
      EXPECT_GE(v, last);  // each thread's slot only grows
      last = v;
      (void)Store::instance().snapshot();
    }
  });
  RunThreads(kThreads, [&](int) {
    for (int j = 0; j < kIncrements; ++j) c.inc();
  });
  done = true;
  scraper.join();
  EXPECT_EQ(c.value(), uint64_t{kThreads} * kIncrements);
}

TEST_F(Stats, GaugeSummedAcrossThreads) {
  constexpr int kThreads = 6;
  Gauge g = Store::instance().gauge(Plain("active"));
  EXPECT_EQ(g.value(), 0);
  RunThreads(kThreads, [&](int) {
    for (int j = 0; j < 1000; ++j) g.inc();
    for (int j = 0; j < 400; ++j) g.dec();
    g.inc(10);
    g.dec(5);
  });
  EXPECT_EQ(g.value(), kThreads * 605);
  // A gauge may go negative (e.g. dec on another thread than inc).
  RunThreads(1, [&](int) { g.dec(kThreads * 605 + 3); });
  EXPECT_EQ(g.value(), -3);
}

TEST_F(Stats, GaugeSetOverridesTheCrossThreadSum) {
  Gauge g = Store::instance().gauge(Plain("live"));
  RunThreads(3, [&](int) { g.inc(100); });
  g.set(1);
  EXPECT_EQ(g.value(), 1);
  g.set(-20);
  EXPECT_EQ(g.value(), -20);
  g.set(0);
  EXPECT_EQ(g.value(), 0);
  const auto snaps = OwnSnapshots();
  const MetricSnapshot* s = Find(snaps, Unique("live"));
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->type, MetricType::Gauge);
  EXPECT_EQ(s->gauge, 0);
}

TEST_F(Stats, HistogramSummedAcrossThreads) {
  const std::vector<double> bounds = {1, 5, 10};
  Histogram h = Store::instance().histogram(Plain("latency"), bounds);
  constexpr int kThreads = 4;
  RunThreads(kThreads, [&](int) {
    for (uint64_t v = 0; v < 10; ++v) h.record(v);  // 0..9
    h.record(11);                                   // over the last bound: +Inf only
  });
  const auto snaps = OwnSnapshots();
  const MetricSnapshot* s = Find(snaps, Unique("latency"));
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->type, MetricType::Histogram);
  EXPECT_EQ(s->histogram.bounds, bounds);
  // Per thread: <=1: {0,1}; <=5: +{2,3,4,5}; <=10: +{6,7,8,9}; +Inf: +{11}. Cumulative.
  EXPECT_EQ(s->histogram.cumulative, (std::vector<uint64_t>{8, 24, 40, 44}));
  EXPECT_EQ(s->histogram.count, 44u);
  EXPECT_EQ(s->histogram.sum, uint64_t{kThreads} * (45 + 11));
}

TEST_F(Stats, HistogramBoundsAreInclusive) {
  Histogram h = Store::instance().histogram(Plain("edges"), {0.5, 1, 2});
  h.record(0);  // <= 0.5
  h.record(1);  // == 1: in the "le 1" bucket
  h.record(2);  // == 2
  h.record(3);  // +Inf
  const auto snaps = OwnSnapshots();
  const MetricSnapshot* s = Find(snaps, Unique("edges"));
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->histogram.cumulative, (std::vector<uint64_t>{1, 2, 3, 4}));
  EXPECT_EQ(s->histogram.sum, 6u);
}

TEST_F(Stats, HistogramDefaultBuckets) {
  Histogram h = Store::instance().histogram(Plain("default"));
  h.record(3);
  const auto snaps = OwnSnapshots();
  const MetricSnapshot* s = Find(snaps, Unique("default"));
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->histogram.bounds, default_buckets());
  ASSERT_EQ(s->histogram.cumulative.size(), default_buckets().size() + 1);
  EXPECT_EQ(s->histogram.cumulative[0], 0u);  // le 0.5
  EXPECT_EQ(s->histogram.cumulative[1], 0u);  // le 1
  EXPECT_EQ(s->histogram.cumulative[2], 1u);  // le 5
  EXPECT_EQ(s->histogram.cumulative.back(), 1u);
  EXPECT_TRUE(std::is_sorted(default_buckets().begin(), default_buckets().end()));
}

TEST_F(Stats, DefinitionIsIdempotentByDottedName) {
  Store& store = Store::instance();
  Counter a = store.counter(Plain("same"));
  // Same dotted name, different base/tags: the first definition wins.
  Counter b = store.counter(MetricName{Unique("same"), "something.else", {{"k", "v"}}});
  a.inc(3);
  b.inc(4);
  EXPECT_EQ(a.value(), 7u);
  EXPECT_EQ(b.value(), 7u);

  Gauge g1 = store.gauge(Plain("g"));
  Gauge g2 = store.gauge(Plain("g"));
  g1.inc(2);
  EXPECT_EQ(g2.value(), 2);

  Histogram h1 = store.histogram(Plain("h"), {1, 2});
  Histogram h2 = store.histogram(Plain("h"), {10, 20, 30});  // bounds of the first definition
  h1.record(1);
  h2.record(5);

  const auto snaps = OwnSnapshots();
  ASSERT_EQ(snaps.size(), 3u);
  const MetricSnapshot* same = Find(snaps, Unique("same"));
  ASSERT_NE(same, nullptr);
  EXPECT_EQ(same->name->base, Unique("same"));
  EXPECT_TRUE(same->name->tags.empty());
  const MetricSnapshot* h = Find(snaps, Unique("h"));
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h->histogram.bounds, (std::vector<double>{1, 2}));
  EXPECT_EQ(h->histogram.cumulative, (std::vector<uint64_t>{1, 1, 2}));
}

TEST_F(Stats, DefinitionFromManyThreadsYieldsOneMetric) {
  const MetricName name = Plain("racy");
  RunThreads(8, [&](int) {
    for (int j = 0; j < 100; ++j) Store::instance().counter(name).inc();
  });
  const auto snaps = OwnSnapshots();
  ASSERT_EQ(snaps.size(), 1u);
  EXPECT_EQ(snaps[0].counter, 800u);
}

TEST_F(Stats, SnapshotIsInDefinitionOrder) {
  Store& store = Store::instance();
  store.gauge(Plain("z"));
  store.counter(Plain("a"));
  store.histogram(Plain("m"), {1});
  const auto snaps = OwnSnapshots();
  ASSERT_EQ(snaps.size(), 3u);
  EXPECT_EQ(snaps[0].name->dotted, Unique("z"));
  EXPECT_EQ(snaps[1].name->dotted, Unique("a"));
  EXPECT_EQ(snaps[2].name->dotted, Unique("m"));
}

TEST_F(Stats, ManyMetricsSpanSlotChunks) {
  // More than one 1024-slot chunk of metrics; each keeps its own value.
  Store& store = Store::instance();
  std::vector<Counter> counters;
  for (int i = 0; i < 1500; ++i) counters.push_back(store.counter(Plain(fmt::format("c{}", i))));
  Histogram h = store.histogram(Plain("wide"), std::vector<double>(1100, 1.0));
  for (int i = 0; i < 1500; ++i) counters[static_cast<size_t>(i)].inc(static_cast<uint64_t>(i));
  h.record(2);
  for (int i = 0; i < 1500; ++i) {
    ASSERT_EQ(counters[static_cast<size_t>(i)].value(), static_cast<uint64_t>(i)) << i;
  }
  const auto snaps = OwnSnapshots();
  const MetricSnapshot* s = Find(snaps, Unique("wide"));
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->histogram.count, 1u);
  EXPECT_EQ(s->histogram.cumulative.back(), 1u);
}

TEST_F(Stats, HugeValuesWrapAroundWithoutUndefinedBehaviour) {
  // A plugin can add any u64 to a counter or record it in a histogram (UBSan checks this).
  Counter c = Store::instance().counter(Plain("huge"));
  c.inc(UINT64_MAX);
  c.inc(2);
  EXPECT_EQ(c.value(), 1u);
  RunThreads(2, [&](int) { c.inc(UINT64_MAX / 2 + 1); });  // two threads' slots, summed
  EXPECT_EQ(c.value(), 1u);
  Histogram h = Store::instance().histogram(Plain("huge_h"), {1});
  h.record(UINT64_MAX);
  h.record(UINT64_MAX);
  const auto snaps = OwnSnapshots();
  const MetricSnapshot* s = Find(snaps, Unique("huge_h"));
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->histogram.count, 2u);
  EXPECT_EQ(s->histogram.sum, UINT64_MAX - 1);
}

TEST_F(Stats, TypesMayShareADottedName) {
  // As in Envoy: a counter and a gauge of one name are two metrics.
  Store& store = Store::instance();
  Counter c = store.counter(Plain("both"));
  Gauge g = store.gauge(Plain("both"));
  ASSERT_TRUE(c.valid());
  ASSERT_TRUE(g.valid());
  c.inc(2);
  g.inc(-5);
  EXPECT_EQ(c.value(), 2u);
  EXPECT_EQ(g.value(), -5);
  EXPECT_EQ(OwnSnapshots().size(), 2u);
}

TEST_F(Stats, SharedGaugeIsOneProcessWideValue) {
  SharedGauge g = Store::instance().shared_gauge(Plain("level"));
  ASSERT_TRUE(g.valid());
  RunThreads(4, [&](int) {
    for (int j = 0; j < 1000; ++j) g.inc();
  });
  EXPECT_EQ(g.value(), 4000);  // increments from every thread accumulate
  RunThreads(1, [&](int) { g.set(7); });
  EXPECT_EQ(g.value(), 7);  // a set replaces the value, whichever thread wrote before
  g.set(-2);
  const auto snaps = OwnSnapshots();
  const MetricSnapshot* s = Find(snaps, Unique("level"));
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->type, MetricType::Gauge);
  EXPECT_EQ(s->gauge, -2);
  // The same name again: the same value.
  EXPECT_EQ(Store::instance().shared_gauge(Plain("level")).value(), -2);
}

TEST_F(Stats, GaugeKindsDoNotShareAName) {
  Store& store = Store::instance();
  ASSERT_TRUE(store.gauge(Plain("slot")).valid());
  EXPECT_FALSE(store.shared_gauge(Plain("slot")).valid());
  ASSERT_TRUE(store.shared_gauge(Plain("cell")).valid());
  EXPECT_FALSE(store.gauge(Plain("cell")).valid());
}

TEST_F(Stats, FullStoreGivesInvalidHandles) {
  // A histogram wider than every slot there is: refused, nothing else disturbed.
  Histogram h = Store::instance().histogram(Plain("huge"), std::vector<double>(4u << 20, 1.0));
  EXPECT_FALSE(h.valid());
  EXPECT_EQ(Find(OwnSnapshots(), Unique("huge")), nullptr);
  Counter c = Store::instance().counter(Plain("after"));
  ASSERT_TRUE(c.valid());
  c.inc();
  EXPECT_EQ(c.value(), 1u);
}

// ---- The hidden namespace of plugin metrics --------------------------------------------------

TEST_F(Stats, WasmCustomNamesShowWithoutTheirNamespace) {
  EXPECT_EQ(visible_name("wasmcustom.my_plugin.hits"), "my_plugin.hits");
  EXPECT_EQ(visible_name("cluster.a.upstream_rq_total"), "cluster.a.upstream_rq_total");
  EXPECT_EQ(visible_name("wasmcustom"), "wasmcustom");
  const MetricName c{"wasmcustom.my_plugin.hits", "wasmcustom.my_plugin.hits", {}};
  const MetricName g{"wasmcustom.9lives/left", "wasmcustom.9lives/left", {}};
  const MetricName h{"wasmcustom.sizes", "wasmcustom.sizes", {}};
  EXPECT_EQ(render_text({CounterSnap(&c, 3), GaugeSnap(&g, -1)}),
            "9lives/left: -1\nmy_plugin.hits: 3\n");
  // Prometheus: the plugin's name, sanitized, without Envoy's prefix; a leading digit escaped.
  const std::string prom = render_prometheus(
      {CounterSnap(&c, 3), GaugeSnap(&g, -1), HistogramSnap(&h, {1, 10}, {1, 2, 3}, 15)});
  EXPECT_THAT(prom, HasSubstr("# TYPE my_plugin_hits counter\nmy_plugin_hits 3\n"));
  EXPECT_THAT(prom, HasSubstr("# TYPE _9lives_left gauge\n_9lives_left -1\n"));
  EXPECT_THAT(prom, HasSubstr("sizes_bucket{le=\"10\"} 2\n"));
  EXPECT_THAT(prom, ::testing::Not(HasSubstr("wasmcustom")));
  EXPECT_THAT(prom, ::testing::Not(HasSubstr("envoy_")));
}

TEST_F(Stats, RenderPrometheusKeepsOneSeriesPerLabelSet) {
  // Two names that sanitize to one family and carry the same (no) labels.
  const MetricName a{"wasmcustom.a.b", "wasmcustom.a.b", {}};
  const MetricName b{"wasmcustom.a_b", "wasmcustom.a_b", {}};
  EXPECT_EQ(render_prometheus({CounterSnap(&a, 1), CounterSnap(&b, 2)}),
            "# TYPE a_b counter\na_b 1\n");
}

// ---- Name helpers ------------------------------------------------------------------------------

TEST_F(Stats, NameHelpers) {
  const MetricName hcm = http_conn_manager_stat("ingress_http", "downstream_rq_total");
  EXPECT_EQ(hcm.dotted, "http.ingress_http.downstream_rq_total");
  EXPECT_EQ(hcm.base, "http.downstream_rq_total");
  EXPECT_EQ(hcm.tags, (Tags{{"envoy_http_conn_manager_prefix", "ingress_http"}}));

  const MetricName cluster = cluster_stat("backend", "upstream_rq_total");
  EXPECT_EQ(cluster.dotted, "cluster.backend.upstream_rq_total");
  EXPECT_EQ(cluster.base, "cluster.upstream_rq_total");
  EXPECT_EQ(cluster.tags, (Tags{{"envoy_cluster_name", "backend"}}));

  const MetricName listener = listener_stat("0.0.0.0_8080", "downstream_cx_total");
  EXPECT_EQ(listener.dotted, "listener.0.0.0.0_8080.downstream_cx_total");
  EXPECT_EQ(listener.base, "listener.downstream_cx_total");
  EXPECT_EQ(listener.tags, (Tags{{"envoy_listener_address", "0.0.0.0_8080"}}));

  const MetricName server = server_stat("live");
  EXPECT_EQ(server.dotted, "server.live");
  EXPECT_EQ(server.base, "server.live");
  EXPECT_TRUE(server.tags.empty());
}

// ---- render_text ---------------------------------------------------------------------------

TEST_F(Stats, RenderTextFormat) {
  const MetricName c = cluster_stat("b", "upstream_rq_total");
  const MetricName g = server_stat("live");
  const MetricName h_empty{"http.x.rq_time", "http.rq_time", {}};
  const MetricName h{"cluster.b.upstream_rq_time", "cluster.upstream_rq_time", {}};
  const MetricName neg{"aaa.negative", "aaa.negative", {}};
  const std::vector<MetricSnapshot> snaps = {
      CounterSnap(&c, 12),
      GaugeSnap(&g, 1),
      HistogramSnap(&h_empty, {1, 5}, {0, 0, 0}, 0),
      HistogramSnap(&h, {1, 5}, {1, 2, 3}, 17),
      GaugeSnap(&neg, -4),
  };
  // Sorted by name, "name: value" per line.
  EXPECT_EQ(render_text(snaps),
            "aaa.negative: -4\n"
            "cluster.b.upstream_rq_time: count=3 sum=17\n"
            "cluster.b.upstream_rq_total: 12\n"
            "http.x.rq_time: No recorded values\n"
            "server.live: 1\n");
  EXPECT_EQ(render_text({}), "");
}

TEST_F(Stats, RenderTextFromStore) {
  Store& store = Store::instance();
  store.counter(Plain("b_counter")).inc(5);
  store.gauge(Plain("a_gauge")).set(-2);
  store.histogram(Plain("c_hist"), {1}).record(4);
  EXPECT_EQ(render_text(OwnSnapshots()),
            fmt::format("{}: -2\n{}: 5\n{}: count=1 sum=4\n", Unique("a_gauge"),
                        Unique("b_counter"), Unique("c_hist")));
}

// ---- render_prometheus -----------------------------------------------------------------------

TEST_F(Stats, RenderPrometheusCountersAndGauges) {
  const MetricName rq_a = cluster_stat("alpha", "upstream_rq_total");
  const MetricName rq_b = cluster_stat("beta", "upstream_rq_total");
  const MetricName live = server_stat("live");
  const MetricName cx = http_conn_manager_stat("ingress", "downstream_cx_active");
  const std::vector<MetricSnapshot> snaps = {
      CounterSnap(&rq_a, 3),
      GaugeSnap(&live, 1),
      CounterSnap(&rq_b, 5),
      GaugeSnap(&cx, -1),
  };
  // Families sorted by name; one TYPE line each; members of a family contiguous, in input order.
  EXPECT_EQ(render_prometheus(snaps),
            "# TYPE envoy_cluster_upstream_rq_total counter\n"
            "envoy_cluster_upstream_rq_total{envoy_cluster_name=\"alpha\"} 3\n"
            "envoy_cluster_upstream_rq_total{envoy_cluster_name=\"beta\"} 5\n"
            "# TYPE envoy_http_downstream_cx_active gauge\n"
            "envoy_http_downstream_cx_active{envoy_http_conn_manager_prefix=\"ingress\"} -1\n"
            "# TYPE envoy_server_live gauge\n"
            "envoy_server_live 1\n");
}

TEST_F(Stats, RenderPrometheusHistogram) {
  const MetricName a{
      "cluster.a.upstream_rq_time", "cluster.upstream_rq_time", {{"envoy_cluster_name", "a"}}};
  const MetricName b{
      "cluster.b.upstream_rq_time", "cluster.upstream_rq_time", {{"envoy_cluster_name", "b"}}};
  const std::vector<MetricSnapshot> snaps = {
      HistogramSnap(&a, {0.5, 10, 2500}, {1, 3, 3, 4}, 3010),
      HistogramSnap(&b, {0.5, 10, 2500}, {0, 0, 0, 0}, 0),
  };
  EXPECT_EQ(render_prometheus(snaps),
            "# TYPE envoy_cluster_upstream_rq_time histogram\n"
            "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"a\",le=\"0.5\"} 1\n"
            "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"a\",le=\"10\"} 3\n"
            "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"a\",le=\"2500\"} 3\n"
            "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"a\",le=\"+Inf\"} 4\n"
            "envoy_cluster_upstream_rq_time_sum{envoy_cluster_name=\"a\"} 3010\n"
            "envoy_cluster_upstream_rq_time_count{envoy_cluster_name=\"a\"} 4\n"
            "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"b\",le=\"0.5\"} 0\n"
            "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"b\",le=\"10\"} 0\n"
            "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"b\",le=\"2500\"} 0\n"
            "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"b\",le=\"+Inf\"} 0\n"
            "envoy_cluster_upstream_rq_time_sum{envoy_cluster_name=\"b\"} 0\n"
            "envoy_cluster_upstream_rq_time_count{envoy_cluster_name=\"b\"} 0\n");
}

TEST_F(Stats, RenderPrometheusUntaggedHistogramFromStore) {
  Histogram h = Store::instance().histogram(
      MetricName{Unique("rq_time"), "stats_test.untagged_rq_time", {}}, {1, 5});
  h.record(0);
  h.record(5);
  h.record(6);
  EXPECT_EQ(render_prometheus(OwnSnapshots()),
            "# TYPE envoy_stats_test_untagged_rq_time histogram\n"
            "envoy_stats_test_untagged_rq_time_bucket{le=\"1\"} 1\n"
            "envoy_stats_test_untagged_rq_time_bucket{le=\"5\"} 2\n"
            "envoy_stats_test_untagged_rq_time_bucket{le=\"+Inf\"} 3\n"
            "envoy_stats_test_untagged_rq_time_sum 11\n"
            "envoy_stats_test_untagged_rq_time_count 3\n");
}

TEST_F(Stats, RenderPrometheusDefaultBucketBounds) {
  const MetricName n{"x.h", "x.h", {}};
  std::vector<uint64_t> cumulative(default_buckets().size() + 1, 0);
  const std::string out = render_prometheus({HistogramSnap(&n, default_buckets(), cumulative, 0)});
  for (const char* le :
       {"0.5", "1", "5", "2500", "30000", "300000", "600000", "1800000", "3600000", "+Inf"}) {
    EXPECT_THAT(out, HasSubstr(fmt::format("envoy_x_h_bucket{{le=\"{}\"}} 0\n", le)));
  }
}

TEST_F(Stats, RenderPrometheusSanitizesNamesAndEscapesLabels) {
  const MetricName weird{"w",
                         "listener.0.0.0.0_80.some-stat:x",
                         {{"envoy_listener_address", "a\"b\\c\nd"}, {"second", "2"}}};
  EXPECT_EQ(render_prometheus({CounterSnap(&weird, 1)}),
            "# TYPE envoy_listener_0_0_0_0_80_some_stat_x counter\n"
            "envoy_listener_0_0_0_0_80_some_stat_x{envoy_listener_address=\"a\\\"b\\\\c\\nd\","
            "second=\"2\"} 1\n");
}

TEST_F(Stats, RenderPrometheusTypeClashKeepsFamilyValid) {
  // A counter and a gauge that map to one family name: one TYPE line, the other type dropped.
  const MetricName c{"a.b", "a.b", {{"k", "1"}}};
  const MetricName g{"a_b", "a_b", {{"k", "2"}}};
  EXPECT_EQ(render_prometheus({CounterSnap(&c, 1), GaugeSnap(&g, 2)}),
            "# TYPE envoy_a_b counter\n"
            "envoy_a_b{k=\"1\"} 1\n");
}

// ---- promtool ------------------------------------------------------------------------------

struct CommandResult {
  int exit_code = -1;
  std::string output;
};

bool HavePromtool() { return std::system("command -v promtool >/dev/null 2>&1") == 0; }

// Writes `metrics` to a temporary file and runs `promtool check metrics < file`.
CommandResult PromtoolCheck(const std::string& metrics) {
  const auto dir = std::filesystem::temp_directory_path();
  const std::string path =
      (dir / fmt::format("sluice_stats_test_{}_{}.prom", ::getpid(),
                         ::testing::UnitTest::GetInstance()->current_test_info()->name()))
          .string();
  {
    std::ofstream f(path, std::ios::binary);
    f << metrics;
  }
  CommandResult r;
  FILE* p = ::popen(fmt::format("promtool check metrics < '{}' 2>&1", path).c_str(), "r");
  if (p == nullptr) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), n);
  const int status = ::pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::filesystem::remove(path);
  return r;
}

// A realistic exposition: Envoy-style families with labels, several members, a histogram with the
// default buckets and awkward label values. Counter names end in _total (promtool lints others).
std::string RealisticExposition() {
  Store& store = Store::instance();
  const auto tagged = [](std::string_view base, std::string_view key, std::string_view value) {
    return MetricName{Unique(fmt::format("{}.{}", base, value)),
                      fmt::format("stats_test.promtool.{}", base),
                      {{std::string(key), std::string(value)}}};
  };
  store.counter(tagged("upstream_rq_total", "envoy_cluster_name", "alpha")).inc(3);
  store.counter(tagged("upstream_rq_total", "envoy_cluster_name", "beta")).inc(4);
  store.counter(tagged("downstream_rq_total", "envoy_http_conn_manager_prefix", "in\"g\\r\ness"));
  store.gauge(tagged("downstream_cx_active", "envoy_listener_address", "0.0.0.0_8080")).set(-2);
  store.gauge(MetricName{Unique("live"), "stats_test.promtool.server_live", {}}).set(1);
  Histogram h = store.histogram(tagged("upstream_rq_time", "envoy_cluster_name", "alpha"));
  for (uint64_t v : {0, 1, 3, 70, 2000, 5000000}) h.record(v);
  store.histogram(tagged("upstream_rq_time", "envoy_cluster_name", "beta"));
  store.histogram(MetricName{Unique("custom"), "stats_test.promtool.custom_size", {}},
                  {0.25, 1.5, 1e6});
  return render_prometheus(OwnSnapshots());
}

// The exposition must parse: promtool exits 1 on a parse error and 3 on lint problems only. The
// lint problems tolerated here are the missing HELP lines (see the disabled test below).
TEST_F(Stats, PromtoolParsesPrometheusOutput) {
  if (!HavePromtool()) GTEST_SKIP() << "promtool is not on PATH";
  const std::string text = RealisticExposition();
  ASSERT_THAT(text, HasSubstr("# TYPE envoy_stats_test_promtool_upstream_rq_time histogram"));
  const CommandResult r = PromtoolCheck(text);
  ASSERT_TRUE(r.exit_code == 0 || r.exit_code == 3)
      << "exit " << r.exit_code << ": " << r.output << "\n---\n"
      << text;
  std::string other;
  size_t start = 0;
  while (start < r.output.size()) {
    size_t end = r.output.find('\n', start);
    if (end == std::string::npos) end = r.output.size();
    const std::string_view line(r.output.data() + start, end - start);
    if (!line.empty() && !line.ends_with(" no help text")) other += std::string(line) + "\n";
    start = end + 1;
  }
  EXPECT_EQ(other, "") << text;
}

// Plugin metric names are whatever a plugin chose: sanitized, they must still parse.
TEST_F(Stats, PromtoolParsesPluginMetricNames) {
  if (!HavePromtool()) GTEST_SKIP() << "promtool is not on PATH";
  const MetricName c{
      "wasmcustom.rate-limit.allowed_total", "wasmcustom.rate-limit.allowed_total", {}};
  const MetricName g{"wasmcustom.2fast/2furious", "wasmcustom.2fast/2furious", {}};
  const MetricName h{"wasmcustom.queue:depth", "wasmcustom.queue:depth", {}};
  const MetricName dup{
      "wasmcustom.rate_limit.allowed_total", "wasmcustom.rate_limit.allowed_total", {}};
  const std::string text =
      render_prometheus({CounterSnap(&c, 3), GaugeSnap(&g, 1),
                         HistogramSnap(&h, default_buckets(), std::vector<uint64_t>(20, 1), 4),
                         CounterSnap(&dup, 4)});
  const CommandResult r = PromtoolCheck(text);
  EXPECT_TRUE(r.exit_code == 0 || r.exit_code == 3) << r.output << "\n---\n" << text;
  EXPECT_THAT(r.output, ::testing::Not(HasSubstr("error"))) << text;
}

}  // namespace
}  // namespace sluice::stats

// ---- Istio's packed metric names (Proxy-Wasm plugins) -----------------------------------------

namespace sluice::stats {
namespace {

TEST(WasmMetricName, IstioPackedNamesCarryTheirLabels) {
  const MetricName n = wasm_metric_name(
      "reporter=.=destination;.;source_workload=.=curl;.;response_code=.=200;.;"
      "grpc_response_status=.=;.;istio_requests_total");
  EXPECT_EQ(n.dotted,
            "wasmcustom.reporter=.=destination;.;source_workload=.=curl;.;response_code=.=200;.;"
            "grpc_response_status=.=;.;istio_requests_total");
  EXPECT_EQ(n.base, "wasmcustom.istio_requests_total");
  const Tags want = {{"reporter", "destination"},
                     {"source_workload", "curl"},
                     {"response_code", "200"},
                     {"grpc_response_status", ""}};
  EXPECT_EQ(n.tags, want);
  // Some Istio versions put a '_' before the family; label names are made Prometheus-safe.
  const MetricName old = wasm_metric_name("reporter=.=source;.;bad-label=.=x;.;_istio_tcp_sent");
  EXPECT_EQ(old.base, "wasmcustom.istio_tcp_sent");
  EXPECT_EQ(old.tags[1].first, "bad_label");
  // Plain names are untouched.
  const MetricName plain = wasm_metric_name("my_plugin.requests");
  EXPECT_EQ(plain.base, "wasmcustom.my_plugin.requests");
  EXPECT_TRUE(plain.tags.empty());
  // A label named twice keeps its first value (a series must not repeat a label name).
  const MetricName twice =
      wasm_metric_name("reporter=.=source;.;tenant=.=a;.;reporter=.=forged;.;istio_requests_total");
  const Tags want_twice = {{"reporter", "source"}, {"tenant", "a"}};
  EXPECT_EQ(twice.tags, want_twice);
}

TEST(WasmMetricName, PrometheusShowsOneFamilyWithRealLabels) {
  const MetricName a =
      wasm_metric_name("reporter=.=source;.;response_code=.=200;.;istio_requests_total");
  const MetricName b =
      wasm_metric_name("reporter=.=source;.;response_code=.=503;.;istio_requests_total");
  const std::string out = render_prometheus({CounterSnap(&a, 3), CounterSnap(&b, 1)});
  EXPECT_EQ(out,
            "# TYPE istio_requests_total counter\n"
            "istio_requests_total{reporter=\"source\",response_code=\"200\"} 3\n"
            "istio_requests_total{reporter=\"source\",response_code=\"503\"} 1\n");
}

}  // namespace
}  // namespace sluice::stats

// ---- stats_config.stats_tags ------------------------------------------------------------------

namespace sluice::stats {
namespace {

TagSpecifier RegexTag(std::string name, const std::string& regex) {
  return TagSpecifier{std::move(name), std::make_shared<const re2::RE2>(regex), ""};
}

TEST(TagSpecifiers, RegexRemovesItsFirstGroupAndTagsTheSecond) {
  MetricName n{"wasmcustom.ratelimit.api.allowed", "wasmcustom.ratelimit.api.allowed", {}};
  apply_tag_specifiers({RegexTag("plugin", R"(^ratelimit\.((.+?)\.))")}, n);
  EXPECT_EQ(n.base, "wasmcustom.ratelimit.allowed");
  ASSERT_EQ(n.tags.size(), 1u);
  EXPECT_EQ(n.tags[0], (std::pair<std::string, std::string>{"plugin", "api"}));
  EXPECT_EQ(n.dotted, "wasmcustom.ratelimit.api.allowed") << "/stats keeps the full name";
}

TEST(TagSpecifiers, OneGroupIsBothTheValueAndTheRemovedText) {
  MetricName n{"x.upstream_rq_503", "x.upstream_rq_503", {}};
  apply_tag_specifiers({RegexTag("code", R"(_rq_(\d{3})$)")}, n);
  EXPECT_EQ(n.base, "x.upstream_rq_");
  EXPECT_EQ(n.tags[0].second, "503");
}

TEST(TagSpecifiers, FixedTagsEverythingAndExistingTagsWin) {
  MetricName n = cluster_stat("backend", "upstream_rq_total");
  const size_t before = n.tags.size();
  apply_tag_specifiers(
      {TagSpecifier{"mesh", nullptr, "demo"}, RegexTag("envoy_cluster_name", R"(^(cluster)\.)")},
      n);
  ASSERT_EQ(n.tags.size(), before + 1) << "a tag the name already has is not added twice";
  EXPECT_EQ(n.tags.back(), (std::pair<std::string, std::string>{"mesh", "demo"}));
}

TEST(TagSpecifiers, NoMatchLeavesTheNameAlone) {
  MetricName n{"http.front.rq", "http.rq", {}};
  apply_tag_specifiers({RegexTag("plugin", R"(^ratelimit\.((.+?)\.))")}, n);
  EXPECT_EQ(n.base, "http.rq");
  EXPECT_TRUE(n.tags.empty());
}

}  // namespace
}  // namespace sluice::stats
