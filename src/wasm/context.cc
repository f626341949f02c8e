#include "wasm/context.h"

#include <atomic>
#include <cstring>
#include <set>

#include <spdlog/spdlog.h>
#include <asio/steady_timer.hpp>

#include "common/stats.h"
#include "common/strings.h"
#include "grpc/async_client.h"
#include "http/async_client.h"
#include "wasm/abi/host_functions.h"
#include "wasm/abi/sluice_functions.h"
#include "wasm/cpu_watchdog.h"
#include "wasm/plugin.h"
#include "wasm/thread_loop.h"

namespace sluice::wasm {

namespace {

// The calling thread's VM call state: which context a callback runs for, which one the module
// switched to, and what it may call right now.
struct CallState {
  Context* current = nullptr;
  uint32_t effective_id = 0;
  WasmInstance* instance = nullptr;
  CallRestriction restriction = CallRestriction::None;
};
thread_local CallState tls_call;

class CallScope {
 public:
  CallScope(WasmInstance* instance, Context* ctx, CallRestriction r) : saved_(tls_call) {
    tls_call = CallState{ctx, 0, instance, r};
  }
  ~CallScope() { tls_call = saved_; }

 private:
  CallState saved_;
};

}  // namespace

struct TickTimer {
  explicit TickTimer(asio::io_context& loop) : timer(loop) {}
  asio::steady_timer timer;
  bool armed = false;  // a wait is pending (a tick to come)
};

Context::Context(WasmInstance& instance, uint32_t id, Context* root, const PluginSpec* plugin)
    : instance_(instance), id_(id), root_(root ? root : this), plugin_(plugin) {}
Context::~Context() = default;

namespace {

// The callbacks a root may decline for its streams, with their export names.
struct DeclinableCallback {
  sluice_functions::DeclinedCallback bit;
  WasmFunction WasmCallbacks::*member;
  std::string_view name;
};
constexpr DeclinableCallback kDeclinable[] = {
    {sluice_functions::kRequestHeaders, &WasmCallbacks::on_request_headers,
     "proxy_on_request_headers"},
    {sluice_functions::kRequestBody, &WasmCallbacks::on_request_body, "proxy_on_request_body"},
    {sluice_functions::kRequestTrailers, &WasmCallbacks::on_request_trailers,
     "proxy_on_request_trailers"},
    {sluice_functions::kResponseHeaders, &WasmCallbacks::on_response_headers,
     "proxy_on_response_headers"},
    {sluice_functions::kResponseBody, &WasmCallbacks::on_response_body, "proxy_on_response_body"},
    {sluice_functions::kResponseTrailers, &WasmCallbacks::on_response_trailers,
     "proxy_on_response_trailers"},
    {sluice_functions::kLog, &WasmCallbacks::on_log, "proxy_on_log"},
    {sluice_functions::kDone, &WasmCallbacks::on_done, "proxy_on_done"},
    {sluice_functions::kNewConnection, &WasmCallbacks::on_new_connection,
     "proxy_on_new_connection"},
    {sluice_functions::kDownstreamData, &WasmCallbacks::on_downstream_data,
     "proxy_on_downstream_data"},
    {sluice_functions::kUpstreamData, &WasmCallbacks::on_upstream_data, "proxy_on_upstream_data"},
    {sluice_functions::kDownstreamConnectionClose, &WasmCallbacks::on_downstream_connection_close,
     "proxy_on_downstream_connection_close"},
    {sluice_functions::kUpstreamConnectionClose, &WasmCallbacks::on_upstream_connection_close,
     "proxy_on_upstream_connection_close"},
};

}  // namespace

void Context::decline_stream_callbacks(uint32_t bits) {
  defer_delete_ = (bits & sluice_functions::kDeferDelete) != 0;
  bits &= sluice_functions::kAllDeclinable;
  if (bits == 0) {
    declined_callbacks_.reset();
    return;
  }
  auto cb = std::make_unique<WasmCallbacks>(instance_.callbacks());
  for (const DeclinableCallback& d : kDeclinable) {
    if (bits & d.bit) (*cb).*d.member = WasmFunction{};
  }
  declined_callbacks_ = std::move(cb);
}

std::vector<std::string_view> Context::skipped_stream_callbacks() const {
  std::vector<std::string_view> out;
  const WasmCallbacks& exported = instance_.callbacks();
  const WasmCallbacks& called = stream_callbacks();
  for (const DeclinableCallback& d : kDeclinable) {
    if (exported.*d.member && !(called.*d.member)) out.push_back(d.name);
  }
  return out;
}

bool Context::stream_start_fused() const {
  return instance_.callbacks().on_stream_start && stream_callbacks().on_request_headers;
}

bool Context::stream_end_fused() const {
  const WasmCallbacks& cb = stream_callbacks();
  return instance_.callbacks().on_stream_end && cb.on_log && !cb.on_done;
}

WasmInstance* InstanceRef::get() const {
  if (std::this_thread::get_id() != thread_) return nullptr;
  std::shared_ptr<WasmInstance* const> anchor = anchor_.lock();
  return anchor ? *anchor : nullptr;
}

Context* current_context() {
  CallState& c = tls_call;
  if (c.effective_id != 0 && c.instance) {
    if (Context* e = c.instance->find_context(c.effective_id)) return e;
  }
  return c.current;
}

CallRestriction current_restriction() { return tls_call.restriction; }
Context* callback_context() { return tls_call.current; }

void set_effective_context_id(uint32_t id) { tls_call.effective_id = id; }
WasmInstance* current_instance() { return tls_call.instance; }

Result<std::unique_ptr<WasmInstance>> WasmInstance::create(
    std::shared_ptr<CompiledModule> module, std::string runtime_name, std::string vm_id,
    std::string vm_configuration, std::vector<std::pair<std::string, std::string>> env,
    const Capabilities& capabilities) {
  std::unique_ptr<WasmInstance> w(new WasmInstance());
  const ModuleInfo& info = module->info();
  w->abi_ = info.abi_version;
  if (w->abi_ == AbiVersion::Unknown) {
    return Error{
        "missing or unknown Proxy-Wasm ABI version: the module exports none of "
        "proxy_abi_version_0_2_1, proxy_abi_version_0_2_0, proxy_abi_version_0_1_0"};
  }
  const AbiVersion abi = w->abi_;
  const ExportInfo* marker = info.find_export(sluice_functions::kRetriesBufferTooSmall);
  const bool retries = marker && marker->kind == ExternKind::Function;
  auto vm = module->instantiate(
      [abi, retries, &capabilities](std::string_view mod, std::string_view name) {
        const HostFunction* fn = find_host_function(abi, mod, name, retries);
        if (fn && capabilities.restricted() && is_restrictable(*fn) && !capabilities.allows(name)) {
          return denied_host_function(*fn);
        }
        return fn;
      });
  if (!vm) return std::move(vm).take_error();
  w->module_ = std::move(module);
  w->vm_ = std::move(*vm);
  w->runtime_name_ = std::move(runtime_name);
  // Native (null-runtime) code cannot be stopped: it is trusted, and not watched.
  w->watched_ = w->vm_->runtime_name() != "envoy.wasm.runtime.null";
  // Envoy's wasm.<runtime>.created / .active (e.g. wasm.envoy.wasm.runtime.v8.active).
  auto& store = stats::Store::instance();
  const std::string prefix = str_cat("wasm.", w->vm_->runtime_name());
  store.counter(stats::MetricName{prefix + ".created", prefix + ".created", {}}).inc();
  w->active_ = store.gauge(stats::MetricName{prefix + ".active", prefix + ".active", {}});
  w->active_.inc();
  w->vm_id_ = std::move(vm_id);
  w->vm_configuration_ = std::move(vm_configuration);
  w->env_ = std::move(env);
  w->shared_ = VmSharedState::get(w->vm_id_);

  WasmVm& v = *w->vm_;
  WasmCallbacks& cb = w->callbacks_;
  cb.malloc_fn = v.function("malloc");
  if (!cb.malloc_fn) cb.malloc_fn = v.function("proxy_on_memory_allocate");
  if (!cb.malloc_fn) {
    return Error{"the module exports no allocator (malloc or proxy_on_memory_allocate)"};
  }
  cb.on_context_create = v.function("proxy_on_context_create");
  cb.on_vm_start = v.function("proxy_on_vm_start");
  cb.on_configure = v.function("proxy_on_configure");
  cb.on_validate_configuration = v.function("proxy_validate_configuration");
  cb.on_done = v.function("proxy_on_done");
  cb.on_log = v.function("proxy_on_log");
  cb.on_delete = v.function("proxy_on_delete");
  cb.on_request_headers = v.function("proxy_on_request_headers");
  cb.on_request_body = v.function("proxy_on_request_body");
  cb.on_request_trailers = v.function("proxy_on_request_trailers");
  cb.on_response_headers = v.function("proxy_on_response_headers");
  cb.on_response_body = v.function("proxy_on_response_body");
  cb.on_response_trailers = v.function("proxy_on_response_trailers");
  cb.on_tick = v.function("proxy_on_tick");
  cb.on_queue_ready = v.function("proxy_on_queue_ready");
  cb.on_foreign_function = v.function("proxy_on_foreign_function");
  cb.on_http_call_response = v.function("proxy_on_http_call_response");
  cb.on_grpc_receive_initial_metadata = v.function("proxy_on_grpc_receive_initial_metadata");
  cb.on_grpc_receive = v.function("proxy_on_grpc_receive");
  cb.on_grpc_receive_trailing_metadata = v.function("proxy_on_grpc_receive_trailing_metadata");
  cb.on_grpc_close = v.function("proxy_on_grpc_close");
  cb.on_new_connection = v.function("proxy_on_new_connection");
  cb.on_downstream_data = v.function("proxy_on_downstream_data");
  cb.on_upstream_data = v.function("proxy_on_upstream_data");
  cb.on_downstream_connection_close = v.function("proxy_on_downstream_connection_close");
  cb.on_upstream_connection_close = v.function("proxy_on_upstream_connection_close");

  // A wrongly typed callback would be called with the wrong arguments: refuse the module.
  using VT = ValType;
  const auto sig = [](std::vector<VT> p, std::vector<VT> r) { return Signature{p, r}; };
  const bool v010 = abi == AbiVersion::V0_1_0;
  struct Expect {
    WasmFunction* f;
    std::string_view name;
    Signature s;
  };
  const Expect expected[] = {
      {&cb.malloc_fn, v.function("malloc") ? "malloc" : "proxy_on_memory_allocate",
       sig({VT::I32}, {VT::I32})},
      {&cb.on_context_create, "proxy_on_context_create", sig({VT::I32, VT::I32}, {})},
      {&cb.on_vm_start, "proxy_on_vm_start", sig({VT::I32, VT::I32}, {VT::I32})},
      {&cb.on_configure, "proxy_on_configure", sig({VT::I32, VT::I32}, {VT::I32})},
      {&cb.on_validate_configuration, "proxy_validate_configuration",
       sig({VT::I32, VT::I32}, {VT::I32})},
      {&cb.on_done, "proxy_on_done", sig({VT::I32}, {VT::I32})},
      {&cb.on_log, "proxy_on_log", sig({VT::I32}, {})},
      {&cb.on_delete, "proxy_on_delete", sig({VT::I32}, {})},
      {&cb.on_request_headers, "proxy_on_request_headers",
       v010 ? sig({VT::I32, VT::I32}, {VT::I32}) : sig({VT::I32, VT::I32, VT::I32}, {VT::I32})},
      {&cb.on_request_body, "proxy_on_request_body", sig({VT::I32, VT::I32, VT::I32}, {VT::I32})},
      {&cb.on_request_trailers, "proxy_on_request_trailers", sig({VT::I32, VT::I32}, {VT::I32})},
      {&cb.on_response_headers, "proxy_on_response_headers",
       v010 ? sig({VT::I32, VT::I32}, {VT::I32}) : sig({VT::I32, VT::I32, VT::I32}, {VT::I32})},
      {&cb.on_response_body, "proxy_on_response_body", sig({VT::I32, VT::I32, VT::I32}, {VT::I32})},
      {&cb.on_response_trailers, "proxy_on_response_trailers", sig({VT::I32, VT::I32}, {VT::I32})},
      {&cb.on_tick, "proxy_on_tick", sig({VT::I32}, {})},
      {&cb.on_queue_ready, "proxy_on_queue_ready", sig({VT::I32, VT::I32}, {})},
      {&cb.on_foreign_function, "proxy_on_foreign_function", sig({VT::I32, VT::I32, VT::I32}, {})},
      {&cb.on_http_call_response, "proxy_on_http_call_response",
       sig({VT::I32, VT::I32, VT::I32, VT::I32, VT::I32}, {})},
      {&cb.on_grpc_receive_initial_metadata, "proxy_on_grpc_receive_initial_metadata",
       sig({VT::I32, VT::I32, VT::I32}, {})},
      {&cb.on_grpc_receive, "proxy_on_grpc_receive", sig({VT::I32, VT::I32, VT::I32}, {})},
      {&cb.on_grpc_receive_trailing_metadata, "proxy_on_grpc_receive_trailing_metadata",
       sig({VT::I32, VT::I32, VT::I32}, {})},
      {&cb.on_grpc_close, "proxy_on_grpc_close", sig({VT::I32, VT::I32, VT::I32}, {})},
      {&cb.on_new_connection, "proxy_on_new_connection", sig({VT::I32}, {VT::I32})},
      {&cb.on_downstream_data, "proxy_on_downstream_data",
       sig({VT::I32, VT::I32, VT::I32}, {VT::I32})},
      {&cb.on_upstream_data, "proxy_on_upstream_data", sig({VT::I32, VT::I32, VT::I32}, {VT::I32})},
      {&cb.on_downstream_connection_close, "proxy_on_downstream_connection_close",
       sig({VT::I32, VT::I32}, {})},
      {&cb.on_upstream_connection_close, "proxy_on_upstream_connection_close",
       sig({VT::I32, VT::I32}, {})},
  };
  for (const Expect& e : expected) {
    if (*e.f && !(e.f->signature == e.s)) {
      return Error{fmt::format("export {} has type {}, expected {}", e.name,
                               e.f->signature.to_string(), e.s.to_string())};
    }
  }
  for (const Expect& e : expected) {
    if (*e.f) w->callback_names_.emplace_back(e.f->index, e.name);
  }
  // Callbacks the restrictions leave out are treated as not exported (the allocator is never
  // restricted: the host needs it to hand the module anything).
  if (capabilities.restricted()) {
    for (const Expect& e : expected) {
      if (e.f != &cb.malloc_fn && !capabilities.allows(e.name)) {
        *e.f = WasmFunction{};
      }
    }
    // Header edit sets stand for the module's own header writes in on_response_headers: each op
    // needs what that would need.
    namespace sf = sluice_functions;
    constexpr std::pair<uint32_t, std::string_view> kWrites[] = {
        {sf::kHeaderAdd, "proxy_add_header_map_value"},
        {sf::kHeaderReplace, "proxy_replace_header_map_value"},
        {sf::kHeaderRemove, "proxy_remove_header_map_value"}};
    w->header_edit_ops_allowed_ = 0;
    if (capabilities.allows("proxy_on_response_headers")) {
      for (const auto& [op, function] : kWrites) {
        if (capabilities.allows(function)) w->header_edit_ops_allowed_ |= 1u << op;
      }
    }
  }
  // Sluice's fused exports, typed like the rest; each is kept only while both of the callbacks it
  // stands for are there (exported, and not restricted). A failure in one names those callbacks:
  // the module's backtrace tells which of the two it was in.
  struct Fused {
    WasmFunction* f;
    std::string_view name;
    Signature s;
    std::string_view shown;
  };
  const Fused fused[] = {
      {&cb.on_stream_start, sluice_functions::kOnStreamStart,
       sig({VT::I32, VT::I32, VT::I32, VT::I32}, {VT::I32}),
       "proxy_on_context_create+proxy_on_request_headers"},
      {&cb.on_stream_end, sluice_functions::kOnStreamEnd, sig({VT::I32}, {}),
       "proxy_on_log+proxy_on_delete"},
      {&cb.on_delete_batch, sluice_functions::kOnDeleteBatch, sig({VT::I32}, {}),
       "proxy_on_delete"},
  };
  for (const Fused& e : fused) {
    *e.f = v.function(e.name);
    if (*e.f && !(e.f->signature == e.s)) {
      return Error{fmt::format("export {} has type {}, expected {}", e.name,
                               e.f->signature.to_string(), e.s.to_string())};
    }
    if (*e.f) w->callback_names_.emplace_back(e.f->index, e.shown);
  }
  if (!cb.on_context_create || !cb.on_request_headers || v010) cb.on_stream_start = WasmFunction{};
  if (!cb.on_log || !cb.on_delete) cb.on_stream_end = WasmFunction{};
  if (!cb.on_delete) cb.on_delete_batch = WasmFunction{};
  return w;
}

WasmInstance::WasmInstance() : anchor_(std::make_shared<WasmInstance*>(this)) {}

WasmInstance::~WasmInstance() {
  // Callouts in flight report to nobody now.
  cancel_http_calls(0);
  cancel_grpc_calls(0);
  // Contexts first: they reference the VM (and their timers must stop).
  contexts_.clear();
  forget_watched_vm();  // the CPU watchdog may be looking at this VM right now
  vm_.reset();
  active_.dec();
}

void WasmInstance::fail(std::string why, FailureReason reason) {
  if (failed_) return;
  failed_ = true;
  failed_at_ = std::chrono::steady_clock::now();
  failure_ = std::move(why);
  if (running_export_) {
    for (const auto& [index, name] : callback_names_) {
      if (index == running_export_->index) failure_callback_ = std::string(name);
    }
    if (failure_callback_.empty()) failure_callback_ = "an export";
  }
  static constexpr std::string_view kReasons[] = {"trap", "cpu", "memory", "start"};
  const std::string_view reason_name = kReasons[static_cast<int>(reason)];
  FailureRecord record;
  record.time = std::chrono::system_clock::now();
  record.callback = failure_callback_;
  record.reason = std::string(reason_name);
  record.message = failure_;
  std::set<const PluginHealth*> recorded;
  // Counted (and named in the log) for every plugin whose root runs in this VM.
  std::set<std::string> names;  // two plugins may share a name (and this VM)
  for (const auto& [id, ctx] : contexts_) {
    if (!ctx->is_root() || !ctx->plugin()) continue;
    names.insert(ctx->plugin()->name);
    if (PluginHealth* health = ctx->plugin()->health.get(); recorded.insert(health).second) {
      health->record(record);
    }
  }
  std::string plugins;
  for (const std::string& name : names) {
    plugins += (plugins.empty() ? "" : ", ") + name;
    stats::Store::instance()
        .counter(stats::MetricName{str_cat("sluice.wasm.", name, ".failures.", reason_name),
                                   "sluice.wasm.failures_total",
                                   {{"plugin", name}, {"reason", std::string(reason_name)}}})
        .inc();
  }
  spdlog::error("wasm: vm '{}' ({}) failed{}: {} (plugins: {}; counted as {})", vm_id_,
                runtime_name_, failure_callback_.empty() ? "" : " in " + failure_callback_,
                failure_, plugins.empty() ? "-" : plugins, reason_name);
  // A failed instance is never called again: no tick may wake it.
  for (auto& [id, ctx] : contexts_) {
    if (ctx->tick_timer) {
      ctx->tick_timer->timer.cancel();
      ctx->tick_timer->armed = false;
    }
  }
}

// ---- timers ------------------------------------------------------------------------------------

void WasmInstance::set_tick_period(Context& root, uint32_t period_ms) {
  const uint32_t previous = root.tick_period_ms;
  root.tick_period_ms = period_ms;
  if (period_ms == 0) {
    if (root.tick_timer) {
      root.tick_timer->timer.cancel();
      root.tick_timer->armed = false;
    }
    return;
  }
  if (failed_ || !callbacks_.on_tick) return;  // nothing would be called
  if (!root.tick_timer) {
    std::shared_ptr<ThreadLoop> loop = this_thread_loop();
    if (!loop) {
      // The main thread (a canary): the workers' instances tick.
      spdlog::debug("wasm: vm '{}': no event loop on this thread, tick period {} ms kept", vm_id_,
                    period_ms);
      return;
    }
    root.tick_timer = std::make_unique<TickTimer>(loop->io());
  }
  // Setting the same period again (a plugin may do it on every request) must not push the tick
  // back; a new period starts now.
  if (!root.tick_timer->armed || previous != period_ms) arm_tick(root);
}

void WasmInstance::arm_tick(Context& root) {
  TickTimer& t = *root.tick_timer;
  t.armed = true;
  t.timer.expires_after(std::chrono::milliseconds(root.tick_period_ms));
  // The handler holds no pointer into the instance: the root (and the timer with it) may be gone
  // when it runs, then `ec` says the wait was cancelled.
  t.timer.async_wait([ref = ref(), id = root.id()](const asio::error_code& ec) {
    if (ec) return;
    if (WasmInstance* w = ref.get()) w->on_tick(id);
  });
}

void WasmInstance::on_tick(uint32_t root_id) {
  Context* root = find_context(root_id);
  if (!root || !root->tick_timer) return;
  root->tick_timer->armed = false;
  if (failed_ || root->tick_period_ms == 0) return;
  call(root, callbacks_.on_tick, {root_id});
  // Re-armed with the period as it is now (the tick may have changed it); not after a trap.
  root = find_context(root_id);
  if (root && !failed_ && root->tick_period_ms != 0 && !root->tick_timer->armed) arm_tick(*root);
}

// ---- shared queues -----------------------------------------------------------------------------

std::shared_ptr<SharedQueue> WasmInstance::queue(uint32_t token) {
  if (auto it = queue_cache_.find(token); it != queue_cache_.end()) {
    if (std::shared_ptr<SharedQueue> q = it->second.lock()) return q;
    queue_cache_.erase(it);  // dropped with its vm_id's state
  }
  std::shared_ptr<SharedQueue> q = find_shared_queue(token);
  if (q) queue_cache_.emplace(token, q);
  return q;
}

QueueNotifier WasmInstance::queue_notifier(Context& root) {
  std::shared_ptr<ThreadLoop> loop = this_thread_loop();
  if (!loop) return nullptr;  // no loop (a canary): nobody to notify until a worker registers
  return std::make_shared<const std::function<void(std::shared_ptr<QueueNotification>)>>(
      [loop = std::move(loop), ref = ref(),
       root_id = root.id()](std::shared_ptr<QueueNotification> notification) {
        if (ref.expired()) return;  // the consumer is gone: nothing to post
        // Always through the loop, also from this very thread: never inside the enqueuing call.
        // The notification stays pending until this closure is destroyed, run or not.
        loop->post([ref, root_id, notification = std::move(notification)] {
          if (WasmInstance* w = ref.get()) w->on_queue_ready(root_id, notification->token());
        });
      });
}

void WasmInstance::on_queue_ready(uint32_t root_id, uint32_t token) {
  Context* root = find_context(root_id);
  if (failed_ || !root || !root->is_root()) return;
  call(root, callbacks_.on_queue_ready, {root_id, token});
}

Context* WasmInstance::find_context(uint32_t id) {
  auto it = contexts_.find(id);
  return it == contexts_.end() ? nullptr : it->second.get();
}

void WasmInstance::limit_cpu(uint32_t callback_ms, uint32_t startup_ms) {
  // 0 means no limit: the tighter of two limits is the smaller non-zero one.
  const auto tighter = [](uint32_t a, uint32_t b) {
    return a == 0 ? b : b == 0 ? a : std::min(a, b);
  };
  callback_cpu_ms_ = tighter(callback_cpu_ms_, callback_ms);
  startup_cpu_ms_ = tighter(startup_cpu_ms_, startup_ms);
}

std::optional<uint64_t> WasmInstance::call(Context* ctx, const WasmFunction& f,
                                           std::initializer_list<uint64_t> args) {
  if (failed_ || !f) return std::nullopt;
  if (ctx && ctx->create_deferred) {  // the module learns of the stream before anything else
    ctx->create_deferred = false;
    const Phase phase = ctx->phase();
    ctx->set_phase(Phase::None);  // as if it had run when the stream was created
    call(ctx, callbacks_.on_context_create, {ctx->id(), ctx->root()->id()});
    ctx->set_phase(phase);
    if (failed_) return std::nullopt;
  }
  CallResult r;
  // Only a top-level call is watched: nested ones (a host function calling malloc) are part of it.
  const uint32_t budget =
      watched_ && call_depth_ == 0 ? (starting_ ? startup_cpu_ms_ : callback_cpu_ms_) : 0;
  bool over_budget = false;
  if (call_depth_ == 0) running_export_ = &f;
  {
    CallScope scope(this, ctx, CallRestriction::None);
    WatchedCall watch(*vm_, budget);
    ++call_depth_;
    r = vm_->call(f, args);
    --call_depth_;
    over_budget = watch.over_budget();
  }
  if (!r.ok && over_budget) {
    r.error = fmt::format("a callback used more than its CPU budget ({} ms)", budget);
  }
  if (!r.ok) {
    fail(std::move(r.error), over_budget ? FailureReason::Cpu
                             : starting_ ? FailureReason::Start
                                         : FailureReason::Trap);
  }
  if (call_depth_ == 0) {
    running_export_ = nullptr;
    if (refused_foreign_answer_) refused_foreign_answer_.reset();  // the module did not ask again
  }
  // What the module asked of other streams (from a root callback) runs now that it returned.
  if (call_depth_ == 0 && !deferred_stream_actions_.empty()) run_deferred_stream_actions();
  if (!r.ok) return std::nullopt;
  return r.value;
}

void WasmInstance::defer_stream_actions(Context& stream) {
  for (uint32_t id : deferred_stream_actions_) {
    if (id == stream.id()) return;
  }
  deferred_stream_actions_.push_back(stream.id());
}

void WasmInstance::run_deferred_stream_actions() {
  std::vector<uint32_t> ids;
  ids.swap(deferred_stream_actions_);
  for (uint32_t id : ids) {
    // The stream may have ended meanwhile: then its context is gone, and nothing is touched.
    Context* ctx = find_context(id);
    if (ctx && ctx->actions()) ctx->actions()->run_deferred_actions();
  }
}

// ---- HTTP callouts ---------------------------------------------------------------------------

namespace {
std::atomic<uint32_t> g_max_outstanding_http_calls{1024};
}  // namespace

void set_max_outstanding_http_calls(uint32_t n) { g_max_outstanding_http_calls.store(n); }
uint32_t max_outstanding_http_calls() { return g_max_outstanding_http_calls.load(); }

// One proxy_http_call in flight: it belongs to the root context that made it (as in Envoy), so
// its answer is delivered even when the stream that asked for it is gone.
struct WasmInstance::HttpCallout final : http::AsyncRequestCallbacks {
  HttpCallout(WasmInstance& w, uint32_t token, uint32_t root_id)
      : instance(w), token(token), root_id(root_id) {}
  void on_async_success(http::AsyncResponse& response) override {
    instance.on_http_call_done(token, &response, {});
  }
  void on_async_failure(http::AsyncFailure failure) override {
    instance.on_http_call_done(token, nullptr, http::async_failure_name(failure));
  }
  WasmInstance& instance;
  const uint32_t token;
  const uint32_t root_id;
  http::AsyncRequest* request = nullptr;
};

WasmResult WasmInstance::http_call(Context& root, std::string_view cluster,
                                   const std::vector<std::pair<std::string, std::string>>& headers,
                                   std::string_view body,
                                   const std::vector<std::pair<std::string, std::string>>& trailers,
                                   uint32_t timeout_ms, uint32_t* token) {
  http::AsyncClient* client = this_thread_http_client();
  if (!client) return WasmResult::InternalFailure;  // no client on this thread
  if (http_calls_.size() >= max_outstanding_http_calls()) {
    static const stats::Counter overflow = stats::Store::instance().counter(
        stats::MetricName{"wasm.http_call_overflow", "wasm.http_call_overflow", {}});
    overflow.inc();
    return WasmResult::InternalFailure;
  }
  HeaderMap h, t;
  for (const auto& [k, v] : headers) h.add(k, v);
  for (const auto& [k, v] : trailers) t.add(k, v);
  const uint32_t next = last_http_call_token_ + 4 == 0 ? 4 : last_http_call_token_ + 4;
  auto callout = std::make_unique<HttpCallout>(*this, next, root.id());
  http::AsyncClient::Options options;
  options.timeout = std::chrono::milliseconds(timeout_ms);
  std::string error;
  callout->request = client->send(cluster, h, body, t, options, *callout, &error);
  if (!callout->request) {
    spdlog::debug("wasm: http_call to '{}' refused: {}", cluster, error);
    return WasmResult::BadArgument;
  }
  last_http_call_token_ = next;
  *token = next;
  http_calls_.emplace(next, std::move(callout));
  return WasmResult::Ok;
}

void WasmInstance::on_http_call_done(uint32_t token, const http::AsyncResponse* response,
                                     std::string_view failure) {
  auto it = http_calls_.find(token);
  if (it == http_calls_.end()) return;
  // Kept alive to the end of this function: the client is inside its callback.
  std::unique_ptr<HttpCallout> callout = std::move(it->second);
  http_calls_.erase(it);
  Context* root = find_context(callout->root_id);
  if (failed_ || !root || !root->is_root()) return;
  if (response) {
    root->status_code = static_cast<uint32_t>(WasmResult::Ok);
    root->status_message.clear();
  } else {
    // Envoy: a failed callout answers with no headers; proxy_get_status tells why.
    root->status_code = static_cast<uint32_t>(WasmResult::BrokenConnection);
    root->status_message = std::string(failure);
  }
  http_call_response_ = response;
  const uint64_t headers = response ? response->headers.size() : 0;
  const uint64_t body = response ? response->body.size() : 0;
  const uint64_t trailers = response ? response->trailers.size() : 0;
  call(root, callbacks_.on_http_call_response, {root->id(), token, headers, body, trailers});
  http_call_response_ = nullptr;
}

void WasmInstance::cancel_http_calls(uint32_t root_id) {
  for (auto it = http_calls_.begin(); it != http_calls_.end();) {
    if (root_id == 0 || it->second->root_id == root_id) {
      it->second->request->cancel();
      it = http_calls_.erase(it);
    } else {
      ++it;
    }
  }
}

// ---- gRPC callouts ---------------------------------------------------------------------------

// One proxy_grpc_call or proxy_grpc_stream in flight, owned like an HTTP callout by its root.
struct WasmInstance::GrpcCallout final : grpc::StreamCallbacks {
  GrpcCallout(WasmInstance& w, uint32_t token, uint32_t root_id, bool unary)
      : instance(w), token(token), root_id(root_id), unary(unary) {}
  // A call reports only its outcome (Envoy's AsyncRequestCallbacks); a stream everything.
  void on_initial_metadata(HeaderMap& metadata) override {
    if (!unary) instance.on_grpc_metadata(token, MapType::GrpcReceiveInitialMetadata, metadata);
  }
  void on_message(std::string& message) override {
    if (!unary) {
      instance.on_grpc_message(token, message);
    } else {
      response = std::move(message);  // the last one, as Envoy keeps
    }
  }
  void on_trailing_metadata(HeaderMap& metadata) override {
    if (!unary) instance.on_grpc_metadata(token, MapType::GrpcReceiveTrailingMetadata, metadata);
  }
  void on_close(grpc::Status status, std::string_view message) override {
    instance.on_grpc_close(token, static_cast<int32_t>(status), message);
  }
  WasmInstance& instance;
  const uint32_t token;
  const uint32_t root_id;
  const bool unary;
  std::optional<std::string> response;  // a call's answer, delivered when the call closes
  grpc::Stream stream{*this};
};

WasmResult WasmInstance::grpc_open(Context& root, bool unary, std::string_view upstream,
                                   std::string_view service, std::string_view method,
                                   const std::vector<std::pair<std::string, std::string>>& metadata,
                                   std::string_view message, uint32_t timeout_ms, uint32_t* token) {
  http::AsyncClient* client = this_thread_http_client();
  if (!client) return WasmResult::InternalFailure;  // no client on this thread
  if (grpc_calls_.size() >= max_outstanding_http_calls()) {
    static const stats::Counter overflow = stats::Store::instance().counter(
        stats::MetricName{"wasm.grpc_call_overflow", "wasm.grpc_call_overflow", {}});
    overflow.inc();
    return WasmResult::InternalFailure;
  }
  // SDKs pass a cluster name, or a serialized GrpcService (envoy_grpc.cluster_name) as Envoy
  // accepts too; Envoy tries the proto first.
  std::string cluster(upstream), authority;
  if (std::optional<grpc::ServiceTarget> target = grpc::parse_grpc_service(upstream)) {
    cluster = std::move(target->cluster);
    authority = std::move(target->authority);
    if (timeout_ms == 0 && target->timeout_ms) timeout_ms = *target->timeout_ms;
  }
  HeaderMap md;
  for (const auto& [k, v] : metadata) md.add(k, v);
  uint32_t& last = unary ? last_grpc_call_token_ : last_grpc_stream_token_;
  uint32_t next = last;
  do {
    next = next + 4 < 4 ? next % 4 + 4 : next + 4;  // never 0..3 after a wrap
  } while (grpc_calls_.count(next) != 0);           // a long-lived stream may still hold one
  auto callout = std::make_unique<GrpcCallout>(*this, next, root.id(), unary);
  grpc::Stream::Options options;
  options.timeout_ms = unary ? timeout_ms : 0;  // streams live until closed, as in Envoy
  std::string error;
  if (!callout->stream.start(*client, cluster, authority, service, method, md, options, &error)) {
    spdlog::debug("wasm: grpc {} to '{}' refused: {}", unary ? "call" : "stream", cluster, error);
    return WasmResult::ParseFailure;
  }
  if (unary) callout->stream.send_message(message, true);
  last = next;
  *token = next;
  grpc_calls_.emplace(next, std::move(callout));
  return WasmResult::Ok;
}

WasmResult WasmInstance::grpc_send(uint32_t token, std::string_view message, bool end_stream) {
  if ((token & 3) != 2) return WasmResult::BadArgument;
  auto it = grpc_calls_.find(token);
  if (it == grpc_calls_.end()) return WasmResult::NotFound;
  // After a half-close there is nothing more to send (Envoy reports nothing either).
  it->second->stream.send_message(message, end_stream);
  return WasmResult::Ok;
}

WasmResult WasmInstance::grpc_cancel(uint32_t token) {
  std::unique_ptr<GrpcCallout> callout = take_grpc_call(token);
  if (!callout) return WasmResult::NotFound;
  callout->stream.reset();
  retire_grpc_call(std::move(callout));  // the plugin may cancel from the stream's own callback
  return WasmResult::Ok;
}

WasmResult WasmInstance::grpc_close(uint32_t token) {
  auto it = grpc_calls_.find(token);
  if (it == grpc_calls_.end()) return WasmResult::NotFound;
  if (it->second->unary) return grpc_cancel(token);
  it->second->stream.close();
  return WasmResult::Ok;
}

void WasmInstance::cancel_grpc_calls(uint32_t root_id) {
  for (auto it = grpc_calls_.begin(); it != grpc_calls_.end();) {
    if (root_id == 0 || it->second->root_id == root_id) {
      it->second->stream.reset();
      std::unique_ptr<GrpcCallout> callout = std::move(it->second);
      it = grpc_calls_.erase(it);
      // A root may go away from inside one of its callouts' callbacks: freed later.
      if (root_id != 0) retire_grpc_call(std::move(callout));
    } else {
      ++it;
    }
  }
}

std::unique_ptr<WasmInstance::GrpcCallout> WasmInstance::take_grpc_call(uint32_t token) {
  auto it = grpc_calls_.find(token);
  if (it == grpc_calls_.end()) return nullptr;
  std::unique_ptr<GrpcCallout> callout = std::move(it->second);
  grpc_calls_.erase(it);
  return callout;
}

void WasmInstance::on_grpc_metadata(uint32_t token, MapType type, HeaderMap& metadata) {
  auto it = grpc_calls_.find(token);
  if (it == grpc_calls_.end() || failed_) return;
  Context* root = find_context(it->second->root_id);
  if (!root || !root->is_root()) return;
  const bool initial = type == MapType::GrpcReceiveInitialMetadata;
  const WasmFunction& f = initial ? callbacks_.on_grpc_receive_initial_metadata
                                  : callbacks_.on_grpc_receive_trailing_metadata;
  (initial ? grpc_initial_metadata_ : grpc_trailing_metadata_) = &metadata;
  call(root, f, {root->id(), token, metadata.size()});
  (initial ? grpc_initial_metadata_ : grpc_trailing_metadata_) = nullptr;
}

void WasmInstance::on_grpc_message(uint32_t token, std::string& message) {
  auto it = grpc_calls_.find(token);
  if (it == grpc_calls_.end() || failed_) return;
  Context* root = find_context(it->second->root_id);
  if (!root || !root->is_root()) return;
  grpc_message_ = &message;
  call(root, callbacks_.on_grpc_receive, {root->id(), token, message.size()});
  grpc_message_ = nullptr;
}

void WasmInstance::on_grpc_close(uint32_t token, int32_t status, std::string_view message) {
  std::unique_ptr<GrpcCallout> callout = take_grpc_call(token);
  if (!callout) return;
  Context* root = failed_ ? nullptr : find_context(callout->root_id);
  if (root && root->is_root()) {
    if (callout->unary && status == 0 && callout->response) {
      // A call's success is its one message (Envoy: onSuccess -> proxy_on_grpc_receive).
      root->status_code = 0;
      root->status_message.clear();
      grpc_message_ = &*callout->response;
      call(root, callbacks_.on_grpc_receive, {root->id(), token, callout->response->size()});
      grpc_message_ = nullptr;
    } else {
      if (callout->unary && status == 0) {
        status = static_cast<int32_t>(grpc::Status::Internal);  // OK without an answer
        message = "no response message";
      }
      root->status_code = static_cast<uint32_t>(status);
      root->status_message = std::string(message);
      call(root, callbacks_.on_grpc_close, {root->id(), token, static_cast<uint64_t>(status)});
    }
  }
  retire_grpc_call(std::move(callout));
}

void WasmInstance::retire_grpc_call(std::unique_ptr<GrpcCallout> callout) {
  std::shared_ptr<ThreadLoop> loop = this_thread_loop();
  if (!loop) return;  // no loop, so no stream reporting either: freed right here
  asio::post(loop->io(), [keep = std::shared_ptr<GrpcCallout>(std::move(callout))] {});
}

bool WasmInstance::initialize() {
  CallScope scope(this, nullptr, CallRestriction::Initializing);
  const auto run = [&](std::string_view name, std::initializer_list<uint64_t> args) {
    WasmFunction f = vm_->function(name);
    if (!f) return true;
    const uint32_t budget = watched_ ? startup_cpu_ms_ : 0;
    WatchedCall watch(*vm_, budget);
    CallResult r = vm_->call(f, args);
    if (!r.ok && watch.over_budget()) {
      r.error = fmt::format("used more than its start-up CPU budget ({} ms)", budget);
    }
    if (!r.ok) {
      fail(fmt::format("{} failed: {}", name, r.error),
           watch.over_budget() ? FailureReason::Cpu : FailureReason::Start);
    }
    return r.ok;
  };
  if (WasmFunction init = vm_->function("_initialize")) {
    if (!run("_initialize", {})) return false;
    WasmFunction main_fn = vm_->function("main");
    if (main_fn && main_fn.signature.params.size() == 2) return run("main", {0, 0});
    return run("__main_void", {});
  }
  return run("_start", {});
}

Result<Context*> WasmInstance::start_root(const PluginSpec& plugin) {
  if (failed_) return Error{failure_};
  // on_context_create, on_vm_start and on_configure run on the start-up CPU budget.
  starting_ = true;
  struct EndStart {
    bool& starting;
    ~EndStart() { starting = false; }
  } end_start{starting_};
  const uint32_t id = next_context_id_++;
  auto owned = std::make_unique<Context>(*this, id, nullptr, &plugin);
  Context* root = owned.get();
  contexts_.emplace(id, std::move(owned));
  call(root, callbacks_.on_context_create, {id, 0});
  if (failed_) return Error{fmt::format("proxy_on_context_create failed: {}", failure_)};
  if (!vm_started_) {
    auto ok = call(root, callbacks_.on_vm_start, {id, vm_configuration_.size()});
    if (failed_) return Error{fmt::format("proxy_on_vm_start failed: {}", failure_)};
    if (ok && *ok == 0)
      return Error{"proxy_on_vm_start returned false (VM configuration rejected)"};
    vm_started_ = true;
  }
  configuring = &plugin.configuration;
  if (callbacks_.on_validate_configuration) {
    auto valid =
        call(root, callbacks_.on_validate_configuration, {id, plugin.configuration.size()});
    if (failed_) {
      configuring = nullptr;
      return Error{fmt::format("proxy_validate_configuration failed: {}", failure_)};
    }
    if (valid && *valid == 0) {
      configuring = nullptr;
      return Error{"proxy_validate_configuration returned false (plugin configuration invalid)"};
    }
  }
  auto ok = call(root, callbacks_.on_configure, {id, plugin.configuration.size()});
  configuring = nullptr;
  if (failed_) return Error{fmt::format("proxy_on_configure failed: {}", failure_)};
  if (ok && *ok == 0)
    return Error{"proxy_on_configure returned false (plugin configuration rejected)"};
  return root;
}

Context* WasmInstance::create_stream_context(Context& root, bool defer_create) {
  if (failed_) return nullptr;
  const uint32_t id = next_context_id_++;
  auto owned = std::make_unique<Context>(*this, id, &root, root.plugin());
  Context* ctx = owned.get();
  contexts_.emplace(id, std::move(owned));
  if (defer_create && root.stream_start_fused()) {
    ctx->create_deferred = true;
    return ctx;
  }
  call(ctx, callbacks_.on_context_create, {id, root.id()});
  if (failed_) {
    contexts_.erase(id);
    return nullptr;
  }
  return ctx;
}

std::optional<uint64_t> WasmInstance::start_stream(Context* ctx, uint64_t num_headers,
                                                   bool end_of_stream) {
  const WasmFunction& on_request_headers = ctx->stream_callbacks().on_request_headers;
  if (!ctx->create_deferred || failed_) {
    return abi_ == AbiVersion::V0_1_0
               ? call(ctx, on_request_headers, {ctx->id(), num_headers})
               : call(ctx, on_request_headers, {ctx->id(), num_headers, end_of_stream ? 1u : 0u});
  }
  ctx->create_deferred = false;  // (deferred only when on_stream_start and the 0.2 ABI are there)
  return call(ctx, callbacks_.on_stream_start,
              {ctx->id(), ctx->root()->id(), num_headers, end_of_stream ? 1u : 0u});
}

void WasmInstance::destroy_stream_context(Context* ctx, bool log) {
  const uint32_t id = ctx->id();
  if (!failed_) {
    ctx->set_phase(Phase::Log);
    // Envoy's order for HTTP streams: on_log, then on_done, then on_delete (which always runs:
    // the module frees the context there). A declined callback is absent here: call skips it.
    // A stream never reached by a callback still gets its deferred on_context_create first.
    const WasmCallbacks& cb = ctx->stream_callbacks();
    if (log && ctx->stream_end_fused()) {
      call(ctx, callbacks_.on_stream_end, {id});  // on_log and on_delete in one call
    } else {
      if (log) call(ctx, cb.on_log, {id});
      ctx->set_phase(Phase::Done);
      call(ctx, cb.on_done, {id});
      if (!defer_delete(*ctx)) call(ctx, callbacks_.on_delete, {id});
    }
  }
  contexts_.erase(id);
}

bool WasmInstance::defer_delete(Context& ctx) {
  // A context the module has not seen yet gets on_context_create from call(), so its on_delete
  // goes that way too. The rest wait for the flush, which a loop on this thread must run.
  if (failed_ || ctx.create_deferred || !defers_stream_deletes(*ctx.root())) return false;
  if (deferred_deletes_.empty()) {
    std::shared_ptr<ThreadLoop> loop = this_thread_loop();
    if (!loop) return false;
    // One flush per turn: streams ending later in this turn join it (posted work runs after
    // the completions the loop has already taken in).
    asio::post(loop->io(), [ref = ref()] {
      if (WasmInstance* w = ref.get()) w->flush_deletes();
    });
  }
  deferred_deletes_.emplace_back(ctx.id(), ctx.root()->id());
  return true;
}

void WasmInstance::flush_deletes() {
  // Streams ending during the calls below wait for the next flush. Both vectors keep their
  // capacity: no allocation per turn.
  std::vector<std::pair<uint32_t, uint32_t>>& pending = flushing_deletes_;
  if (!pending.empty()) return;  // a flush is running further up this stack: it goes on
  pending.swap(deferred_deletes_);
  if (pending.empty()) return;
  for (size_t i = 0; i < pending.size() && !failed_;) {
    // One call per run of ids under the same (still living) root, at most a mailbox full: the
    // root is the context host calls from the module's destructors act on.
    const uint32_t root_id = pending[i].second;
    Context* root = find_context(root_id);
    const bool batched = delete_mailbox_capacity_ != 0;
    const size_t most = batched ? delete_mailbox_capacity_ : pending.size();
    size_t n = 0;
    while (i + n < pending.size() && pending[i + n].second == root_id && n < most) ++n;
    char* mailbox = batched ? vm_->memory_at(delete_mailbox_ptr_, n * sizeof(uint32_t)) : nullptr;
    if (root && mailbox) {
      for (size_t k = 0; k < n; ++k) {
        std::memcpy(mailbox + k * sizeof(uint32_t), &pending[i + k].first, sizeof(uint32_t));
      }
      call(root, callbacks_.on_delete_batch, {n});
    } else if (root) {  // the mailbox was withdrawn meanwhile: one by one
      for (size_t k = 0; k < n && !failed_; ++k) {
        call(root, callbacks_.on_delete, {pending[i + k].first});
      }
    }
    i += n;
  }
  pending.clear();
}

WasmResult WasmInstance::set_delete_mailbox(uint64_t ptr, uint64_t capacity) {
  if (capacity > sluice_functions::kMaxDeleteMailbox) return WasmResult::BadArgument;
  if (capacity != 0 && (ptr == 0 || !vm_->memory_at(ptr, capacity * sizeof(uint32_t)))) {
    return WasmResult::InvalidMemoryAccess;
  }
  delete_mailbox_ptr_ = capacity == 0 ? 0 : ptr;
  delete_mailbox_capacity_ = capacity;
  return WasmResult::Ok;
}

size_t WasmInstance::stream_contexts(const Context& root) const {
  size_t n = 0;
  for (const auto& [id, ctx] : contexts_) {
    if (!ctx->is_root() && ctx->root() == &root) ++n;
  }
  return n;
}

void WasmInstance::destroy_root(Context* root) {
  const uint32_t id = root->id();
  cancel_http_calls(id);
  cancel_grpc_calls(id);
  flush_deletes();  // its streams' objects go before it
  if (!failed_) {
    auto done = call(root, callbacks_.on_done, {id});
    // A module that answers false finishes later with proxy_done; at shutdown there is no later.
    if (done && *done == 0) root->done_pending = true;
    call(root, callbacks_.on_delete, {id});
  }
  contexts_.erase(id);
}

WasmResult WasmInstance::copy_out(std::string_view data, uint64_t ptr_out, uint64_t size_out) {
  // Both out-params are checked before anything is allocated or written: a bad one must leave
  // module memory as it was (memory only grows, so they stay valid across malloc).
  const uint32_t w = vm_->word_size();
  char* const ptr_at = vm_->memory_at(ptr_out, w);
  char* const size_at = vm_->memory_at(size_out, w);
  if (!ptr_at || !size_at) return WasmResult::InvalidMemoryAccess;
  // The words go through the pointers above, valid until the next call into the module: every
  // property and header read ends here, so this path checks each range once.
  if (data.empty()) {
    WasmVm::store_word(ptr_at, w, 0);
    WasmVm::store_word(size_at, w, 0);
    return WasmResult::Ok;
  }
  if (w == 4 && data.size() > UINT32_MAX) return WasmResult::InvalidMemoryAccess;
  // The module's return buffer: no call into the module. Memory only grows, so the buffer
  // checked when it was set is still inside it.
  if (data.size() <= return_buffer_size_) {
    char* const buffer = vm_->memory_at(return_buffer_ptr_, data.size());
    if (!buffer) return WasmResult::InvalidMemoryAccess;
    std::memcpy(buffer, data.data(), data.size());
    WasmVm::store_word(ptr_at, w, return_buffer_ptr_);
    WasmVm::store_word(size_at, w, data.size());
    return WasmResult::Ok;
  }
  // A leaf may not call malloc: the module (one that retries, see kRetriesBufferTooSmall) learns
  // the size it needs and asks again with a bigger buffer.
  if (vm_->in_leaf_call()) {
    vm_->set_word(ptr_out, 0);
    vm_->set_word(size_out, data.size());
    return static_cast<WasmResult>(sluice_functions::kBufferTooSmall);
  }
  // The allocator runs on the VM context (id 0) with only a few host calls allowed.
  uint64_t ptr = 0;
  {
    CallScope scope(this, nullptr, CallRestriction::Allocating);
    CallResult r = vm_->call(callbacks_.malloc_fn, {data.size()});
    if (!r.ok) {
      fail(fmt::format("malloc trapped: {}", r.error), FailureReason::Memory);
      return WasmResult::InvalidMemoryAccess;
    }
    ptr = r.value;
  }
  // A null from the module's allocator (its memory limit reached) is an answer, not a failure:
  // the call fails with InvalidMemoryAccess and the module may cope.
  if (ptr == 0 || !vm_->write(ptr, data)) return WasmResult::InvalidMemoryAccess;
  if (!vm_->set_word(ptr_out, ptr) || !vm_->set_word(size_out, data.size())) {
    return WasmResult::InvalidMemoryAccess;
  }
  return WasmResult::Ok;
}

void WasmInstance::keep_refused_foreign_answer(std::string_view name, std::string_view args,
                                               std::string answer) {
  refused_foreign_answer_.emplace(
      RefusedForeignAnswer{std::string(name), std::string(args), std::move(answer)});
}

bool WasmInstance::take_refused_foreign_answer(std::string_view name, std::string_view args,
                                               std::string* answer) {
  if (!refused_foreign_answer_ || refused_foreign_answer_->name != name ||
      refused_foreign_answer_->args != args) {
    return false;
  }
  *answer = std::move(refused_foreign_answer_->answer);
  refused_foreign_answer_.reset();
  return true;
}

uint32_t WasmInstance::define_header_edits(uint32_t id, std::vector<HeaderEdit> edits) {
  if (id == 0) {
    if (header_edit_sets_.size() >= sluice_functions::kMaxHeaderEditSets) return 0;
    header_edit_sets_.push_back(std::move(edits));
    return static_cast<uint32_t>(header_edit_sets_.size());
  }
  if (id > header_edit_sets_.size()) return 0;
  header_edit_sets_[id - 1] = std::move(edits);
  return id;
}

WasmResult WasmInstance::set_return_buffer(uint64_t ptr, uint64_t size) {
  if (size == 0) {
    return_buffer_ptr_ = return_buffer_size_ = 0;
    return WasmResult::Ok;
  }
  if (size < sluice_functions::kMinReturnBuffer) return WasmResult::BadArgument;
  if (ptr == 0 || !vm_->memory_at(ptr, size)) return WasmResult::InvalidMemoryAccess;
  return_buffer_ptr_ = ptr;
  return_buffer_size_ = size;
  return WasmResult::Ok;
}

}  // namespace sluice::wasm
