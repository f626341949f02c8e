// The metrics a module defines with proxy_define_metric, per VM instance (ids are per VM, as in
// Envoy), backed by the process-wide stats Store so they appear in /stats and /stats/prometheus,
// merged across workers, under the name the plugin gave (stored in the hidden "wasmcustom."
// namespace, which outputs strip).
//
// Ids carry the type in their low two bits: counters 4, 8, ...; gauges 5, 9, ...; histograms
// 6, 10, ... Defining the same (type, name) twice in one VM gives the same id.
//
// Merging across workers:
//   - counters and histograms: per-thread slots, summed on scrape (no shared writes);
//   - gauges: one process-wide value, as in Envoy (stats::SharedGauge): increments from every
//     worker accumulate, a set replaces the value (the last writer wins), get reads it. Plugins
//     written for Envoy rely on exactly this; see docs/architecture.md.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/stats.h"
#include "wasm/wasm_result.h"

namespace sluice::wasm {

class PluginMetrics {
 public:
  // type > 2: BadArgument; the Store full: InternalFailure. (Any name is accepted, even an empty
  // one, as in Envoy: define_metric may only answer Ok to the Rust SDK.)
  WasmResult define(uint32_t type, std::string_view name, uint32_t* id);
  // Counter: delta > 0 (else BadArgument); gauge: +/-; histogram: BadArgument.
  WasmResult increment(uint32_t id, int64_t delta);
  // Counter: add; gauge: set; histogram: record.
  WasmResult record(uint32_t id, uint64_t value);
  // Counter or gauge (a negative gauge as two's complement); histogram: BadArgument.
  WasmResult get(uint32_t id, uint64_t* value) const;

 private:
  // Index into the vector of the id's type; nullopt for an id no define returned.
  template <typename T>
  static const T* lookup(const std::vector<T>& v, uint32_t id);

  std::vector<stats::Counter> counters_;
  std::vector<stats::SharedGauge> gauges_;
  std::vector<stats::Histogram> histograms_;
  std::unordered_map<std::string, uint32_t> ids_;  // "<type>:<name>" -> id
};

}  // namespace sluice::wasm
