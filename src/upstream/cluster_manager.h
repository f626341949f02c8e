// The per-worker view of all clusters: load balancers and pools of idle keep-alive connections.
// Owned by one worker thread; nothing here is locked.
#pragma once

#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <absl/container/flat_hash_map.h>

#include "net/connection.h"
#include "upstream/cluster.h"

namespace sluice::upstream {

class WorkerCluster;

// An upstream TCP connection counted against its cluster (circuit breaker + stats) and against its
// worker's pool for its life.
class UpstreamConnection : public net::ConnectionCallbacks {
 public:
  UpstreamConnection(WorkerCluster& cluster, std::shared_ptr<const Host> host,
                     std::shared_ptr<net::Connection> conn);
  ~UpstreamConnection() override;

  net::Connection& conn() { return *conn_; }
  const std::shared_ptr<const Host>& host() const { return host_; }
  uint64_t requests_served = 0;

  // While idle in the pool, any byte or a close from the upstream makes the connection unusable.
  void on_read(const char*, size_t) override;
  void on_close(net::CloseReason) override;
  bool dead() const { return dead_ || !conn_->open(); }

 private:
  WorkerCluster& cluster_;
  std::shared_ptr<const Host> host_;
  std::shared_ptr<net::Connection> conn_;
  bool dead_ = false;
};

// A request waiting for a connection of its worker's pool: max_connections is reached, so it
// waits (holding a max_pending_requests slot) until a connection to its host is released or any
// connection of the cluster closes, as Envoy's connection pools do.
class ConnectionWaiter {
 public:
  virtual ~ConnectionWaiter() = default;
  virtual const Host& waiting_host() const = 0;
  // A connection may be available now; the waiter was removed from the queue before this call.
  virtual void on_connection_available() = 0;
};

class WorkerCluster {
 public:
  WorkerCluster(ClusterInfo& info, asio::io_context* loop, uint64_t seed);
  ~WorkerCluster();
  ClusterInfo& info() { return info_; }
  LoadBalancer& lb() { return lb_; }
  void set_hosts(HostSet hosts);
  std::shared_ptr<const Host> host_ptr(const Host* h) const;

  // An idle keep-alive connection to `host`, or null.
  std::unique_ptr<UpstreamConnection> take_idle(const Host* host);
  // Returns a connection whose exchange completed cleanly, for reuse.
  void release(std::unique_ptr<UpstreamConnection> conn);
  size_t idle_count() const { return idle_.size(); }
  void close_idle();

  // Connections (connecting, busy or idle) this worker holds to `host`.
  uint32_t connections_to(const Host& host) const;
  // Waiting for a connection (see ConnectionWaiter); removed again by cancel_wait or when woken.
  void wait_for_connection(ConnectionWaiter* waiter);
  void cancel_wait(ConnectionWaiter* waiter);
  size_t waiting() const { return waiters_.size(); }

  // A per-status-code counter (cluster.<name>.upstream_rq_<code>), defined on first use on this
  // worker and cached here, so the request path takes no lock after the first response of a code.
  void count_response_code(uint32_t code);

  // Connections that many requests share at once (HTTP/2): the HTTP layer defines the pool; it
  // lives here so it closes with the cluster on this worker (close_idle closes it too).
  class SharedPool {
   public:
    virtual ~SharedPool() = default;
    virtual void close_all() = 0;
  };
  std::unique_ptr<SharedPool>& shared_pool() { return shared_pool_; }
  asio::io_context* loop() const { return loop_; }

 private:
  friend class UpstreamConnection;
  void connection_opened(const Host& host);
  void connection_closed(const Host& host);
  // Wakes waiters on a later loop turn (never inside the callbacks of the finishing request).
  void schedule_wake();
  void wake_waiters();

  ClusterInfo& info_;
  asio::io_context* loop_;  // null in unit tests that never wait
  LoadBalancer lb_;
  std::vector<std::unique_ptr<UpstreamConnection>> idle_;
  std::vector<std::pair<asio::ip::tcp::endpoint, uint32_t>> connections_per_host_;
  std::deque<ConnectionWaiter*> waiters_;
  bool wake_scheduled_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::vector<stats::Counter> code_counters_;  // index: status code - 100
  // Last: destroyed first, while the connection accounting it reports to is still here.
  std::unique_ptr<SharedPool> shared_pool_;
};

class ClusterManager {
 public:
  // `clusters` outlive this manager (they belong to the server's config snapshot).
  ClusterManager(const std::vector<std::unique_ptr<ClusterInfo>>& clusters, asio::io_context* loop,
                 uint64_t seed);
  WorkerCluster* get(std::string_view name);
  void set_hosts(std::string_view cluster, HostSet hosts);
  void close_idle();

 private:
  absl::flat_hash_map<std::string, std::unique_ptr<WorkerCluster>> clusters_;
};

}  // namespace sluice::upstream
