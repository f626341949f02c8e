// The host side of a running Proxy-Wasm module: one WasmInstance per (plugin VM, worker thread),
// holding the VM, its exported callbacks, and its contexts (Proxy-Wasm's root and stream
// contexts, with ids shared in one counter per instance). Host functions (abi/) act on the
// "current" context of the calling thread, or on the effective one a module switched to.
//
// Thread model: an instance and its contexts live on one worker thread and are only called there.
// What plugins share across threads (shared data, queues, metrics) lives in shared_state.h and
// the stats Store; work for an instance that starts elsewhere reaches it through its thread's
// loop (thread_loop.h) and an InstanceRef.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include <absl/container/flat_hash_map.h>

#include "common/stats.h"
#include "wasm/abi/capabilities.h"
#include "wasm/plugin_metrics.h"
#include "wasm/shared_state.h"
#include "wasm/vm/module_info.h"
#include "wasm/vm/wasm_vm.h"
#include "wasm/wasm_result.h"

namespace sluice {
class HeaderMap;
struct StreamInfo;
}  // namespace sluice

namespace sluice::http {
class StreamFilterCallbacks;
struct AsyncResponse;
}  // namespace sluice::http

namespace sluice::wasm {

struct PluginSpec;
class WasmInstance;
struct TickTimer;  // context.cc: a root context's asio timer

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

// The phase a stream context is in, for "call outside its phase" checks.
enum class Phase {
  None,
  RequestHeaders,
  RequestBody,
  RequestTrailers,
  ResponseHeaders,
  ResponseBody,
  ResponseTrailers,
  Log,
  Done
};

// Runs what a module asked of a stream (continue, local reply, close) when it asked outside
// that stream's own callback: from a root callback (an http_call response, a tick) after
// proxy_set_effective_context. The stream's filter implements it.
class StreamActions {
 public:
  virtual ~StreamActions() = default;
  virtual void run_deferred_actions() = 0;
};

// The TCP connection a network-filter context serves (envoy.filters.network.wasm): its filter
// implements it.
class NetworkStream {
 public:
  virtual ~NetworkStream() = default;
  // Buffers 2 and 3: the bytes the filter holds from the client and toward it (editable).
  virtual std::string& downstream_data() = 0;
  virtual std::string& upstream_data() = 0;
  virtual const StreamInfo& stream_info() = 0;
  virtual uint64_t connection_id() const = 0;
};

// The callbacks a module may export, looked up once per instance.
struct WasmCallbacks {
  WasmFunction malloc_fn;  // malloc or proxy_on_memory_allocate
  WasmFunction on_context_create, on_vm_start, on_configure, on_validate_configuration, on_done,
      on_log, on_delete, on_request_headers, on_request_body, on_request_trailers,
      on_response_headers, on_response_body, on_response_trailers, on_tick, on_queue_ready,
      on_foreign_function, on_http_call_response, on_grpc_receive_initial_metadata, on_grpc_receive,
      on_grpc_receive_trailing_metadata, on_grpc_close, on_new_connection, on_downstream_data,
      on_upstream_data, on_downstream_connection_close, on_upstream_connection_close;
  // Sluice's own exports (abi/sluice_functions.h), present only with the callbacks they stand
  // for: the fused ones, and the batched on_delete.
  WasmFunction on_stream_start, on_stream_end, on_delete_batch;
};

class Context {
 public:
  Context(WasmInstance& instance, uint32_t id, Context* root, const PluginSpec* plugin);
  virtual ~Context();

  WasmInstance& instance() { return instance_; }
  uint32_t id() const { return id_; }
  bool is_root() const { return root_ == this; }
  Context* root() { return root_; }
  const PluginSpec* plugin() const { return plugin_; }

  // The HTTP stream this context serves, or nullptr (root contexts; a finished stream).
  http::StreamFilterCallbacks* stream() { return stream_; }
  void set_stream(http::StreamFilterCallbacks* s) { stream_ = s; }
  // The TCP connection this context serves (network filters), or nullptr.
  NetworkStream* network() { return network_; }
  void set_network(NetworkStream* n) { network_ = n; }
  StreamActions* actions() { return actions_; }
  void set_actions(StreamActions* a) { actions_ = a; }
  Phase phase() const { return phase_; }
  void set_phase(Phase p) { phase_ = p; }

