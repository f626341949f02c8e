// The server: owns the config snapshot, the process-wide cluster state, the workers and the admin
// listener; handles signals, drain and shutdown. Runs on the main thread.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <asio.hpp>

#include "admin/admin_server.h"
#include "config/bootstrap.h"
#include "http/conn_manager.h"
#include "server/tls_reloader.h"
#include "server/worker.h"
#include "upstream/cluster.h"
#include "upstream/health_checker.h"

namespace sluice::server {

struct Options {
  int concurrency = 0;  // 0: hardware cores
  std::chrono::seconds drain_time{5};
  std::string command_line;
  bool install_signal_handlers = true;
  // Where a reload reads the configuration again: the file, else the inline YAML.
  std::string config_path;
  std::string config_yaml;
  // Reload when the config file or a module file (code.local.filename) changes.
  bool watch_files = true;
};

// One loaded configuration: what the workers serve, built and checked on the main thread. A reload
// builds the next one beside it and switches only when the whole of it is good.
struct Snapshot {
  uint64_t version = 1;
  std::shared_ptr<const config::Bootstrap> bootstrap;
  std::vector<std::shared_ptr<const ListenerRuntime>> listeners;  // in config order
  // Every Wasm plugin the workers run, in config order; singleton services run on the main thread.
  std::vector<std::shared_ptr<wasm::Plugin>> worker_plugins;
  std::vector<std::shared_ptr<wasm::Plugin>> singletons;
};

// What the last reload did, for /config_dump's last_update and POST /reload.
struct ReloadOutcome {
  uint64_t version = 0;  // the snapshot serving after it
  bool accepted = false;
  bool pending = false;  // fetching remote Wasm code; the end of it replaces this outcome
  std::string trigger;   // "SIGHUP", "admin", "file /etc/x.yaml"
  std::chrono::system_clock::time_point time;
  std::vector<std::string> errors;
  std::string json() const;
};

class Server : public admin::AdminBackend {
 public:
  Server(std::shared_ptr<const config::Bootstrap> bootstrap, Options options);
  ~Server() override;

  // Builds runtime state, resolves clusters and binds every socket. Returns "" or an error.
  std::string init();
  // Runs the main loop until shutdown. Call after init().
  void run();
  // From any thread: drain for the drain time, then stop.
  void shutdown();
  // From any thread: stop now.
  void stop_now();

  // Bound ports (useful when the config asks for port 0).
  uint16_t admin_port() const { return admin_ ? admin_->port() : 0; }
  uint16_t listener_port(size_t i) const { return snapshot_->listeners.at(i)->endpoint.port(); }

  // On the main thread: reads the configuration again and switches to it when it is valid and
  // only changes what a reload can change (listeners, Wasm services, the sluice block); else the
  // current one keeps serving. Listeners keep their sockets and open connections; HTTP streams
  // switch as they start; unchanged Wasm plugins keep their VMs.
  // `overlay_text` is merged instead of the overlay file (a deploy's candidate); `on_done` gets
  // the final outcome, now or when remote code has been fetched.
  ReloadOutcome reload(std::string trigger, std::optional<std::string> overlay_text = std::nullopt,
                       std::function<void(const ReloadOutcome&)> on_done = {});
  // From any thread: reload on the main loop.
  void request_reload(std::string trigger);

  // admin::AdminBackend
  std::string server_info_json() override;
  std::string config_dump_json() override;
  std::string clusters_text(bool json) override;
  std::string listeners_text(bool json) override;
  bool health_check_failed() const override { return health_check_failed_; }
  void set_health_check_failed(bool failed) override { health_check_failed_ = failed; }
  void quit() override;
  void refresh_server_stats() override;
  std::string reload_config(int* status) override;
  std::string wasm_json() override;
  std::string admin_token() const override;
  std::string deployed_plugins_json() override;
  void deploy_plugin(std::string body, std::function<void(admin::AdminResponse)> done) override;
  void undeploy_plugin(std::string name, std::function<void(admin::AdminResponse)> done) override;

