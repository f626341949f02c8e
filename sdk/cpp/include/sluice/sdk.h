// The Sluice C++ SDK for Proxy-Wasm extensions (ABI 0.2.1).
//
// One source tree builds two ways (see docs/sdk-cpp.md):
//   - a .wasm module (clang --target=wasm32-wasi), loadable by Sluice's V8 runtime and by Envoy;
//   - native objects for Sluice's null runtime (SLUICE_NATIVE_PLUGIN defined).
//
// Everything lives in `sluice::`, but inside an inline namespace chosen per extension
// (SLUICE_SDK_NS, set by sluice_add_extension) so that several extensions linked into one native
// binary each get their own copy of the SDK (registry, dispatch, vtables) without clashing.
// Extension code just writes `sluice::RootContext`; it should keep its own classes in an
// anonymous namespace for the same reason.
#pragma once

#include <cstdint>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "sluice/proxy_wasm_abi.h"

#ifndef SLUICE_SDK_NS
#if defined(SLUICE_NATIVE_PLUGIN)
#error "SLUICE_SDK_NS must name a per-extension namespace in native builds (sluice_add_extension)"
#else
#define SLUICE_SDK_NS wasm
#endif
#endif

namespace sluice {
inline namespace SLUICE_SDK_NS {

// ---- ABI enums ------------------------------------------------------------------------------

enum class Status : uint32_t {
  Ok = 0,
  NotFound = 1,
  BadArgument = 2,
  SerializationFailure = 3,
  ParseFailure = 4,
  BadExpression = 5,
  InvalidMemoryAccess = 6,
  Empty = 7,
  CasMismatch = 8,
  ResultMismatch = 9,
  InternalFailure = 10,
  BrokenConnection = 11,
  Unimplemented = 12,
};
std::string_view status_name(Status s);

enum class LogLevel : uint32_t {
  Trace = 0,
  Debug = 1,
  Info = 2,
  Warn = 3,
  Error = 4,
  Critical = 5
};

enum class MapType : uint32_t {
  RequestHeaders = 0,
  RequestTrailers = 1,
  ResponseHeaders = 2,
  ResponseTrailers = 3,
  GrpcReceiveInitialMetadata = 4,
  GrpcReceiveTrailingMetadata = 5,
  HttpCallResponseHeaders = 6,
  HttpCallResponseTrailers = 7,
};

enum class BufferType : uint32_t {
  HttpRequestBody = 0,
  HttpResponseBody = 1,
  NetworkDownstreamData = 2,
  NetworkUpstreamData = 3,
  HttpCallResponseBody = 4,
  GrpcReceiveBuffer = 5,
  VmConfiguration = 6,
  PluginConfiguration = 7,
  CallData = 8,
};

enum class StreamType : uint32_t { Request = 0, Response = 1, Downstream = 2, Upstream = 3 };

enum class FilterHeadersStatus : uint32_t {
  Continue = 0,
  StopIteration = 1,
  ContinueAndEndStream = 2,
  StopAllIterationAndBuffer = 3,
  StopAllIterationAndWatermark = 4,
};
enum class FilterDataStatus : uint32_t {
  Continue = 0,
  StopIterationAndBuffer = 1,
  StopIterationAndWatermark = 2,
  StopIterationNoBuffer = 3,
};
enum class FilterTrailersStatus : uint32_t { Continue = 0, StopIteration = 1 };
// Network filters: StopIteration holds the bytes (and, from on_new_connection, the connection)
// until continue_downstream() / continue_upstream().
enum class FilterStatus : uint32_t { Continue = 0, StopIteration = 1 };
// Who closed a connection: in on_downstream_connection_close, Local is the proxy, Remote the
// client. on_upstream_connection_close reports Unknown (as Envoy).
enum class PeerType : uint32_t { Unknown = 0, Local = 1, Remote = 2 };

// ---- Minimal formatting ---------------------------------------------------------------------
// format("a={} b={}", 1, "x"): each {} takes the next argument, {{ and }} are literal braces.
// Arguments: anything convertible to std::string_view, integers, bool, char, double, pointers.

namespace detail {
void append_arg(std::string& out, std::string_view v);
void append_arg(std::string& out, const char* v);
void append_arg(std::string& out, const std::string& v);
void append_arg(std::string& out, char v);
void append_arg(std::string& out, bool v);
void append_arg(std::string& out, long long v);
void append_arg(std::string& out, unsigned long long v);
void append_arg(std::string& out, double v);
void append_arg(std::string& out, const void* v);

template <typename T>
void append_any(std::string& out, const T& v) {
  using D = std::decay_t<T>;
  if constexpr (std::is_same_v<D, bool> || std::is_same_v<D, char>) {
    append_arg(out, v);
  } else if constexpr (std::is_enum_v<D>) {
    append_arg(out, static_cast<long long>(static_cast<std::underlying_type_t<D>>(v)));
  } else if constexpr (std::is_integral_v<D> && std::is_signed_v<D>) {
    append_arg(out, static_cast<long long>(v));
  } else if constexpr (std::is_integral_v<D>) {
    append_arg(out, static_cast<unsigned long long>(v));
  } else if constexpr (std::is_floating_point_v<D>) {
    append_arg(out, static_cast<double>(v));
  } else if constexpr (std::is_convertible_v<const T&, std::string_view>) {
    append_arg(out, std::string_view(v));
  } else {
    static_assert(std::is_pointer_v<D>, "sluice::format: unsupported argument type");
    append_arg(out, static_cast<const void*>(v));
  }
}

// Copies `fmt` up to the next {} placeholder (handling {{ }}); returns false at the end.
bool format_until_placeholder(std::string& out, std::string_view& fmt);
}  // namespace detail

template <typename... Args>
std::string format(std::string_view fmt, const Args&... args) {
  std::string out;
  out.reserve(fmt.size() + 16 * sizeof...(Args));
  auto one = [&](const auto& arg) {
    if (detail::format_until_placeholder(out, fmt)) detail::append_any(out, arg);
  };
  (one(args), ...);
  (void)one;  // unused when there are no arguments
  while (detail::format_until_placeholder(out, fmt)) out += "{}";  // too few arguments
  return out;
}

// ---- Logging --------------------------------------------------------------------------------

Status log(LogLevel level, std::string_view message);
// The host's current level (Envoy may report 6 = "off"); Info if the host does not say.
LogLevel log_level();

template <typename... Args>
void log_trace(std::string_view fmt, const Args&... args) {
  log(LogLevel::Trace, format(fmt, args...));
}
template <typename... Args>
void log_debug(std::string_view fmt, const Args&... args) {
  log(LogLevel::Debug, format(fmt, args...));
}
template <typename... Args>
void log_info(std::string_view fmt, const Args&... args) {
  log(LogLevel::Info, format(fmt, args...));
}
template <typename... Args>
void log_warn(std::string_view fmt, const Args&... args) {
  log(LogLevel::Warn, format(fmt, args...));
}
template <typename... Args>
void log_error(std::string_view fmt, const Args&... args) {
  log(LogLevel::Error, format(fmt, args...));
}
template <typename... Args>
void log_critical(std::string_view fmt, const Args&... args) {
  log(LogLevel::Critical, format(fmt, args...));
}

// ---- Header maps ----------------------------------------------------------------------------

using Pairs = std::vector<std::pair<std::string, std::string>>;

// The ABI's pairs encoding (u32 count, count x (u32 key_len, u32 value_len), then each key and
// value NUL-terminated). parse_pairs returns nullopt for a blob that is not exactly consistent.
std::string serialize_pairs(const Pairs& pairs);
std::optional<Pairs> parse_pairs(std::string_view blob);

// One header map of the current stream (or of the http_call response being delivered).
// Keys are case-insensitive on the host side (Envoy lower-cases them).
class HeaderMap {
 public:
  explicit constexpr HeaderMap(MapType type) : type_(type) {}
  MapType type() const { return type_; }

  std::optional<std::string> get(std::string_view key) const;  // first value; nullopt if absent
  // The same without a copy: valid until the next SDK call that reaches the host (any host
  // call may write over it). For reads on the request path that only look at the value.
  std::optional<std::string_view> get_view(std::string_view key) const;
  bool contains(std::string_view key) const { return get(key).has_value(); }
  Status add(std::string_view key, std::string_view value) const;      // appends a value
  Status replace(std::string_view key, std::string_view value) const;  // sets, adding if absent
  Status remove(std::string_view key) const;                           // Ok if absent
  Pairs pairs() const;                                                 // empty if unavailable
  Status set_pairs(const Pairs& pairs) const;                          // replaces the whole map
  std::optional<size_t> byte_size() const;

 private:
  MapType type_;
};

constexpr HeaderMap request_headers() { return HeaderMap(MapType::RequestHeaders); }
constexpr HeaderMap request_trailers() { return HeaderMap(MapType::RequestTrailers); }
constexpr HeaderMap response_headers() { return HeaderMap(MapType::ResponseHeaders); }
constexpr HeaderMap response_trailers() { return HeaderMap(MapType::ResponseTrailers); }
constexpr HeaderMap grpc_initial_metadata() {
  return HeaderMap(MapType::GrpcReceiveInitialMetadata);
}
constexpr HeaderMap grpc_trailing_metadata() {
  return HeaderMap(MapType::GrpcReceiveTrailingMetadata);
}
constexpr HeaderMap http_call_response_headers() {
  return HeaderMap(MapType::HttpCallResponseHeaders);
}
constexpr HeaderMap http_call_response_trailers() {
  return HeaderMap(MapType::HttpCallResponseTrailers);
}

// Header edits defined once and applied to streams' response headers later, without a callback
// (HttpContext::edit_response_headers). Defined with the host lazily, once per object, like
// metrics: keep them in your root context (not in globals, which native builds share between
// VMs). Changing one after use redefines it at its next use.
class HeaderEdits {
 public:
  HeaderEdits() = default;
  // A copy is a new set of the same edits (defined on its own); assigning keeps this object's
  // host id, as assign() does.
  HeaderEdits(const HeaderEdits& other) : edits_(other.edits_) {}
  HeaderEdits& operator=(const HeaderEdits& other) { return assign(other); }

  HeaderEdits& add(std::string_view name, std::string_view value);      // appends a value
  HeaderEdits& replace(std::string_view name, std::string_view value);  // sets, adding if absent
  HeaderEdits& remove(std::string_view name);
  // Takes `other`'s edits (this object keeps its host id, redefined at its next use).
  HeaderEdits& assign(const HeaderEdits& other);
  bool empty() const { return edits_.empty(); }
  size_t size() const { return edits_.size(); }
  // Applies them through the header-map calls, in order (what the SDK does on other hosts).
  void apply_to(const HeaderMap& map) const;

 private:
  friend class HttpContext;
  enum class Op : uint32_t { Add = 0, Replace = 1, Remove = 2 };  // Sluice's numbering
  struct Edit {
    Op op;
    std::string name, value;
  };
  HeaderEdits& push(Op op, std::string_view name, std::string_view value);
  // The host's id for these edits, defining (or redefining) them first; 0 if the host refused.
  uint32_t host_id() const;

  std::vector<Edit> edits_;
  // The host's set for this object, kept when a redefinition is refused so that the next one
  // replaces it instead of taking another of the VM's sets.
  mutable uint32_t id_ = 0;
  mutable bool changed_ = true;
  mutable bool refused_ = false;  // the last definition was refused: the SDK applies the edits
};

// ---- Buffers --------------------------------------------------------------------------------

class Buffer {
 public:
  explicit constexpr Buffer(BufferType type) : type_(type) {}
  BufferType type() const { return type_; }

  std::optional<size_t> size() const;  // nullopt if the buffer is unavailable now
  // Up to `max_size` bytes from `start` (clamped by the host); empty if unavailable.
  std::string get(size_t start, size_t max_size) const;
  std::string get_all() const;
  // Replaces `size` bytes at `start` with `data`. Envoy supports start = 0 (drop `size` bytes,
  // then prepend) and start >= current size (append) only.
  Status set(size_t start, size_t size, std::string_view data) const;
  Status replace_all(std::string_view data) const;
  Status append(std::string_view data) const;
  Status prepend(std::string_view data) const { return set(0, 0, data); }

 private:
  BufferType type_;
};

constexpr Buffer request_body() { return Buffer(BufferType::HttpRequestBody); }
constexpr Buffer response_body() { return Buffer(BufferType::HttpResponseBody); }
constexpr Buffer http_call_response_body() { return Buffer(BufferType::HttpCallResponseBody); }
constexpr Buffer grpc_receive_buffer() { return Buffer(BufferType::GrpcReceiveBuffer); }
// Network filters: the bytes from the client (downstream) and toward it (upstream) that the
// current callback is looking at, or that a stopped connection holds.
constexpr Buffer downstream_data() { return Buffer(BufferType::NetworkDownstreamData); }
constexpr Buffer upstream_data() { return Buffer(BufferType::NetworkUpstreamData); }
constexpr Buffer vm_configuration_buffer() { return Buffer(BufferType::VmConfiguration); }
constexpr Buffer plugin_configuration_buffer() { return Buffer(BufferType::PluginConfiguration); }

// The VM configuration (during on_vm_start) and the plugin configuration (during on_configure).
std::string vm_configuration();
std::string plugin_configuration();

// ---- Properties -----------------------------------------------------------------------------
// A path is a list of segments, e.g. {"request", "path"}; the host receives them NUL-joined.

using PropertyPath = std::initializer_list<std::string_view>;
std::string join_property_path(PropertyPath path);

std::optional<std::string> get_property(PropertyPath path);  // raw bytes
// The same, for a path whose segments are already joined with NUL bytes (paths built at run
// time, e.g. from configuration).
std::optional<std::string> get_property_joined(std::string_view joined_path);
std::optional<std::string> get_property_string(PropertyPath path);
// The plugin's name (Envoy's `config.name`), or `fallback` where it is missing or empty: Envoy
// and Sluice allow an unnamed plugin, and names built from it (metrics, shared data keys) should
// not come out as "ratelimit..allowed".
std::string plugin_name_or(std::string_view fallback);
std::optional<int64_t> get_property_int64(PropertyPath path);    // 8-byte values only
std::optional<uint64_t> get_property_uint64(PropertyPath path);  // 8-byte values only
std::optional<bool> get_property_bool(PropertyPath path);        // 1-byte values only
// Reads of a joined path without copying the value: a view valid until the next SDK call that
// reaches the host (which may write over it), and the typed reads built on it.
std::optional<std::string_view> get_property_view(std::string_view joined_path);
std::optional<int64_t> get_property_int64_joined(std::string_view joined_path);
std::optional<bool> get_property_bool_joined(std::string_view joined_path);
Status set_property(PropertyPath path, std::string_view value);

// A fixed list of joined paths read together, for a plugin that reads the same properties on
// every request (telemetry reads nine). On Sluice, one crossing into the host reads them all
// (sluice_get_properties: on V8 a crossing costs more than most reads); elsewhere, one read each.
// Build it once (it encodes the request then); read() per request.
class PropertyBatch {
 public:
  explicit PropertyBatch(std::span<const std::string_view> joined_paths);
  PropertyBatch(std::initializer_list<std::string_view> joined_paths)
      : PropertyBatch(
            std::span<const std::string_view>(joined_paths.begin(), joined_paths.size())) {}

  size_t size() const { return paths_.size(); }
  // values[i] is what get_property_view(path i) would answer, and lasts as long: until the next
  // SDK call that reaches the host.
  std::span<const std::optional<std::string_view>> read();

 private:
  bool read_batched();

  std::vector<std::string> paths_;
  std::string request_;  // sluice_get_properties' arguments for paths_
  std::vector<std::optional<std::string_view>> values_;
  std::string store_;                              // values read one at a time, copied
  std::vector<std::pair<size_t, size_t>> places_;  // (offset in store_, size)
};

// ---- Metrics --------------------------------------------------------------------------------
// Defined lazily on first use, once per object. Metric ids are per VM: keep metric objects in
// your root context (not in globals, which native builds share between VMs).

class Metric {
 public:
  enum class Type : uint32_t { Counter = 0, Gauge = 1, Histogram = 2 };
  Metric(Type type, std::string name) : type_(type), name_(std::move(name)) {}
  const std::string& name() const { return name_; }
  std::optional<uint32_t> id();  // defines the metric on first call

 protected:
  Status increment_by(int64_t delta);
  Status record_value(uint64_t value);
  std::optional<uint64_t> read();

 private:
  Type type_;
  std::string name_;
  std::optional<uint32_t> id_;
};

// The same by id, for plugins that keep many metrics (one per label set) in their own tables:
// define once, then update by id. Idempotent: defining a name again gives the same id.
std::optional<uint32_t> define_metric(Metric::Type type, std::string_view name);
Status increment_metric(uint32_t metric_id, int64_t delta);
Status record_metric(uint32_t metric_id, uint64_t value);

class Counter : public Metric {
 public:
  explicit Counter(std::string name) : Metric(Type::Counter, std::move(name)) {}
  Status increment(uint64_t delta = 1) {
    return delta == 0 ? Status::Ok : increment_by(static_cast<int64_t>(delta));
  }
  std::optional<uint64_t> value() { return read(); }
};

class Gauge : public Metric {
 public:
  explicit Gauge(std::string name) : Metric(Type::Gauge, std::move(name)) {}
  Status add(int64_t delta) { return increment_by(delta); }
  Status set(uint64_t value) { return record_value(value); }
  std::optional<uint64_t> value() { return read(); }
};

class Histogram : public Metric {
 public:
  explicit Histogram(std::string name) : Metric(Type::Histogram, std::move(name)) {}
  Status record(uint64_t value) { return record_value(value); }
};

// ---- Stream control -------------------------------------------------------------------------

// Answers the current request locally. `details` appears in access logs (spaces become '_');
// grpc_status -1 means none.
Status send_local_response(uint32_t status_code, std::string_view body, const Pairs& headers = {},
                           std::string_view details = {}, int32_t grpc_status = -1);
Status continue_stream(StreamType type);
Status close_stream(StreamType type);
inline Status continue_request() { return continue_stream(StreamType::Request); }
// Makes the host calls that follow act on another context of this VM (an HTTP stream whose id
// a root callback remembered): how a gRPC stream handler resumes the request it was opened for.
Status set_effective_context(uint32_t context_id);
inline Status continue_response() { return continue_stream(StreamType::Response); }
// Network filters: pass on the bytes held from the client (and a held new connection), or
// toward it; close the connection (either side closes the client connection, flushed).
inline Status continue_downstream() { return continue_stream(StreamType::Downstream); }
inline Status continue_upstream() { return continue_stream(StreamType::Upstream); }
inline Status close_downstream() { return close_stream(StreamType::Downstream); }
inline Status close_upstream() { return close_stream(StreamType::Upstream); }

// ---- Shared data and queues -----------------------------------------------------------------
// Shared by every VM with the same vm_id (and, on a host, across worker threads).

struct SharedValue {
  std::string value;
  uint32_t cas = 0;
};
std::optional<SharedValue> get_shared_data(std::string_view key);
// cas 0 writes unconditionally; otherwise CasMismatch unless it matches the stored cas.
Status set_shared_data(std::string_view key, std::string_view value, uint32_t cas = 0);

// Read-modify-write of one key with compare-and-swap, retried while another VM (another worker,
// another plugin of the vm_id) wrote it in between. `update` gets the current value (nullopt if
// the key is absent) and returns the new one, or nullopt to leave the key alone; it may run
// several times. Returns Ok (written; *written, if given, is the value), Empty (`update` declined)
// or CasMismatch (`max_attempts` races lost). Creating a key is not atomic in Proxy-Wasm (a set on
// an absent key ignores the cas): create keys once, e.g. in on_configure, which the host's canary
// runs before any worker starts.
using SharedDataUpdate =
    std::function<std::optional<std::string>(const std::optional<std::string>& current)>;
Status update_shared_data(std::string_view key, const SharedDataUpdate& update,
                          int max_attempts = 100, std::string* written = nullptr);

// Queues: a consumer registers (notifications then reach its RootContext::on_queue_ready, on its
// own worker), producers resolve by name (vm_id "" is their own) and enqueue. The host bounds
// each queue (Sluice: 10,000 entries; past that the oldest is dropped).
std::optional<uint32_t> register_shared_queue(std::string_view name);
std::optional<uint32_t> resolve_shared_queue(std::string_view vm_id, std::string_view name);
Status enqueue_shared_queue(uint32_t token, std::string_view value);
// Status::Empty when there is nothing to read.
Status dequeue_shared_queue(uint32_t token, std::string* value);

// ---- Misc -----------------------------------------------------------------------------------

uint64_t current_time_nanoseconds();
// Calls a host-registered foreign function; nullopt (and *status, if given) on failure.
std::optional<std::string> call_foreign_function(std::string_view name, std::string_view args,
                                                 Status* status = nullptr);
// zlib format (RFC 1950, HTTP's "deflate") through the "compress" and "uncompress" foreign
// functions Envoy and Sluice provide. nullopt on failure: *status is SerializationFailure for
// input that is not a complete zlib stream, NotFound on a host without them.
std::optional<std::string> zlib_compress(std::string_view data, Status* status = nullptr);
std::optional<std::string> zlib_uncompress(std::string_view data, Status* status = nullptr);

// ---- Contexts -------------------------------------------------------------------------------

class RootContext;

class Context {
 public:
  explicit Context(uint32_t id) : id_(id) {}
  virtual ~Context() = default;
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;
  uint32_t id() const { return id_; }

 private:
  uint32_t id_;
};

// The response to an http_call, valid during the callback: headers, body and trailers are read
// through http_call_response_headers(), http_call_response_body(), http_call_response_trailers().
struct HttpCallResponse {
  uint32_t token = 0;
  uint32_t num_headers = 0;  // 0 means the call failed (reset, timeout...)
  size_t body_size = 0;
  uint32_t num_trailers = 0;
  bool failed() const { return num_headers == 0; }
  std::optional<uint32_t> status() const;  // the :status header
  std::string body() const { return http_call_response_body().get(0, body_size); }
};
using HttpCallCallback = std::function<void(const HttpCallResponse&)>;

// gRPC status codes (grpc/grpc's doc/statuscodes.md).
enum class GrpcStatus : int32_t {
  Ok = 0,
  Canceled = 1,
  Unknown = 2,
  InvalidArgument = 3,
  DeadlineExceeded = 4,
  NotFound = 5,
  AlreadyExists = 6,
  PermissionDenied = 7,
  ResourceExhausted = 8,
  FailedPrecondition = 9,
  Aborted = 10,
  OutOfRange = 11,
  Unimplemented = 12,
  Internal = 13,
  Unavailable = 14,
  DataLoss = 15,
  Unauthenticated = 16,
};

// The outcome of a grpc_call: the response message (serialized protobuf) when ok(), otherwise
// the status and its message.
struct GrpcCallResult {
  uint32_t token = 0;
  GrpcStatus status = GrpcStatus::Ok;
  std::string response;
  std::string status_message;
  bool ok() const { return status == GrpcStatus::Ok; }
};
using GrpcCallCallback = std::function<void(const GrpcCallResult&)>;

// A gRPC stream opened with RootContext::grpc_stream: override the events you want. Metadata is
// read during its callback through grpc_initial_metadata() / grpc_trailing_metadata().
class GrpcStreamHandler {
 public:
  virtual ~GrpcStreamHandler() = default;
  virtual void on_initial_metadata(uint32_t num_elements) {}
  virtual void on_message(std::string_view message) {}
  virtual void on_trailing_metadata(uint32_t num_elements) {}
  // Last event; the handler is deleted after it returns.
  virtual void on_close(GrpcStatus status, std::string_view message) {}

  uint32_t token() const { return token_; }
  // One message; `end_stream` half-closes after it.
  Status send(std::string_view message, bool end_stream = false);
  // Half-close: no more messages from us; the server's may still arrive.
  Status close();
  // Ends the stream now: no more events, and the handler is deleted.
  Status cancel();

 private:
  friend class RootContext;
  friend struct Dispatch;
  RootContext* root_ = nullptr;
  uint32_t token_ = 0;
  bool in_event_ = false;
  bool cancelled_ = false;
};

// One per plugin (root_id) per VM: holds configuration and anything shared by its streams.
class RootContext : public Context {
 public:
  RootContext(uint32_t id, std::string_view root_id) : Context(id), root_id_(root_id) {}
  const std::string& root_id() const { return root_id_; }

  // false makes the VM (on_vm_start) or the configuration (on_configure) fail to load.
  virtual bool on_vm_start(size_t vm_configuration_size) { return true; }
  virtual bool on_configure(size_t plugin_configuration_size) { return true; }
  virtual void on_tick() {}
  virtual void on_queue_ready(uint32_t token) {}
  virtual void on_foreign_function(uint32_t function_id, size_t args_size) {}
  // false defers teardown until done() is called.
  virtual bool on_done() { return true; }
  virtual void on_delete() {}

  Status set_tick_period_milliseconds(uint32_t period_ms);  // 0 stops the timer
  Status done();                                            // after on_done returned false

  // Sends an HTTP request to `cluster`. `headers` must include :method, :path and :authority.
  // The callback runs later on this root context; timeout_ms 0 means none.
  Status http_call(std::string_view cluster, const Pairs& headers, std::string_view body,
                   const Pairs& trailers, uint32_t timeout_ms, HttpCallCallback callback);

  // A unary gRPC call of /<service>/<method> on `cluster` (an HTTP/2 cluster) with `message` (a
  // serialized protobuf). The callback runs later on this root context; timeout_ms 0: none.
  Status grpc_call(std::string_view cluster, std::string_view service, std::string_view method,
                   const Pairs& metadata, std::string_view message, uint32_t timeout_ms,
                   GrpcCallCallback callback);
  // A gRPC stream: `handler` receives its events and is owned by this context until on_close
  // (or cancel). On failure to start, the handler is dropped.
  Status grpc_stream(std::string_view cluster, std::string_view service, std::string_view method,
                     const Pairs& metadata, std::unique_ptr<GrpcStreamHandler> handler);

 private:
  friend struct Dispatch;
  friend class GrpcStreamHandler;
  struct PendingGrpcCall {
    uint32_t stream_id = 0;  // 0: issued by the root itself
    GrpcCallCallback callback;
  };
  Status start_grpc_call(uint32_t stream_id, std::string_view cluster, std::string_view service,
                         std::string_view method, const Pairs& metadata, std::string_view message,
                         uint32_t timeout_ms, GrpcCallCallback callback);
  std::unordered_map<uint32_t, PendingGrpcCall> grpc_calls_;
  std::unordered_map<uint32_t, std::unique_ptr<GrpcStreamHandler>> grpc_streams_;
  struct PendingCall {
    uint32_t stream_id = 0;  // 0: issued by the root itself
    HttpCallCallback callback;
  };
  Status start_http_call(uint32_t stream_id, std::string_view cluster, const Pairs& headers,
                         std::string_view body, const Pairs& trailers, uint32_t timeout_ms,
                         HttpCallCallback callback);
  friend class HttpContext;
  friend class NetworkContext;

  std::string root_id_;
  std::unordered_map<uint32_t, PendingCall> http_calls_;
};

// One per HTTP request/response exchange.
class HttpContext : public Context {
 public:
  HttpContext(uint32_t id, RootContext* root) : Context(id), root_(root) {}
  RootContext* root() const { return root_; }

  virtual FilterHeadersStatus on_request_headers(uint32_t num_headers, bool end_of_stream) {
    return FilterHeadersStatus::Continue;
  }
  virtual FilterDataStatus on_request_body(size_t body_size, bool end_of_stream) {
    return FilterDataStatus::Continue;
  }
  virtual FilterTrailersStatus on_request_trailers(uint32_t num_trailers) {
    return FilterTrailersStatus::Continue;
  }
  virtual FilterHeadersStatus on_response_headers(uint32_t num_headers, bool end_of_stream) {
    return FilterHeadersStatus::Continue;
  }
  virtual FilterDataStatus on_response_body(size_t body_size, bool end_of_stream) {
    return FilterDataStatus::Continue;
  }
  virtual FilterTrailersStatus on_response_trailers(uint32_t num_trailers) {
    return FilterTrailersStatus::Continue;
  }
  // Envoy's order at the end of a stream: on_log, on_done, on_delete. In Sluice, a class that
  // keeps on_delete's default is deleted (its destructor runs) up to one event-loop turn after
  // its stream ended, together with others: a destructor must not look at the stream, and host
  // calls from it act on the root context. Override on_delete to have it at the stream's end.
  virtual void on_log() {}
  virtual void on_done() {}
  virtual void on_delete() {}

  // An http_call whose callback runs with this stream as the effective context, so it may
  // continue_request() or send_local_response(). Dropped if the stream is gone by then.
  Status http_call(std::string_view cluster, const Pairs& headers, std::string_view body,
                   const Pairs& trailers, uint32_t timeout_ms, HttpCallCallback callback);
  // A gRPC call whose callback runs with this stream as the effective context (skipped if the
  // stream is gone by then), like http_call above.
  Status grpc_call(std::string_view cluster, std::string_view service, std::string_view method,
                   const Pairs& metadata, std::string_view message, uint32_t timeout_ms,
                   GrpcCallCallback callback);

  // This stream's response headers get `edits` (may be null) when they come, before
  // on_response_headers; with `skip_on_response_headers`, that callback is not made for this
  // stream (the edits are all it would do). On Sluice the host applies the edits with no call
  // into the module, one crossing fewer per request; elsewhere the SDK applies them in its
  // on_response_headers. Call it from the request callbacks; a later call replaces an earlier
  // one. `edits` must outlive the stream (keep it in the root context).
  void edit_response_headers(const HeaderEdits* edits, bool skip_on_response_headers = false);

 private:
  friend struct Dispatch;
  RootContext* root_;
  // Where the host does not apply them itself: applied by the SDK before on_response_headers.
  const HeaderEdits* sdk_response_edits_ = nullptr;
  bool skip_response_headers_ = false;
};

// One per TCP connection, for a plugin configured as a network filter
// (envoy.filters.network.wasm, before tcp_proxy or http_connection_manager). Bytes are read and
// edited through downstream_data() / upstream_data() during the data callbacks.
class NetworkContext : public Context {
 public:
  NetworkContext(uint32_t id, RootContext* root) : Context(id), root_(root) {}
  RootContext* root() const { return root_; }

  virtual FilterStatus on_new_connection() { return FilterStatus::Continue; }
  // From the client; `data_size` counts every byte held for this filter.
  virtual FilterStatus on_downstream_data(size_t data_size, bool end_of_stream) {
    return FilterStatus::Continue;
  }
  // Toward the client (what the upstream or the HTTP connection manager sends).
  virtual FilterStatus on_upstream_data(size_t data_size, bool end_of_stream) {
    return FilterStatus::Continue;
  }
  virtual void on_downstream_connection_close(PeerType peer) {}
  virtual void on_upstream_connection_close(PeerType peer) {}
  // At the end of the connection: on_log, on_done, on_delete (deferred as HttpContext's).
  virtual void on_log() {}
  virtual void on_done() {}
  virtual void on_delete() {}

  // An http_call whose callback runs with this connection as the effective context (skipped if
  // the connection is gone by then), so it may continue_downstream() or close_downstream().
  Status http_call(std::string_view cluster, const Pairs& headers, std::string_view body,
                   const Pairs& trailers, uint32_t timeout_ms, HttpCallCallback callback);

 private:
  RootContext* root_;
};

// ---- Registration ---------------------------------------------------------------------------

namespace detail {

// Stream callbacks a root's contexts leave to the SDK's defaults: the SDK tells Sluice, which
// then skips them (a call into the module saved each time; other hosts ignore it). The bits are
// the host's (src/wasm/abi/sluice_functions.h; a unit test checks they agree).
enum DeclinedCallback : uint32_t {
  kDeclineRequestHeaders = 1u << 0,
  kDeclineRequestBody = 1u << 1,
  kDeclineRequestTrailers = 1u << 2,
  kDeclineResponseHeaders = 1u << 3,
  kDeclineResponseBody = 1u << 4,
  kDeclineResponseTrailers = 1u << 5,
  kDeclineLog = 1u << 6,
  kDeclineDone = 1u << 7,
  kDeclineNewConnection = 1u << 8,
  kDeclineDownstreamData = 1u << 9,
  kDeclineUpstreamData = 1u << 10,
  kDeclineDownstreamConnectionClose = 1u << 11,
  kDeclineUpstreamConnectionClose = 1u << 12,
  kDeclineAll = (1u << 13) - 1,
  // Not a declined callback: on_delete is left to the default, so Sluice may deliver it later,
  // batched (the SDK's delete mailbox, dispatch.h).
  kDeferDelete = 1u << 13,
};

// inherits_<fn><S, Base>: S leaves Base's `fn` as is (does not declare its own). A name S
// overloads cannot be looked at this way and counts as overridden.
#define SLUICE_SDK_INHERITS_TRAIT(fn)                                                           \
  template <typename S, typename Base, typename = void>                                         \
  struct inherits_##fn : std::false_type {};                                                    \
  template <typename S, typename Base>                                                          \
  struct inherits_##fn<S, Base,                                                                 \
                       std::enable_if_t<std::is_same_v<decltype(&S::fn), decltype(&Base::fn)>>> \
      : std::true_type {};
SLUICE_SDK_INHERITS_TRAIT(on_request_headers)
SLUICE_SDK_INHERITS_TRAIT(on_request_body)
SLUICE_SDK_INHERITS_TRAIT(on_request_trailers)
SLUICE_SDK_INHERITS_TRAIT(on_response_headers)
SLUICE_SDK_INHERITS_TRAIT(on_response_body)
SLUICE_SDK_INHERITS_TRAIT(on_response_trailers)
SLUICE_SDK_INHERITS_TRAIT(on_new_connection)
SLUICE_SDK_INHERITS_TRAIT(on_downstream_data)
SLUICE_SDK_INHERITS_TRAIT(on_upstream_data)
SLUICE_SDK_INHERITS_TRAIT(on_downstream_connection_close)
SLUICE_SDK_INHERITS_TRAIT(on_upstream_connection_close)
SLUICE_SDK_INHERITS_TRAIT(on_log)
SLUICE_SDK_INHERITS_TRAIT(on_done)
SLUICE_SDK_INHERITS_TRAIT(on_delete)
#undef SLUICE_SDK_INHERITS_TRAIT

// The callbacks stream context S (void: none of this kind) does not implement, of those that
// belong to its kind; the bits of the other kind are all set, and on_log / on_done are set
// when S keeps the default (kDeferDelete when it keeps on_delete's).
template <typename S>
constexpr uint32_t declinable_callbacks() {
  if constexpr (std::is_void_v<S>) {
    return kDeclineAll | kDeferDelete;
  } else {
    uint32_t bits = 0;
    auto mark = [&bits](bool inherited, uint32_t bit) {
      if (inherited) bits |= bit;
    };
    if constexpr (std::is_base_of_v<HttpContext, S>) {
      using B = HttpContext;
      mark(inherits_on_request_headers<S, B>::value, kDeclineRequestHeaders);
      mark(inherits_on_request_body<S, B>::value, kDeclineRequestBody);
      mark(inherits_on_request_trailers<S, B>::value, kDeclineRequestTrailers);
      mark(inherits_on_response_headers<S, B>::value, kDeclineResponseHeaders);
      mark(inherits_on_response_body<S, B>::value, kDeclineResponseBody);
      mark(inherits_on_response_trailers<S, B>::value, kDeclineResponseTrailers);
      mark(inherits_on_log<S, B>::value, kDeclineLog);
      mark(inherits_on_done<S, B>::value, kDeclineDone);
      mark(inherits_on_delete<S, B>::value, kDeferDelete);
      bits |= kDeclineNewConnection | kDeclineDownstreamData | kDeclineUpstreamData |
              kDeclineDownstreamConnectionClose | kDeclineUpstreamConnectionClose;
    } else {
      using B = NetworkContext;
      mark(inherits_on_new_connection<S, B>::value, kDeclineNewConnection);
      mark(inherits_on_downstream_data<S, B>::value, kDeclineDownstreamData);
      mark(inherits_on_upstream_data<S, B>::value, kDeclineUpstreamData);
      mark(inherits_on_downstream_connection_close<S, B>::value, kDeclineDownstreamConnectionClose);
      mark(inherits_on_upstream_connection_close<S, B>::value, kDeclineUpstreamConnectionClose);
      mark(inherits_on_log<S, B>::value, kDeclineLog);
      mark(inherits_on_done<S, B>::value, kDeclineDone);
      mark(inherits_on_delete<S, B>::value, kDeferDelete);
      bits |= kDeclineRequestHeaders | kDeclineRequestBody | kDeclineRequestTrailers |
              kDeclineResponseHeaders | kDeclineResponseBody | kDeclineResponseTrailers;
    }
    return bits;
  }
}

// What a root whose stream contexts are Stream and SecondStream (void: none) declines.
template <typename Stream, typename SecondStream>
constexpr uint32_t declined_callbacks() {
  uint32_t bits = declinable_callbacks<Stream>() & declinable_callbacks<SecondStream>();
  if constexpr (!std::is_void_v<SecondStream>) {
    // The first callback decides a new context's kind (see RegisterContextFactory): it must
    // arrive.
    bits &= ~(kDeclineRequestHeaders | kDeclineNewConnection);
  }
  return bits;
}

using RootFactory = std::function<std::unique_ptr<RootContext>(uint32_t id, std::string_view)>;
using HttpFactory = std::function<std::unique_ptr<HttpContext>(uint32_t id, RootContext* root)>;
using NetworkFactory =
    std::function<std::unique_ptr<NetworkContext>(uint32_t id, RootContext* root)>;
struct Registration {
  RootFactory root;
  // The root's stream contexts: HTTP streams, TCP connections, or both (a plugin that serves as
  // an HTTP filter and as a network filter under one root id, as Istio's telemetry does); none
  // when the root has no stream contexts.
  HttpFactory http;
  NetworkFactory network;
  // DeclinedCallback bits: what the stream contexts leave to the SDK's defaults.
  uint32_t declined_callbacks = 0;
};
void register_factories(std::string_view root_id, Registration registration);
}  // namespace detail

// A static object per root id, e.g.
//   static sluice::RegisterContextFactory<MyRoot, MyHttp> reg("my_root_id");
// MyRoot is constructed as MyRoot(id, root_id); the stream context (an HttpContext or a
// NetworkContext) as MyHttp(id, MyRoot*) if it has such a constructor, else
// MyHttp(id, RootContext*). The root id is the plugin's `root_id`; a plugin whose root_id
// matches nothing uses the only registration if there is exactly one.
//
// A third argument registers both kinds: <MyRoot, MyHttp, MyTcp> (one of each). The host does
// not say which kind a new context is, so the SDK creates it at its first callback:
// on_request_headers makes an HttpContext, on_new_connection a NetworkContext.
template <typename Root, typename Stream = void, typename SecondStream = void>
struct RegisterContextFactory {
  explicit RegisterContextFactory(std::string_view root_id) {
    static_assert(std::is_base_of_v<RootContext, Root>, "Root must derive from RootContext");
    detail::Registration r;
    r.root = [](uint32_t id, std::string_view rid) -> std::unique_ptr<RootContext> {
      return std::make_unique<Root>(id, rid);
    };
    add_stream<Stream>(r);
    add_stream<SecondStream>(r);
    r.declined_callbacks = detail::declined_callbacks<Stream, SecondStream>();
    static_assert(std::is_void_v<SecondStream> || (std::is_base_of_v<HttpContext, Stream> !=
                                                   std::is_base_of_v<HttpContext, SecondStream>),
                  "with two stream contexts, one must be an HttpContext, the other a "
                  "NetworkContext");
    detail::register_factories(root_id, std::move(r));
  }

 private:
  template <typename S>
  static void add_stream(detail::Registration& r) {
    if constexpr (!std::is_void_v<S>) {
      static_assert(std::is_base_of_v<HttpContext, S> || std::is_base_of_v<NetworkContext, S>,
                    "the stream context must derive from HttpContext or NetworkContext");
      auto make = [](uint32_t id, RootContext* root) {
        if constexpr (std::is_constructible_v<S, uint32_t, Root*>) {
          return std::make_unique<S>(id, static_cast<Root*>(root));
        } else {
          return std::make_unique<S>(id, root);
        }
      };
      if constexpr (std::is_base_of_v<HttpContext, S>) {
        r.http = [make](uint32_t id, RootContext* root) -> std::unique_ptr<HttpContext> {
          return make(id, root);
        };
      } else {
        r.network = [make](uint32_t id, RootContext* root) -> std::unique_ptr<NetworkContext> {
          return make(id, root);
        };
      }
    }
  }
};

// ---- Small string helpers -------------------------------------------------------------------

// Replaces every occurrence of `from` (not empty) in `s` by `to`, left to right, never inside
// what was just put in; returns how many.
size_t replace_substrings(std::string& s, std::string_view from, std::string_view to);

std::string_view trim(std::string_view s);
// A decimal number that fits in 64 bits, digits only (no sign, no spaces); nullopt otherwise.
std::optional<uint64_t> parse_uint64(std::string_view s);
// Splits "k=v" lines; skips blank lines and lines starting with '#'. A line without '=' gives an
// empty value.
std::vector<std::pair<std::string, std::string>> parse_key_value_lines(std::string_view text);

}  // namespace SLUICE_SDK_NS
}  // namespace sluice
