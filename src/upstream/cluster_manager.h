// The per-worker view of all clusters: load balancers and pools of idle keep-alive connections.
// Owned by one worker thread; nothing here is locked.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <absl/container/flat_hash_map.h>

#include "net/connection.h"
#include "upstream/cluster.h"

namespace sluice::upstream {

// An upstream TCP connection counted against its cluster (circuit breaker + stats) for its life.
class UpstreamConnection : public net::ConnectionCallbacks {
 public:
  UpstreamConnection(ClusterInfo& cluster, std::shared_ptr<const Host> host,
                     std::shared_ptr<net::Connection> conn);
  ~UpstreamConnection() override;

  net::Connection& conn() { return *conn_; }
  const std::shared_ptr<const Host>& host() const { return host_; }
  ClusterInfo& cluster() { return cluster_; }
  uint64_t requests_served = 0;

  // While idle in the pool, any byte or a close from the upstream makes the connection unusable.
  void on_read(const char*, size_t) override { dead_ = true; conn_->close(false); }
  void on_close(net::CloseReason) override { dead_ = true; }
  bool dead() const { return dead_ || !conn_->open(); }

 private:
  ClusterInfo& cluster_;
  std::shared_ptr<const Host> host_;
  std::shared_ptr<net::Connection> conn_;
  bool dead_ = false;
};

class WorkerCluster {
 public:
  WorkerCluster(ClusterInfo& info, uint64_t seed);
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

 private:
  ClusterInfo& info_;
  LoadBalancer lb_;
  std::vector<std::unique_ptr<UpstreamConnection>> idle_;
};

class ClusterManager {
 public:
  // `clusters` outlive this manager (they belong to the server's config snapshot).
  ClusterManager(const std::vector<std::unique_ptr<ClusterInfo>>& clusters, uint64_t seed);
  WorkerCluster* get(std::string_view name);
  void set_hosts(std::string_view cluster, HostSet hosts);
  void close_idle();

 private:
  absl::flat_hash_map<std::string, std::unique_ptr<WorkerCluster>> clusters_;
};

}  // namespace sluice::upstream
