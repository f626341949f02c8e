#include "wasm/abi/host_functions.h"

#include <openssl/rand.h>

#include <chrono>
#include <cstring>
#include <unordered_map>

#include <spdlog/spdlog.h>

#include "common/header_map.h"
#include "common/strings.h"
#include "http/async_client.h"
#include "http/filter.h"
#include "wasm/abi/pairs.h"
#include "wasm/abi/properties.h"
#include "wasm/abi/sluice_functions.h"
#include "wasm/context.h"
#include "wasm/foreign_functions.h"
#include "wasm/plugin.h"
#include "wasm/shared_state.h"

namespace sluice::wasm {

namespace {

using VT = ValType;
using Args = const uint64_t*;

constexpr uint64_t kOk = static_cast<uint64_t>(WasmResult::Ok);
uint64_t res(WasmResult r) { return static_cast<uint64_t>(r); }

// WASI errno values.
constexpr uint64_t kErrnoSuccess = 0, kErrnoBadf = 8, kErrnoNotdir = 20, kErrnoFault = 21,
                   kErrnoInval = 28, kErrnoNoent = 44, kErrnoNosys = 52, kErrnoNotsup = 58;

// Where a host function may be called: Proxy-Wasm forbids most of them while the module
// initializes (_initialize/_start) or while it allocates for the host (malloc).
enum Allowed : uint8_t {
  kInCallbacks = 0,
  kInInit = 1,
  kInMalloc = 2,
  kAlways = kInInit | kInMalloc
};

// Rejects a call in a restricted phase by trapping (as cpp-host does: "restricted_callback").
bool allowed_now(WasmVm& vm, uint8_t allowed, std::string_view name) {
  switch (current_restriction()) {
    case CallRestriction::None:
      return true;
    case CallRestriction::Initializing:
      if (allowed & kInInit) return true;
      break;
    case CallRestriction::Allocating:
      if (allowed & kInMalloc) return true;
      break;
  }
  vm.trap(str_cat("restricted_callback: ", name, " may not be called now"));
  return false;
}

std::string_view plugin_label(Context* ctx) {
  if (ctx && ctx->plugin()) return ctx->plugin()->name;
  return "";
}

// A plugin's log line is one line of bounded size: line breaks are escaped (a plugin must not
// forge the proxy's own log lines) and past kMaxLogLine bytes it is cut, saying so.
constexpr size_t kMaxLogLine = 16 * 1024;

void log_at(uint32_t level, Context* ctx, std::string_view msg) {
  static constexpr spdlog::level::level_enum kLevels[] = {
      spdlog::level::trace, spdlog::level::debug, spdlog::level::info,
      spdlog::level::warn,  spdlog::level::err,   spdlog::level::critical};
  const auto l = kLevels[level > 5 ? 5 : level];
  if (!spdlog::should_log(l)) return;
  std::string cleaned;
  if (msg.size() > kMaxLogLine || msg.find_first_of("\r\n") != std::string_view::npos) {
    const std::string_view kept = msg.substr(0, kMaxLogLine);
    cleaned.reserve(kept.size() + 64);
    for (char c : kept) {
      if (c == '\n') {
        cleaned += "\\n";
      } else if (c == '\r') {
        cleaned += "\\r";
      } else {
        cleaned += c;
      }
    }
    if (msg.size() > kept.size()) {
      cleaned += fmt::format("... [{} bytes cut]", msg.size() - kept.size());
    }
    msg = cleaned;
  }
  const std::string_view name = plugin_label(ctx);
  // Envoy's shape: "wasm log <plugin name> <root id>: message".
  if (ctx && ctx->plugin() && !ctx->plugin()->root_id.empty()) {
    spdlog::log(l, "wasm log {} {}: {}", name, ctx->plugin()->root_id, msg);
  } else {
    spdlog::log(l, "wasm log {}: {}", name, msg);
  }
}

// ---- logging, time, status -----------------------------------------------------------------

uint64_t proxy_log(WasmVm& vm, Args a, void*) {
  std::string_view msg;
  if (!vm.read(a[1], a[2], &msg)) return res(WasmResult::InvalidMemoryAccess);
  if (a[0] > 5) return res(WasmResult::BadArgument);
  log_at(static_cast<uint32_t>(a[0]), current_context(), msg);
  return kOk;
}

uint64_t proxy_get_log_level(WasmVm& vm, Args a, void*) {
  const int l = static_cast<int>(spdlog::get_level());  // trace 0 .. critical 5, off 6: as Envoy
  return vm.set_u32(a[0], static_cast<uint32_t>(l)) ? kOk : res(WasmResult::InvalidMemoryAccess);
}

uint64_t proxy_get_current_time_nanoseconds(WasmVm& vm, Args a, void*) {
  const uint64_t ns = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                                std::chrono::system_clock::now().time_since_epoch())
                                                .count());
  return vm.set_u64(a[0], ns) ? kOk : res(WasmResult::InvalidMemoryAccess);
}

uint64_t proxy_get_status(WasmVm& vm, Args a, void*) {
  Context* ctx = current_context();
  if (!ctx) return res(WasmResult::NotFound);
  Context* root = ctx->root();
  // Every out-param is checked before the first write: a bad one leaves memory untouched.
  const uint32_t w = vm.word_size();
  if (!vm.memory_at(a[0], 4) || !vm.memory_at(a[1], w) || !vm.memory_at(a[2], w)) {
    return res(WasmResult::InvalidMemoryAccess);
  }
  vm.set_u32(a[0], root->status_code);
  return res(ctx->instance().copy_out(root->status_message, a[1], a[2]));
}

uint64_t proxy_set_effective_context(WasmVm&, Args a, void*) {
  WasmInstance* w = current_instance();
  const uint32_t id = static_cast<uint32_t>(a[0]);
  if (!w || !w->find_context(id)) return res(WasmResult::BadArgument);
  set_effective_context_id(id);
  return kOk;
}

uint64_t proxy_done(WasmVm&, Args, void*) {
  Context* ctx = current_context();
  if (!ctx || !ctx->root()->done_pending) return res(WasmResult::NotFound);
  ctx->root()->done_pending = false;
  return kOk;
}

// ---- properties ------------------------------------------------------------------------------

uint64_t proxy_get_property(WasmVm& vm, Args a, void*) {
  std::string_view path;
  if (!vm.read(a[0], a[1], &path)) return res(WasmResult::InvalidMemoryAccess);
  Context* ctx = current_context();
  if (!ctx) return res(WasmResult::NotFound);
  // Values longer than a short string (cluster names, addresses) would cost a malloc per read:
  // reuse one buffer per thread. Taken out while in use, as copy_out may run the module's
  // allocator, which may read a property itself (it then gets a buffer of its own).
  thread_local std::string spare;
  std::string value = std::move(spare);
  value.clear();
  const WasmResult r = get_property(*ctx, path, value);
  const WasmResult copied = r == WasmResult::Ok ? ctx->instance().copy_out(value, a[2], a[3]) : r;
  spare = std::move(value);
  return res(copied);
}

uint64_t proxy_set_property(WasmVm& vm, Args a, void*) {
  std::string_view path, value;
  if (!vm.read(a[0], a[1], &path) || !vm.read(a[2], a[3], &value)) {
    return res(WasmResult::InvalidMemoryAccess);
  }
  Context* ctx = current_context();
  if (!ctx) return res(WasmResult::NotFound);
  return res(set_property(*ctx, path, value));
}

// ---- header maps -----------------------------------------------------------------------------

