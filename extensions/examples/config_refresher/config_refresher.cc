// config_refresher: keeps a piece of configuration fresh in the background and serves it to
// every worker. Made to run as a singleton service (bootstrap_extensions, envoy.bootstrap.wasm)
// that fetches, plus an HTTP filter of the same vm_id that reads:
//
// - with period_ms > 0 (the service), every period it GETs `path` from `cluster` with an
//   http_call and, on a 200, stores the body in shared data under `key`;
// - on every response (the filter), it sets `x-config` to the stored value ("none" before the
//   first fetch).
//
// Configuration (key = value lines): period_ms (default 0: do not fetch), cluster, path (default
// /config), authority (default config), key (default config), timeout_ms (default 1000).
// Metrics: config_refresher.fetches_total and config_refresher.failures_total.
#include <string>

#include "sluice/sdk.h"

namespace {

class RefresherRoot : public sluice::RootContext {
 public:
  using RootContext::RootContext;

  bool on_configure(size_t) override {
    for (auto& [k, value] : sluice::parse_key_value_lines(sluice::plugin_configuration())) {
      if (k == "period_ms" || k == "timeout_ms") {
        auto n = sluice::parse_uint64(value);
        if (!n || *n > 3600000) {
          sluice::log_error("config_refresher: {} must be a number of milliseconds", k);
          return false;
        }
        (k == "period_ms" ? period_ms : timeout_ms) = static_cast<uint32_t>(*n);
      } else if (k == "cluster") {
        cluster = value;
      } else if (k == "path") {
        path = value;
      } else if (k == "authority") {
        authority = value;
      } else if (k == "key") {
        key = value;
      } else {
        sluice::log_error("config_refresher: unknown configuration key '{}'", k);
        return false;
      }
    }
    if (period_ms > 0 && cluster.empty()) {
      sluice::log_error("config_refresher: fetching (period_ms > 0) needs a cluster");
      return false;
    }
    if (period_ms > 0) set_tick_period_milliseconds(period_ms);
    return true;
  }

  void on_tick() override {
    if (in_flight_) return;  // the last fetch has not answered yet
    in_flight_ = true;
    const sluice::Status s =
        http_call(cluster, {{":method", "GET"}, {":path", path}, {":authority", authority}}, "", {},
                  timeout_ms, [this](const sluice::HttpCallResponse& r) { fetched(r); });
    if (s != sluice::Status::Ok) {
      in_flight_ = false;
      failures_.increment(1);
      sluice::log_warn("config_refresher: http_call refused ({})", static_cast<uint32_t>(s));
    }
  }

  uint32_t period_ms = 0, timeout_ms = 1000;
  std::string cluster, path = "/config", authority = "config", key = "config";

 private:
  void fetched(const sluice::HttpCallResponse& r) {
    in_flight_ = false;
    if (r.failed() || r.status() != 200u) {
      failures_.increment(1);
      return;
    }
    sluice::set_shared_data(key, r.body());
    fetches_.increment(1);
  }

  bool in_flight_ = false;
  sluice::Counter fetches_{"config_refresher.fetches_total"};
  sluice::Counter failures_{"config_refresher.failures_total"};
};

class RefresherStream : public sluice::HttpContext {
 public:
  RefresherStream(uint32_t id, RefresherRoot* root) : HttpContext(id, root), root_(root) {}
  sluice::FilterHeadersStatus on_response_headers(uint32_t, bool) override {
    auto v = sluice::get_shared_data(root_->key);
    sluice::response_headers().replace("x-config", v ? v->value : "none");
    return sluice::FilterHeadersStatus::Continue;
  }

 private:
  RefresherRoot* root_;
};

sluice::RegisterContextFactory<RefresherRoot, RefresherStream> registration("config_refresher");

}  // namespace