  // Actions a module asked for during a callback (run by the filter once the VM call returns).
  bool want_continue_request = false, want_continue_response = false;
  bool want_continue_downstream = false, want_continue_upstream = false;
  std::optional<std::string> want_close;
  struct LocalResponse {
    uint32_t status;
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string details;
  };
  std::optional<LocalResponse> local_response;

  // proxy_get_status: the last status the host recorded for this (root) context.
  uint32_t status_code = 0;
  std::string status_message;

  // A root context that answered false to on_done waits for proxy_done.
  bool done_pending = false;
  // A stream context whose on_context_create has not reached the module yet: it goes with the
  // first callback (WasmInstance::start_stream fuses it with on_request_headers).
  bool create_deferred = false;
  // sluice_edit_response_headers: the instance's header edit set the filter applies to this
  // stream's response headers (0: none), and whether on_response_headers is skipped for them, or
  // called although the root declined it.
  uint32_t response_header_edits = 0;
  bool skip_response_headers_callback = false;
  bool call_response_headers_callback = false;  // even if the root declined it

  // The callbacks this context's streams run: the instance's, less those its root declined
  // (sluice_functions.h). Filters and teardown call through these.
  const WasmCallbacks& stream_callbacks() const;
  // Root contexts: skip the callbacks in `bits` (sluice_functions::DeclinedCallback) on this
  // root's streams from now on, and defer their on_delete if kDeferDelete is there; 0 restores
  // them all.
  void decline_stream_callbacks(uint32_t bits);
  // Whether this context's root let its streams' on_delete come later (kDeferDelete).
  bool stream_delete_deferrable() const { return root_->defer_delete_; }
  // The exported stream callbacks this context's streams skip (export names), for /wasm.
  std::vector<std::string_view> skipped_stream_callbacks() const;
  // Whether this context's streams start (on_context_create + on_request_headers) and end
  // (on_log + on_delete, when on_done is not called) with Sluice's fused exports.
  bool stream_start_fused() const;
  bool stream_end_fused() const;

  // proxy_set_property values (Envoy's filter state "wasm.<path>"), for this stream.
  std::vector<std::pair<std::string, std::string>> filter_state;

  // proxy_set_tick_period_milliseconds (root contexts): the period (0: stopped) and the timer
  // on the instance's thread loop, made on first use. Destroying it cancels the tick.
  uint32_t tick_period_ms = 0;
  std::unique_ptr<TickTimer> tick_timer;

 private:
  WasmInstance& instance_;
  uint32_t id_;
  Context* root_;
  const PluginSpec* plugin_;
  http::StreamFilterCallbacks* stream_ = nullptr;
  NetworkStream* network_ = nullptr;
  StreamActions* actions_ = nullptr;
  Phase phase_ = Phase::None;
  // Root contexts that declined callbacks: a copy of the instance's with those cleared.
  std::unique_ptr<WasmCallbacks> declined_callbacks_;
  bool defer_delete_ = false;  // root contexts: kDeferDelete
};

// A reference to an instance for work queued to run later on its thread (a tick, a queue
// notification from another worker): get() is nullptr once the instance is destroyed, or when
// called on another thread. Copyable and safe to hold (and drop) on any thread.
class InstanceRef {
 public:
  InstanceRef() = default;
  WasmInstance* get() const;
  bool expired() const { return anchor_.expired(); }

 private:
  friend class WasmInstance;
  InstanceRef(std::weak_ptr<WasmInstance* const> anchor, std::thread::id thread)
      : anchor_(std::move(anchor)), thread_(thread) {}
  std::weak_ptr<WasmInstance* const> anchor_;
  std::thread::id thread_;
};

class WasmInstance {
 public:
  // Instantiates `module` on this thread with the host functions its ABI version allows.
  // `vm_configuration` goes to on_vm_start; `env` to WASI environ_get.
  // `capabilities` restricts what the module may call and which of its callbacks run
  // (abi/capabilities.h).
  static Result<std::unique_ptr<WasmInstance>> create(
      std::shared_ptr<CompiledModule> module, std::string runtime_name, std::string vm_id,
      std::string vm_configuration, std::vector<std::pair<std::string, std::string>> env,
      const Capabilities& capabilities = {});
  ~WasmInstance();