// The map of `type` for the context's stream; nullptr when there is none now. `for_write`: in a
// message's last body callback, trailers are created on first write (Envoy's addDecodedTrailers),
// so a plugin can end a message with trailers it did not have.
HeaderMap* header_map(Context* ctx, uint64_t type, bool for_write = false) {
  if (!ctx) return nullptr;
  if (type == static_cast<uint64_t>(MapType::HttpCallResponseHeaders) ||
      type == static_cast<uint64_t>(MapType::HttpCallResponseTrailers)) {
    // During proxy_on_http_call_response only; read-only (map_writable says no).
    const http::AsyncResponse* r = ctx->instance().http_call_response();
    if (!r) return nullptr;
    return const_cast<HeaderMap*>(type == static_cast<uint64_t>(MapType::HttpCallResponseHeaders)
                                      ? &r->headers
                                      : &r->trailers);
  }
  if (type == static_cast<uint64_t>(MapType::GrpcReceiveInitialMetadata) ||
      type == static_cast<uint64_t>(MapType::GrpcReceiveTrailingMetadata)) {
    // During proxy_on_grpc_receive_{initial,trailing}_metadata only; read-only too.
    return const_cast<HeaderMap*>(ctx->instance().grpc_metadata(static_cast<MapType>(type)));
  }
  if (!ctx->stream()) return nullptr;
  http::StreamFilterCallbacks& stream = *ctx->stream();
  switch (static_cast<MapType>(type)) {
    case MapType::RequestHeaders:
      return &stream.request_headers();
    case MapType::ResponseHeaders:
      return stream.response_headers();
    case MapType::RequestTrailers:
      return for_write && ctx->phase() == Phase::RequestBody ? stream.add_request_trailers()
                                                             : stream.request_trailers();
    case MapType::ResponseTrailers:
      return for_write && ctx->phase() == Phase::ResponseBody ? stream.add_response_trailers()
                                                              : stream.response_trailers();
    default:
      return nullptr;  // gRPC metadata and callout maps belong to root contexts
  }
}

// Mutations are possible while the map is still in the filter's hands.
bool map_writable(Context* ctx, uint64_t type) {
  const Phase p = ctx->phase();
  switch (static_cast<MapType>(type)) {
    case MapType::RequestHeaders:
      return p == Phase::RequestHeaders || p == Phase::RequestBody;
    case MapType::ResponseHeaders:
      return p == Phase::ResponseHeaders || p == Phase::ResponseBody;
    case MapType::RequestTrailers:
      return p == Phase::RequestTrailers || p == Phase::RequestBody;
    case MapType::ResponseTrailers:
      return p == Phase::ResponseTrailers || p == Phase::ResponseBody;
    default:
      return false;
  }
}

// A name or value with CR, LF or NUL would let a module inject header lines (or a whole request)
// into what the HTTP/1 codec writes: refused with BadArgument.
// Three memchr passes (vectorized): find_first_of would scan the three-byte set once per byte,
// which telemetry's 500-byte metadata headers made a visible cost.
bool header_text_ok(std::string_view s) {
  if (s.empty()) return true;  // (memchr must not see a null pointer, even for 0 bytes)
  return std::memchr(s.data(), '\r', s.size()) == nullptr &&
         std::memchr(s.data(), '\n', s.size()) == nullptr &&
         std::memchr(s.data(), '\0', s.size()) == nullptr;
}
bool header_ok(std::string_view key, std::string_view value) {
  return !key.empty() && header_text_ok(key) && header_text_ok(value);
}

// The plugin's hiding policy when it hides anything (sluice.wasm), else nullptr: the common case
// costs one check.
const HidePolicy* hiding(Context* ctx) {
  const PluginSpec* p = ctx ? ctx->plugin() : nullptr;
  return p && p->hide.any() ? &p->hide : nullptr;
}
bool is_hidden(const HidePolicy* h, uint64_t type, std::string_view lower_name) {
  return h && h->hides(static_cast<uint32_t>(type), lower_name);
}
// A write of a hidden name: ignored (the plugin is told Ok, as if it happened), counted, and
// logged the first time for its plugin.
uint64_t ignore_hidden_write(const HidePolicy& h, Context* ctx, std::string_view name) {
  h.writes.inc();
  if (!h.warned->exchange(true, std::memory_order_relaxed)) {
    spdlog::warn("wasm: plugin '{}' tried to write the hidden header '{}': ignored (logged once)",
                 ctx->plugin()->name, name);
  }
  return kOk;
}

void on_request_headers_changed(Context* ctx, uint64_t type) {
  // As Envoy: changed request headers make the router pick the route again.
  if (type == static_cast<uint64_t>(MapType::RequestHeaders)) ctx->stream()->clear_route_cache();
}

uint64_t proxy_get_header_map_pairs(WasmVm& vm, Args a, void*) {
  if (a[0] > 7) return res(WasmResult::BadArgument);
  Context* ctx = current_context();
  HeaderMap* map = header_map(ctx, a[0]);
  if (!ctx) return res(WasmResult::NotFound);
  if (!map) return res(ctx->instance().copy_out({}, a[1], a[2]));  // Envoy: Ok, empty
  const HidePolicy* hide = hiding(ctx);
  Pairs pairs;
  pairs.reserve(map->size());
  for (const auto& e : *map) {
    if (!is_hidden(hide, a[0], e.key)) pairs.emplace_back(e.key, e.value);
  }
  std::string blob;
  encode_pairs(pairs, blob);
  return res(ctx->instance().copy_out(blob, a[1], a[2]));
}

uint64_t proxy_set_header_map_pairs(WasmVm& vm, Args a, void*) {
  if (a[0] > 7) return res(WasmResult::BadArgument);
  std::string_view blob;
  if (!vm.read(a[1], a[2], &blob)) return res(WasmResult::InvalidMemoryAccess);
  Context* ctx = current_context();
  HeaderMap* map = header_map(ctx, a[0], /*for_write=*/true);
  if (!map || !map_writable(ctx, a[0])) return res(WasmResult::BadArgument);
  std::optional<Pairs> pairs = decode_pairs(blob);
  if (pairs) {
    for (const auto& [k, v] : *pairs) {
      if (!header_ok(k, v)) return res(WasmResult::BadArgument);  // map left as it was
    }
  }
  // Hidden headers stay as they are: the module neither removes nor replaces them.
  const HidePolicy* hide = hiding(ctx);
  std::vector<std::pair<std::string, std::string>> kept;
  if (hide) {
    for (const auto& e : *map) {
      if (is_hidden(hide, a[0], e.key)) kept.emplace_back(e.key, e.value);
    }
  }
  map->clear();  // a malformed blob clears the map, as in Envoy
  if (pairs) {
    for (const auto& [k, v] : *pairs) {
      const LowerCased lower(k);
      if (is_hidden(hide, a[0], lower)) {
        ignore_hidden_write(*hide, ctx, lower);
        continue;
      }
      map->add(k, v);
    }
  }
  for (const auto& [k, v] : kept) map->add(k, v);
  on_request_headers_changed(ctx, a[0]);
  return kOk;
}

uint64_t proxy_get_header_map_size(WasmVm& vm, Args a, void*) {
  if (a[0] > 7) return res(WasmResult::BadArgument);
  Context* ctx = current_context();
  HeaderMap* map = header_map(ctx, a[0]);
  if (!map) return res(WasmResult::BadArgument);
  size_t size = map->byte_size();
  if (const HidePolicy* hide = hiding(ctx)) {
    for (const auto& e : *map) {
      if (is_hidden(hide, a[0], e.key)) size -= e.key.size() + e.value.size();
    }
  }
  return vm.set_word(a[1], size) ? kOk : res(WasmResult::InvalidMemoryAccess);
}

uint64_t proxy_get_header_map_value(WasmVm& vm, Args a, void*) {
  if (a[0] > 7) return res(WasmResult::BadArgument);
  std::string_view key;
  if (!vm.read(a[1], a[2], &key)) return res(WasmResult::InvalidMemoryAccess);
  Context* ctx = current_context();
  if (!ctx) return res(WasmResult::NotFound);
  HeaderMap* map = header_map(ctx, a[0]);
  if (!map) {
    return res(ctx->phase() == Phase::Log || ctx->phase() == Phase::Done ? WasmResult::NotFound
                                                                         : WasmResult::BadArgument);
  }
  const LowerCased lower(key);
  const std::string* v = is_hidden(hiding(ctx), a[0], lower) ? nullptr : map->get(lower);
  if (!v) {
    // ABI 0.1.0 answered Ok with an empty value.
    if (ctx->instance().abi_version() == AbiVersion::V0_1_0) {
      return res(ctx->instance().copy_out({}, a[3], a[4]));
    }
    return res(WasmResult::NotFound);
  }
  return res(ctx->instance().copy_out(*v, a[3], a[4]));
}

