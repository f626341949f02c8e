// The SDK's host-function wrappers. Compiled into every extension (inside its SLUICE_SDK_NS).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "dispatch.h"
#include "sluice/sdk.h"

namespace sluice {
inline namespace SLUICE_SDK_NS {

namespace {

Status to_status(proxy_status_t s) { return static_cast<Status>(s); }

// Takes a value a host call returned: in memory the host allocated with our malloc (ours to
// free), or in the VM's return buffer (copied out before the next host call overwrites it).
std::string take(const char* data, size_t size) {
  std::string out(data ? data : "", data ? size : 0);
  release_host_buffer(data);
  return out;
}

// The same value read in place: the return buffer's bytes, valid until the next host call
// writes there; or, from our malloc, a copy in the VM's scratch string (valid as long).
std::string_view view(const char* data, size_t size) {
  if (!data) return {};
  VmState* vm = current_vm_state();
  if (vm && data == vm->return_buffer.data()) return {data, size};
  static std::string outside_callbacks;  // (no VM: only a misuse gets here)
  std::string& scratch = vm ? vm->view_scratch : outside_callbacks;
  scratch.assign(data, size);
  release_host_buffer(data);
  return scratch;
}

std::optional<int64_t> int64_of(std::optional<std::string_view> raw) {
  if (!raw || raw->size() != sizeof(int64_t)) return std::nullopt;
  int64_t v;  // host byte order: little-endian in wasm32, native order in the null VM
  std::memcpy(&v, raw->data(), sizeof(v));
  return v;
}

}  // namespace

std::string_view status_name(Status s) {
  switch (s) {
    case Status::Ok:
      return "Ok";
    case Status::NotFound:
      return "NotFound";
    case Status::BadArgument:
      return "BadArgument";
    case Status::SerializationFailure:
      return "SerializationFailure";
    case Status::ParseFailure:
      return "ParseFailure";
    case Status::BadExpression:
      return "BadExpression";
    case Status::InvalidMemoryAccess:
      return "InvalidMemoryAccess";
    case Status::Empty:
      return "Empty";
    case Status::CasMismatch:
      return "CasMismatch";
    case Status::ResultMismatch:
      return "ResultMismatch";
    case Status::InternalFailure:
      return "InternalFailure";
    case Status::BrokenConnection:
      return "BrokenConnection";
    case Status::Unimplemented:
      return "Unimplemented";
  }
  return "Unknown";
}

// ---- format ---------------------------------------------------------------------------------

namespace detail {

void append_arg(std::string& out, std::string_view v) { out.append(v); }
void append_arg(std::string& out, const char* v) { out.append(v ? v : "(null)"); }
void append_arg(std::string& out, const std::string& v) { out.append(v); }
void append_arg(std::string& out, char v) { out.push_back(v); }
void append_arg(std::string& out, bool v) { out.append(v ? "true" : "false"); }
void append_arg(std::string& out, long long v) { out.append(std::to_string(v)); }
void append_arg(std::string& out, unsigned long long v) { out.append(std::to_string(v)); }
void append_arg(std::string& out, double v) {
  char buf[32];
  int n = std::snprintf(buf, sizeof(buf), "%g", v);
  out.append(buf, n > 0 ? static_cast<size_t>(n) : 0);
}
void append_arg(std::string& out, const void* v) {
  char buf[24];
  int n = std::snprintf(buf, sizeof(buf), "%p", v);
  out.append(buf, n > 0 ? static_cast<size_t>(n) : 0);
}

bool format_until_placeholder(std::string& out, std::string_view& fmt) {
  while (!fmt.empty()) {
    char c = fmt.front();
    if ((c == '{' || c == '}') && fmt.size() >= 2 && fmt[1] == c) {
      out.push_back(c);
      fmt.remove_prefix(2);
    } else if (c == '{' && fmt.size() >= 2 && fmt[1] == '}') {
      fmt.remove_prefix(2);
      return true;
    } else {
      out.push_back(c);
      fmt.remove_prefix(1);
    }
  }
  return false;
}

}  // namespace detail

// ---- logging --------------------------------------------------------------------------------

Status log(LogLevel level, std::string_view message) {
  return to_status(proxy_log(static_cast<uint32_t>(level), message.data(), message.size()));
}

LogLevel log_level() {
  uint32_t level = 0;
  if (proxy_get_log_level(&level) != 0) return LogLevel::Info;
  return static_cast<LogLevel>(level);
}

// ---- pairs ----------------------------------------------------------------------------------

namespace {
void put_u32(std::string& out, size_t pos, uint32_t v) { std::memcpy(&out[pos], &v, 4); }
uint32_t get_u32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
}  // namespace

std::string serialize_pairs(const Pairs& pairs) {
  size_t total = 4;
  for (const auto& [k, v] : pairs) total += 8 + k.size() + v.size() + 2;
  std::string out(total, '\0');
  put_u32(out, 0, static_cast<uint32_t>(pairs.size()));
  size_t sizes = 4;
  size_t data = 4 + 8 * pairs.size();
  for (const auto& [k, v] : pairs) {
    put_u32(out, sizes, static_cast<uint32_t>(k.size()));
    put_u32(out, sizes + 4, static_cast<uint32_t>(v.size()));
    sizes += 8;
    std::memcpy(&out[data], k.data(), k.size());
    data += k.size() + 1;  // the NUL is already there
    std::memcpy(&out[data], v.data(), v.size());
    data += v.size() + 1;
  }
  return out;
}

std::optional<Pairs> parse_pairs(std::string_view blob) {
  Pairs out;
  if (blob.empty()) return out;
  if (blob.size() < 4) return std::nullopt;
  uint64_t n = get_u32(blob.data());
  if (n > (blob.size() - 4) / 8) return std::nullopt;
  size_t data = 4 + 8 * n;
  out.reserve(n);
  for (uint64_t i = 0; i < n; ++i) {
    uint64_t klen = get_u32(blob.data() + 4 + 8 * i);
    uint64_t vlen = get_u32(blob.data() + 8 + 8 * i);
    if (data + klen + vlen + 2 > blob.size() || blob[data + klen] != '\0' ||
        blob[data + klen + 1 + vlen] != '\0') {
      return std::nullopt;
    }
    out.emplace_back(std::string(blob.substr(data, klen)),
                     std::string(blob.substr(data + klen + 1, vlen)));
    data += klen + vlen + 2;
  }
  if (data != blob.size()) return std::nullopt;
  return out;
}

// ---- header maps ----------------------------------------------------------------------------

// The copying reads are built on the views. A value that came through our malloc (a host
// without Sluice's return buffer, or one too big for it) is then copied twice; measured, the
// one shared path is cheaper on Sluice than a separate copy path (its call did not inline).
std::optional<std::string> HeaderMap::get(std::string_view key) const {
  auto value = get_view(key);
  if (!value) return std::nullopt;
  return std::string(*value);
}

std::optional<std::string_view> HeaderMap::get_view(std::string_view key) const {
  const char* value = nullptr;
  size_t size = 0;
  const auto get = [&](const char** v, size_t* n) {
    return proxy_get_header_map_value(static_cast<uint32_t>(type_), key.data(), key.size(), v, n);
  };
  if (get_returned_value(get, &value, &size) != 0) return std::nullopt;
  return view(value, size);
}

Status HeaderMap::add(std::string_view key, std::string_view value) const {
  return to_status(proxy_add_header_map_value(static_cast<uint32_t>(type_), key.data(), key.size(),
                                              value.data(), value.size()));
}

Status HeaderMap::replace(std::string_view key, std::string_view value) const {
  return to_status(proxy_replace_header_map_value(static_cast<uint32_t>(type_), key.data(),
                                                  key.size(), value.data(), value.size()));
}

Status HeaderMap::remove(std::string_view key) const {
  return to_status(
      proxy_remove_header_map_value(static_cast<uint32_t>(type_), key.data(), key.size()));
}

Pairs HeaderMap::pairs() const {
  const char* data = nullptr;
  size_t size = 0;
  if (proxy_get_header_map_pairs(static_cast<uint32_t>(type_), &data, &size) != 0) return {};
  std::string blob = take(data, size);
  return parse_pairs(blob).value_or(Pairs{});
}

Status HeaderMap::set_pairs(const Pairs& pairs) const {
  std::string blob = serialize_pairs(pairs);
  return to_status(
      proxy_set_header_map_pairs(static_cast<uint32_t>(type_), blob.data(), blob.size()));
}

std::optional<size_t> HeaderMap::byte_size() const {
  size_t size = 0;
  if (proxy_get_header_map_size(static_cast<uint32_t>(type_), &size) != 0) return std::nullopt;
  return size;
}

// ---- buffers --------------------------------------------------------------------------------

std::optional<size_t> Buffer::size() const {
  size_t size = 0;
  uint32_t flags = 0;
  if (proxy_get_buffer_status(static_cast<uint32_t>(type_), &size, &flags) != 0) {
    return std::nullopt;
  }
  return size;
}

std::string Buffer::get(size_t start, size_t max_size) const {
  const char* data = nullptr;
  size_t size = 0;
  if (proxy_get_buffer_bytes(static_cast<uint32_t>(type_), start, max_size, &data, &size) != 0) {
    return {};
  }
  return take(data, size);
}

std::string Buffer::get_all() const {
  // Ask for the exact size: start + max_size must not overflow on the host side.
  auto n = size();
  if (!n || *n == 0) return {};
  return get(0, *n);
}

Status Buffer::set(size_t start, size_t size, std::string_view data) const {
  return to_status(
      proxy_set_buffer_bytes(static_cast<uint32_t>(type_), start, size, data.data(), data.size()));
}

Status Buffer::replace_all(std::string_view data) const { return set(0, size().value_or(0), data); }

Status Buffer::append(std::string_view data) const { return set(size().value_or(0), 0, data); }

std::string vm_configuration() { return vm_configuration_buffer().get_all(); }
std::string plugin_configuration() { return plugin_configuration_buffer().get_all(); }

// ---- properties -----------------------------------------------------------------------------

std::string join_property_path(PropertyPath path) {
  std::string out;
  bool first = true;
  for (std::string_view segment : path) {
    if (!first) out.push_back('\0');
    out.append(segment);
    first = false;
  }
  return out;
}

std::optional<std::string> get_property(PropertyPath path) {
  return get_property_joined(join_property_path(path));
}

std::optional<std::string> get_property_joined(std::string_view joined_path) {
  auto value = get_property_view(joined_path);
  if (!value) return std::nullopt;
  return std::string(*value);
}

std::optional<std::string_view> get_property_view(std::string_view joined_path) {
  const char* value = nullptr;
  size_t size = 0;
  const auto get = [&](const char** v, size_t* n) {
    return proxy_get_property(joined_path.data(), joined_path.size(), v, n);
  };
  if (get_returned_value(get, &value, &size) != 0) return std::nullopt;
  return view(value, size);
}

namespace {

void append_u32(std::string& out, uint32_t v) {
  for (int b = 0; b < 4; ++b) out.push_back(static_cast<char>(v >> (8 * b)));
}

uint32_t load_u32(const char* p) {  // little-endian: wasm32, and the hosts a native build runs in
  uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

}  // namespace

PropertyBatch::PropertyBatch(std::span<const std::string_view> joined_paths)
    : paths_(joined_paths.begin(), joined_paths.end()), values_(joined_paths.size()) {
  append_u32(request_, static_cast<uint32_t>(paths_.size()));
  for (const std::string& p : paths_) append_u32(request_, static_cast<uint32_t>(p.size()));
  for (const std::string& p : paths_) request_ += p;
}

std::span<const std::optional<std::string_view>> PropertyBatch::read() {
  const VmState* vm = current_vm_state();
  if (vm && vm->host_is_sluice && paths_.size() <= kMaxBatchedProperties && read_batched()) {
    return values_;
  }
  // One read each. A view lasts only until the next read, so each value is copied to the store
  // first and the views made at the end, when the store no longer moves.
  constexpr size_t kAbsent = SIZE_MAX;
  store_.clear();
  places_.clear();
  for (const std::string& path : paths_) {
    const auto value = get_property_view(path);
    places_.emplace_back(store_.size(), value ? value->size() : kAbsent);
    if (value) store_.append(*value);
  }
  for (size_t i = 0; i < paths_.size(); ++i) {
    if (places_[i].second == kAbsent) {
      values_[i].reset();
    } else {
      values_[i] = std::string_view(store_).substr(places_[i].first, places_[i].second);
    }
  }
  return values_;
}

// Sluice's batched read; false if the host refused it or its answer was not well formed.
bool PropertyBatch::read_batched() {
  const char* data = nullptr;
  size_t size = 0;
  const auto call = [&](const char** v, size_t* n) {
    return proxy_call_foreign_function(kGetProperties.data(), kGetProperties.size(),
                                       request_.data(), request_.size(), v, n);
  };
  if (get_returned_value(call, &data, &size) != 0) return false;
  const std::string_view result = view(data, size);
  const size_t n = paths_.size(), sizes_end = 4 * n;
  if (result.size() < sizes_end) return false;
  size_t at = sizes_end;
  for (size_t i = 0; i < n; ++i) {
    const uint32_t value_size = load_u32(result.data() + 4 * i);
    if (value_size == kNoProperty) {
      values_[i].reset();
      continue;
    }
    if (value_size > result.size() - at) return false;
    values_[i] = result.substr(at, value_size);
    at += value_size;
  }
  return at == result.size();
}

std::optional<int64_t> get_property_int64_joined(std::string_view joined_path) {
  return int64_of(get_property_view(joined_path));
}

std::optional<std::string> get_property_string(PropertyPath path) { return get_property(path); }

std::string plugin_name_or(std::string_view fallback) {
  std::optional<std::string> name = get_property({"plugin_name"});
  if (!name || name->empty()) return std::string(fallback);
  return std::move(*name);
}

std::optional<int64_t> get_property_int64(PropertyPath path) {
  return int64_of(get_property_view(join_property_path(path)));
}

std::optional<uint64_t> get_property_uint64(PropertyPath path) {
  auto v = get_property_int64(path);
  if (!v) return std::nullopt;
  return static_cast<uint64_t>(*v);
}

std::optional<bool> get_property_bool(PropertyPath path) {
  return get_property_bool_joined(join_property_path(path));
}

std::optional<bool> get_property_bool_joined(std::string_view joined_path) {
  auto raw = get_property_view(joined_path);
  if (!raw || raw->size() != 1) return std::nullopt;
  return (*raw)[0] != 0;
}

Status set_property(PropertyPath path, std::string_view value) {
  std::string joined = join_property_path(path);
  return to_status(proxy_set_property(joined.data(), joined.size(), value.data(), value.size()));
}

// ---- metrics --------------------------------------------------------------------------------

std::optional<uint32_t> define_metric(Metric::Type type, std::string_view name) {
  uint32_t id = 0;
  if (proxy_define_metric(static_cast<uint32_t>(type), name.data(), name.size(), &id) != 0) {
    return std::nullopt;
  }
  return id;
}

Status increment_metric(uint32_t metric_id, int64_t delta) {
  return to_status(proxy_increment_metric(metric_id, delta));
}

Status record_metric(uint32_t metric_id, uint64_t value) {
  return to_status(proxy_record_metric(metric_id, value));
}

std::optional<uint32_t> Metric::id() {
  if (!id_) id_ = define_metric(type_, name_);  // on failure: retried on next use
  return id_;
}

Status Metric::increment_by(int64_t delta) {
  auto metric = id();
  if (!metric) return Status::BadArgument;
  return increment_metric(*metric, delta);
}

Status Metric::record_value(uint64_t value) {
  auto metric = id();
  if (!metric) return Status::BadArgument;
  return record_metric(*metric, value);
}

std::optional<uint64_t> Metric::read() {
  auto metric = id();
  if (!metric) return std::nullopt;
  uint64_t value = 0;
  if (proxy_get_metric(*metric, &value) != 0) return std::nullopt;
  return value;
}

// ---- stream control -------------------------------------------------------------------------

Status send_local_response(uint32_t status_code, std::string_view body, const Pairs& headers,
                           std::string_view details, int32_t grpc_status) {
  std::string blob = serialize_pairs(headers);
  return to_status(proxy_send_local_response(status_code, details.data(), details.size(),
                                             body.data(), body.size(), blob.data(), blob.size(),
                                             grpc_status));
}

Status set_effective_context(uint32_t context_id) {
  return to_status(proxy_set_effective_context(context_id));
}

Status continue_stream(StreamType type) {
  return to_status(proxy_continue_stream(static_cast<uint32_t>(type)));
}

Status close_stream(StreamType type) {
  return to_status(proxy_close_stream(static_cast<uint32_t>(type)));
}

// ---- shared data and queues -----------------------------------------------------------------

std::optional<SharedValue> get_shared_data(std::string_view key) {
  const char* value = nullptr;
  size_t size = 0;
  uint32_t cas = 0;
  if (proxy_get_shared_data(key.data(), key.size(), &value, &size, &cas) != 0) return std::nullopt;
  return SharedValue{take(value, size), cas};
}

Status set_shared_data(std::string_view key, std::string_view value, uint32_t cas) {
  return to_status(proxy_set_shared_data(key.data(), key.size(), value.data(), value.size(), cas));
}

Status update_shared_data(std::string_view key, const SharedDataUpdate& update, int max_attempts,
                          std::string* written) {
  for (int attempt = 0; attempt < max_attempts; ++attempt) {
    std::optional<SharedValue> current = get_shared_data(key);
    std::optional<std::string> next =
        update(current ? std::optional<std::string>(std::move(current->value)) : std::nullopt);
    if (!next) return Status::Empty;
    // An absent key is written with cas 0 (the ABI has no "create if absent").
    Status s = set_shared_data(key, *next, current ? current->cas : 0);
    if (s == Status::CasMismatch) continue;  // someone else wrote in between: read again
    if (s == Status::Ok && written) *written = std::move(*next);
    return s;
  }
  return Status::CasMismatch;
}

std::optional<uint32_t> register_shared_queue(std::string_view name) {
  uint32_t token = 0;
  if (proxy_register_shared_queue(name.data(), name.size(), &token) != 0) return std::nullopt;
  return token;
}

std::optional<uint32_t> resolve_shared_queue(std::string_view vm_id, std::string_view name) {
  uint32_t token = 0;
  if (proxy_resolve_shared_queue(vm_id.data(), vm_id.size(), name.data(), name.size(), &token) !=
      0) {
    return std::nullopt;
  }
  return token;
}

Status enqueue_shared_queue(uint32_t token, std::string_view value) {
  return to_status(proxy_enqueue_shared_queue(token, value.data(), value.size()));
}

Status dequeue_shared_queue(uint32_t token, std::string* value) {
  const char* data = nullptr;
  size_t size = 0;
  Status s = to_status(proxy_dequeue_shared_queue(token, &data, &size));
  if (s == Status::Ok) {
    std::string got = take(data, size);
    if (value) *value = std::move(got);
  }
  return s;
}

// ---- header edits --------------------------------------------------------------------------

HeaderEdits& HeaderEdits::push(Op op, std::string_view name, std::string_view value) {
  edits_.push_back(Edit{op, std::string(name), std::string(value)});
  changed_ = true;
  return *this;
}
HeaderEdits& HeaderEdits::add(std::string_view name, std::string_view value) {
  return push(Op::Add, name, value);
}
HeaderEdits& HeaderEdits::replace(std::string_view name, std::string_view value) {
  return push(Op::Replace, name, value);
}
HeaderEdits& HeaderEdits::remove(std::string_view name) { return push(Op::Remove, name, ""); }
HeaderEdits& HeaderEdits::assign(const HeaderEdits& other) {
  if (&other != this) edits_ = other.edits_;
  changed_ = true;
  return *this;
}

void HeaderEdits::apply_to(const HeaderMap& map) const {
  for (const Edit& e : edits_) {
    switch (e.op) {
      case Op::Add:
        map.add(e.name, e.value);
        break;
      case Op::Replace:
        map.replace(e.name, e.value);
        break;
      case Op::Remove:
        map.remove(e.name);
        break;
    }
  }
}

// sluice_define_header_edits: u32 id (0: new), u32 count, count x (u32 op, u32 name size, u32
// value size), then the names and values; answers the id.
uint32_t HeaderEdits::host_id() const {
  if (!changed_) return refused_ ? 0 : id_;
  std::string args;
  append_u32(args, id_);
  append_u32(args, static_cast<uint32_t>(edits_.size()));
  for (const Edit& e : edits_) {
    append_u32(args, static_cast<uint32_t>(e.op));
    append_u32(args, static_cast<uint32_t>(e.name.size()));
    append_u32(args, static_cast<uint32_t>(e.value.size()));
  }
  for (const Edit& e : edits_) args.append(e.name).append(e.value);
  const char* data = nullptr;
  size_t size = 0;
  const auto call = [&](const char** v, size_t* n) {
    return proxy_call_foreign_function(kDefineHeaderEdits.data(), kDefineHeaderEdits.size(),
                                       args.data(), args.size(), v, n);
  };
  // Refused (a bad name or value, too many sets): the SDK applies these edits itself.
  changed_ = false;
  refused_ = true;
  if (get_returned_value(call, &data, &size) == 0) {
    const std::string_view result = view(data, size);
    if (result.size() == 4) {
      id_ = load_u32(result.data());
      refused_ = false;
    }
  }
  return refused_ ? 0 : id_;
}

void HttpContext::edit_response_headers(const HeaderEdits* edits, bool skip_on_response_headers) {
  skip_response_headers_ = skip_on_response_headers;
  sdk_response_edits_ = edits;
  const VmState* vm = current_vm_state();
  if (!vm || !vm->host_is_sluice) return;
  const bool any = edits && !edits->empty();
  const uint32_t id = any ? edits->host_id() : 0;
  // Refused (capability restrictions, a bad value): the SDK applies them in on_response_headers,
  // which Sluice then calls for this stream even if the root declined it.
  const bool refused = any && id == 0;
  const uint32_t flags = refused                    ? kCallResponseHeadersCallback
                         : skip_on_response_headers ? kSkipResponseHeadersCallback
                                                    : 0;
  const uint32_t words[2] = {id, flags};
  char args[sizeof words];  // two u32, little-endian (as wasm32 and every host Sluice runs on)
  std::memcpy(args, words, sizeof args);
  if (proxy_call_foreign_function(kEditResponseHeaders.data(), kEditResponseHeaders.size(), args,
                                  sizeof args, nullptr, nullptr) == 0 &&
      !refused) {
    sdk_response_edits_ = nullptr;  // the host applies them
  }
}

// ---- misc -----------------------------------------------------------------------------------

uint64_t current_time_nanoseconds() {
  uint64_t ns = 0;
  proxy_get_current_time_nanoseconds(&ns);
  return ns;
}

std::optional<std::string> call_foreign_function(std::string_view name, std::string_view args,
                                                 Status* status) {
  const char* data = nullptr;
  size_t size = 0;
  const auto call = [&](const char** v, size_t* n) {
    return proxy_call_foreign_function(name.data(), name.size(), args.data(), args.size(), v, n);
  };
  Status s = to_status(get_returned_value(call, &data, &size));
  if (status) *status = s;
  if (s != Status::Ok) return std::nullopt;
  return take(data, size);
}

std::optional<std::string> zlib_compress(std::string_view data, Status* status) {
  return call_foreign_function("compress", data, status);
}

std::optional<std::string> zlib_uncompress(std::string_view data, Status* status) {
  return call_foreign_function("uncompress", data, status);
}

// ---- contexts -------------------------------------------------------------------------------

std::optional<uint32_t> HttpCallResponse::status() const {
  auto value = http_call_response_headers().get(":status");
  if (!value || value->empty() || value->size() > 3) return std::nullopt;
  uint32_t code = 0;
  for (char c : *value) {
    if (c < '0' || c > '9') return std::nullopt;
    code = code * 10 + static_cast<uint32_t>(c - '0');
  }
  return code;
}

Status RootContext::set_tick_period_milliseconds(uint32_t period_ms) {
  return to_status(proxy_set_tick_period_milliseconds(period_ms));
}

Status RootContext::done() { return to_status(proxy_done()); }

Status RootContext::start_http_call(uint32_t stream_id, std::string_view cluster,
                                    const Pairs& headers, std::string_view body,
                                    const Pairs& trailers, uint32_t timeout_ms,
                                    HttpCallCallback callback) {
  std::string h = serialize_pairs(headers);
  std::string t = serialize_pairs(trailers);
  uint32_t token = 0;
  Status s =
      to_status(proxy_http_call(cluster.data(), cluster.size(), h.data(), h.size(), body.data(),
                                body.size(), t.data(), t.size(), timeout_ms, &token));
  if (s == Status::Ok) http_calls_[token] = PendingCall{stream_id, std::move(callback)};
  return s;
}

Status RootContext::http_call(std::string_view cluster, const Pairs& headers, std::string_view body,
                              const Pairs& trailers, uint32_t timeout_ms,
                              HttpCallCallback callback) {
  return start_http_call(0, cluster, headers, body, trailers, timeout_ms, std::move(callback));
}

Status HttpContext::http_call(std::string_view cluster, const Pairs& headers, std::string_view body,
                              const Pairs& trailers, uint32_t timeout_ms,
                              HttpCallCallback callback) {
  return root_->start_http_call(id(), cluster, headers, body, trailers, timeout_ms,
                                std::move(callback));
}

Status NetworkContext::http_call(std::string_view cluster, const Pairs& headers,
                                 std::string_view body, const Pairs& trailers, uint32_t timeout_ms,
                                 HttpCallCallback callback) {
  return root_->start_http_call(id(), cluster, headers, body, trailers, timeout_ms,
                                std::move(callback));
}

Status RootContext::start_grpc_call(uint32_t stream_id, std::string_view cluster,
                                    std::string_view service, std::string_view method,
                                    const Pairs& metadata, std::string_view message,
                                    uint32_t timeout_ms, GrpcCallCallback callback) {
  std::string md = serialize_pairs(metadata);
  uint32_t token = 0;
  Status s = to_status(proxy_grpc_call(
      cluster.data(), cluster.size(), service.data(), service.size(), method.data(), method.size(),
      md.data(), md.size(), message.data(), message.size(), timeout_ms, &token));
  if (s == Status::Ok) grpc_calls_[token] = PendingGrpcCall{stream_id, std::move(callback)};
  return s;
}

Status RootContext::grpc_call(std::string_view cluster, std::string_view service,
                              std::string_view method, const Pairs& metadata,
                              std::string_view message, uint32_t timeout_ms,
                              GrpcCallCallback callback) {
  return start_grpc_call(0, cluster, service, method, metadata, message, timeout_ms,
                         std::move(callback));
}

Status HttpContext::grpc_call(std::string_view cluster, std::string_view service,
                              std::string_view method, const Pairs& metadata,
                              std::string_view message, uint32_t timeout_ms,
                              GrpcCallCallback callback) {
  return root_->start_grpc_call(id(), cluster, service, method, metadata, message, timeout_ms,
                                std::move(callback));
}

Status RootContext::grpc_stream(std::string_view cluster, std::string_view service,
                                std::string_view method, const Pairs& metadata,
                                std::unique_ptr<GrpcStreamHandler> handler) {
  std::string md = serialize_pairs(metadata);
  uint32_t token = 0;
  Status s =
      to_status(proxy_grpc_stream(cluster.data(), cluster.size(), service.data(), service.size(),
                                  method.data(), method.size(), md.data(), md.size(), &token));
  if (s != Status::Ok) return s;
  handler->root_ = this;
  handler->token_ = token;
  grpc_streams_[token] = std::move(handler);
  return s;
}

Status GrpcStreamHandler::send(std::string_view message, bool end_stream) {
  return to_status(proxy_grpc_send(token_, message.data(), message.size(), end_stream ? 1 : 0));
}

Status GrpcStreamHandler::close() { return to_status(proxy_grpc_close(token_)); }

Status GrpcStreamHandler::cancel() {
  const Status s = to_status(proxy_grpc_cancel(token_));
  cancelled_ = true;
  // Inside one of our own events, the dispatcher deletes us once it returns.
  if (!in_event_ && root_) root_->grpc_streams_.erase(token_);  // deletes this
  return s;
}

// ---- config helpers -------------------------------------------------------------------------

std::string_view trim(std::string_view s) {
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

std::optional<uint64_t> parse_uint64(std::string_view s) {
  if (s.empty()) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    const uint64_t digit = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - digit) / 10) return std::nullopt;  // would overflow
    v = v * 10 + digit;
  }
  return v;
}

size_t replace_substrings(std::string& s, std::string_view from, std::string_view to) {
  if (from.empty()) return 0;
  size_t count = 0;
  for (size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size())) {
    s.replace(pos, from.size(), to);
    ++count;
  }
  return count;
}

std::vector<std::pair<std::string, std::string>> parse_key_value_lines(std::string_view text) {
  std::vector<std::pair<std::string, std::string>> out;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = trim(text.substr(0, nl));
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (line.empty() || line.front() == '#') continue;
    size_t eq = line.find('=');
    if (eq == std::string_view::npos) {
      out.emplace_back(std::string(line), std::string());
    } else {
      out.emplace_back(std::string(trim(line.substr(0, eq))),
                       std::string(trim(line.substr(eq + 1))));
    }
  }
  return out;
}

}  // namespace SLUICE_SDK_NS
}  // namespace sluice
