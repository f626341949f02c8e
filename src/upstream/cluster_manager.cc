#include "upstream/cluster_manager.h"

namespace sluice::upstream {

UpstreamConnection::UpstreamConnection(ClusterInfo& cluster, std::shared_ptr<const Host> host,
                                       std::shared_ptr<net::Connection> conn)
    : cluster_(cluster), host_(std::move(host)), conn_(std::move(conn)) {
  cluster_.stats().upstream_cx_total.inc();
  cluster_.stats().upstream_cx_active.inc();
}

UpstreamConnection::~UpstreamConnection() {
  conn_->set_callbacks(nullptr);
  conn_->close(false);
  cluster_.stats().upstream_cx_active.dec();
  cluster_.release_connection();
}

WorkerCluster::WorkerCluster(ClusterInfo& info, uint64_t seed)
    : info_(info), lb_(info.config().lb_policy, seed) {}

void WorkerCluster::set_hosts(HostSet hosts) {
  lb_.set_hosts(std::move(hosts));
  // Connections to hosts that left the set are closed; the others stay pooled.
  std::erase_if(idle_, [&](const std::unique_ptr<UpstreamConnection>& c) {
    for (const auto& h : lb_.hosts()) {
      if (h->endpoint == c->host()->endpoint) return false;
    }
    return true;
  });
}

std::shared_ptr<const Host> WorkerCluster::host_ptr(const Host* h) const {
  for (const auto& p : lb_.hosts()) {
    if (p.get() == h) return p;
  }
  return nullptr;
}

std::unique_ptr<UpstreamConnection> WorkerCluster::take_idle(const Host* host) {
  // Most recently used first: it is the least likely to have been closed by the upstream.
  for (size_t i = idle_.size(); i-- > 0;) {
    if (idle_[i]->dead()) {
      idle_.erase(idle_.begin() + static_cast<ptrdiff_t>(i));
      continue;
    }
    if (idle_[i]->host()->endpoint == host->endpoint) {
      auto c = std::move(idle_[i]);
      idle_.erase(idle_.begin() + static_cast<ptrdiff_t>(i));
      return c;
    }
  }
  return nullptr;
}

void WorkerCluster::release(std::unique_ptr<UpstreamConnection> conn) {
  if (conn->dead()) return;
  conn->conn().set_callbacks(conn.get());
  conn->conn().read_disable(false);
  idle_.push_back(std::move(conn));
}

void WorkerCluster::close_idle() { idle_.clear(); }

ClusterManager::ClusterManager(const std::vector<std::unique_ptr<ClusterInfo>>& clusters,
                               uint64_t seed) {
  for (const auto& c : clusters) {
    clusters_.emplace(c->name(), std::make_unique<WorkerCluster>(*c, seed++));
  }
}

WorkerCluster* ClusterManager::get(std::string_view name) {
  auto it = clusters_.find(absl::string_view(name.data(), name.size()));
  return it == clusters_.end() ? nullptr : it->second.get();
}

void ClusterManager::set_hosts(std::string_view cluster, HostSet hosts) {
  if (WorkerCluster* c = get(cluster)) c->set_hosts(std::move(hosts));
}

void ClusterManager::close_idle() {
  for (auto& [_, c] : clusters_) c->close_idle();
}

}  // namespace sluice::upstream
