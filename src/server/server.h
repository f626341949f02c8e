// The server: owns the config snapshot, the process-wide cluster state, the workers and the admin
// listener; handles signals, drain and shutdown. Runs on the main thread.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <memory>
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
  uint16_t listener_port(size_t i) const { return listener_endpoints_.at(i).port(); }

  // admin::AdminBackend
  std::string server_info_json() override;
  std::string config_dump_json() override;
  std::string clusters_text(bool json) override;
  std::string listeners_text(bool json) override;
  bool health_check_failed() const override { return health_check_failed_; }
  void set_health_check_failed(bool failed) override { health_check_failed_ = failed; }
  void quit() override;
  void refresh_server_stats() override;

 private:
  void schedule_dns_refresh(size_t cluster_index);
  void carry_host_health(upstream::ClusterInfo& info, const upstream::HostSet& before,
                         const upstream::HostSet& after);
  void refresh_membership_healthy(size_t cluster_index);
  void schedule_outlier_sweep(size_t cluster_index);
  // The singletons run on the main thread while its loop runs.
  void start_singletons();
  void begin_drain();
  void finish_shutdown();

  std::shared_ptr<const config::Bootstrap> bootstrap_;
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
  std::vector<asio::ip::tcp::endpoint> listener_endpoints_;
  std::vector<ListenerRuntime> listeners_;  // what each worker serves, per listener
  TlsReloader tls_reloader_;
  // Every configured Wasm plugin, in config order: each worker starts them as it starts.
  std::vector<std::shared_ptr<wasm::Plugin>> wasm_plugins_;
  // Singleton WasmServices (bootstrap_extensions): one VM each, on the main thread, with the
  // main thread's own pools and HTTP client for their callouts. (Before the workers below in
  // declaration order is fine: the main thread's instances are released in run().)
  std::vector<std::shared_ptr<wasm::Plugin>> singletons_;
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
