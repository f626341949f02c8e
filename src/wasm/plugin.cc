#include "wasm/plugin.h"

#include <openssl/evp.h>

#include "wasm/abi/sluice_functions.h"
#include "wasm/vm/module_info.h"

#include <algorithm>
#include <map>
#include <unordered_map>

#include <spdlog/spdlog.h>

#include "common/strings.h"
#include "wasm/vm/runtimes.h"

namespace sluice::wasm {

namespace {
// This thread's running plugins. Plugins are owned by config snapshots (shared_ptr); the map
// holds raw keys and is cleaned when the plugin goes away on this thread or the thread exits.
thread_local std::unordered_map<const Plugin*, Plugin::Running>* tls_running = nullptr;
// This thread's VMs by VM key: plugins with the same key share one instance (as in Envoy), each
// with its own root context. Weak: an instance lives as long as a plugin or a stream uses it.
thread_local std::unordered_map<std::string, std::weak_ptr<WasmInstance>>* tls_vms = nullptr;

std::unordered_map<const Plugin*, Plugin::Running>& running_map() {
  if (!tls_running) tls_running = new std::unordered_map<const Plugin*, Plugin::Running>();
  return *tls_running;
}

std::unordered_map<std::string, std::weak_ptr<WasmInstance>>& vm_map() {
  if (!tls_vms) tls_vms = new std::unordered_map<std::string, std::weak_ptr<WasmInstance>>();
  return *tls_vms;
}

// Keys are SHA-256 digests of their length-prefixed parts: short map keys, and no further copy
// of the module's bytes per plugin.
class KeyBuilder {
 public:
  KeyBuilder() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr); }
  ~KeyBuilder() { EVP_MD_CTX_free(ctx_); }
  KeyBuilder(const KeyBuilder&) = delete;
  KeyBuilder& operator=(const KeyBuilder&) = delete;
  void add(std::string_view part) {
    const std::string size = std::to_string(part.size()) + ":";
    EVP_DigestUpdate(ctx_, size.data(), size.size());
    EVP_DigestUpdate(ctx_, part.data(), part.size());
  }
  std::string digest() {
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_DigestFinal_ex(ctx_, d, &n);
    return std::string(reinterpret_cast<const char*>(d), n);
  }

 private:
  EVP_MD_CTX* ctx_;
};

// Envoy's vm_key is SHA256(vm_id || vm_configuration || code). The runtime and the environment
// are part of it too: they change what the VM is.
std::string make_vm_key(const PluginSpec& s) {
  KeyBuilder key;
  const auto add = [&](std::string_view part) { key.add(part); };
  add(s.runtime);
  add(s.vm_id);
  add(s.vm_configuration);
  add(s.code);
  add(std::to_string(s.memory_limit_mb));  // compiled into the module: plugins differing in it
                                           // cannot share a VM
  for (const auto& [k, v] : s.env) {
    add(k);
    add(v);
  }
  add(s.allowed_capabilities.empty() ? "" : "restricted");
  for (const auto& c : s.allowed_capabilities) add(c);
  return key.digest();
}

// What makes two loads the same plugin: its VM (the vm key) and everything of the plugin itself
// that a running root context or its streams see.
std::string make_identity(const PluginSpec& s, const std::string& vm_key) {
  KeyBuilder key;
  const auto add = [&](std::string_view part) { key.add(part); };
  add(vm_key);
  add(s.name);
  add(s.root_id);
  add(s.configuration);
  add(std::to_string(static_cast<int>(s.failure_policy)));
  add(s.heal ? "heal" : "");
  add(std::to_string(s.reload_base.count()) + "/" + std::to_string(s.reload_max.count()));
  add(std::to_string(s.callback_cpu_ms));
  add(std::to_string(s.startup_cpu_ms));
  for (const auto& h : s.hide.request_headers) add("q" + h);
  for (const auto& h : s.hide.response_headers) add("s" + h);
  add(s.hide.client_address ? "client" : "");
  add(s.node_id);
  add(s.node_cluster);
  add(s.node_metadata->json());
  return key.digest();
}

thread_local const PluginReuse* tls_reuse = nullptr;  // the main thread, during a reload

void stop(Plugin::Running& r) {
  if (r.instance && r.root) r.instance->destroy_root(r.root);
  r.root = nullptr;
  r.instance.reset();
}
}  // namespace

