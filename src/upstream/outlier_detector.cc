#include "upstream/outlier_detector.h"

#include <algorithm>

#include <spdlog/spdlog.h>

namespace sluice::upstream {

OutlierDetector::OutlierDetector(const config::OutlierDetection& config, ClusterStats& stats)
    : config_(config), stats_(stats) {}

int64_t OutlierDetector::now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void OutlierDetector::report(const Host& host, uint32_t status, size_t cluster_size) {
  if (status < 500) {
    if (host.consecutive_5xx.load(std::memory_order_relaxed) != 0) {
      host.consecutive_5xx.store(0, std::memory_order_relaxed);
    }
    return;
  }
  // Exactly the failure that reaches the threshold decides (one decision per streak).
  if (host.consecutive_5xx.fetch_add(1, std::memory_order_relaxed) + 1 != config_.consecutive_5xx) {
    return;
  }
  stats_.outlier_ejections_detected_consecutive_5xx.inc();
  if (config_.enforcing_consecutive_5xx == 0) return;
  if (host.health_flags.load(std::memory_order_relaxed) & Host::kFailedOutlierCheck) return;
  // As Envoy: max_ejection_percent of the hosts, but at least one host may always be ejected.
  const uint32_t allowed = std::max<uint32_t>(
      1, static_cast<uint32_t>(cluster_size * config_.max_ejection_percent / 100));
  uint32_t ejected = ejected_.load(std::memory_order_relaxed);
  do {
    if (ejected >= allowed) {
      stats_.outlier_ejections_overflow.inc();
      return;
    }
  } while (!ejected_.compare_exchange_weak(ejected, ejected + 1, std::memory_order_relaxed));
  const uint32_t times = host.ejections.fetch_add(1, std::memory_order_relaxed) + 1;
  host.ejected_until_ms.store(now_ms() + config_.base_ejection_time.count() * times,
                              std::memory_order_relaxed);
  host.health_flags.fetch_or(Host::kFailedOutlierCheck, std::memory_order_relaxed);
  stats_.outlier_ejections_enforced_total.inc();
  stats_.outlier_ejections_enforced_consecutive_5xx.inc();
  stats_.outlier_ejections_active.inc();
  spdlog::info("outlier detection: ejected {} for {} ms ({} consecutive 5xx)", host.address,
               config_.base_ejection_time.count() * times, config_.consecutive_5xx);
}

size_t OutlierDetector::sweep(const HostSet& hosts) {
  const int64_t now = now_ms();
  size_t back = 0;
  for (const auto& h : hosts) {
    if (!(h->health_flags.load(std::memory_order_relaxed) & Host::kFailedOutlierCheck)) continue;
    if (now < h->ejected_until_ms.load(std::memory_order_relaxed)) continue;
    h->consecutive_5xx.store(0, std::memory_order_relaxed);
    h->health_flags.fetch_and(~Host::kFailedOutlierCheck, std::memory_order_relaxed);
    ejected_.fetch_sub(1, std::memory_order_relaxed);
    stats_.outlier_ejections_active.dec();
    spdlog::info("outlier detection: {} is back in load balancing", h->address);
    ++back;
  }
  return back;
}

void OutlierDetector::host_removed(const Host& host) {
  if (host.health_flags.load(std::memory_order_relaxed) & Host::kFailedOutlierCheck) {
    ejected_.fetch_sub(1, std::memory_order_relaxed);
    stats_.outlier_ejections_active.dec();
  }
}

}  // namespace sluice::upstream
