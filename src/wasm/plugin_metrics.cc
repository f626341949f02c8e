#include "wasm/plugin_metrics.h"

#include "common/strings.h"

namespace sluice::wasm {

namespace {

enum MetricKind : uint32_t { kCounter = 0, kGauge = 1, kHistogram = 2 };

// ((index + 1) << 2) | type: never 0..3, so a zeroed id is never valid.
uint32_t make_id(uint32_t type, size_t index) {
  return (static_cast<uint32_t>(index + 1) << 2) | type;
}

}  // namespace

template <typename T>
const T* PluginMetrics::lookup(const std::vector<T>& v, uint32_t id) {
  const uint32_t n = id >> 2;
  if (n == 0 || n > v.size()) return nullptr;
  return &v[n - 1];
}

WasmResult PluginMetrics::define(uint32_t type, std::string_view name, uint32_t* id) {
  if (type > kHistogram) return WasmResult::BadArgument;
  std::string key = str_cat(type, ":", name);
  if (auto it = ids_.find(key); it != ids_.end()) {
    *id = it->second;
    return WasmResult::Ok;
  }
  // The visible name is the plugin's; control characters would break /stats lines.
  std::string visible(name);
  for (char& c : visible) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '_';
  }
  stats::MetricName metric_name = stats::wasm_metric_name(visible);
  stats::Store& store = stats::Store::instance();
  uint32_t new_id = 0;
  switch (type) {
    case kCounter: {
      stats::Counter c = store.counter(std::move(metric_name));
      if (!c.valid()) return WasmResult::InternalFailure;
      counters_.push_back(c);
      new_id = make_id(kCounter, counters_.size() - 1);
      break;
    }
    case kGauge: {
      stats::SharedGauge g = store.shared_gauge(std::move(metric_name));
      if (!g.valid()) return WasmResult::InternalFailure;
      gauges_.push_back(g);
      new_id = make_id(kGauge, gauges_.size() - 1);
      break;
    }
    default: {
      stats::Histogram h = store.histogram(std::move(metric_name));
      if (!h.valid()) return WasmResult::InternalFailure;
      histograms_.push_back(h);
      new_id = make_id(kHistogram, histograms_.size() - 1);
      break;
    }
  }
  ids_.emplace(std::move(key), new_id);
  *id = new_id;
  return WasmResult::Ok;
}

WasmResult PluginMetrics::increment(uint32_t id, int64_t delta) {
  switch (id & 3) {
    case kCounter:
      if (const auto* c = lookup(counters_, id)) {
        if (delta <= 0) return WasmResult::BadArgument;
        c->inc(static_cast<uint64_t>(delta));
        return WasmResult::Ok;
      }
      break;
    case kGauge:
      if (const auto* g = lookup(gauges_, id)) {
        g->inc(delta);
        return WasmResult::Ok;
      }
      break;
    case kHistogram:
      if (lookup(histograms_, id)) return WasmResult::BadArgument;
      break;
  }
  return WasmResult::NotFound;
}

WasmResult PluginMetrics::record(uint32_t id, uint64_t value) {
  switch (id & 3) {
    case kCounter:
      if (const auto* c = lookup(counters_, id)) {
        c->inc(value);
        return WasmResult::Ok;
      }
      break;
    case kGauge:
      if (const auto* g = lookup(gauges_, id)) {
        g->set(static_cast<int64_t>(value));
        return WasmResult::Ok;
      }
      break;
    case kHistogram:
      if (const auto* h = lookup(histograms_, id)) {
        h->record(value);
        return WasmResult::Ok;
      }
      break;
  }
  return WasmResult::NotFound;
}

WasmResult PluginMetrics::get(uint32_t id, uint64_t* value) const {
  switch (id & 3) {
    case kCounter:
      if (const auto* c = lookup(counters_, id)) {
        *value = c->value();
        return WasmResult::Ok;
      }
      break;
    case kGauge:
      if (const auto* g = lookup(gauges_, id)) {
        *value = static_cast<uint64_t>(g->value());
        return WasmResult::Ok;
      }
      break;
    case kHistogram:
      if (lookup(histograms_, id)) return WasmResult::BadArgument;
      break;
  }
  return WasmResult::NotFound;
}

}  // namespace sluice::wasm