template <bool kReplace>
uint64_t proxy_add_or_replace_header_map_value(WasmVm& vm, Args a, void*) {
  if (a[0] > 7) return res(WasmResult::BadArgument);
  std::string_view key, value;
  if (!vm.read(a[1], a[2], &key) || !vm.read(a[3], a[4], &value)) {
    return res(WasmResult::InvalidMemoryAccess);
  }
  Context* ctx = current_context();
  HeaderMap* map = header_map(ctx, a[0], /*for_write=*/true);
  if (!map || !map_writable(ctx, a[0])) return res(WasmResult::BadArgument);
  if (!header_ok(key, value)) return res(WasmResult::BadArgument);
  if (const HidePolicy* hide = hiding(ctx)) {
    const LowerCased lower(key);
    if (is_hidden(hide, a[0], lower)) return ignore_hidden_write(*hide, ctx, lower);
  }
  if (kReplace) {
    map->set(key, value);
  } else {
    map->add(key, value);
  }
  on_request_headers_changed(ctx, a[0]);
  return kOk;
}

uint64_t proxy_remove_header_map_value(WasmVm& vm, Args a, void*) {
  if (a[0] > 7) return res(WasmResult::BadArgument);
  std::string_view key;
  if (!vm.read(a[1], a[2], &key)) return res(WasmResult::InvalidMemoryAccess);
  Context* ctx = current_context();
  HeaderMap* map = header_map(ctx, a[0], /*for_write=*/true);
  if (!map || !map_writable(ctx, a[0])) return res(WasmResult::BadArgument);
  const LowerCased lower(key);
  if (is_hidden(hiding(ctx), a[0], lower)) return kOk;  // left in place, as if removed
  map->remove(lower);
  on_request_headers_changed(ctx, a[0]);
  return kOk;
}

// ---- buffers ---------------------------------------------------------------------------------

// The buffer of `type`: `mutable_out` when the module may change it now, `view` for reading.
WasmResult buffer_of(Context* ctx, uint64_t type, std::string_view* view,
                     std::string** mutable_out) {
  *mutable_out = nullptr;
  if (type > 8) return WasmResult::BadArgument;
  if (!ctx) return WasmResult::NotFound;
  WasmInstance& w = ctx->instance();
  switch (static_cast<BufferType>(type)) {
    case BufferType::HttpRequestBody:
    case BufferType::HttpResponseBody: {
      if (!ctx->stream()) return WasmResult::NotFound;
      std::string* b = type == 0 ? ctx->stream()->request_body() : ctx->stream()->response_body();
      if (!b) return WasmResult::NotFound;
      *view = *b;
      *mutable_out = b;
      return WasmResult::Ok;
    }
    case BufferType::NetworkDownstreamData:
    case BufferType::NetworkUpstreamData: {
      NetworkStream* n = ctx->network();
      if (!n) return WasmResult::NotFound;
      std::string& b = type == 2 ? n->downstream_data() : n->upstream_data();
      *view = b;
      *mutable_out = &b;
      return WasmResult::Ok;
    }
    case BufferType::HttpCallResponseBody: {
      const http::AsyncResponse* r = w.http_call_response();
      if (!r) return WasmResult::NotFound;
      *view = r->body;  // read-only: mutable_out stays null
      return WasmResult::Ok;
    }
    case BufferType::GrpcReceiveBuffer: {
      const std::string* m = w.grpc_message();
      if (!m) return WasmResult::NotFound;
      *view = *m;  // read-only
      return WasmResult::Ok;
    }
    case BufferType::VmConfiguration:
      *view = w.vm_configuration();
      return WasmResult::Ok;
    case BufferType::PluginConfiguration:
      if (!w.configuring) return WasmResult::NotFound;
      *view = *w.configuring;
      return WasmResult::Ok;
    default:
      return WasmResult::NotFound;
  }
}

uint64_t proxy_get_buffer_bytes(WasmVm& vm, Args a, void*) {
  const uint64_t start = a[1], max = a[2];
  // Offsets are u32 in wasm32: start + max past 2^32 - 1 is the ABI's "overflow". (Both args
  // arrive zero-extended, so a 64-bit `start + max < start` test would never fire.)
  if (start > UINT32_MAX || max > UINT32_MAX || start + max > UINT32_MAX) {
    return res(WasmResult::BadArgument);
  }
  Context* ctx = current_context();
  std::string_view buf;
  std::string* m;
  const WasmResult r = buffer_of(ctx, a[0], &buf, &m);
  if (r != WasmResult::Ok) return res(r);
  std::string_view slice;
  if (start < buf.size()) slice = buf.substr(start, max);
  return res(ctx->instance().copy_out(slice, a[3], a[4]));
}

uint64_t proxy_get_buffer_status(WasmVm& vm, Args a, void*) {
  std::string_view buf;
  std::string* m;
  const WasmResult r = buffer_of(current_context(), a[0], &buf, &m);
  if (r != WasmResult::Ok) return res(r);
  if (!vm.memory_at(a[1], vm.word_size()) || !vm.memory_at(a[2], 4)) {
    return res(WasmResult::InvalidMemoryAccess);  // checked first: nothing half-written
  }
  if (!vm.set_word(a[1], buf.size())) return res(WasmResult::InvalidMemoryAccess);
  vm.set_u32(a[2], 0);
  return kOk;
}

uint64_t proxy_set_buffer_bytes(WasmVm& vm, Args a, void*) {
  std::string_view data;
  if (!vm.read(a[3], a[4], &data)) return res(WasmResult::InvalidMemoryAccess);
  std::string_view buf;
  std::string* b;
  const WasmResult r = buffer_of(current_context(), a[0], &buf, &b);
  if (r != WasmResult::Ok) return res(r);
  if (!b) return res(WasmResult::BadArgument);  // configurations and callout bodies are read-only
  const uint64_t start = a[1], size = a[2];
  // Envoy's semantics: start 0 replaces the first `size` bytes; start at or past the end appends;
  // anything in between is refused.
  if (start == 0) {
    b->replace(0, std::min<uint64_t>(size, b->size()), data);
  } else if (start >= b->size()) {
    b->append(data);
  } else {
    return res(WasmResult::BadArgument);
  }
  return kOk;
}

// ---- stream control --------------------------------------------------------------------------

// A module asked something of `ctx`'s stream. Inside that stream's own callback, its filter runs
// it when the callback returns; from anywhere else (a root callback after
// proxy_set_effective_context) the instance runs it once the module returned.
void note_stream_action(Context* ctx) {
  if (ctx != callback_context()) ctx->instance().defer_stream_actions(*ctx);
}

uint64_t proxy_continue_stream(WasmVm&, Args a, void*) {
  if (a[0] > 3) return res(WasmResult::BadArgument);
  Context* ctx = current_context();
  if (ctx && ctx->network()) {
    // A TCP connection: downstream resumes reading, upstream releases held writes (Envoy
    // answers Unimplemented for upstream; SDKs treat anything but Ok as fatal).
    if (a[0] == 2) {
      ctx->want_continue_downstream = true;
    } else if (a[0] == 3) {
      ctx->want_continue_upstream = true;
    } else {
      return res(WasmResult::NotFound);  // no HTTP request or response here
    }
    note_stream_action(ctx);
    return kOk;
  }
  if (!ctx || !ctx->stream()) return res(WasmResult::NotFound);
  if (a[0] == 0) {
    ctx->want_continue_request = true;
  } else if (a[0] == 1) {
    ctx->want_continue_response = true;
  } else {
    return res(WasmResult::Unimplemented);  // downstream / upstream: TCP filters
  }
  note_stream_action(ctx);
  return kOk;
}

uint64_t proxy_continue_request(WasmVm& vm, Args, void* d) {
  const uint64_t args[] = {0};
  return proxy_continue_stream(vm, args, d);
}
uint64_t proxy_continue_response(WasmVm& vm, Args, void* d) {
  const uint64_t args[] = {1};
  return proxy_continue_stream(vm, args, d);
}

uint64_t proxy_close_stream(WasmVm&, Args a, void*) {
  if (a[0] > 3) return res(WasmResult::BadArgument);
  Context* ctx = current_context();
  if (ctx && ctx->network()) {
    // Either side closes the client connection (flushed), as Envoy; tcp_proxy then closes the
    // upstream one.
    if (a[0] < 2) return res(WasmResult::NotFound);
    ctx->want_close = a[0] == 2 ? "wasm_downstream_close" : "wasm_upstream_close";
    note_stream_action(ctx);
    return kOk;
  }
  if (!ctx || !ctx->stream()) return res(WasmResult::NotFound);
  ctx->want_close = "wasm_close_stream";
  note_stream_action(ctx);
  return kOk;
}

