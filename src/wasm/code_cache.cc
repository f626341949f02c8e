#include "wasm/code_cache.h"

#include <algorithm>

#include "common/stats.h"
#include "common/strings.h"

namespace sluice::wasm {
namespace {

stats::Counter cache_counter(std::string_view name) {
  const std::string full = str_cat("wasm.remote_load_cache_", name);
  return stats::Store::instance().counter(stats::MetricName{full, full, {}});
}

}  // namespace

CodeCache& CodeCache::instance() {
  static CodeCache cache;
  return cache;
}

const std::string* CodeCache::find(std::string_view sha256) {
  for (const auto& [hash, code] : entries_) {
    if (hash == sha256) {
      cache_counter("hits").inc();
      return code.get();
    }
  }
  cache_counter("misses").inc();
  return nullptr;
}

bool CodeCache::contains(std::string_view sha256) const {
  return std::any_of(entries_.begin(), entries_.end(),
                     [&](const auto& e) { return e.first == sha256; });
}

void CodeCache::add(const std::string& sha256, std::string code) {
  if (contains(sha256)) return;
  entries_.emplace_back(sha256, std::make_shared<const std::string>(std::move(code)));
  const std::string name = "wasm.remote_load_cache_entries";
  stats::Store::instance()
      .gauge(stats::MetricName{name, name, {}})
      .set(static_cast<int64_t>(entries_.size()));
}

}  // namespace sluice::wasm
