// Process-wide stats with thread-local storage: the request path increments a slot that only its
// own thread writes (a relaxed load+store, no lock, no shared cache line); a scrape sums every
// thread's slots. Metric definitions (rare: config load, plugin start) take a mutex; updates never
// do.
//
// Each metric has two names: Envoy's dotted stat name ("cluster.backend.upstream_rq_total") for
// /stats, and a tag-extracted form (prometheus base name + tags) for /stats/prometheus, as Envoy's
// default tag extractors would produce it.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace re2 {
class RE2;
}

namespace sluice::stats {

using Tags = std::vector<std::pair<std::string, std::string>>;

enum class MetricType { Counter, Gauge, Histogram };

struct MetricName {
  std::string dotted;  // Envoy stat name, e.g. "http.ingress_http.downstream_rq_total"
  std::string base;    // tag-extracted name, e.g. "http.downstream_rq_total"
  Tags tags;           // e.g. {{"envoy_http_conn_manager_prefix", "ingress_http"}}
};

class Store;

// Handles are cheap value types: a slot index into every thread's block.
class Counter {
 public:
  Counter() = default;
  void inc(uint64_t n = 1) const;
  uint64_t value() const;  // sums all threads (slow; for tests and admin)
  bool valid() const { return slot_ != kInvalid; }

 private:
  friend class Store;
  static constexpr uint32_t kInvalid = ~0u;
  explicit Counter(uint32_t slot) : slot_(slot) {}
  uint32_t slot_ = kInvalid;
};

// Gauges are summed across threads too: inc/dec from any thread; set() writes the calling thread's
// slot after zeroing the others is not possible lock-free, so set() is meant for gauges owned by
// one thread (e.g. the main thread's server.live). SharedGauge below is the alternative when
// several threads set the same gauge.
class Gauge {
 public:
  Gauge() = default;
  void inc(int64_t n = 1) const;
  void dec(int64_t n = 1) const { inc(-n); }
  void set(int64_t v) const;
  int64_t value() const;
  bool valid() const { return slot_ != kInvalid; }

 private:
  friend class Store;
  static constexpr uint32_t kInvalid = ~0u;
  explicit Gauge(uint32_t slot) : slot_(slot) {}
  uint32_t slot_ = kInvalid;
};

// A gauge that is one process-wide value, as Envoy's gauges are: set() from any thread replaces
// it (the last writer wins) and inc() from every thread accumulates, both without a lock. Each
// update is an atomic operation on a cache line other threads also write, which is why the
// proxy's own gauges use Gauge; Proxy-Wasm plugin gauges use this (plugins written for Envoy
// expect its semantics).
class SharedGauge {
 public:
  SharedGauge() = default;
  void inc(int64_t n = 1) const { cell_->fetch_add(n, std::memory_order_relaxed); }
  void set(int64_t v) const { cell_->store(v, std::memory_order_relaxed); }
  int64_t value() const { return cell_->load(std::memory_order_relaxed); }
  bool valid() const { return cell_ != nullptr; }

 private:
  friend class Store;
  explicit SharedGauge(std::atomic<int64_t>* cell) : cell_(cell) {}
  std::atomic<int64_t>* cell_ = nullptr;
};

// Histogram of non-negative integer values (ms, bytes). Slots: one per bucket (cumulative on
// export), one for +Inf, one for the sum, one for the count.
class Histogram {
 public:
  Histogram() = default;
  void record(uint64_t value) const;
  bool valid() const { return bounds_ != nullptr; }

 private:
  friend class Store;
  Histogram(uint32_t slot, const std::vector<double>* bounds) : slot_(slot), bounds_(bounds) {}
  uint32_t slot_ = 0;
  const std::vector<double>* bounds_ = nullptr;
};

// Envoy's default histogram buckets (ms).
const std::vector<double>& default_buckets();

struct HistogramSnapshot {
  std::vector<double> bounds;
  std::vector<uint64_t> cumulative;  // per bound, then +Inf (== count)
  uint64_t sum = 0;
  uint64_t count = 0;
};

struct MetricSnapshot {
  const MetricName* name;
  MetricType type;
  uint64_t counter = 0;
  int64_t gauge = 0;
  HistogramSnapshot histogram;
};

// A bootstrap stats_config.stats_tags entry, compiled: applied to a metric's tag-extracted name
// once, when the metric is defined (never per update or scrape).
struct TagSpecifier {
  std::string name;
  std::shared_ptr<const re2::RE2> regex;  // null: a fixed tag
  std::string fixed_value;
};
// Applies `specifiers` to `name`: a regex that matches the name (the plugin's part for Wasm
// metrics) removes its first capture group's text and adds the tag (the second group's text, or
// the first's); a fixed one adds its tag. A tag name already present is left as it is.
void apply_tag_specifiers(const std::vector<TagSpecifier>& specifiers, MetricName& name);

class Store {
 public:
  static Store& instance();