uint64_t proxy_clear_route_cache(WasmVm&, Args, void*) {
  Context* ctx = current_context();
  if (ctx && ctx->stream()) ctx->stream()->clear_route_cache();
  return kOk;
}

uint64_t proxy_send_local_response(WasmVm& vm, Args a, void*) {
  std::string_view details, body, pairs_blob;
  if (!vm.read(a[1], a[2], &details) || !vm.read(a[3], a[4], &body) ||
      !vm.read(a[5], a[6], &pairs_blob)) {
    return res(WasmResult::InvalidMemoryAccess);
  }
  Context* ctx = current_context();
  if (!ctx || !ctx->stream()) return res(WasmResult::NotFound);
  const uint32_t status = static_cast<uint32_t>(a[0]);
  if (status < 200 || status > 599) return res(WasmResult::BadArgument);
  Context::LocalResponse r;
  r.status = status;
  r.body = std::string(body);
  r.details = std::string(details);
  for (char& c : r.details) {
    if (c == ' ') c = '_';  // Envoy keeps response code details free of spaces
  }
  if (std::optional<Pairs> pairs = decode_pairs(pairs_blob)) {
    for (const auto& [k, v] : *pairs) {
      if (!header_ok(k, v)) return res(WasmResult::BadArgument);
      r.headers.emplace_back(std::string(k), std::string(v));
    }
  }
  ctx->local_response = std::move(r);
  note_stream_action(ctx);
  return kOk;
}

// ---- HTTP callouts ----------------------------------------------------------------------------

// Header (or gRPC metadata) pairs a module passes to a callout: a malformed blob reads as none;
// false for a name or value with CR/LF or NUL.
bool read_header_pairs(std::string_view blob,
                       std::vector<std::pair<std::string, std::string>>& out) {
  if (std::optional<Pairs> p = decode_pairs(blob)) {
    for (const auto& [k, v] : *p) {
      if (!header_ok(k, v)) return false;
      out.emplace_back(std::string(k), std::string(v));
    }
  }
  return true;
}

uint64_t proxy_http_call(WasmVm& vm, Args a, void*) {
  std::string_view cluster, header_blob, body, trailer_blob;
  if (!vm.read(a[0], a[1], &cluster) || !vm.read(a[2], a[3], &header_blob) ||
      !vm.read(a[4], a[5], &body) || !vm.read(a[6], a[7], &trailer_blob) ||
      !vm.memory_at(a[9], 4)) {
    return res(WasmResult::InvalidMemoryAccess);
  }
  Context* ctx = current_context();
  if (!ctx) return res(WasmResult::BadArgument);
  // A malformed blob reads as no headers, as in Envoy: then the pseudo-headers are missing.
  std::vector<std::pair<std::string, std::string>> headers, trailers;
  if (!read_header_pairs(header_blob, headers) || !read_header_pairs(trailer_blob, trailers)) {
    return res(WasmResult::BadArgument);
  }
  uint32_t token = 0;
  // The call belongs to the root of the context acted on (Envoy's rootContext()).
  const WasmResult r = ctx->instance().http_call(*ctx->root(), cluster, headers, body, trailers,
                                                 static_cast<uint32_t>(a[8]), &token);
  if (r == WasmResult::Ok) vm.set_u32(a[9], token);
  return res(r);
}

// ---- gRPC callouts ----------------------------------------------------------------------------

// A service or method name goes into :path as is: nothing that could end or split it.
bool grpc_name_ok(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    if (c == '\r' || c == '\n' || c == '\0' || c == ' ' || c == '/' || c == '?' || c == '#') {
      return false;
    }
  }
  return true;
}

// proxy_grpc_call (`unary`: a message and a timeout follow the metadata) and proxy_grpc_stream
// share their first eight arguments and end with the token's out-param.
uint64_t open_grpc(WasmVm& vm, Args a, bool unary) {
  const uint64_t token_out = unary ? a[11] : a[8];
  std::string_view upstream, service, method, metadata_blob, message;
  if (!vm.read(a[0], a[1], &upstream) || !vm.read(a[2], a[3], &service) ||
      !vm.read(a[4], a[5], &method) || !vm.read(a[6], a[7], &metadata_blob) ||
      (unary && !vm.read(a[8], a[9], &message)) || !vm.memory_at(token_out, 4)) {
    return res(WasmResult::InvalidMemoryAccess);
  }
  Context* ctx = current_context();
  if (!ctx) return res(WasmResult::InternalFailure);
  std::vector<std::pair<std::string, std::string>> metadata;
  // SDKs accept only Ok, ParseFailure and InternalFailure here.
  if (!read_header_pairs(metadata_blob, metadata) || !grpc_name_ok(service) ||
      !grpc_name_ok(method)) {
    return res(WasmResult::InternalFailure);
  }
  uint32_t token = 0;
  const WasmResult r =
      ctx->instance().grpc_open(*ctx->root(), unary, upstream, service, method, metadata, message,
                                unary ? static_cast<uint32_t>(a[10]) : 0, &token);
  if (r == WasmResult::Ok) vm.set_u32(token_out, token);
  return res(r);
}

uint64_t proxy_grpc_call(WasmVm& vm, Args a, void*) { return open_grpc(vm, a, true); }
uint64_t proxy_grpc_stream(WasmVm& vm, Args a, void*) { return open_grpc(vm, a, false); }

uint64_t proxy_grpc_send(WasmVm& vm, Args a, void*) {
  std::string_view message;
  if (!vm.read(a[1], a[2], &message)) return res(WasmResult::InvalidMemoryAccess);
  Context* ctx = current_context();
  if (!ctx) return res(WasmResult::NotFound);
  return res(ctx->instance().grpc_send(static_cast<uint32_t>(a[0]), message, a[3] != 0));
}

uint64_t proxy_grpc_cancel(WasmVm&, Args a, void*) {
  Context* ctx = current_context();
  if (!ctx) return res(WasmResult::NotFound);
  return res(ctx->instance().grpc_cancel(static_cast<uint32_t>(a[0])));
}

uint64_t proxy_grpc_close(WasmVm&, Args a, void*) {
  Context* ctx = current_context();
  if (!ctx) return res(WasmResult::NotFound);
  return res(ctx->instance().grpc_close(static_cast<uint32_t>(a[0])));
}

uint64_t proxy_get_configuration(WasmVm&, Args a, void*) {
  // ABI 0.1.0: the plugin configuration during on_configure, else the VM configuration.
  Context* ctx = current_context();
  if (!ctx) return res(WasmResult::NotFound);
  WasmInstance& w = ctx->instance();
  return res(w.copy_out(w.configuring ? std::string_view(*w.configuring) : w.vm_configuration(),
                        a[0], a[1]));
}

// ---- timers ----------------------------------------------------------------------------------

uint64_t proxy_set_tick_period_milliseconds(WasmVm&, Args a, void*) {
  Context* ctx = current_context();
  if (!ctx) return res(WasmResult::NotFound);
  // One timer per root: a stream context sets its root's.
  ctx->instance().set_tick_period(*ctx->root(), static_cast<uint32_t>(a[0]));
  return kOk;
}

// ---- metrics ---------------------------------------------------------------------------------

uint64_t proxy_define_metric(WasmVm& vm, Args a, void*) {
  std::string_view name;
  // The out-param is checked first: a bad one defines nothing.
  if (!vm.read(a[1], a[2], &name) || !vm.memory_at(a[3], 4)) {
    return res(WasmResult::InvalidMemoryAccess);
  }
  WasmInstance* w = current_instance();
  if (!w) return res(WasmResult::NotFound);
  uint32_t id = 0;
  const WasmResult r = w->metrics().define(static_cast<uint32_t>(a[0]), name, &id);
  if (r != WasmResult::Ok) return res(r);
  vm.set_u32(a[3], id);
  return kOk;
}

uint64_t proxy_increment_metric(WasmVm&, Args a, void*) {
  WasmInstance* w = current_instance();
  if (!w) return res(WasmResult::NotFound);
  return res(w->metrics().increment(static_cast<uint32_t>(a[0]), static_cast<int64_t>(a[1])));
}

