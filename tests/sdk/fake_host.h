// A fake Proxy-Wasm host for the SDK's native tests: defines every proxy_* function of
// sdk/cpp/include/sluice/proxy_wasm_abi.h (and sluice_register_null_plugin) over plain state,
// and drives null plugins through their SluiceNullPlugin exports as the real host would.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "wasm/vm/null/null_plugin_abi.h"

namespace fakehost {

using Pairs = std::vector<std::pair<std::string, std::string>>;

// The host side's own pairs codec (independent of the SDK's, so one can check the other).
std::string encode_pairs(const Pairs& pairs);
Pairs decode_pairs(const std::string& blob);

struct LocalReply {
  uint32_t status = 0;
  std::string details;
  std::string body;
  Pairs headers;
  int32_t grpc_status = 0;
};

struct HttpCall {
  std::string cluster;
  Pairs headers;
  std::string body;
  uint32_t timeout_ms = 0;
  uint32_t token = 0;
};

struct Host {
  std::map<std::string, std::string> properties;  // NUL-joined path -> raw value
  Pairs maps[8];
  std::string buffers[9];
  bool buffer_available[9] = {};
  std::vector<std::pair<uint32_t, std::string>> logs;
  std::optional<LocalReply> local_reply;
  std::vector<HttpCall> http_calls;
  std::map<std::string, uint32_t> metric_ids;
  std::map<uint32_t, int64_t> metric_values;
  std::map<std::string, std::pair<std::string, uint32_t>> shared;  // key -> (value, cas)
  uint32_t next_cas = 1;
  // Another writer racing the plugin: after each of the next N reads of shared data, the key is
  // rewritten (its decimal value + 100, a new cas), so the plugin's CAS write fails.
  int race_next_reads = 0;
  // Foreign functions: "compress" wraps the bytes in Z(...), "uncompress" unwraps them (3,
  // SerializationFailure, for anything else); other names are NotFound.
  std::vector<std::pair<std::string, std::string>> foreign_calls;  // (name, args)
  // Sluice's own functions (sluice_set_return_buffer, ...) go here instead. They answer
  // NotFound, as Envoy would, unless `sluice_functions` is set: then a return buffer a VM offers
  // receives every value that fits (counted in return_buffer_uses).
  std::vector<std::pair<std::string, std::string>> sluice_calls;
  bool sluice_functions = false;
  // sluice_define_header_edits answers ids from 1 (per host), unless refused.
  bool refuse_header_edits = false;
  uint32_t header_edit_sets = 0;
  std::map<const void*, std::pair<char*, size_t>> return_buffers;  // per VM instance
  int return_buffer_uses = 0;
  // Answer property and header values as Sluice's leaf calls do (fake_host.cc: give_value).
  bool leaf_calls = false;
  int too_small_answers = 0;
  uint32_t effective_context = 0;
  // Contexts the host has ended (their on_delete still to come): set_effective_context refuses
  // them with BadArgument, as Sluice does.
  std::set<uint32_t> ended_contexts;
  uint32_t tick_period = 0;
  int done_calls = 0;
  std::vector<uint32_t> continued;

  bool logged(const std::string& needle) const;
  std::optional<std::string> header(int map, const std::string& key) const;
};

Host& host();  // the state every proxy_* function acts on
void reset();

const SluiceNullPlugin* find_plugin(const std::string& name);

// One VM of a null plugin: create_instance on construction, destroy on destruction.
class Vm {
 public:
  explicit Vm(const SluiceNullPlugin* plugin);
  ~Vm();
  Vm(const Vm&) = delete;
  Vm& operator=(const Vm&) = delete;

  bool has(const std::string& name) const;
  // Calls an export; fails the test if it is missing or the argument count is wrong.
  uint64_t call(const std::string& name, std::initializer_list<uint64_t> args);

  // Root context `root` (plugin_root_id = root_id): create, vm_start, configure. Returns
  // configure's result (0 if vm_start failed).
  uint64_t start_root(uint32_t root, const std::string& root_id, const std::string& vm_config,
                      const std::string& plugin_config);

 private:
  const SluiceNullPlugin* plugin_;
  void* instance_;
};

}  // namespace fakehost
