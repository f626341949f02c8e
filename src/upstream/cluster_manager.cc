#include "upstream/cluster_manager.h"

#include <algorithm>

#include "common/strings.h"

namespace sluice::upstream {

UpstreamConnection::UpstreamConnection(WorkerCluster& cluster, std::shared_ptr<const Host> host,
                                       std::shared_ptr<net::Connection> conn)
    : cluster_(cluster), host_(std::move(host)), conn_(std::move(conn)) {
  cluster_.info().stats().upstream_cx_total.inc();
  cluster_.info().stats().upstream_cx_active.inc();
  cluster_.connection_opened(*host_);
}

UpstreamConnection::~UpstreamConnection() {
  conn_->set_callbacks(nullptr);
  conn_->close(false);
  cluster_.info().stats().upstream_cx_active.dec();
  cluster_.info().release_connection();
  cluster_.connection_closed(*host_);
}

void UpstreamConnection::on_read(const char*, size_t) {
  dead_ = true;
  conn_->close(false);
  cluster_.schedule_wake();  // a waiter may open a new connection in its place
}

void UpstreamConnection::on_close(net::CloseReason) {
  dead_ = true;
  cluster_.schedule_wake();
}

WorkerCluster::WorkerCluster(ClusterInfo& info, asio::io_context* loop, uint64_t seed)
    : info_(info), loop_(loop), lb_(info.config().lb_policy, seed) {
  lb_.set_panic_counter(info.stats().lb_healthy_panic);
}

WorkerCluster::~WorkerCluster() {
  *alive_ = false;
  idle_.clear();
}

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
  if (!waiters_.empty()) schedule_wake();
}

void WorkerCluster::close_idle() {
  idle_.clear();
  if (shared_pool_) shared_pool_->close_all();
}

uint32_t WorkerCluster::connections_to(const Host& host) const {
  for (const auto& [endpoint, n] : connections_per_host_) {
    if (endpoint == host.endpoint) return n;
  }
  return 0;
}

void WorkerCluster::connection_opened(const Host& host) {
  for (auto& [endpoint, n] : connections_per_host_) {
    if (endpoint == host.endpoint) {
      ++n;
      return;
    }
  }
  connections_per_host_.emplace_back(host.endpoint, 1);
}

void WorkerCluster::connection_closed(const Host& host) {
  for (auto& [endpoint, n] : connections_per_host_) {
    if (endpoint == host.endpoint && n > 0) --n;
  }
  // A circuit-breaker slot was freed: a waiter (for any host) may open a connection now.
  if (!waiters_.empty()) schedule_wake();
}

void WorkerCluster::wait_for_connection(ConnectionWaiter* waiter) { waiters_.push_back(waiter); }

void WorkerCluster::cancel_wait(ConnectionWaiter* waiter) { std::erase(waiters_, waiter); }

void WorkerCluster::schedule_wake() {
  if (wake_scheduled_ || waiters_.empty() || !loop_) return;
  wake_scheduled_ = true;
  asio::post(*loop_, [this, alive = alive_] {
    if (!*alive) return;
    wake_scheduled_ = false;
    wake_waiters();
  });
}

void WorkerCluster::wake_waiters() {
  // Oldest first. Each woken waiter either takes an idle connection, opens a new one, or (when
  // another worker took the slot first) queues again at the back; so each one is looked at once.
  for (size_t n = waiters_.size(); n > 0 && !waiters_.empty(); --n) {
    ConnectionWaiter* w = waiters_.front();
    waiters_.pop_front();
    w->on_connection_available();
  }
}

void WorkerCluster::count_response_code(uint32_t code) {
  if (code < 100 || code > 599) return;
  if (code_counters_.empty()) code_counters_.resize(500);
  stats::Counter& c = code_counters_[code - 100];
  if (!c.valid()) {
    c = stats::Store::instance().counter(
        stats::response_code_stat(stats::cluster_stat(info_.name(), str_cat("upstream_rq_", code)),
                                  "cluster.upstream_rq", code));
  }
  c.inc();
}

ClusterManager::ClusterManager(const std::vector<std::unique_ptr<ClusterInfo>>& clusters,
                               asio::io_context* loop, uint64_t seed) {
  for (const auto& c : clusters) {
    clusters_.emplace(c->name(), std::make_unique<WorkerCluster>(*c, loop, seed++));
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
