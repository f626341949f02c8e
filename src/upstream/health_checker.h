// Active health checking (a cluster's health_checks[0]), on the main thread: every interval each
// host gets a probe of its own: a TCP connect, or an HTTP/1.1 GET of `path` whose status must be
// expected (200 by default), over TLS when the cluster has an UpstreamTlsContext. A host turns
// unhealthy after unhealthy_threshold failures in a row and healthy again after
// healthy_threshold successes; a new host starts unhealthy and its first success brings it in
// (as Envoy). Workers see the result through the host's health flags.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <asio.hpp>

#include "config/bootstrap.h"
#include "net/connection.h"
#include "upstream/cluster.h"

namespace sluice::upstream {

class HealthChecker {
 public:
  HealthChecker(asio::io_context& loop, ClusterInfo& cluster, const config::HealthCheck& config);
  ~HealthChecker();

  // The hosts to check (again after a DNS refresh: a host whose address stays keeps its state).
  void set_hosts(const HostSet& hosts);
  void start();
  void stop();

 private:
  struct Target;
  void schedule(const std::shared_ptr<Target>& t, std::chrono::milliseconds delay);
  void probe(const std::shared_ptr<Target>& t);
  void on_result(const std::shared_ptr<Target>& t, bool ok, bool network_failure,
                 const std::string& detail);
  void refresh_healthy_gauges();

  asio::io_context& loop_;
  ClusterInfo& cluster_;
  const config::HealthCheck config_;
  std::vector<std::shared_ptr<Target>> targets_;
  bool running_ = false;
};

}  // namespace sluice::upstream