  WasmVm& vm() { return *vm_; }
  AbiVersion abi_version() const { return abi_; }
  const WasmCallbacks& callbacks() const { return callbacks_; }
  const std::string& vm_id() const { return vm_id_; }
  const std::string& vm_configuration() const { return vm_configuration_; }
  const std::vector<std::pair<std::string, std::string>>& env() const { return env_; }
  const std::string& runtime_name() const { return runtime_name_; }

  // A trap, a host-requested trap or an allocation failure marks the instance failed: it is never
  // called again (its memory may be half-updated).
  bool failed() const { return failed_; }
  const std::string& failure() const { return failure_; }
  std::chrono::steady_clock::time_point failed_at() const { return failed_at_; }
  // The export a failure happened in ("proxy_on_request_headers"), or "".
  const std::string& failure_callback() const { return failure_callback_; }
  // Why, for sluice_wasm_failures_total{plugin,reason}: a trap, a CPU budget hit, the module's
  // allocator trapping (a memory failure), or a failure while starting (_initialize,
  // on_vm_start, on_configure).
  enum class FailureReason { Trap, Cpu, Memory, Start };
  void fail(std::string why, FailureReason reason = FailureReason::Trap);

  // The CPU budgets of this VM's calls (cpu_watchdog.h), in ms of its thread's CPU time (0:
  // none): each callback, and start-up (_initialize, on_vm_start, on_configure). Plugins sharing
  // the VM get the smallest: a later call only tightens them. The null runtime is not watched.
  void limit_cpu(uint32_t callback_ms, uint32_t startup_ms);

  // Runs _initialize (+ main) or _start. False (failed()) on a trap.
  bool initialize();
  // Creates the root context of `plugin` and runs on_context_create, on_vm_start (first root of
  // this VM only) and on_configure. Errors say which step refused.
  Result<Context*> start_root(const PluginSpec& plugin);
  // A stream context under `root` (on_context_create run); nullptr when the instance failed.
  // `defer_create` (HTTP streams): when the module exports sluice_on_stream_start and this
  // root's streams get on_request_headers, on_context_create is left for start_stream, or for
  // whichever callback comes first.
  Context* create_stream_context(Context& root, bool defer_create = false);
  // A stream's on_request_headers, with its deferred on_context_create in the same call when
  // there is one. Returns what on_request_headers answered (nullopt: not called, or failed).
  std::optional<uint64_t> start_stream(Context* ctx, uint64_t num_headers, bool end_of_stream);
  // on_log (optional), on_done, on_delete; then the context is gone.
  void destroy_stream_context(Context* ctx, bool log);
  // Root teardown: the deferred on_delete of streams first, then on_done, then on_delete unless
  // the module defers it with proxy_done.
  void destroy_root(Context* root);
  // sluice_set_delete_mailbox (abi/sluice_functions.h): BadArgument for a capacity out of range,
  // InvalidMemoryAccess for an array outside module memory; 0 stops deferring (what is deferred
  // already is delivered at the next flush).
  WasmResult set_delete_mailbox(uint64_t ptr, uint64_t capacity);
  // Delivers the deferred on_delete of ended streams (sluice_on_delete_batch), oldest first.
  // Runs on its own once per event-loop turn in which streams were deferred.
  void flush_deletes();
  size_t deferred_deletes() const { return deferred_deletes_.size(); }
  // Whether the streams of `root` may leave their on_delete for flush_deletes: the module took
  // part (mailbox, export, kDeferDelete), and a call into it is worth saving (not on null).
  bool defers_stream_deletes(const Context& root) const {
    return delete_mailbox_capacity_ != 0 && callbacks_.on_delete_batch &&
           root.stream_delete_deferrable() && !vm_->calls_are_cheap();
  }
  // How many stream contexts `root` has (streams and connections still running on it).
  size_t stream_contexts(const Context& root) const;