void PluginHealth::record(FailureRecord r) {
  std::lock_guard<std::mutex> lock(mu_);
  r.count = last_.count + 1;
  last_ = std::move(r);
}

FailureRecord PluginHealth::last() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_;
}

bool HidePolicy::hides(uint32_t map_type, std::string_view lower_name) const {
  const auto listed = [&](const std::vector<std::string>& names) {
    return std::find(names.begin(), names.end(), lower_name) != names.end();
  };
  if (map_type == 0) {
    if (client_address && (lower_name == "x-forwarded-for" || lower_name == "x-real-ip")) {
      return true;
    }
    return listed(request_headers);
  }
  return map_type == 2 && listed(response_headers);
}

Result<std::shared_ptr<Plugin>> Plugin::load(PluginSpec spec) {
  if (tls_reuse) {
    if (auto same = tls_reuse->find(spec)) return same;
  }
  Result<WasmRuntime*> found = find_runtime(spec.runtime);
  if (!found) return std::move(found).take_error();
  WasmRuntime* runtime = *found;
  // The memory limit is part of the module: its memory's maximum is rewritten before V8 compiles
  // it, so growing past the limit fails inside the module (memory.grow answers -1). Native
  // (null-runtime) plugins are trusted code with no such bound.
  std::string capped;
  if (spec.runtime != "envoy.wasm.runtime.null" && spec.memory_limit_mb > 0) {
    auto r = cap_memory_pages(spec.code, spec.memory_limit_mb * 16);  // 16 64-KiB pages per MiB
    if (r) {
      capped = std::move(*r);
    } else if (ModuleInfo::parse(spec.code).ok()) {
      return Error{fmt::format("cannot load {} with a memory limit of {} MiB: {}", spec.code_origin,
                               spec.memory_limit_mb, r.error())};
    }  // else not a module at all: the compiler's error says so below
  }
  auto compiled = runtime->compile(capped.empty() ? std::string_view(spec.code) : capped);
  if (!compiled) {
    return Error{fmt::format("cannot load {}: {}", spec.code_origin, compiled.error())};
  }
  std::shared_ptr<Plugin> plugin(new Plugin(std::move(spec)));
  plugin->vm_key_ = make_vm_key(plugin->spec_);
  plugin->identity_ = make_identity(plugin->spec_, plugin->vm_key_);
  plugin->module_ = std::move(*compiled);
  plugin->shared_state_ = VmSharedState::get(plugin->spec_.vm_id);
  // The canary: everything a worker will do, once, here; then thrown away.
  auto canary = plugin->start_instance();
  if (!canary) {
    return Error{fmt::format("plugin '{}' ({}): {}", plugin->spec_.name, plugin->spec_.code_origin,
                             canary.error())};
  }
  stop(*canary);
  return plugin;
}

// No thread runs an instance of it by now: each thread's map holds a reference while it does.
Plugin::~Plugin() = default;

// A thread's entry for a plugin that could not start there: remembered, not retried per stream.
Plugin::Running Plugin::failed_running() {
  Running r;
  r.plugin = shared_from_this();
  return r;
}

Result<Plugin::Running> Plugin::start_instance() {
  auto instance = WasmInstance::create(module_, spec_.runtime, spec_.vm_id, spec_.vm_configuration,
                                       spec_.env, Capabilities{spec_.allowed_capabilities});
  if (!instance) return std::move(instance).take_error();
  WasmInstance& w = **instance;
  w.limit_cpu(spec_.callback_cpu_ms, spec_.startup_cpu_ms);
  if (!w.initialize()) return Error{w.failure()};
  auto root = w.start_root(spec_);
  if (!root) return std::move(root).take_error();
  Running r;
  r.plugin = shared_from_this();
  r.root = *root;
  r.instance = std::move(*instance);
  return r;
}

