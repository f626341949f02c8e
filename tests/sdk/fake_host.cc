#include "fake_host.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>

#include "sluice/proxy_wasm_abi.h"

namespace fakehost {

namespace {

Host* g_host = new Host();

std::map<std::string, const SluiceNullPlugin*>& plugins() {
  static std::map<std::string, const SluiceNullPlugin*> p;
  return p;
}

// The VM instance whose export runs (Vm::call sets it, as the null runtime does).
const void* g_current_instance = nullptr;

// As the real host does: copy into the VM's return buffer if it offered one and the value
// fits, else into memory from the module's allocator; 0/0 when empty.
void give(const std::string& data, const char** ptr, size_t* size) {
  if (data.empty()) {
    *ptr = nullptr;
    *size = 0;
    return;
  }
  auto buffer = host().return_buffers.find(g_current_instance);
  if (buffer != host().return_buffers.end() && data.size() <= buffer->second.second) {
    std::memcpy(buffer->second.first, data.data(), data.size());
    ++host().return_buffer_uses;
    *ptr = buffer->second.first;
    *size = data.size();
    return;
  }
  char* p = static_cast<char*>(::malloc(data.size()));
  std::memcpy(p, data.data(), data.size());
  *ptr = p;
  *size = data.size();
}

// For the two functions Sluice may run as leaves: with `leaf_calls` set, a value that does not
// fit the return buffer is answered kBufferTooSmall with the size it needs, as Sluice answers a
// module that exports sluice_retries_buffer_too_small.
uint32_t give_value(const std::string& data, const char** ptr, size_t* size) {
  if (host().leaf_calls && !data.empty()) {
    auto buffer = host().return_buffers.find(g_current_instance);
    if (buffer == host().return_buffers.end() || data.size() > buffer->second.second) {
      ++host().too_small_answers;
      *ptr = nullptr;
      *size = data.size();
      return 1000;
    }
  }
  give(data, ptr, size);
  return 0;
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

void put32(std::string& s, uint32_t v) { s.append(reinterpret_cast<const char*>(&v), 4); }

}  // namespace

std::string encode_pairs(const Pairs& pairs) {
  std::string out;
  put32(out, static_cast<uint32_t>(pairs.size()));
  for (const auto& [k, v] : pairs) {
    put32(out, static_cast<uint32_t>(k.size()));
    put32(out, static_cast<uint32_t>(v.size()));
  }
  for (const auto& [k, v] : pairs) {
    out += k;
    out.push_back('\0');
    out += v;
    out.push_back('\0');
  }
  return out;
}

Pairs decode_pairs(const std::string& blob) {
  Pairs out;
  if (blob.size() < 4) return out;
  uint32_t n;
  std::memcpy(&n, blob.data(), 4);
  size_t pos = 4 + 8 * size_t{n};
  for (uint32_t i = 0; i < n; ++i) {
    uint32_t kl, vl;
    std::memcpy(&kl, blob.data() + 4 + 8 * i, 4);
    std::memcpy(&vl, blob.data() + 8 + 8 * i, 4);
    if (pos + kl + vl + 2 > blob.size()) return {};
    out.emplace_back(blob.substr(pos, kl), blob.substr(pos + kl + 1, vl));
    pos += kl + vl + 2;
  }
  return out;
}

Host& host() { return *g_host; }
void reset() {
  delete g_host;
  g_host = new Host();
}

bool Host::logged(const std::string& needle) const {
  for (const auto& [level, msg] : logs) {
    if (msg.find(needle) != std::string::npos) return true;
  }
  return false;
}

std::optional<std::string> Host::header(int map, const std::string& key) const {
  for (const auto& [k, v] : maps[map]) {
    if (k == key) return v;
  }
  return std::nullopt;
}

const SluiceNullPlugin* find_plugin(const std::string& name) {
  auto it = plugins().find(name);
  return it == plugins().end() ? nullptr : it->second;
}

Vm::Vm(const SluiceNullPlugin* plugin) : plugin_(plugin), instance_(plugin->create_instance()) {}
Vm::~Vm() { plugin_->destroy_instance(instance_); }

bool Vm::has(const std::string& name) const {
  for (uint32_t i = 0; i < plugin_->num_exports; ++i) {
    if (name == plugin_->exports[i].name) return true;
  }
  return false;
}

uint64_t Vm::call(const std::string& name, std::initializer_list<uint64_t> args) {
  for (uint32_t i = 0; i < plugin_->num_exports; ++i) {
    const SluiceNullExport& e = plugin_->exports[i];
    if (name != e.name) continue;
    std::string sig = e.signature;
    EXPECT_EQ(sig.find(':'), args.size()) << name << " has signature " << sig;
    host().effective_context = 0;  // reset on every host->VM call, as the real host does
    const void* outer = g_current_instance;
    g_current_instance = instance_;
    const uint64_t r = e.fn(instance_, args.begin());
    g_current_instance = outer;
    return r;
  }
  ADD_FAILURE() << "missing export " << name;
  return 0;
}

uint64_t Vm::start_root(uint32_t root, const std::string& root_id, const std::string& vm_config,
                        const std::string& plugin_config) {
  Host& h = host();
  h.properties["plugin_root_id"] = root_id;
  call("proxy_on_context_create", {root, 0});
  h.buffers[6] = vm_config;
  h.buffer_available[6] = true;
  uint64_t ok = call("proxy_on_vm_start", {root, vm_config.size()});
  h.buffer_available[6] = false;
  if (!ok) return 0;
  h.buffers[7] = plugin_config;
  h.buffer_available[7] = true;
  ok = call("proxy_on_configure", {root, plugin_config.size()});
  h.buffer_available[7] = false;
  return ok;
}

}  // namespace fakehost

using fakehost::host;

// ---- the host functions ---------------------------------------------------------------------

extern "C" {

void sluice_register_null_plugin(const SluiceNullPlugin* plugin) {
  fakehost::plugins()[plugin->name] = plugin;
}
void* sluice_null_current_instance(void) { return const_cast<void*>(fakehost::g_current_instance); }

proxy_status_t proxy_log(uint32_t level, const char* msg, size_t len) {
  if (level > 5) return 2;
  host().logs.emplace_back(level, std::string(msg, len));
  return 0;
}
proxy_status_t proxy_get_log_level(uint32_t* level) {
  *level = 1;
  return 0;
}
proxy_status_t proxy_get_current_time_nanoseconds(uint64_t* nanos) {
  *nanos = 1234567890;
  return 0;
}
proxy_status_t proxy_set_tick_period_milliseconds(uint32_t period_ms) {
  host().tick_period = period_ms;
  return 0;
}
proxy_status_t proxy_get_status(uint32_t* code, const char** msg, size_t* msg_len) {
  *code = 0;
  fakehost::give("", msg, msg_len);
  return 0;
}

proxy_status_t proxy_get_property(const char* path, size_t path_len, const char** value,
                                  size_t* value_len) {
  auto it = host().properties.find(std::string(path, path_len));
  if (it == host().properties.end()) return 1;
  return fakehost::give_value(it->second, value, value_len);
}
proxy_status_t proxy_set_property(const char* path, size_t path_len, const char* value,
                                  size_t value_len) {
  host().properties[std::string(path, path_len)] = std::string(value, value_len);
  return 0;
}

proxy_status_t proxy_get_buffer_bytes(uint32_t type, size_t start, size_t max_size,
                                      const char** data, size_t* size) {
  if (type > 8 || start + max_size < start) return 2;
  if (!host().buffer_available[type]) return 1;
  const std::string& b = host().buffers[type];
  fakehost::give(start >= b.size() ? "" : b.substr(start, max_size), data, size);
  return 0;
}
proxy_status_t proxy_get_buffer_status(uint32_t type, size_t* size, uint32_t* flags) {
  if (type > 8) return 2;
  if (!host().buffer_available[type]) return 1;
  *size = host().buffers[type].size();
  *flags = 0;
  return 0;
}
proxy_status_t proxy_set_buffer_bytes(uint32_t type, size_t start, size_t size, const char* data,
                                      size_t data_len) {
  if (type > 8) return 2;
  if (!host().buffer_available[type] || type >= 6) return 2;
  std::string& b = host().buffers[type];
  std::string in(data, data_len);
  if (start == 0) {  // Envoy's semantics: drain `size`, then prepend
    b = in + b.substr(std::min(size, b.size()));
  } else if (start >= b.size()) {
    b += in;
  } else {
    return 2;
  }
  return 0;
}

proxy_status_t proxy_get_header_map_pairs(uint32_t type, const char** pairs, size_t* size) {
  if (type > 7) return 2;
  fakehost::give(host().maps[type].empty() ? "" : fakehost::encode_pairs(host().maps[type]), pairs,
                 size);
  return 0;
}
proxy_status_t proxy_set_header_map_pairs(uint32_t type, const char* pairs, size_t size) {
  if (type > 7) return 2;
  host().maps[type] = fakehost::decode_pairs(std::string(pairs, size));
  return 0;
}
proxy_status_t proxy_get_header_map_size(uint32_t type, size_t* size) {
  if (type > 7) return 2;
  size_t n = 0;
  for (const auto& [k, v] : host().maps[type]) n += k.size() + v.size();
  *size = n;
  return 0;
}
proxy_status_t proxy_get_header_map_value(uint32_t type, const char* key, size_t key_len,
                                          const char** value, size_t* value_len) {
  if (type > 7) return 2;
  auto v = host().header(type, fakehost::lower(std::string(key, key_len)));
  if (!v) return 1;
  return fakehost::give_value(*v, value, value_len);
}
proxy_status_t proxy_add_header_map_value(uint32_t type, const char* key, size_t key_len,
                                          const char* value, size_t value_len) {
  if (type > 7) return 2;
  host().maps[type].emplace_back(fakehost::lower(std::string(key, key_len)),
                                 std::string(value, value_len));
  return 0;
}
proxy_status_t proxy_remove_header_map_value(uint32_t type, const char* key, size_t key_len) {
  if (type > 7) return 2;
  std::string k = fakehost::lower(std::string(key, key_len));
  auto& m = host().maps[type];
  std::erase_if(m, [&](const auto& p) { return p.first == k; });
  return 0;
}
proxy_status_t proxy_replace_header_map_value(uint32_t type, const char* key, size_t key_len,
                                              const char* value, size_t value_len) {
  if (type > 7) return 2;
  proxy_remove_header_map_value(type, key, key_len);
  return proxy_add_header_map_value(type, key, key_len, value, value_len);
}

proxy_status_t proxy_continue_stream(uint32_t stream_type) {
  if (stream_type > 3) return 2;
  host().continued.push_back(stream_type);
  return 0;
}
proxy_status_t proxy_close_stream(uint32_t stream_type) { return stream_type > 3 ? 2 : 0; }
proxy_status_t proxy_send_local_response(uint32_t status_code, const char* details,
                                         size_t details_len, const char* body, size_t body_len,
                                         const char* header_pairs, size_t header_pairs_len,
                                         int32_t grpc_status) {
  fakehost::LocalReply r;
  r.status = status_code;
  r.details.assign(details, details_len);
  r.body.assign(body, body_len);
  r.headers = fakehost::decode_pairs(std::string(header_pairs, header_pairs_len));
  r.grpc_status = grpc_status;
  host().local_reply = r;
  return 0;
}

proxy_status_t proxy_http_call(const char* upstream, size_t upstream_len, const char* headers,
                               size_t headers_len, const char* body, size_t body_len,
                               const char* trailers, size_t trailers_len, uint32_t timeout_ms,
                               uint32_t* token) {
  fakehost::HttpCall c;
  c.cluster.assign(upstream, upstream_len);
  c.headers = fakehost::decode_pairs(std::string(headers, headers_len));
  c.body.assign(body, body_len);
  c.timeout_ms = timeout_ms;
  c.token = 4 * static_cast<uint32_t>(host().http_calls.size() + 1);
  *token = c.token;
  host().http_calls.push_back(c);
  return 0;
}
proxy_status_t proxy_grpc_call(const char*, size_t, const char*, size_t, const char*, size_t,
                               const char*, size_t, const char*, size_t, uint32_t, uint32_t*) {
  return 12;
}
proxy_status_t proxy_grpc_stream(const char*, size_t, const char*, size_t, const char*, size_t,
                                 const char*, size_t, uint32_t*) {
  return 12;
}
proxy_status_t proxy_grpc_send(uint32_t, const char*, size_t, uint32_t) { return 12; }
proxy_status_t proxy_grpc_cancel(uint32_t) { return 12; }
proxy_status_t proxy_grpc_close(uint32_t) { return 12; }

proxy_status_t proxy_get_shared_data(const char* key, size_t key_len, const char** value,
                                     size_t* value_len, uint32_t* cas) {
  auto it = host().shared.find(std::string(key, key_len));
  if (it == host().shared.end()) return 1;
  fakehost::give(it->second.first, value, value_len);
  *cas = it->second.second;
  if (host().race_next_reads > 0) {
    --host().race_next_reads;
    it->second = {std::to_string(std::stoll(it->second.first) + 100), host().next_cas++};
  }
  return 0;
}
proxy_status_t proxy_set_shared_data(const char* key, size_t key_len, const char* value,
                                     size_t value_len, uint32_t cas) {
  auto& slot = host().shared[std::string(key, key_len)];
  if (cas != 0 && slot.second != cas) return 8;
  slot = {std::string(value, value_len), host().next_cas++};
  return 0;
}
proxy_status_t proxy_register_shared_queue(const char*, size_t, uint32_t* token) {
  *token = 1;
  return 0;
}
proxy_status_t proxy_resolve_shared_queue(const char*, size_t, const char*, size_t, uint32_t*) {
  return 1;
}
proxy_status_t proxy_enqueue_shared_queue(uint32_t, const char*, size_t) { return 1; }
proxy_status_t proxy_dequeue_shared_queue(uint32_t, const char**, size_t*) { return 7; }

proxy_status_t proxy_define_metric(uint32_t type, const char* name, size_t name_len,
                                   uint32_t* metric_id) {
  if (type > 2) return 2;
  auto& ids = host().metric_ids;
  std::string n(name, name_len);
  if (!ids.count(n)) ids[n] = 4 * static_cast<uint32_t>(ids.size() + 1) + type;
  *metric_id = ids[n];
  return 0;
}
proxy_status_t proxy_increment_metric(uint32_t metric_id, int64_t delta) {
  if ((metric_id & 3) == 0 && delta <= 0) return 2;
  if ((metric_id & 3) == 2) return 2;
  host().metric_values[metric_id] += delta;
  return 0;
}
proxy_status_t proxy_record_metric(uint32_t metric_id, uint64_t value) {
  if ((metric_id & 3) == 0) {
    host().metric_values[metric_id] += static_cast<int64_t>(value);
  } else {
    host().metric_values[metric_id] = static_cast<int64_t>(value);
  }
  return 0;
}
proxy_status_t proxy_get_metric(uint32_t metric_id, uint64_t* value) {
  if ((metric_id & 3) == 2) return 2;
  *value = static_cast<uint64_t>(host().metric_values[metric_id]);
  return 0;
}

proxy_status_t proxy_set_effective_context(uint32_t context_id) {
  if (host().ended_contexts.count(context_id) != 0) return 2;
  host().effective_context = context_id;
  return 0;
}
proxy_status_t proxy_done(void) {
  ++host().done_calls;
  return 0;
}
proxy_status_t proxy_call_foreign_function(const char* name, size_t name_len, const char* args,
                                           size_t args_len, const char** result,
                                           size_t* result_len) {
  const std::string n(name, name_len), a(args, args_len);
  if (n.rfind("sluice_", 0) == 0) {
    host().sluice_calls.emplace_back(n, a);
    if (!host().sluice_functions) return 1;
    if (n == "sluice_set_return_buffer" && a.size() == 16) {
      uint64_t ptr, len;
      std::memcpy(&ptr, a.data(), 8);
      std::memcpy(&len, a.data() + 8, 8);
      host().return_buffers[fakehost::g_current_instance] = {
          reinterpret_cast<char*>(static_cast<uintptr_t>(ptr)), len};
    }
    if (n == "sluice_define_header_edits") {  // recorded; answered with the set's id
      // Refused as Sluice refuses a CR or LF in a name or value.
      if (host().refuse_header_edits || a.size() < 8 || a.find_first_of("\r\n") != a.npos) {
        return 2;
      }
      uint32_t id;
      std::memcpy(&id, a.data(), 4);
      if (id == 0) id = ++host().header_edit_sets;
      return fakehost::give_value(std::string(reinterpret_cast<const char*>(&id), 4), result,
                                  result_len);
    }
    if (n == "sluice_get_properties") {  // the wire format of sluice_functions.h, u32 LE
      const auto u32_at = [&](size_t at) {
        uint32_t v;
        std::memcpy(&v, a.data() + at, 4);
        return v;
      };
      if (a.size() < 4) return 2;
      const uint32_t count = u32_at(0);
      std::string sizes, values;
      size_t at = 4 + size_t{4} * count;
      for (uint32_t i = 0; i < count; ++i) {
        const uint32_t path_size = u32_at(4 + 4 * i);
        auto it = host().properties.find(a.substr(at, path_size));
        at += path_size;
        uint32_t size = 0xffffffff;
        if (it != host().properties.end()) {
          size = static_cast<uint32_t>(it->second.size());
          values += it->second;
        }
        sizes.append(reinterpret_cast<const char*>(&size), 4);
      }
      return fakehost::give_value(sizes + values, result, result_len);
    }
    return 0;
  }
  host().foreign_calls.emplace_back(n, a);
  if (n == "compress") return fakehost::give_value("Z(" + a + ")", result, result_len);
  if (n == "uncompress") {
    if (a.size() < 3 || a.compare(0, 2, "Z(") != 0 || a.back() != ')') return 3;
    return fakehost::give_value(a.substr(2, a.size() - 3), result, result_len);
  }
  return 1;
}

}  // extern "C"