  Context* find_context(uint32_t id);

  // A guarded call of an export on behalf of `ctx`: sets the thread's current context, clears the
  // effective one, and on a trap fails the instance. nullopt when absent, failed or trapped.
  std::optional<uint64_t> call(Context* ctx, const WasmFunction& f,
                               std::initializer_list<uint64_t> args);

  // Copies `data` into module memory (into its return buffer if it fits, else through its
  // allocator) and writes (ptr, size) to the two out-params; an empty `data` writes 0/0 without
  // allocating.
  WasmResult copy_out(std::string_view data, uint64_t ptr_out, uint64_t size_out);
  // sluice_set_return_buffer (abi/sluice_functions.h): BadArgument for a size out of bounds,
  // InvalidMemoryAccess for a buffer outside module memory; size 0 stops using it.
  WasmResult set_return_buffer(uint64_t ptr, uint64_t size);
  uint64_t return_buffer_size() const { return return_buffer_size_; }
  // A foreign function's answer a leaf call could not return (too big for the return buffer:
  // kBufferTooSmall), kept for the module's call again with a bigger buffer, so the function
  // runs once. The next call of the same function with the same arguments takes it; the end of
  // the top-level callback drops it.
  void keep_refused_foreign_answer(std::string_view name, std::string_view args,
                                   std::string answer);
  bool take_refused_foreign_answer(std::string_view name, std::string_view args,
                                   std::string* answer);

  // Header edit sets (sluice_define_header_edits), by id from 1. define_header_edits replaces
  // set `id`, or adds one when `id` is 0; it returns the set's id, 0 when `id` is unknown or
  // there are kMaxHeaderEditSets sets already.
  struct HeaderEdit {
    uint32_t op;              // sluice_functions::HeaderEditOp
    std::string name, value;  // the name lower-cased
  };
  uint32_t define_header_edits(uint32_t id, std::vector<HeaderEdit> edits);
  // Whether the plugin's capability restrictions allow an edit of `op` (its header-map function,
  // and proxy_on_response_headers, where the module would otherwise make it).
  bool header_edit_allowed(uint32_t op) const { return (header_edit_ops_allowed_ >> op) & 1; }
  const std::vector<HeaderEdit>* header_edits(uint32_t id) const {
    return id != 0 && id <= header_edit_sets_.size() ? &header_edit_sets_[id - 1] : nullptr;
  }

  // The plugin configuration, readable through buffer 7 during on_configure only.
  const std::string* configuring = nullptr;

  InstanceRef ref() const { return InstanceRef(anchor_, thread_); }

  // Shared data and queues of this instance's vm_id; metrics this module defined.
  VmSharedState& shared_state() { return *shared_; }
  PluginMetrics& metrics() { return metrics_; }
  // The queue of `token` (any vm_id), or nullptr. Remembered per instance, so an enqueue per
  // request takes no process-wide lock.
  std::shared_ptr<SharedQueue> queue(uint32_t token);
  // What a queue registered by `root` calls on each enqueue: it posts proxy_on_queue_ready to
  // this thread's loop (dropped when this thread has no loop, or the instance is gone by then).
  QueueNotifier queue_notifier(Context& root);

  // proxy_http_call from `root`'s plugin: sends through this thread's HTTP client and answers
  // with proxy_on_http_call_response on `root` later (never inside this call). Statuses as
  // Envoy's: BadArgument for an unknown cluster, missing pseudo-headers or a header with CR/LF;
  // InternalFailure without a client on this thread (thread_loop.h) or past the outstanding
  // bound. A canary's calls are sent and cancelled with it, unanswered.
  WasmResult http_call(Context& root, std::string_view cluster,
                       const std::vector<std::pair<std::string, std::string>>& headers,
                       std::string_view body,
                       const std::vector<std::pair<std::string, std::string>>& trailers,
                       uint32_t timeout_ms, uint32_t* token);
  // The response an on_http_call_response callback is looking at (maps 6/7, buffer 4), or null.
  const http::AsyncResponse* http_call_response() const { return http_call_response_; }
  size_t outstanding_http_calls() const { return http_calls_.size(); }