uint64_t proxy_record_metric(WasmVm&, Args a, void*) {
  WasmInstance* w = current_instance();
  if (!w) return res(WasmResult::NotFound);
  return res(w->metrics().record(static_cast<uint32_t>(a[0]), a[1]));
}

uint64_t proxy_get_metric(WasmVm& vm, Args a, void*) {
  WasmInstance* w = current_instance();
  if (!w) return res(WasmResult::NotFound);
  uint64_t value = 0;
  const WasmResult r = w->metrics().get(static_cast<uint32_t>(a[0]), &value);
  if (r != WasmResult::Ok) return res(r);
  return vm.set_u64(a[1], value) ? kOk : res(WasmResult::InvalidMemoryAccess);
}

// ---- shared data -----------------------------------------------------------------------------

uint64_t proxy_get_shared_data(WasmVm& vm, Args a, void*) {
  std::string_view key;
  if (!vm.read(a[0], a[1], &key) || !vm.memory_at(a[4], 4)) {
    return res(WasmResult::InvalidMemoryAccess);
  }
  WasmInstance* w = current_instance();
  if (!w) return res(WasmResult::NotFound);
  // A copy, taken under the shard's lock: the module's allocator must not run under it.
  std::optional<SharedData::Value> v = w->shared_state().data().get(key);
  if (!v) return res(WasmResult::NotFound);
  const WasmResult r = w->copy_out(v->value, a[2], a[3]);
  if (r != WasmResult::Ok) return res(r);
  vm.set_u32(a[4], v->cas);
  return kOk;
}

uint64_t proxy_set_shared_data(WasmVm& vm, Args a, void*) {
  std::string_view key, value;
  if (!vm.read(a[0], a[1], &key) || !vm.read(a[2], a[3], &value)) {
    return res(WasmResult::InvalidMemoryAccess);
  }
  WasmInstance* w = current_instance();
  if (!w) return res(WasmResult::NotFound);
  return res(w->shared_state().data().set(key, value, static_cast<uint32_t>(a[4])));
}

// ---- shared queues ---------------------------------------------------------------------------

uint64_t proxy_register_shared_queue(WasmVm& vm, Args a, void*) {
  std::string_view name;
  if (!vm.read(a[0], a[1], &name) || !vm.memory_at(a[2], 4)) {
    return res(WasmResult::InvalidMemoryAccess);
  }
  Context* ctx = current_context();
  if (!ctx) return res(WasmResult::NotFound);
  WasmInstance& w = ctx->instance();
  // Notifications go to the caller's root (a stream context registers for its root).
  const uint32_t token = w.shared_state().register_queue(name, w.queue_notifier(*ctx->root()));
  vm.set_u32(a[2], token);
  return kOk;
}

uint64_t proxy_resolve_shared_queue(WasmVm& vm, Args a, void*) {
  std::string_view vm_id, name;
  if (!vm.read(a[0], a[1], &vm_id) || !vm.read(a[2], a[3], &name) || !vm.memory_at(a[4], 4)) {
    return res(WasmResult::InvalidMemoryAccess);
  }
  WasmInstance* w = current_instance();
  if (!w) return res(WasmResult::NotFound);
  std::optional<uint32_t> token;
  if (vm_id.empty() || vm_id == w->vm_id()) {
    token = w->shared_state().resolve_queue(name);  // an empty vm_id means the caller's
  } else if (std::shared_ptr<VmSharedState> other = VmSharedState::find(vm_id)) {
    token = other->resolve_queue(name);
  }
  if (!token) return res(WasmResult::NotFound);
  vm.set_u32(a[4], *token);
  return kOk;
}

uint64_t proxy_enqueue_shared_queue(WasmVm& vm, Args a, void*) {
  std::string_view value;
  if (!vm.read(a[1], a[2], &value)) return res(WasmResult::InvalidMemoryAccess);
  WasmInstance* w = current_instance();
  std::shared_ptr<SharedQueue> q = w ? w->queue(static_cast<uint32_t>(a[0])) : nullptr;
  if (!q) return res(WasmResult::NotFound);
  q->enqueue(value);  // past the bound, the oldest entry is dropped: still Ok
  return kOk;
}

uint64_t proxy_dequeue_shared_queue(WasmVm& vm, Args a, void*) {
  WasmInstance* w = current_instance();
  std::shared_ptr<SharedQueue> q = w ? w->queue(static_cast<uint32_t>(a[0])) : nullptr;
  if (!q) return res(WasmResult::NotFound);
  // Out-params checked before an entry is taken: a bad pointer must not lose it.
  if (!vm.memory_at(a[1], vm.word_size()) || !vm.memory_at(a[2], vm.word_size())) {
    return res(WasmResult::InvalidMemoryAccess);
  }
  std::string value;
  const WasmResult r = q->dequeue(&value);
  if (r != WasmResult::Ok) return res(r);
  return res(w->copy_out(value, a[1], a[2]));
}

// ---- foreign functions -----------------------------------------------------------------------

// Little-endian u64 number `i` of a Sluice function's arguments.
bool arg_u64(std::string_view args, size_t i, uint64_t* out) {
  if (args.size() < (i + 1) * 8) return false;
  uint64_t v = 0;
  for (size_t b = 0; b < 8; ++b) v |= uint64_t(static_cast<uint8_t>(args[i * 8 + b])) << (8 * b);
  *out = v;
  return true;
}

bool arg_u32(std::string_view args, size_t at, uint32_t* out) {
  if (at > args.size() || args.size() - at < 4) return false;
  std::memcpy(out, args.data() + at, 4);  // little-endian, as Wasm and Sluice's hosts are
  return true;
}

// sluice_define_header_edits: u32 set id, u32 count, count x (u32 op, u32 name size, u32 value
// size), then the names and values. Answers the set's id (u32).
WasmResult define_header_edits(std::string_view args, std::string* out) {
  namespace sf = sluice_functions;
  WasmInstance* w = current_instance();
  if (!w) return WasmResult::NotFound;
  uint32_t id, count;
  if (!arg_u32(args, 0, &id) || !arg_u32(args, 4, &count) || count > sf::kMaxHeaderEdits) {
    return WasmResult::BadArgument;
  }
  std::vector<WasmInstance::HeaderEdit> edits(count);
  size_t text = 8 + size_t{12} * count;  // where the names and values start
  if (text > args.size()) return WasmResult::BadArgument;
  for (uint32_t i = 0; i < count; ++i) {
    uint32_t op = 0, name_size = 0, value_size = 0;  // (inside `args`: checked above)
    arg_u32(args, 8 + 12 * i, &op);
    arg_u32(args, 12 + 12 * i, &name_size);
    arg_u32(args, 16 + 12 * i, &value_size);
    if (op > sf::kHeaderRemove || name_size > args.size() - text ||
        value_size > args.size() - text - name_size) {
      return WasmResult::BadArgument;
    }
    const std::string_view name = args.substr(text, name_size);
    const std::string_view value = args.substr(text + name_size, value_size);
    text += size_t{name_size} + value_size;
    if (!header_ok(name, value) || (op == sf::kHeaderRemove && !value.empty())) {
      return WasmResult::BadArgument;
    }
    edits[i].op = op;
    edits[i].name = to_lower(name);
    edits[i].value = value;
  }
  if (text != args.size()) return WasmResult::BadArgument;
  if (id != 0 && !w->header_edits(id)) return WasmResult::BadArgument;
  for (const WasmInstance::HeaderEdit& e : edits) {
    // As the header-map function would answer under capability_restriction_config.
    if (!w->header_edit_allowed(e.op)) return WasmResult::InternalFailure;
  }
  const uint32_t defined = w->define_header_edits(id, std::move(edits));
  if (defined == 0) return WasmResult::BadArgument;  // kMaxHeaderEditSets reached
  out->append(reinterpret_cast<const char*>(&defined), 4);
  return WasmResult::Ok;
}

