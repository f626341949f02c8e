// RSS per extra VM: starts add_header instances (WasmInstance::create + initialize + start_root,
// as a worker does) on one thread, keeping them all alive, and reads VmRSS from /proc/self/status
// at each count of the list. Prints one JSON object per runtime:
//   {"runtime":"v8","counts":[1,11,51],"rss_kib":[...],"per_extra_vm_kib":...}
// where per_extra_vm_kib = (RSS at the last count - RSS at the first) / (last - first).
//
//   wasm_vm_rss [v8|null|all] [counts...]    (default: all 1 11 51)
// add_header.wasm comes from $SLUICE_BENCH_ADD_HEADER_WASM, else from the build tree.
#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "bench_common.h"

namespace {

using sluice::wasm::bench::Runtime;

long vm_rss_kib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return -1;
}

bool measure(Runtime rt, const std::vector<size_t>& counts) {
  namespace bench = sluice::wasm::bench;
  auto module = bench::add_header_module(rt);
  if (!module) return false;
  const sluice::wasm::PluginSpec spec = bench::add_header_spec(rt);
  std::vector<bench::StartedInstance> alive;
  std::vector<long> rss;
  for (size_t target : counts) {
    while (alive.size() < target) {
      auto started = bench::start_add_header(module, spec);
      if (!started) return false;
      alive.push_back(std::move(started));
    }
    rss.push_back(vm_rss_kib());
  }
  const double per_vm =
      counts.size() >= 2 && counts.back() > counts.front()
          ? static_cast<double>(rss.back() - rss.front()) / double(counts.back() - counts.front())
          : 0.0;
  std::printf("{\"runtime\":\"%s\",\"counts\":[", rt == Runtime::V8 ? "v8" : "null");
  for (size_t i = 0; i < counts.size(); ++i) std::printf("%s%zu", i ? "," : "", counts[i]);
  std::printf("],\"rss_kib\":[");
  for (size_t i = 0; i < rss.size(); ++i) std::printf("%s%ld", i ? "," : "", rss[i]);
  std::printf("],\"per_extra_vm_kib\":%.1f}\n", per_vm);
  std::fflush(stdout);
  alive.clear();
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  spdlog::set_level(spdlog::level::warn);
  std::string which = argc > 1 ? argv[1] : "all";
  std::vector<size_t> counts;
  for (int i = 2; i < argc; ++i) counts.push_back(std::strtoul(argv[i], nullptr, 10));
  if (counts.empty()) counts = {1, 11, 51};
  bool ok = true;
  // Null first: its instances are malloc'd state, so a V8 isolate made later cannot hide in it.
  if (which == "null" || which == "all") ok = measure(Runtime::Null, counts) && ok;
  if (which == "v8" || which == "all") ok = measure(Runtime::V8, counts) && ok;
  if (which != "null" && which != "v8" && which != "all") {
    std::fprintf(stderr, "usage: wasm_vm_rss [v8|null|all] [counts...]\n");
    return 2;
  }
  return ok ? 0 : 1;
}
