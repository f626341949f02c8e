#include "upstream/health_checker.h"

#include <spdlog/spdlog.h>

#include "common/strings.h"

namespace sluice::upstream {

// One host under watch: its probe in flight (if any), its streaks, and its timer.
struct HealthChecker::Target : net::ConnectionCallbacks {
  explicit Target(asio::io_context& loop) : timer(loop), deadline(loop) {}
  std::shared_ptr<const Host> host;
  asio::steady_timer timer;     // the next probe
  asio::steady_timer deadline;  // the probe in flight's timeout
  std::shared_ptr<net::Connection> conn;
  std::string response;  // bytes of the HTTP response so far
  uint32_t successes = 0, failures = 0;
  bool checked = false;  // at least one probe finished
  bool active = true;    // false once the host left the cluster (or the checker stopped)
  std::function<void(bool ok, bool network, const std::string& detail)> done;

  // An HTTP probe's response: the status line is all that matters.
  void on_read(const char* data, size_t len) override {
    response.append(data, len);
    if (response.find("\r\n") != std::string::npos || response.size() > 1024) finish_http();
  }
  void on_close(net::CloseReason) override {
    if (!response.empty()) {
      finish_http();
    } else {
      end(false, true, "connection closed without a response");
    }
  }
  void finish_http() {
    const size_t eol = response.find("\r\n");
    const std::string line = response.substr(0, eol == std::string::npos ? 64 : eol);
    uint32_t status = 0;
    if (line.size() >= 12 && line.compare(0, 7, "HTTP/1.") == 0) {
      status = static_cast<uint32_t>(std::atoi(line.c_str() + 9));
    }
    end_status = status;
    end(status != 0, status == 0, status == 0 ? "not an HTTP response" : line);
  }
  void end(bool ok, bool network, const std::string& detail) {
    deadline.cancel();
    if (conn) {
      conn->set_callbacks(nullptr);
      conn->close(false);
      conn.reset();
    }
    if (done) {
      auto d = std::move(done);
      done = nullptr;
      d(ok, network, detail);
    }
  }
  uint32_t end_status = 0;
};

HealthChecker::HealthChecker(asio::io_context& loop, ClusterInfo& cluster,
                             const config::HealthCheck& config)
    : loop_(loop), cluster_(cluster), config_(config) {}

HealthChecker::~HealthChecker() { stop(); }

void HealthChecker::set_hosts(const HostSet& hosts) {
  std::vector<std::shared_ptr<Target>> next;
  for (const auto& h : hosts) {
    std::shared_ptr<Target> kept;
    for (auto& t : targets_) {
      if (t->active && t->host->endpoint == h->endpoint) kept = t;
    }
    if (kept) {
      // The same address under a new Host object (DNS refresh): its state moves along.
      h->health_flags.fetch_or(kept->host->health_flags.load() & Host::kFailedActiveHc);
      kept->host = h;
      next.push_back(kept);
      continue;
    }
    auto t = std::make_shared<Target>(loop_);
    t->host = h;
    h->health_flags.fetch_or(Host::kFailedActiveHc);  // unknown until its first check
    next.push_back(t);
    if (running_) schedule(t, std::chrono::milliseconds(0));
  }
  for (auto& t : targets_) {
    bool still = false;
    for (auto& n : next) still = still || n == t;
    if (!still) {
      t->active = false;
      t->timer.cancel();
      t->end(false, false, "removed");
    }
  }
  targets_ = std::move(next);
  refresh_healthy_gauges();
}

void HealthChecker::start() {
  running_ = true;
  for (auto& t : targets_) schedule(t, std::chrono::milliseconds(0));
}

void HealthChecker::stop() {
  running_ = false;
  for (auto& t : targets_) {
    t->active = false;
    t->timer.cancel();
    t->done = nullptr;
    t->end(false, false, "stopped");
  }
}

void HealthChecker::schedule(const std::shared_ptr<Target>& t, std::chrono::milliseconds delay) {
  t->timer.expires_after(delay);
  t->timer.async_wait([this, weak = std::weak_ptr<Target>(t)](const asio::error_code& ec) {
    auto t = weak.lock();
    if (ec || !t || !t->active || !running_) return;
    probe(t);
  });
}

void HealthChecker::probe(const std::shared_ptr<Target>& t) {
  cluster_.stats().health_check_attempt.inc();
  t->response.clear();
  t->conn = net::Connection::create(loop_, 64 * 1024);
  std::weak_ptr<Target> weak = t;
  t->done = [this, weak](bool ok, bool network, const std::string& detail) {
    auto t = weak.lock();
    if (!t || !t->active) return;
    on_result(t, ok, network, detail);
  };
  t->deadline.expires_after(config_.timeout);
  t->deadline.async_wait([weak](const asio::error_code& ec) {
    auto t = weak.lock();
    if (!ec && t) t->end(false, true, "timed out");
  });
  auto conn = t->conn;
  conn->connect(t->host->endpoint, config_.timeout, cluster_.tls(),
                [this, weak, conn](const asio::error_code& ec, bool in_tls) {
                  auto t = weak.lock();
                  if (!t || t->conn != conn) return;
                  if (ec) {
                    t->end(false, true, (in_tls ? "TLS: " : "connect: ") + ec.message());
                    return;
                  }
                  if (config_.kind == config::HealthCheck::Kind::Tcp) {
                    t->end(true, false, "connected");
                    return;
                  }
                  conn->set_callbacks(t.get());
                  conn->start_reading();
                  conn->write(str_cat("GET ", config_.path, " HTTP/1.1\r\nHost: ",
                                      config_.host.empty() ? cluster_.name() : config_.host,
                                      "\r\nUser-Agent: Envoy/HC\r\nConnection: close\r\n\r\n"));
                });
}

void HealthChecker::on_result(const std::shared_ptr<Target>& t, bool ok, bool network,
                              const std::string& detail) {
  auto& st = cluster_.stats();
  if (ok && config_.kind == config::HealthCheck::Kind::Http) {
    const uint32_t status = t->end_status;
    if (config_.expected_statuses.empty()) {
      ok = status == 200;
    } else {
      ok = false;
      for (const auto& [start, end] : config_.expected_statuses) {
        ok = ok || (status >= start && status < end);
      }
    }
  }
  const bool was_healthy = !(t->host->health_flags.load() & Host::kFailedActiveHc);
  if (ok) {
    st.health_check_success.inc();
    t->failures = 0;
    ++t->successes;
    // The first check of a new host brings it in at once; later ones need the threshold.
    if (!was_healthy && (!t->checked || t->successes >= config_.healthy_threshold)) {
      t->host->health_flags.fetch_and(~Host::kFailedActiveHc);
      spdlog::info("health check: {} in cluster '{}' is healthy", t->host->address,
                   cluster_.name());
    }
  } else {
    st.health_check_failure.inc();
    if (network) st.health_check_network_failure.inc();
    t->successes = 0;
    ++t->failures;
    if (!t->checked) {
      spdlog::warn(
          "health check: {} in cluster '{}' failed its first check ({}); it stays out of "
          "load balancing until a check passes",
          t->host->address, cluster_.name(), detail);
    } else if (was_healthy && t->failures >= config_.unhealthy_threshold) {
      t->host->health_flags.fetch_or(Host::kFailedActiveHc);
      spdlog::warn("health check: {} in cluster '{}' is unhealthy ({})", t->host->address,
                   cluster_.name(), detail);
    }
  }
  t->checked = true;
  refresh_healthy_gauges();
  if (running_ && t->active) schedule(t, config_.interval);
}

void HealthChecker::refresh_healthy_gauges() {
  int64_t healthy = 0;
  for (const auto& t : targets_) healthy += t->host->healthy() ? 1 : 0;
  cluster_.stats().health_check_healthy.set(healthy);
  cluster_.stats().membership_healthy.set(healthy);
}

}  // namespace sluice::upstream