// Sluice's own foreign functions (sluice_functions.h): they act on the calling instance or
// context, so they are answered here rather than from the process-wide registry. Only names
// sluice_functions::is_sluice_function accepts reach it.
WasmResult sluice_function(std::string_view name, std::string_view args, std::string* out) {
  namespace sf = sluice_functions;
  if (name == sf::kGetProperties) {
    Context* ctx = current_context();
    return ctx ? get_properties(*ctx, args, *out) : WasmResult::NotFound;
  }
  if (name == sf::kSetReturnBuffer || name == sf::kSetDeleteMailbox) {
    uint64_t ptr, size;  // an array in module memory: its address and size
    if (args.size() != 16 || !arg_u64(args, 0, &ptr) || !arg_u64(args, 1, &size)) {
      return WasmResult::BadArgument;
    }
    WasmInstance* w = current_instance();
    if (!w) return WasmResult::NotFound;
    return name == sf::kSetReturnBuffer ? w->set_return_buffer(ptr, size)
                                        : w->set_delete_mailbox(ptr, size);
  }
  if (name == sf::kDefineHeaderEdits) return define_header_edits(args, out);
  if (name == sf::kEditResponseHeaders) {
    uint32_t set, flags;
    constexpr uint32_t kBoth = sf::kSkipResponseHeadersCallback | sf::kCallResponseHeadersCallback;
    if (args.size() != 8 || !arg_u32(args, 0, &set) || !arg_u32(args, 4, &flags) ||
        (flags & ~kBoth) || flags == kBoth) {
      return WasmResult::BadArgument;
    }
    Context* ctx = current_context();
    if (!ctx || ctx->is_root() || !ctx->stream()) return WasmResult::BadArgument;
    const Phase p = ctx->phase();
    if (p != Phase::RequestHeaders && p != Phase::RequestBody && p != Phase::RequestTrailers) {
      return WasmResult::BadArgument;  // the response headers have passed, or no callback runs
    }
    if (set != 0 && !ctx->instance().header_edits(set)) return WasmResult::BadArgument;
    ctx->response_header_edits = set;
    ctx->skip_response_headers_callback = (flags & sf::kSkipResponseHeadersCallback) != 0;
    ctx->call_response_headers_callback = (flags & sf::kCallResponseHeadersCallback) != 0;
    return WasmResult::Ok;
  }
  if (name == sf::kDeclineStreamCallbacks) {
    uint64_t bits;
    constexpr uint64_t kKnown = uint64_t{sf::kAllDeclinable} | sf::kDeferDelete;
    if (args.size() != 8 || !arg_u64(args, 0, &bits) || (bits & ~kKnown)) {
      return WasmResult::BadArgument;
    }
    Context* ctx = current_context();
    if (!ctx || !ctx->is_root()) return WasmResult::BadArgument;  // a root's decision only
    ctx->decline_stream_callbacks(static_cast<uint32_t>(bits));
    return WasmResult::Ok;
  }
  return WasmResult::NotFound;
}

uint64_t proxy_call_foreign_function(WasmVm& vm, Args a, void*) {
  std::string_view name, args;
  if (!vm.read(a[0], a[1], &name) || !vm.read(a[2], a[3], &args)) {
    return res(WasmResult::InvalidMemoryAccess);
  }
  const bool ours = sluice_functions::is_sluice_function(name);
  const ForeignFunction fn = ours ? nullptr : find_foreign_function(name);
  if (!ours && !fn) return res(WasmResult::NotFound);
  WasmInstance* w = current_instance();
  if (!w) return res(WasmResult::NotFound);
  const uint64_t ptr_out = a[4], size_out = a[5];
  // A result the module wants needs somewhere for its size too.
  if (ptr_out != 0 && size_out == 0) return res(WasmResult::BadArgument);
  if ((ptr_out != 0 && !vm.memory_at(ptr_out, vm.word_size())) ||
      (size_out != 0 && !vm.memory_at(size_out, vm.word_size()))) {
    return res(WasmResult::InvalidMemoryAccess);
  }
  // Out-params are checked first: a bad one must change nothing, Sluice's functions included.
  // The result's buffer is reused (batched property reads come every request), unless it grew
  // big (an inflated body); taken out while in use, as copy_out may run the module's allocator,
  // which may call here itself.
  constexpr size_t kMaxSpareBytes = 64 * 1024;
  thread_local std::string spare;
  std::string result = std::move(spare);
  result.clear();
  // A leaf call refused this answer a moment ago (kBufferTooSmall): the module asks again with
  // a bigger buffer, and gets it without the function running twice.
  const WasmResult r = w->take_refused_foreign_answer(name, args, &result) ? WasmResult::Ok
                       : ours ? sluice_function(name, args, &result)
                              : fn(args, &result);
  WasmResult status = r;
  if (r == WasmResult::Ok && ptr_out == 0) {
    // The module does not want the bytes (only, perhaps, their size): nothing is allocated.
    if (size_out != 0) vm.set_word(size_out, result.size());
  } else if (r == WasmResult::Ok) {
    status = w->copy_out(result, ptr_out, size_out);
    if (status == static_cast<WasmResult>(sluice_functions::kBufferTooSmall)) {
      w->keep_refused_foreign_answer(name, args, std::move(result));
      return res(status);
    }
  }
  if (result.capacity() <= kMaxSpareBytes) spare = std::move(result);
  return res(status);
}

// ---- emscripten / misc -----------------------------------------------------------------------

uint64_t emscripten_notify_memory_growth(WasmVm&, Args, void*) { return 0; }
uint64_t pthread_equal(WasmVm&, Args a, void*) { return a[0] == a[1]; }

// ---- WASI preview1 subset --------------------------------------------------------------------

// Concatenates the iovecs ({u32 buf, u32 len} in wasm32) of an fd_write.
bool gather_iovecs(WasmVm& vm, uint64_t iovs, uint64_t count, std::string& out) {
  const uint64_t w = vm.word_size();
  for (uint64_t i = 0; i < count; ++i) {
    uint64_t buf, len;
    if (!vm.get_word(iovs + i * 2 * w, &buf) || !vm.get_word(iovs + i * 2 * w + w, &len)) {
      return false;
    }
    std::string_view piece;
    if (!vm.read(buf, len, &piece)) return false;
    out.append(piece);
  }
  return true;
}

uint64_t wasi_fd_write(WasmVm& vm, Args a, void*) {
  const uint64_t fd = a[0];
  if (fd != 1 && fd != 2) return kErrnoBadf;
  if (a[2] > 1024) return kErrnoInval;
  std::string text;
  if (!gather_iovecs(vm, a[1], a[2], text)) return kErrnoFault;
  const size_t written = text.size();
  if (!text.empty() && text.back() == '\n') text.pop_back();
  if (!text.empty()) log_at(fd == 1 ? 2 : 4, current_context(), text);
  return vm.set_word(a[3], written) ? kErrnoSuccess : kErrnoFault;
}

uint64_t wasi_fd_read(WasmVm&, Args, void*) { return kErrnoNosys; }
uint64_t wasi_fd_seek(WasmVm&, Args, void*) { return kErrnoBadf; }
uint64_t wasi_fd_close(WasmVm&, Args, void*) { return kErrnoBadf; }
uint64_t wasi_badf(WasmVm&, Args, void*) { return kErrnoBadf; }
uint64_t wasi_notsup(WasmVm&, Args, void*) { return kErrnoNotsup; }
uint64_t wasi_nosys(WasmVm&, Args, void*) { return kErrnoNosys; }
uint64_t wasi_noent(WasmVm&, Args, void*) { return kErrnoNoent; }
uint64_t wasi_success(WasmVm&, Args, void*) { return kErrnoSuccess; }

uint64_t wasi_fd_fdstat_get(WasmVm& vm, Args a, void*) {
  if (a[0] != 1 && a[0] != 2) return kErrnoBadf;
  char* p = vm.memory_at(a[1], 24);
  if (!p) return kErrnoFault;
  std::memset(p, 0, 24);
  const uint64_t rights = 64;  // FD_WRITE
  std::memcpy(p + 8, &rights, 8);
  return kErrnoSuccess;
}

uint64_t wasi_fd_readdir(WasmVm& vm, Args a, void*) {
  vm.set_word(a[4], 0);
  return kErrnoNotdir;
}

uint64_t wasi_environ_sizes_get(WasmVm& vm, Args a, void*) {
  WasmInstance* w = current_instance();
  uint64_t count = 0, size = 0;
  if (w) {
    for (const auto& [k, v] : w->env()) {
      ++count;
      size += k.size() + v.size() + 2;
    }
  }
  return vm.set_word(a[0], count) && vm.set_word(a[1], size) ? kErrnoSuccess : kErrnoFault;
}

