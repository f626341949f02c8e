// A configured Proxy-Wasm plugin (Envoy's PluginConfig): its code compiled once for the process,
// and a running instance per worker thread, created on that thread when the worker starts (or, for
// a thread that did not start it, the first time a stream needs it). Plugins with the same runtime,
// vm_id, VM configuration, code and environment share that instance (one root context each), as
// Envoy's vm_key does.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/result.h"
#include "common/stats.h"
#include "wasm/abi/node_metadata.h"
#include "wasm/context.h"
#include "wasm/vm/wasm_vm.h"

namespace sluice::wasm {

enum class FailurePolicy { FailClosed, FailOpen, FailReload };

// What a plugin may not see (sluice.wasm.plugins.<name>.hide_*; off unless configured): header
// names (lower case) of the request and response header maps, and the client's address
// (source.address / source.port, x-forwarded-for, x-real-ip).
struct HidePolicy {
  std::vector<std::string> request_headers, response_headers;
  bool client_address = false;
  bool any() const {
    return client_address || !request_headers.empty() || !response_headers.empty();
  }
  // Whether `lower_name` in header map `map_type` (the ABI's: 0 request, 2 response) is hidden.
  bool hides(uint32_t map_type, std::string_view lower_name) const;
  // Writes of hidden names the plugin tried (ignored): sluice_wasm_hidden_header_writes_total;
  // the first is logged (`warned` is shared by the spec's copies).
  stats::Counter writes;
  std::shared_ptr<std::atomic<bool>> warned = std::make_shared<std::atomic<bool>>(false);
};

// The last failure of any VM a plugin runs in (any thread), for admin /wasm.
struct FailureRecord {
  std::chrono::system_clock::time_point time{};
  std::string callback;  // the export that was running ("proxy_on_request_headers", "malloc")
  std::string reason;    // trap | cpu | memory | start
  std::string message;   // with the Wasm backtrace of a trap
  uint64_t count = 0;    // failures so far
};
class PluginHealth {
 public:
  void record(FailureRecord r);
  FailureRecord last() const;

 private:
  mutable std::mutex mu_;
  FailureRecord last_;
};

struct PluginSpec {
  std::string name;           // config.name -> plugin_name
  std::string root_id;        // config.root_id -> plugin_root_id
  std::string configuration;  // config.configuration -> on_configure (buffer 7)
  std::string vm_id;
  std::string runtime;           // envoy.wasm.runtime.v8 | envoy.wasm.runtime.null
  std::string vm_configuration;  // vm_config.configuration -> on_vm_start (buffer 6)
  std::string code;              // module bytes (V8) or the registered name (null)
  std::string code_origin;       // for messages: "file /x/y.wasm", "inline_bytes", ...
  std::vector<std::pair<std::string, std::string>> env;  // WASI environment
  // capability_restriction_config (abi/capabilities.h); empty: everything allowed. Part of the
  // VM: plugins that differ in it do not share one.
  std::vector<std::string> allowed_capabilities;
  FailurePolicy failure_policy = FailurePolicy::FailClosed;
  // Replace a failed VM after a backoff (1 s, doubling to 10 s): see config::WasmPlugin::heal.
  bool heal = true;
  // FAIL_RELOAD's backoff (reload_config.backoff): base, doubling per failure up to max.
  std::chrono::milliseconds reload_base{1000}, reload_max{10000};
  // Limits of its VM (sluice.wasm; V8 only): CPU per callback and for start-up (0: none).
  uint32_t memory_limit_mb = 64;
  uint32_t callback_cpu_ms = 50;
  uint32_t startup_cpu_ms = 2000;
  HidePolicy hide;
  // Shared by the spec's copies: the VMs of every thread record their failures here.
  std::shared_ptr<PluginHealth> health = std::make_shared<PluginHealth>();
  // node, for the `node` / `xds.node` properties.
  std::string node_id, node_cluster;
  std::shared_ptr<const NodeMetadata> node_metadata = NodeMetadata::empty();
};

class Plugin : public std::enable_shared_from_this<Plugin> {
 public:
  // Compiles the code and runs a canary on the calling thread (instantiate, initialize, start
  // the root, configure), so a module that cannot run is a config error at load time.
  static Result<std::shared_ptr<Plugin>> load(PluginSpec spec);
  ~Plugin();

  const PluginSpec& spec() const { return spec_; }
  // Equal for two loads of the same configuration (code, VM, plugin configuration, policy,
  // limits, hiding): a config reload keeps such a plugin, its VMs and their state.
  const std::string& identity() const { return identity_; }

