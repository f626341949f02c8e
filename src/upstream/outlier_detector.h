// Passive health (Envoy's outlier detection, consecutive_5xx): every worker reports the outcome
// of each upstream exchange; a host with consecutive_5xx failures in a row is ejected from load
// balancing for base_ejection_time times the number of its ejections, unless max_ejection_percent
// of the cluster is out already. The main thread brings ejected hosts back when their time is up.
// Lock-free: per-host atomics and one atomic count of ejected hosts.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include "config/bootstrap.h"
#include "upstream/cluster.h"

namespace sluice::upstream {

class OutlierDetector {
 public:
  OutlierDetector(const config::OutlierDetection& config, ClusterStats& stats);

  // From any worker: an exchange with `host` ended with `status` (a 5xx, or 503 for a connect
  // failure or a reset before the response). `cluster_size` caps the ejections.
  void report(const Host& host, uint32_t status, size_t cluster_size);
  // Main thread, every interval: un-ejects the hosts of `hosts` whose ejection is over.
  // Returns how many came back.
  size_t sweep(const HostSet& hosts);
  // Main thread: `host` left the cluster (DNS refresh); an ejection it held is given back.
  void host_removed(const Host& host);
  std::chrono::milliseconds interval() const { return config_.interval; }

  static int64_t now_ms();

 private:
  const config::OutlierDetection config_;
  ClusterStats& stats_;
  std::atomic<uint32_t> ejected_{0};
};

}  // namespace sluice::upstream