  // proxy_grpc_call (`unary`, tokens 5, 9, ...) and proxy_grpc_stream (6, 10, ...) from `root`'s
  // plugin, to `upstream`: a cluster name, or a serialized GrpcService naming one. As in Envoy,
  // a call's answer arrives as proxy_on_grpc_receive (success) or proxy_on_grpc_close (failure,
  // status message through proxy_get_status); a stream's as initial metadata, messages,
  // trailing metadata and close. Statuses: ParseFailure for an unknown cluster; InternalFailure
  // without a client on this thread, past the outstanding bound (shared with http_call's
  // figure) or for metadata with CR/LF.
  WasmResult grpc_open(Context& root, bool unary, std::string_view upstream,
                       std::string_view service, std::string_view method,
                       const std::vector<std::pair<std::string, std::string>>& metadata,
                       std::string_view message, uint32_t timeout_ms, uint32_t* token);
  // proxy_grpc_send: BadArgument unless `token` names a stream, NotFound for one not open.
  WasmResult grpc_send(uint32_t token, std::string_view message, bool end_stream);
  // proxy_grpc_cancel (no callback afterwards) and proxy_grpc_close (a call: cancel; a stream:
  // half-close, its messages may still arrive). NotFound for an unknown token.
  WasmResult grpc_cancel(uint32_t token);
  WasmResult grpc_close(uint32_t token);
  // What an on_grpc_receive* callback is looking at (maps 4/5, buffer 5), or null.
  const HeaderMap* grpc_metadata(MapType type) const {
    return type == MapType::GrpcReceiveInitialMetadata ? grpc_initial_metadata_
                                                       : grpc_trailing_metadata_;
  }
  const std::string* grpc_message() const { return grpc_message_; }
  size_t outstanding_grpc_calls() const { return grpc_calls_.size(); }

  // A module acted on a stream other than the one whose callback runs (see StreamActions): its
  // actions run once the outermost call into the module returned.
  void defer_stream_actions(Context& stream);

  // proxy_set_tick_period_milliseconds for `root`: arms (or re-arms, for a new period) its timer
  // on this thread's loop; 0 stops it. Without a loop on this thread, only the period is kept.
  void set_tick_period(Context& root, uint32_t period_ms);

 private:
  WasmInstance();
  void arm_tick(Context& root);
  void on_tick(uint32_t root_id);
  void on_queue_ready(uint32_t root_id, uint32_t token);
  struct HttpCallout;
  void on_http_call_done(uint32_t token, const http::AsyncResponse* response,
                         std::string_view failure);
  void cancel_http_calls(uint32_t root_id);  // 0: every one
  struct GrpcCallout;
  void on_grpc_metadata(uint32_t token, MapType type, HeaderMap& metadata);
  void on_grpc_message(uint32_t token, std::string& message);
  void on_grpc_close(uint32_t token, int32_t status, std::string_view message);
  std::unique_ptr<GrpcCallout> take_grpc_call(uint32_t token);  // out of grpc_calls_
  void cancel_grpc_calls(uint32_t root_id);                     // 0: every one; without callbacks
  // Frees a finished callout on a later loop turn: its stream may be on the call stack.
  void retire_grpc_call(std::unique_ptr<GrpcCallout> callout);
  void run_deferred_stream_actions();
  // Takes the stream's on_delete for a later flush_deletes (false: call it now).
  bool defer_delete(Context& ctx);