uint64_t wasi_environ_get(WasmVm& vm, Args a, void*) {
  WasmInstance* w = current_instance();
  if (!w) return kErrnoSuccess;
  uint64_t array = a[0], buf = a[1];
  for (const auto& [k, v] : w->env()) {
    const std::string entry = str_cat(k, "=", v, std::string_view("\0", 1));
    if (!vm.set_word(array, buf) || !vm.write(buf, entry)) return kErrnoFault;
    array += vm.word_size();
    buf += entry.size();
  }
  return kErrnoSuccess;
}

uint64_t wasi_args_sizes_get(WasmVm& vm, Args a, void*) {
  return vm.set_word(a[0], 0) && vm.set_word(a[1], 0) ? kErrnoSuccess : kErrnoFault;
}

uint64_t wasi_clock_time_get(WasmVm& vm, Args a, void*) {
  uint64_t ns;
  if (a[0] == 0) {
    ns = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
  } else if (a[0] == 1) {
    ns = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
  } else {
    return kErrnoNotsup;
  }
  return vm.set_u64(a[2], ns) ? kErrnoSuccess : kErrnoFault;
}

uint64_t wasi_clock_res_get(WasmVm& vm, Args a, void*) {
  if (a[0] > 1) return kErrnoNotsup;
  return vm.set_u64(a[1], 1) ? kErrnoSuccess : kErrnoFault;
}

uint64_t wasi_random_get(WasmVm& vm, Args a, void*) {
  if (a[1] > 65536) return kErrnoInval;
  if (a[1] == 0) return kErrnoSuccess;
  char* p = vm.memory_at(a[0], a[1]);
  if (!p) return kErrnoFault;
  if (RAND_bytes(reinterpret_cast<unsigned char*>(p), static_cast<int>(a[1])) != 1) {
    return kErrnoInval;
  }
  return kErrnoSuccess;
}

uint64_t wasi_poll_oneoff(WasmVm& vm, Args a, void*) {
  return vm.set_word(a[3], 0) ? kErrnoSuccess : kErrnoFault;
}

uint64_t wasi_proc_exit(WasmVm& vm, Args a, void*) {
  // The module asked to stop: its instance is unusable from here on.
  vm.trap(str_cat("proc_exit(", a[0], ")"));
  return 0;
}

// ---- the table -------------------------------------------------------------------------------

// Which host functions may run as leaves (HostFunction::leaf): none of them calls into a module
// or runs anything that could (filter chains, callouts, other VMs).
enum class Leaf : uint8_t {
  Never,
  Always,
  // Returns a value through the module's allocator, so a leaf only for a module that takes
  // kBufferTooSmall instead (sluice_functions.h); in a leaf call copy_out answers that.
  ForRetryingModules,
};

struct Entry {
  HostFunction fn;
  HostFunction fn_for_retrying;  // fn as a module that exports kRetriesBufferTooSmall gets it
  uint8_t allowed;               // Allowed bits
  // Which ABI versions import it.
  bool v010, v020, v021;
};

template <HostCallback Fn, uint8_t kAllowed>
uint64_t guarded(WasmVm& vm, const uint64_t* args, void* data) {
  if (kAllowed != kAlways && current_restriction() != CallRestriction::None &&
      !allowed_now(vm, kAllowed, data ? static_cast<const char*>(data) : "host function")) {
    return res(WasmResult::InternalFailure);
  }
  return Fn(vm, args, data);
}

Signature sig(std::initializer_list<VT> params, std::initializer_list<VT> results) {
  return Signature{std::vector<VT>(params), std::vector<VT>(results)};
}

struct Table {
  std::vector<Entry> entries;
  std::vector<HostFunction> all;

  template <HostCallback Fn, uint8_t kAllowed = kInCallbacks>
  void add(const char* module, const char* name, Signature s, bool v010 = true, bool v020 = true,
           bool v021 = true, Leaf leaf = Leaf::Never) {
    HostFunction fn{module, name, std::move(s), &guarded<Fn, kAllowed>, const_cast<char*>(name)};
    fn.leaf = leaf == Leaf::Always;
    HostFunction for_retrying = fn;
    for_retrying.leaf = leaf != Leaf::Never;
    entries.push_back(Entry{std::move(fn), std::move(for_retrying), kAllowed, v010, v020, v021});
  }
  // The same for a function every ABI version has.
  template <HostCallback Fn, uint8_t kAllowed = kInCallbacks>
  void add_leaf(const char* module, const char* name, Signature s, Leaf leaf = Leaf::Always) {
    add<Fn, kAllowed>(module, name, std::move(s), true, true, true, leaf);
  }
};