  // This thread's instance and root context, created on first use (workers call it as they start,
  // so that ticks and queue consumers run before any traffic). nullptr when this thread's
  // instance could not start (logged once, remembered): the stream applies the failure policy.
  struct Running {
    // The thread's map keeps its plugin alive while the instance runs (contexts point into the
    // spec): a plugin a reload dropped lives until release_idle_instances lets it go.
    std::shared_ptr<Plugin> plugin;
    // Shared with the streams using it: a restart must not free contexts they still point to.
    std::shared_ptr<WasmInstance> instance;
    Context* root = nullptr;
    // Self-healing and FAIL_RELOAD: how many times in a row the VM was replaced (the backoff,
    // counted from the failure, doubles with each).
    int restarts = 0;
    std::chrono::steady_clock::time_point restarted_at{};  // when this instance replaced one
  };
  Running* running_on_this_thread();
  // Drops this thread's failed instance so the next stream starts a fresh one (FAIL_RELOAD).
  void restart_on_this_thread();

  // A stream context (an HTTP stream or a TCP connection) on this thread's instance, replacing a
  // crashed instance first under FAIL_RELOAD (streams still on the old one keep it alive).
  // `context` is null when no healthy instance runs here: the caller applies the policy.
  // `defer_create`: see WasmInstance::create_stream_context (HTTP streams).
  struct NewStream {
    std::shared_ptr<WasmInstance> instance;
    Context* context = nullptr;
  };
  NewStream new_stream_on_this_thread(bool defer_create = false);

 private:
  explicit Plugin(PluginSpec spec) : spec_(std::move(spec)) {}
  Result<Running> start_instance();
  Running failed_running();

  PluginSpec spec_;
  std::string identity_;
  std::string vm_key_;  // plugins with equal keys share a VM per thread
  std::shared_ptr<CompiledModule> module_;
  // Shared data and queues of the vm_id live while a plugin uses it, not only while an instance
  // runs: what the canary's on_configure writes is still there when the workers start.
  std::shared_ptr<VmSharedState> shared_state_;
};

// What this thread runs of `plugin` (admin /wasm): "running", "failed", "not started" (it could
// not start here) or "none" (no stream needed it yet), and its VM's memory in bytes.
struct ThreadInstanceState {
  std::string state = "none";
  uint64_t memory_bytes = 0;
  std::string failure;
  // What the module's SDK asked of Sluice (abi/sluice_functions.h): the size of its return
  // buffer (0: none), and the stream callbacks it declined that are skipped.
  uint64_t return_buffer_bytes = 0;
  std::vector<std::string> skipped_callbacks;
  // The fused exports Sluice calls for this plugin's HTTP streams (sluice_on_stream_start, ...),
  // and sluice_on_delete_batch when their on_delete is deferred.
  std::vector<std::string> fused_callbacks;
};
ThreadInstanceState describe_on_this_thread(const Plugin& plugin);

// Refreshes this thread's share of sluice_wasm_vms_active{plugin} and
// sluice_wasm_memory_bytes{plugin} (workers call it every second).
void refresh_thread_gauges();

// Destroys every plugin instance of the calling thread (a worker calls this before it exits, while
// its runtime's per-thread state is still alive).
void release_thread_instances();

// After a reload: stops this thread's instances of plugins not in `serving` that no stream or
// connection uses any more (their root contexts get on_done/on_delete). Returns how many such
// plugins still run here because streams use them (call again later).
size_t release_idle_instances(const std::vector<std::shared_ptr<Plugin>>& serving);

// The plugins of the serving configuration, offered to the next one while it loads: a plugin
// whose identity is unchanged is taken as it is (no compile, no canary; its VMs keep running).
class PluginReuse {
 public:
  void offer(const std::shared_ptr<Plugin>& plugin);
  // The offered plugin equal to what `spec` would load, or null.
  std::shared_ptr<Plugin> find(const PluginSpec& spec) const;
  size_t reused() const { return reused_; }

 private:
  std::unordered_map<std::string, std::shared_ptr<Plugin>> by_identity_;
  mutable size_t reused_ = 0;
};

// Set on the main thread while a reload builds its configuration: Plugin::load reuses from it.
class ScopedPluginReuse {
 public:
  explicit ScopedPluginReuse(const PluginReuse* reuse);
  ~ScopedPluginReuse();
  ScopedPluginReuse(const ScopedPluginReuse&) = delete;
  ScopedPluginReuse& operator=(const ScopedPluginReuse&) = delete;

 private:
  const PluginReuse* previous_;
};

}  // namespace sluice::wasm
