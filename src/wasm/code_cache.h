// Module code fetched from elsewhere (vm_config.code.remote), kept in memory by its sha256 for
// the life of the process: a reload, or another plugin with the same code, never fetches it
// again. Filled by the server's fetcher (server/remote_code.h), read when a plugin loads; main
// thread only.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::wasm {

class CodeCache {
 public:
  static CodeCache& instance();
  // The code with this hash, or nullptr; counted in wasm.remote_load_cache_hits / _misses.
  const std::string* find(std::string_view sha256);
  bool contains(std::string_view sha256) const;
  // Adds code whose hash was checked (wasm.remote_load_cache_entries).
  void add(const std::string& sha256, std::string code);

  // OCI images: the module (by hash) an image reference, or a manifest digest, led to last, so a
  // plugin configured by tag finds its code, and an image seen before is not downloaded again.
  void remember(const std::string& key, const std::string& sha256) { resolved_[key] = sha256; }
  const std::string* remembered(std::string_view key) const {
    auto it = resolved_.find(key);
    return it == resolved_.end() ? nullptr : &it->second;
  }
  std::vector<std::string> remembered_keys() const {
    std::vector<std::string> keys;
    for (const auto& entry : resolved_) keys.push_back(entry.first);
    return keys;
  }

 private:
  std::map<std::string, std::string, std::less<>> resolved_;
  std::vector<std::pair<std::string, std::shared_ptr<const std::string>>> entries_;
};

}  // namespace sluice::wasm