Plugin::Running* Plugin::running_on_this_thread() {
  auto& map = running_map();
  auto it = map.find(this);
  if (it != map.end()) return it->second.instance ? &it->second : nullptr;
  // Another plugin of this thread may run the same VM already: add a root context to it.
  auto& vms = vm_map();
  if (auto vm = vms.find(vm_key_); vm != vms.end()) {
    if (std::shared_ptr<WasmInstance> shared = vm->second.lock(); shared && !shared->failed()) {
      shared->limit_cpu(spec_.callback_cpu_ms, spec_.startup_cpu_ms);  // the smallest applies
      auto root = shared->start_root(spec_);
      if (!root) {
        spdlog::error("wasm: plugin '{}' cannot start on this worker: {}", spec_.name,
                      root.error());
        map.emplace(this, failed_running());
        return nullptr;
      }
      return &map.emplace(this, Running{shared_from_this(), std::move(shared), *root})
                  .first->second;
    }
  }
  auto started = start_instance();
  if (!started) {
    spdlog::error("wasm: plugin '{}' cannot start on this worker: {}", spec_.name, started.error());
    map.emplace(this, failed_running());  // remembered: not retried per request
    return nullptr;
  }
  vms[vm_key_] = started->instance;
  return &map.emplace(this, std::move(*started)).first->second;
}

Plugin::NewStream Plugin::new_stream_on_this_thread(bool defer_create) {
  Running* running = running_on_this_thread();
  const bool reload = spec_.failure_policy == FailurePolicy::FailReload;
  if (running && running->instance->failed() && (reload || spec_.heal)) {
    // The failed VM answers by its policy for a backoff (FAIL_RELOAD: reload_config.backoff;
    // self-healing: 1 s doubling to 10 s), then the next stream gets a fresh one.
    using Clock = std::chrono::steady_clock;
    const Clock::time_point now = Clock::now();
    const Clock::time_point failed_at = running->instance->failed_at();
    const std::chrono::milliseconds max = reload ? spec_.reload_max : std::chrono::seconds(10);
    // Failures in a row grow the backoff; a VM that lived longer than the longest backoff
    // before failing starts the count again.
    const bool in_a_row =
        running->restarted_at != Clock::time_point{} && failed_at - running->restarted_at < max;
    const int restarts = in_a_row ? running->restarts : 0;
    const std::chrono::milliseconds base = reload ? spec_.reload_base : std::chrono::seconds(1);
    const auto backoff =
        std::min<std::chrono::milliseconds>(base * (1LL << std::min(restarts, 20)), max);
    if (now - failed_at >= backoff) {
      restart_on_this_thread();
      running = running_on_this_thread();
      if (running) {
        running->restarts = restarts + 1;
        running->restarted_at = now;
      }
    }
  }
  if (!running || running->instance->failed()) return {};
  Context* ctx = running->instance->create_stream_context(*running->root, defer_create);
  if (!ctx) return {};
  return {running->instance, ctx};
}

void Plugin::restart_on_this_thread() {
  auto& map = running_map();
  auto it = map.find(this);
  if (it == map.end()) return;
  stats::Store::instance()
      .counter(stats::MetricName{fmt::format("sluice.wasm.{}.vm_restarts_total", spec_.name),
                                 "sluice.wasm.vm_restarts_total",
                                 {{"plugin", spec_.name}}})
      .inc();
  // A failed instance gets no more calls; its contexts are simply dropped.
  if (it->second.instance && !it->second.instance->failed()) stop(it->second);
  map.erase(it);
}

void release_thread_instances() {
  if (tls_running) {
    for (auto& [_, r] : *tls_running) stop(r);
    auto* running = tls_running;
    tls_running = nullptr;
    delete running;  // may destroy plugins: nothing of theirs runs here any more
  }
  delete tls_vms;
  tls_vms = nullptr;
}

// A VM's linear memory in bytes; 0 for a native (null-runtime) plugin, which has none of its own
// (its "memory" is the whole address space).
uint64_t linear_memory_bytes(WasmInstance& instance) {
  if (instance.failed() || instance.vm().runtime_name() == kNullRuntimeName) return 0;
  return instance.vm().memory_size();
}

