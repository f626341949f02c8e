#include "wasm/plugin.h"

#include <unordered_map>

#include <spdlog/spdlog.h>

#include "wasm/vm/runtimes.h"

namespace sluice::wasm {

namespace {
// This thread's running plugins. Plugins are owned by config snapshots (shared_ptr); the map
// holds raw keys and is cleaned when the plugin goes away on this thread or the thread exits.
thread_local std::unordered_map<const Plugin*, Plugin::Running>* tls_running = nullptr;

std::unordered_map<const Plugin*, Plugin::Running>& running_map() {
  if (!tls_running) tls_running = new std::unordered_map<const Plugin*, Plugin::Running>();
  return *tls_running;
}

void stop(Plugin::Running& r) {
  if (r.instance && r.root) r.instance->destroy_root(r.root);
  r.root = nullptr;
  r.instance.reset();
}
}  // namespace

Result<std::shared_ptr<Plugin>> Plugin::load(PluginSpec spec) {
  WasmRuntime* runtime = runtime_by_name(spec.runtime);
  if (!runtime) {
    std::string known;
    for (std::string_view n : runtime_names())
      known += (known.empty() ? "" : ", ") + std::string(n);
    return Error{fmt::format("unknown Wasm runtime '{}' (known: {})", spec.runtime, known)};
  }
  auto compiled = runtime->compile(spec.code);
  if (!compiled) {
    return Error{fmt::format("cannot load {}: {}", spec.code_origin, compiled.error())};
  }
  std::shared_ptr<Plugin> plugin(new Plugin(std::move(spec)));
  plugin->module_ = std::move(*compiled);
  // The canary: everything a worker will do, once, here; then thrown away.
  auto canary = plugin->start_instance();
  if (!canary) {
    return Error{fmt::format("plugin '{}' ({}): {}", plugin->spec_.name, plugin->spec_.code_origin,
                             canary.error())};
  }
  stop(*canary);
  return plugin;
}

Plugin::~Plugin() {
  // Only this thread's instance can be stopped here; workers drop theirs on exit.
  if (tls_running) {
    auto it = tls_running->find(this);
    if (it != tls_running->end()) {
      stop(it->second);
      tls_running->erase(it);
    }
  }
}

Result<Plugin::Running> Plugin::start_instance() {
  auto instance =
      WasmInstance::create(module_, spec_.runtime, spec_.vm_id, spec_.vm_configuration, spec_.env);
  if (!instance) return std::move(instance).take_error();
  WasmInstance& w = **instance;
  if (!w.initialize()) return Error{w.failure()};
  auto root = w.start_root(spec_);
  if (!root) return std::move(root).take_error();
  Running r;
  r.root = *root;
  r.instance = std::move(*instance);
  return r;
}

Plugin::Running* Plugin::running_on_this_thread() {
  auto& map = running_map();
  auto it = map.find(this);
  if (it != map.end()) return it->second.instance ? &it->second : nullptr;
  auto started = start_instance();
  if (!started) {
    spdlog::error("wasm: plugin '{}' cannot start on this worker: {}", spec_.name, started.error());
    map.emplace(this, Running{});  // remembered: not retried on every request
    return nullptr;
  }
  return &map.emplace(this, std::move(*started)).first->second;
}

void Plugin::restart_on_this_thread() {
  auto& map = running_map();
  auto it = map.find(this);
  if (it == map.end()) return;
  // A failed instance gets no more calls; its contexts are simply dropped.
  if (it->second.instance && !it->second.instance->failed()) stop(it->second);
  map.erase(it);
}

void release_thread_instances() {
  if (!tls_running) return;
  for (auto& [_, r] : *tls_running) stop(r);
  delete tls_running;
  tls_running = nullptr;
}

}  // namespace sluice::wasm
