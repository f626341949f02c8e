// Certificate reload without a restart: watches the certificate, key and CA files of every TLS
// listener and TLS cluster (a stat every second: it sees edits, renames and the symlink swaps of
// Kubernetes secrets alike) and, when one changes, rebuilds that listener's contexts from the files
// and hands them to the workers. Open connections keep the contexts they started with. Files that
// do not load (half written, a key that does not match its certificate) are logged and counted, and
// the listener keeps its current contexts until the files change again.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <asio.hpp>

#include "common/stats.h"
#include "config/bootstrap.h"
#include "net/tls.h"
#include "upstream/cluster.h"

namespace sluice::server {

class TlsReloader {
 public:
  using Publish =
      std::function<void(const std::string& listener, std::shared_ptr<const net::TlsFilterChains>)>;

  TlsReloader(asio::io_context& loop, std::chrono::milliseconds interval, Publish publish);

  // Watches the files of `listener` (TLS filter chains only); a listener with inline material
  // only is not watched. `address` names its stats.
  void watch(const config::Listener& listener, const std::string& address);
  // Forgets every listener (a config reload watches its listeners again).
  void unwatch_listeners() { listeners_.clear(); }
  // Watches the client certificate and CA files of a cluster's UpstreamTlsContext; a change
  // replaces the cluster's client context (new upstream connections use it).
  void watch_cluster(upstream::ClusterInfo& cluster);
  // Starts polling (on the loop). stop() cancels it.
  void start();
  void stop();
  size_t watched() const { return listeners_.size() + clusters_.size(); }

 private:
  struct Watched {
    std::string name;
    std::vector<config::FilterChain> chains;  // TLS settings only; filters are not needed
    std::vector<std::string> files;
    std::string signature;  // of every file's identity, size and mtime
    stats::Counter reloaded, failed;
  };
  struct WatchedCluster {
    upstream::ClusterInfo* cluster;
    config::UpstreamTls tls;
    std::vector<std::string> files;
    std::string signature;
    stats::Counter reloaded, failed;
  };
  void schedule();
  void poll();
  void reload(Watched& w);
  void reload(WatchedCluster& w);

  asio::steady_timer timer_;
  std::chrono::milliseconds interval_;
  Publish publish_;
  std::vector<Watched> listeners_;
  std::vector<WatchedCluster> clusters_;
};

}  // namespace sluice::server