ThreadInstanceState describe_on_this_thread(const Plugin& plugin) {
  ThreadInstanceState out;
  if (!tls_running) return out;
  auto it = tls_running->find(&plugin);
  if (it == tls_running->end()) return out;
  const Plugin::Running& r = it->second;
  if (!r.instance) {
    out.state = "not started";
    return out;
  }
  out.state = r.instance->failed() ? "failed" : "running";
  out.failure = r.instance->failure();
  out.memory_bytes = linear_memory_bytes(*r.instance);
  out.return_buffer_bytes = r.instance->return_buffer_size();
  if (r.root) {
    for (std::string_view name : r.root->skipped_stream_callbacks()) {
      out.skipped_callbacks.emplace_back(name);
    }
  }
  if (r.root && r.root->stream_start_fused()) {
    out.fused_callbacks.emplace_back(sluice_functions::kOnStreamStart);
  }
  if (r.root && r.root->stream_end_fused()) {
    out.fused_callbacks.emplace_back(sluice_functions::kOnStreamEnd);
  }
  if (r.root && !r.root->stream_end_fused() && r.instance->defers_stream_deletes(*r.root)) {
    out.fused_callbacks.emplace_back(sluice_functions::kOnDeleteBatch);
  }
  return out;
}

void refresh_thread_gauges() {
  // Per plugin name (an old and a new plugin of one name run side by side after a reload):
  // this thread's VMs and their memory. Each thread adds the change of its own share; the
  // gauges hold the sum over threads.
  struct Share {
    stats::Gauge vms, memory;
    int64_t vm_count = 0, bytes = 0;
    int64_t counted_vms = 0, counted_bytes = 0;  // this thread's share in the gauges now
  };
  thread_local std::map<std::string, Share> shares;
  std::map<std::string, Share>* last = &shares;
  for (auto& [_, share] : *last) share.vm_count = share.bytes = 0;
  if (tls_running) {
    for (auto& [plugin, r] : *tls_running) {
      const std::string& name = plugin->spec().name;
      auto [it, added] = last->try_emplace(name);
      if (added) {
        auto& store = stats::Store::instance();
        it->second.vms = store.gauge(stats::MetricName{str_cat("sluice.wasm.", name, ".vms_active"),
                                                       "sluice.wasm.vms_active",
                                                       {{"plugin", name}}});
        it->second.memory =
            store.gauge(stats::MetricName{str_cat("sluice.wasm.", name, ".memory_bytes"),
                                          "sluice.wasm.memory_bytes",
                                          {{"plugin", name}}});
      }
      if (r.instance && !r.instance->failed()) {
        ++it->second.vm_count;
        it->second.bytes += static_cast<int64_t>(linear_memory_bytes(*r.instance));
      }
    }
  }
  for (auto& [_, share] : *last) {
    share.vms.inc(share.vm_count - share.counted_vms);
    share.memory.inc(share.bytes - share.counted_bytes);
    share.counted_vms = share.vm_count;
    share.counted_bytes = share.bytes;
  }
}

size_t release_idle_instances(const std::vector<std::shared_ptr<Plugin>>& serving) {
  if (!tls_running) return 0;
  size_t busy = 0;
  std::vector<std::shared_ptr<Plugin>> released;  // destroyed after the map is consistent
  for (auto it = tls_running->begin(); it != tls_running->end();) {
    Plugin::Running& r = it->second;
    const bool served = std::any_of(serving.begin(), serving.end(),
                                    [&](const auto& p) { return p.get() == it->first; });
    if (served) {
      ++it;
      continue;
    }
    if (r.instance && r.root && !r.instance->failed() && r.instance->stream_contexts(*r.root)) {
      ++busy;
      ++it;
      continue;
    }
    // A failed instance gets no more calls: its root is dropped with it.
    if (r.instance && !r.instance->failed()) stop(r);
    released.push_back(std::move(r.plugin));
    it = tls_running->erase(it);
  }
  if (!released.empty()) {
    spdlog::debug("wasm: released {} plugin instance(s) no longer configured", released.size());
  }
  return busy;
}

void PluginReuse::offer(const std::shared_ptr<Plugin>& plugin) {
  by_identity_.emplace(plugin->identity(), plugin);
}

std::shared_ptr<Plugin> PluginReuse::find(const PluginSpec& spec) const {
  auto it = by_identity_.find(make_identity(spec, make_vm_key(spec)));
  if (it == by_identity_.end()) return nullptr;
  ++reused_;
  return it->second;
}

ScopedPluginReuse::ScopedPluginReuse(const PluginReuse* reuse) : previous_(tls_reuse) {
  tls_reuse = reuse;
}

ScopedPluginReuse::~ScopedPluginReuse() { tls_reuse = previous_; }

}  // namespace sluice::wasm