 private:
  // Reloads with `next` as the overlay of deployed plugins and, if that is accepted, writes it
  // to sluice.overlay_path; answers `done` with `accepted_status` or the reload's errors.
  void change_overlay(config::Overlay next, std::string trigger, int accepted_status,
                      std::string plugin_json, std::function<void(admin::AdminResponse)> done);
  // Builds listeners and plugins for `bootstrap`, reusing what `previous` has that is unchanged
  // (sockets, plugins). Returns an error, or "" with `out` filled.
  std::string build_snapshot(std::shared_ptr<const config::Bootstrap> bootstrap,
                             const Snapshot* previous, Snapshot* out);
  // The second half of reload(), once remote code is fetched: build, then switch.
  ReloadOutcome apply_reload(std::shared_ptr<const config::Bootstrap> bootstrap,
                             ReloadOutcome outcome);
  ReloadOutcome reject_reload(ReloadOutcome outcome, std::vector<std::string> errors);
  // The reload's change check: sections a reload cannot change, named, or "".
  static std::string restart_only_changes(const config::Bootstrap& from,
                                          const config::Bootstrap& to);
  // The TLS reloader watches the certificate files of `snapshot`'s listeners.
  void watch_tls_files(const Snapshot& snapshot);
  // Watches the config file and the module files of `snapshot` (inotify on their folders).
  void watch_config_files(const Snapshot& snapshot);
  void on_files_changed();
  void schedule_dns_refresh(size_t cluster_index);
  void carry_host_health(upstream::ClusterInfo& info, const upstream::HostSet& before,
                         const upstream::HostSet& after);
  void refresh_membership_healthy(size_t cluster_index);
  void schedule_outlier_sweep(size_t cluster_index);
  // The singletons run on the main thread while its loop runs.
  void start_singletons();
  void begin_drain();
  void finish_shutdown();

  std::shared_ptr<const config::Bootstrap> bootstrap_;  // the first: clusters, admin, node
  Options options_;
  asio::io_context main_loop_;
  asio::signal_set signals_;
  asio::steady_timer drain_timer_;
  std::vector<std::unique_ptr<upstream::ClusterInfo>> clusters_;
  std::vector<upstream::HostSet> host_sets_;
  std::vector<std::unique_ptr<asio::steady_timer>> dns_timers_;
  // Per cluster (null when not configured).
  std::vector<std::unique_ptr<upstream::HealthChecker>> health_checkers_;
  std::vector<std::unique_ptr<asio::steady_timer>> outlier_timers_;
  TlsReloader tls_reloader_;
  // What serves now. Singleton WasmServices (bootstrap_extensions) run one VM each on the main
  // thread, with the main thread's own pools and HTTP client for their callouts; their
  // instances are released in run().
  std::shared_ptr<const Snapshot> snapshot_;
  ReloadOutcome last_reload_;
  std::shared_ptr<class RemoteCodeFetch> remote_fetch_;  // a reload's, while it fetches
  std::string reload_again_;  // a reload asked for meanwhile: its trigger
  stats::Counter reloads_accepted_, reloads_rejected_, listeners_added_, listeners_removed_;
  // inotify: the folders of the config and module files, and the names watched in them.
  int inotify_fd_ = -1;
  std::unique_ptr<asio::posix::stream_descriptor> inotify_;
  std::vector<std::pair<int, std::string>> watched_dirs_;  // watch descriptor, folder
  std::vector<std::string> watched_files_;                 // absolute paths
  std::array<char, 4096> inotify_buffer_{};
  asio::steady_timer reload_debounce_;
  bool reload_pending_ = false;
  std::unique_ptr<upstream::ClusterManager> main_clusters_;
  std::unique_ptr<http::AsyncClient> main_http_client_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::unique_ptr<admin::AdminServer> admin_;
  std::atomic<bool> health_check_failed_{false};
  bool draining_ = false;
  std::function<void()> drain_check_;
  std::function<void(const asio::error_code&, int)> on_signal_;
  int sigint_count_ = 0;
  std::chrono::system_clock::time_point start_time_;
  stats::Gauge live_, uptime_, concurrency_, state_;
};

}  // namespace sluice::server