Table build_table() {
  Table t;
  const auto I = VT::I32;
  const auto L = VT::I64;
  const char* env = "env";
  // Logging may be called anywhere, even while initializing or allocating.
  t.add_leaf<proxy_log, kAlways>(env, "proxy_log", sig({I, I, I}, {I}));
  t.add<proxy_get_log_level>(env, "proxy_get_log_level", sig({I}, {I}), false, false, true,
                             Leaf::Always);
  t.add_leaf<proxy_get_current_time_nanoseconds>(env, "proxy_get_current_time_nanoseconds",
                                                 sig({I}, {I}));
  t.add<proxy_get_status>(env, "proxy_get_status", sig({I, I, I}, {I}));
  t.add_leaf<proxy_set_effective_context>(env, "proxy_set_effective_context", sig({I}, {I}));
  t.add<proxy_done>(env, "proxy_done", sig({}, {I}));
  t.add_leaf<proxy_get_property>(env, "proxy_get_property", sig({I, I, I, I}, {I}),
                                 Leaf::ForRetryingModules);
  t.add<proxy_set_property>(env, "proxy_set_property", sig({I, I, I, I}, {I}));
  t.add<proxy_get_header_map_pairs>(env, "proxy_get_header_map_pairs", sig({I, I, I}, {I}));
  t.add<proxy_set_header_map_pairs>(env, "proxy_set_header_map_pairs", sig({I, I, I}, {I}));
  t.add_leaf<proxy_get_header_map_size>(env, "proxy_get_header_map_size", sig({I, I}, {I}));
  t.add_leaf<proxy_get_header_map_value>(env, "proxy_get_header_map_value",
                                         sig({I, I, I, I, I}, {I}), Leaf::ForRetryingModules);
  t.add_leaf<proxy_add_or_replace_header_map_value<false>>(env, "proxy_add_header_map_value",
                                                           sig({I, I, I, I, I}, {I}));
  t.add_leaf<proxy_add_or_replace_header_map_value<true>>(env, "proxy_replace_header_map_value",
                                                          sig({I, I, I, I, I}, {I}));
  t.add_leaf<proxy_remove_header_map_value>(env, "proxy_remove_header_map_value",
                                            sig({I, I, I}, {I}));
  t.add<proxy_get_buffer_bytes>(env, "proxy_get_buffer_bytes", sig({I, I, I, I, I}, {I}));
  t.add_leaf<proxy_get_buffer_status>(env, "proxy_get_buffer_status", sig({I, I, I}, {I}));
  t.add<proxy_set_buffer_bytes>(env, "proxy_set_buffer_bytes", sig({I, I, I, I, I}, {I}));
  t.add<proxy_continue_stream>(env, "proxy_continue_stream", sig({I}, {I}), false);
  t.add<proxy_close_stream>(env, "proxy_close_stream", sig({I}, {I}), false);
  t.add<proxy_send_local_response>(env, "proxy_send_local_response",
                                   sig({I, I, I, I, I, I, I, I}, {I}));
  // ABI 0.1.0 only.
  t.add<proxy_get_configuration>(env, "proxy_get_configuration", sig({I, I}, {I}), true, false,
                                 false);
  t.add<proxy_continue_request>(env, "proxy_continue_request", sig({}, {I}), true, false, false);
  t.add<proxy_continue_response>(env, "proxy_continue_response", sig({}, {I}), true, false, false);
  t.add<proxy_clear_route_cache>(env, "proxy_clear_route_cache", sig({}, {I}), true, false, false);
  t.add_leaf<proxy_set_tick_period_milliseconds>(env, "proxy_set_tick_period_milliseconds",
                                                 sig({I}, {I}));
  t.add<proxy_get_shared_data>(env, "proxy_get_shared_data", sig({I, I, I, I, I}, {I}));
  t.add<proxy_set_shared_data>(env, "proxy_set_shared_data", sig({I, I, I, I, I}, {I}));
  t.add<proxy_register_shared_queue>(env, "proxy_register_shared_queue", sig({I, I, I}, {I}));
  t.add<proxy_resolve_shared_queue>(env, "proxy_resolve_shared_queue", sig({I, I, I, I, I}, {I}));
  t.add<proxy_enqueue_shared_queue>(env, "proxy_enqueue_shared_queue", sig({I, I, I}, {I}));
  t.add<proxy_dequeue_shared_queue>(env, "proxy_dequeue_shared_queue", sig({I, I, I}, {I}));
  t.add<proxy_define_metric>(env, "proxy_define_metric", sig({I, I, I, I}, {I}));
  t.add_leaf<proxy_increment_metric>(env, "proxy_increment_metric", sig({I, L}, {I}));
  t.add_leaf<proxy_record_metric>(env, "proxy_record_metric", sig({I, L}, {I}));
  t.add_leaf<proxy_get_metric>(env, "proxy_get_metric", sig({I, I}, {I}));
  // Foreign functions never reach a VM (foreign_functions.h). An answer too big for the return
  // buffer is kept for the module's second call (WasmInstance::keep_refused_foreign_answer).
  t.add_leaf<proxy_call_foreign_function>(env, "proxy_call_foreign_function",
                                          sig({I, I, I, I, I, I}, {I}), Leaf::ForRetryingModules);
  // HTTP and gRPC callouts: not built yet.
  t.add<proxy_http_call>(env, "proxy_http_call", sig({I, I, I, I, I, I, I, I, I, I}, {I}));
  t.add<proxy_grpc_call>(env, "proxy_grpc_call", sig({I, I, I, I, I, I, I, I, I, I, I, I}, {I}));
  t.add<proxy_grpc_stream>(env, "proxy_grpc_stream", sig({I, I, I, I, I, I, I, I, I}, {I}));
  t.add<proxy_grpc_send>(env, "proxy_grpc_send", sig({I, I, I, I}, {I}));
  t.add<proxy_grpc_cancel>(env, "proxy_grpc_cancel", sig({I}, {I}));
  t.add<proxy_grpc_close>(env, "proxy_grpc_close", sig({I}, {I}));
  t.add<emscripten_notify_memory_growth, kAlways>(env, "emscripten_notify_memory_growth",
                                                  sig({I}, {}));
  t.add<pthread_equal, kAlways>(env, "pthread_equal", sig({I, I}, {I}));

  for (const char* wasi : {"wasi_snapshot_preview1", "wasi_unstable"}) {
    const uint8_t init = kInInit;
    t.add<wasi_fd_write, kAlways>(wasi, "fd_write", sig({I, I, I, I}, {I}));
    t.add<wasi_fd_read>(wasi, "fd_read", sig({I, I, I, I}, {I}));
    t.add<wasi_fd_seek>(wasi, "fd_seek", sig({I, L, I, I}, {I}));
    t.add<wasi_fd_close>(wasi, "fd_close", sig({I}, {I}));
    t.add<wasi_fd_fdstat_get, init>(wasi, "fd_fdstat_get", sig({I, I}, {I}));
    t.add<wasi_success, init>(wasi, "fd_fdstat_set_flags", sig({I, I}, {I}));
    t.add<wasi_badf, init>(wasi, "fd_prestat_get", sig({I, I}, {I}));  // ends wasi-libc's scan
    t.add<wasi_nosys, init>(wasi, "fd_prestat_dir_name", sig({I, I, I}, {I}));
    t.add<wasi_badf, init>(wasi, "fd_filestat_get", sig({I, I}, {I}));
    t.add<wasi_badf, init>(wasi, "fd_tell", sig({I, I}, {I}));
    t.add<wasi_badf, init>(wasi, "fd_sync", sig({I}, {I}));
    t.add<wasi_badf, init>(wasi, "fd_datasync", sig({I}, {I}));
    t.add<wasi_nosys, init>(wasi, "fd_pread", sig({I, I, I, L, I}, {I}));
    t.add<wasi_badf, init>(wasi, "fd_pwrite", sig({I, I, I, L, I}, {I}));
    t.add<wasi_fd_readdir, init>(wasi, "fd_readdir", sig({I, I, I, L, I}, {I}));
    t.add<wasi_noent>(wasi, "path_open", sig({I, I, I, I, I, L, L, I, I}, {I}));
    t.add<wasi_notsup, init>(wasi, "path_filestat_get", sig({I, I, I, I, I}, {I}));
    t.add<wasi_notsup, init>(wasi, "path_create_directory", sig({I, I, I}, {I}));
    t.add<wasi_notsup, init>(wasi, "path_remove_directory", sig({I, I, I}, {I}));
    t.add<wasi_notsup, init>(wasi, "path_unlink_file", sig({I, I, I}, {I}));
    t.add<wasi_notsup, init>(wasi, "path_rename", sig({I, I, I, I, I, I}, {I}));
    t.add<wasi_notsup, init>(wasi, "path_readlink", sig({I, I, I, I, I, I}, {I}));
    t.add<wasi_environ_sizes_get, init>(wasi, "environ_sizes_get", sig({I, I}, {I}));
    t.add<wasi_environ_get, init>(wasi, "environ_get", sig({I, I}, {I}));
    t.add<wasi_args_sizes_get, init>(wasi, "args_sizes_get", sig({I, I}, {I}));
    t.add<wasi_success, init>(wasi, "args_get", sig({I, I}, {I}));
    t.add<wasi_clock_time_get, kAlways>(wasi, "clock_time_get", sig({I, L, I}, {I}));
    t.add<wasi_clock_res_get, init>(wasi, "clock_res_get", sig({I, I}, {I}));
    t.add<wasi_random_get, init>(wasi, "random_get", sig({I, I}, {I}));
    t.add<wasi_poll_oneoff, kAlways>(wasi, "poll_oneoff", sig({I, I, I, I}, {I}));
    t.add<wasi_success>(wasi, "sched_yield", sig({}, {I}));
    t.add<wasi_proc_exit>(wasi, "proc_exit", sig({I}, {}));
  }
  for (const Entry& e : t.entries) t.all.push_back(e.fn);
  return t;
}

const Table& table() {
  static const Table t = build_table();
  return t;
}

}  // namespace

const HostFunction* find_host_function(AbiVersion abi, std::string_view module,
                                       std::string_view name, bool module_retries) {
  for (const Entry& e : table().entries) {
    if (e.fn.module != module || e.fn.name != name) continue;
    const bool ok = (abi == AbiVersion::V0_1_0 && e.v010) ||
                    (abi == AbiVersion::V0_2_0 && e.v020) || (abi == AbiVersion::V0_2_1 && e.v021);
    if (!ok) return nullptr;
    return module_retries ? &e.fn_for_retrying : &e.fn;
  }
  return nullptr;
}

const std::vector<HostFunction>& all_host_functions() { return table().all; }

void apply_response_header_edits(Context& ctx, HeaderMap& headers) {
  namespace sf = sluice_functions;
  const std::vector<WasmInstance::HeaderEdit>* edits =
      ctx.instance().header_edits(ctx.response_header_edits);
  if (!edits) return;
  constexpr uint64_t kType = static_cast<uint64_t>(MapType::ResponseHeaders);
  const HidePolicy* hide = hiding(&ctx);
  for (const WasmInstance::HeaderEdit& e : *edits) {
    if (is_hidden(hide, kType, e.name)) {
      if (e.op != sf::kHeaderRemove) ignore_hidden_write(*hide, &ctx, e.name);
      continue;  // left in place, as the module's own write or removal would be
    }
    switch (e.op) {
      case sf::kHeaderAdd:
        headers.add(e.name, e.value);
        break;
      case sf::kHeaderReplace:
        headers.set(e.name, e.value);
        break;
      case sf::kHeaderRemove:
        headers.remove(e.name);
        break;
    }
  }
}

}  // namespace sluice::wasm
