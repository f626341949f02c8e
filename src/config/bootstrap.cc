#include "config/bootstrap.h"

#include <algorithm>

#include <re2/re2.h>

#include "absl/strings/ascii.h"

namespace sluice::config {
namespace {

bool equal_ignore_case(char a, char b) { return absl::ascii_tolower(a) == absl::ascii_tolower(b); }

bool equals_ignore_case(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), equal_ignore_case);
}

bool starts_with_ignore_case(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && equals_ignore_case(s.substr(0, prefix.size()), prefix);
}

bool ends_with_ignore_case(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         equals_ignore_case(s.substr(s.size() - suffix.size()), suffix);
}

bool contains_ignore_case(std::string_view haystack, std::string_view needle) {
  return std::search(haystack.begin(), haystack.end(), needle.begin(), needle.end(),
                     equal_ignore_case) != haystack.end() ||
         needle.empty();
}

}  // namespace

bool StringMatcher::matches(std::string_view input) const {
  switch (kind) {
    case Kind::Exact:
      return ignore_case ? equals_ignore_case(input, value) : input == value;
    case Kind::Prefix:
      return ignore_case ? starts_with_ignore_case(input, value) : input.starts_with(value);
    case Kind::Suffix:
      return ignore_case ? ends_with_ignore_case(input, value) : input.ends_with(value);
    case Kind::Contains:
      return ignore_case ? contains_ignore_case(input, value)
                         : input.find(value) != std::string_view::npos;
    case Kind::SafeRegex:
      // As Envoy: the regex must match the whole input, and ignore_case does not apply.
      return regex != nullptr && RE2::FullMatch(input, *regex);
  }
  return false;
}

WasmPluginSettings SluiceSettings::wasm_settings_for(std::string_view name) const {
  WasmPluginSettings out;
  out.memory_limit_mb = wasm_defaults.memory_limit_mb.value_or(64);
  out.callback_cpu_ms = wasm_defaults.callback_cpu_ms.value_or(50);
  out.startup_cpu_ms = wasm_defaults.startup_cpu_ms.value_or(2000);
  if (auto it = wasm_plugins.find(name); it != wasm_plugins.end()) {
    const WasmPluginSettings& p = it->second;
    if (p.memory_limit_mb) out.memory_limit_mb = p.memory_limit_mb;
    if (p.callback_cpu_ms) out.callback_cpu_ms = p.callback_cpu_ms;
    if (p.startup_cpu_ms) out.startup_cpu_ms = p.startup_cpu_ms;
    out.hide_request_headers = p.hide_request_headers;
    out.hide_response_headers = p.hide_response_headers;
    out.hide_client_address = p.hide_client_address;
  }
  return out;
}

void Bootstrap::for_each_wasm_plugin(const std::function<void(const WasmPlugin&)>& fn) const {
  for (const auto& listener : listeners) {
    for (const auto& chain : listener.filter_chains) {
      for (const auto& filter : chain.filters) {
        if (const auto* hcm = std::get_if<HttpConnectionManager>(&filter.config)) {
          for (const auto& hf : hcm->http_filters) {
            if (hf.wasm) fn(*hf.wasm);
          }
        } else if (const auto* w = std::get_if<WasmPlugin>(&filter.config)) {
          fn(*w);
        }
      }
    }
  }
  for (const auto& service : wasm_services) fn(service.plugin);
}

const Cluster* Bootstrap::find_cluster(std::string_view name) const {
  for (const Cluster& cluster : clusters) {
    if (cluster.name == name) return &cluster;
  }
  return nullptr;
}

}  // namespace sluice::config