  // The stats_tags in force for metrics defined from now on (set at start-up).
  void set_tag_specifiers(std::vector<TagSpecifier> specifiers);

  // Idempotent: the same dotted name and type return the same metric. A counter, a gauge and
  // a histogram may share a dotted name (as in Envoy). A handle is invalid when the store is
  // full, or when the name is taken by a gauge of the other kind (Gauge vs SharedGauge).
  Counter counter(MetricName name);
  Gauge gauge(MetricName name);
  SharedGauge shared_gauge(MetricName name);
  Histogram histogram(MetricName name, const std::vector<double>& bounds = default_buckets());

  // Every metric, summed over threads, in definition order.
  std::vector<MetricSnapshot> snapshot() const;

  // Implementation detail, exposed for the handles' inline paths.
  static std::atomic<int64_t>* slot_for_this_thread(uint32_t slot);
  int64_t sum_slot(uint32_t slot) const;

 private:
  struct Metric {
    MetricName name;
    MetricType type;
    uint32_t slot;
    std::unique_ptr<std::vector<double>> bounds;  // histograms
    std::unique_ptr<std::atomic<int64_t>> cell;   // shared gauges (no slot)
  };
  // The metric of that dotted name and type, created if absent; nullptr when the slots are used
  // up or a gauge of the other kind has the name.
  Metric* define(MetricName&& name, MetricType type, const std::vector<double>* bounds,
                 bool shared_cell);

  mutable std::mutex mu_;
  std::vector<TagSpecifier> specifiers_;
  std::vector<std::unique_ptr<Metric>> metrics_;
  uint32_t next_slot_ = 0;
};

// Name helpers for Envoy's standard stat families.
MetricName http_conn_manager_stat(std::string_view prefix, std::string_view stat);
MetricName cluster_stat(std::string_view cluster, std::string_view stat);
MetricName listener_stat(std::string_view listener_address, std::string_view stat);
MetricName server_stat(std::string_view stat);
MetricName tcp_proxy_stat(std::string_view prefix, std::string_view stat);
// A per-class status counter ("...upstream_rq_2xx"): exported in the family `family_base`
// ("cluster.upstream_rq_xx") with envoy_response_code_class="2" first, as Envoy's tag extractor
// does.
MetricName response_class_stat(MetricName name, std::string_view family_base, int code_class);
// A per-code status counter ("...upstream_rq_200"): exported in the family `family_base`
// ("cluster.upstream_rq") with envoy_response_code="200" first.
MetricName response_code_stat(MetricName name, std::string_view family_base, uint32_t code);

// Proxy-Wasm plugin metrics live under this hidden namespace (as in Envoy), so that a plugin
// cannot update one of the proxy's own stats by naming it. Outputs show the name without it:
// "wasmcustom.my_plugin.hits" is "my_plugin.hits" in /stats and "my_plugin_hits" (no "envoy_"
// prefix) in Prometheus.
inline constexpr std::string_view kWasmCustomPrefix = "wasmcustom.";
// The dotted name as outputs show it (the hidden namespace stripped).
std::string_view visible_name(std::string_view dotted);
// The name of a metric a Proxy-Wasm plugin defined. Names in Istio's packed convention carry
// their labels: "reporter=.=destination;.;response_code=.=200;.;istio_requests_total" is the
// family istio_requests_total with labels reporter and response_code. They are unpacked here,
// once per definition, instead of by regexes per scrape as Envoy's stats_tags do. Other names
// are the family as they are. The dotted (/stats) name stays the plugin's, as in Envoy.
MetricName wasm_metric_name(std::string_view plugin_name);

// Renders in Envoy's /stats text format ("name: value" lines, sorted).
std::string render_text(const std::vector<MetricSnapshot>& metrics);
// Renders Prometheus text exposition format with Envoy's names ("envoy_" prefix, tags as labels).
std::string render_prometheus(const std::vector<MetricSnapshot>& metrics);

}  // namespace sluice::stats