  std::shared_ptr<CompiledModule> module_;
  std::unique_ptr<WasmVm> vm_;
  AbiVersion abi_ = AbiVersion::Unknown;
  WasmCallbacks callbacks_;
  // The module's return buffer (set_return_buffer); size 0: none.
  uint64_t return_buffer_ptr_ = 0, return_buffer_size_ = 0;
  std::string runtime_name_, vm_id_, vm_configuration_;
  std::vector<std::pair<std::string, std::string>> env_;
  uint32_t next_context_id_ = 1;
  // Flat: a stream's context is one allocation (the Context), not two (a node as well).
  absl::flat_hash_map<uint32_t, std::unique_ptr<Context>> contexts_;
  bool vm_started_ = false;
  bool failed_ = false;
  std::string failure_;
  std::chrono::steady_clock::time_point failed_at_{};
  std::string failure_callback_;
  // The export running now (top-level call), and the names of the callbacks (by function
  // index), for the failure log.
  const WasmFunction* running_export_ = nullptr;
  std::vector<std::pair<uint32_t, std::string_view>> callback_names_;

  const std::thread::id thread_ = std::this_thread::get_id();
  // Expires when the instance is destroyed: what InstanceRef watches.
  const std::shared_ptr<WasmInstance* const> anchor_;
  std::shared_ptr<VmSharedState> shared_;
  PluginMetrics metrics_;
  std::unordered_map<uint32_t, std::weak_ptr<SharedQueue>> queue_cache_;

  std::unordered_map<uint32_t, std::unique_ptr<HttpCallout>> http_calls_;
  uint32_t last_http_call_token_ = 0;  // tokens 4, 8, 12...: the low two bits say "HTTP call"
  const http::AsyncResponse* http_call_response_ = nullptr;
  std::unordered_map<uint32_t, std::unique_ptr<GrpcCallout>> grpc_calls_;
  uint32_t last_grpc_call_token_ = 1;    // calls 5, 9, 13...
  uint32_t last_grpc_stream_token_ = 2;  // streams 6, 10, 14...
  const HeaderMap* grpc_initial_metadata_ = nullptr;
  const HeaderMap* grpc_trailing_metadata_ = nullptr;
  const std::string* grpc_message_ = nullptr;
  uint32_t call_depth_ = 0;
  struct RefusedForeignAnswer {
    std::string name, args, answer;
  };
  std::optional<RefusedForeignAnswer> refused_foreign_answer_;
  std::vector<std::vector<HeaderEdit>> header_edit_sets_;
  uint32_t header_edit_ops_allowed_ = ~0u;         // bit per sluice_functions::HeaderEditOp
  std::vector<uint32_t> deferred_stream_actions_;  // context ids
  // The delete mailbox (sluice_set_delete_mailbox; capacity 0: none), and the ended streams
  // whose on_delete is still to come: (context id, root id), oldest first.
  uint64_t delete_mailbox_ptr_ = 0, delete_mailbox_capacity_ = 0;
  std::vector<std::pair<uint32_t, uint32_t>> deferred_deletes_, flushing_deletes_;
  uint32_t callback_cpu_ms_ = 0, startup_cpu_ms_ = 0;  // none until a plugin sets them
  bool watched_ = false;                               // a runtime whose calls can be stopped (V8)
  bool starting_ = false;                              // in start_root: the start-up budget applies
  stats::Gauge active_;                                // wasm.<runtime>.active
};

// The bound on outstanding proxy_http_call requests per VM (default 1024): past it, calls
// return InternalFailure and wasm.http_call_overflow grows. Set once at start-up.
void set_max_outstanding_http_calls(uint32_t n);
uint32_t max_outstanding_http_calls();

// The context host functions act on: the effective one if the module set it, else the current
// one (the context whose callback is running). nullptr outside any callback.
Context* current_context();
// The context whose callback is running (ignoring proxy_set_effective_context), or nullptr.
Context* callback_context();
// Host calls allowed right now: during _initialize/_start and malloc only a few are.
enum class CallRestriction { None, Initializing, Allocating };
CallRestriction current_restriction();
// For proxy_set_effective_context and the host functions: the instance whose callback runs.
void set_effective_context_id(uint32_t id);
WasmInstance* current_instance();

inline const WasmCallbacks& Context::stream_callbacks() const {
  return root_->declined_callbacks_ ? *root_->declined_callbacks_ : instance_.callbacks();
}

}  // namespace sluice::wasm
