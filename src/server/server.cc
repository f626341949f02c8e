#include "server/server.h"

#include "upstream/outlier_detector.h"

#include "filters/http/wasm_filter.h"
#include "filters/network/wasm_filter.h"

#include <algorithm>
#include <csignal>
#include <optional>
#include <thread>

#include <spdlog/spdlog.h>
#include "common/strings.h"

#include "accesslog/access_log.h"
#include "net/connection.h"
#include "wasm/thread_loop.h"

namespace sluice::server {
namespace {

std::string json_str(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += fmt::format("\\u{:04x}", static_cast<unsigned char>(c));
    } else {
      out.push_back(c);
    }
  }
  out += "\"";
  return out;
}

// Binds the address once without SO_REUSEPORT: fails if anything already listens there (even a
// socket with SO_REUSEPORT), and resolves port 0 to one real port that every worker then shares.
std::string probe_bind(asio::ip::tcp::endpoint& ep) {
  asio::io_context ctx;
  asio::ip::tcp::acceptor probe(ctx);
  asio::error_code ec;
  probe.open(ep.protocol(), ec);
  if (!ec) probe.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) probe.bind(ep, ec);
  if (ec) return ec.message();
  ep.port(probe.local_endpoint().port());
  return "";
}

}  // namespace

Server::Server(std::shared_ptr<const config::Bootstrap> bootstrap, Options options)
    : bootstrap_(std::move(bootstrap)),
      options_(std::move(options)),
      signals_(main_loop_),
      drain_timer_(main_loop_),
      tls_reloader_(main_loop_, std::chrono::seconds(1),
                    [this](size_t listener, std::shared_ptr<const net::TlsFilterChains> chains) {
                      for (auto& w : workers_) w->update_tls_chains(listener, chains);
                    }),
      start_time_(std::chrono::system_clock::now()) {
  if (options_.concurrency <= 0) {
    options_.concurrency = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }
  auto& s = stats::Store::instance();
  live_ = s.gauge(stats::server_stat("live"));
  uptime_ = s.gauge(stats::server_stat("uptime"));
  concurrency_ = s.gauge(stats::server_stat("concurrency"));
  state_ = s.gauge(stats::server_stat("state"));
}

Server::~Server() {
  for (auto& w : workers_) w->stop();
}

std::string Server::init() {
  const config::Bootstrap& b = *bootstrap_;
  for (const auto& c : b.clusters) {
    clusters_.push_back(std::make_unique<upstream::ClusterInfo>(c));
    if (c.tls) {
      auto tls = net::TlsClientContext::create(*c.tls, c.http2.has_value());
      if (!tls) return str_cat("cluster '", c.name, "': TLS: ", tls.error());
      clusters_.back()->set_tls(std::move(*tls));
      tls_reloader_.watch_cluster(*clusters_.back());
    }
    if (c.outlier_detection) {
      clusters_.back()->set_outlier(std::make_unique<upstream::OutlierDetector>(
          *c.outlier_detection, clusters_.back()->stats()));
      outlier_timers_.push_back(std::make_unique<asio::steady_timer>(main_loop_));
    } else {
      outlier_timers_.push_back(nullptr);
    }
    health_checkers_.push_back(c.health_check ? std::make_unique<upstream::HealthChecker>(
                                                    main_loop_, *clusters_.back(), *c.health_check)
                                              : nullptr);
    auto& stats = clusters_.back()->stats();
    stats.update_attempt.inc();
    std::string error;
    host_sets_.push_back(upstream::resolve_hosts(c, &error));
    if (!error.empty()) {
      stats.update_failure.inc();
      spdlog::warn("cluster '{}': {}", c.name, error);
    } else {
      stats.update_success.inc();
    }
    stats.membership_total.set(static_cast<int64_t>(host_sets_.back().size()));
    if (health_checkers_.back()) health_checkers_.back()->set_hosts(host_sets_.back());
    refresh_membership_healthy(clusters_.size() - 1);
  }

  // The main thread's own pools and HTTP client: for the singleton services' callouts, and for
  // the canaries' while plugins load below (a plugin may call out from on_configure, as Envoy
  // allows; the canary is thrown away after it, its callouts cancelled unanswered).
  main_clusters_ = std::make_unique<upstream::ClusterManager>(clusters_, &main_loop_, 4099);
  for (size_t c = 0; c < clusters_.size(); ++c) {
    main_clusters_->set_hosts(clusters_[c]->name(), host_sets_[c]);
  }
  main_http_client_ = std::make_unique<http::AsyncClient>(main_loop_, *main_clusters_);
  std::optional<wasm::ScopedLoadingClient> loading_plugins;
  loading_plugins.emplace(main_http_client_.get());

  for (size_t li = 0; li < b.listeners.size(); ++li) {
    const auto& l = b.listeners[li];
    // One HTTP connection manager per filter chain (chains are told apart by SNI).
    std::vector<ListenerRuntime::Chain> chains_rt;
    for (size_t ci = 0; ci < l.filter_chains.size(); ++ci) {
      const auto& chain = l.filter_chains[ci];
      std::shared_ptr<http::HttpListenerConfig> http;
      for (const auto& f : chain.filters) {
        if (const auto* hcm = std::get_if<config::HttpConnectionManager>(&f.config)) {
          http =
              std::make_shared<http::HttpListenerConfig>(*hcm, l.per_connection_buffer_limit_bytes);
          for (const auto& log_config : hcm->access_logs) {
            std::string error;
            auto log = accesslog::AccessLog::create(log_config, &error);
            if (!log) return str_cat("listener '", l.name, "': access log: ", error);
            http->access_logs.push_back(std::move(log));
          }
          for (const auto& hf : hcm->http_filters) {
            if (!hf.wasm) continue;
            auto filter = filters::make_wasm_filter_config(hf, b);
            if (!filter)
              return str_cat("listener '", l.name, "': http filter '", hf.name,
                             "': ", filter.error());
            wasm_plugins_.push_back((*filter)->plugin());
            http->filters.push_back(std::move(*filter));
          }
        }
      }
      std::shared_ptr<const tcp::TcpProxyConfig> tcp;
      std::vector<std::shared_ptr<filters::NetworkWasmFilterConfig>> network_filters;
      for (const auto& f : chain.filters) {
        if (const auto* proxy = std::get_if<config::TcpProxy>(&f.config)) {
          auto proxy_config = std::make_shared<tcp::TcpProxyConfig>(*proxy);
          for (const auto& log_config : proxy->access_logs) {
            std::string error;
            auto log = accesslog::AccessLog::create(log_config, &error);
            if (!log) return str_cat("listener '", l.name, "': tcp_proxy access log: ", error);
            proxy_config->access_logs.push_back(std::move(log));
          }
          tcp = std::move(proxy_config);
        }
        if (std::holds_alternative<config::WasmPlugin>(f.config)) {
          auto filter = filters::make_network_wasm_filter_config(f, b);
          if (!filter)
            return str_cat("listener '", l.name, "': network filter '", f.name,
                           "': ", filter.error());
          wasm_plugins_.push_back((*filter)->plugin());
          network_filters.push_back(std::move(*filter));
        }
      }
      if (!http && !tcp) {
        return str_cat("listener '", l.name, "': filter chain ", ci,
                       " has neither http_connection_manager nor tcp_proxy");
      }
      chains_rt.push_back(
          ListenerRuntime::Chain{std::move(http), std::move(tcp), std::move(network_filters)});
    }
    if (chains_rt.empty()) return str_cat("listener '", l.name, "' has no filter chain");
    asio::error_code ec;
    const auto addr = asio::ip::make_address(l.address.address, ec);
    if (ec) return str_cat("listener '", l.name, "': invalid address '", l.address.address, "'");
    asio::ip::tcp::endpoint ep(addr, l.address.port);
    if (std::string err = probe_bind(ep); !err.empty()) {
      return str_cat("listener '", l.name, "': cannot bind ", net::endpoint_to_string(ep), ": ",
                     err);
    }
    listener_endpoints_.push_back(ep);
    ListenerRuntime rt{l.name,  ep,     l.per_connection_buffer_limit_bytes, std::move(chains_rt),
                       nullptr, nullptr};
    const bool any_tls =
        std::any_of(l.filter_chains.begin(), l.filter_chains.end(),
                    [](const config::FilterChain& c) { return c.tls.has_value(); });
    if (any_tls) {
      for (size_t ci = 0; ci < l.filter_chains.size(); ++ci) {
        if (!l.filter_chains[ci].tls) rt.plain_chain = static_cast<int>(ci);
      }
      auto chains = net::TlsFilterChains::build(l.filter_chains);
      if (!chains) return str_cat("listener '", l.name, "': TLS: ", chains.error());
      rt.tls_chains = std::move(*chains);
      rt.tls = std::make_shared<ListenerTls>();
      // The chain is known only once the ClientHello is read: the longest bound applies.
      std::chrono::milliseconds bound{0};
      for (const auto& chain : l.filter_chains) {
        bound = std::max(bound, chain.transport_socket_connect_timeout);
      }
      if (bound.count() > 0) rt.tls->handshake_timeout = bound;
      auto& store = stats::Store::instance();
      const std::string address = net::endpoint_to_string(ep);
      rt.tls->handshake = store.counter(stats::listener_stat(address, "ssl.handshake"));
      rt.tls->connection_error =
          store.counter(stats::listener_stat(address, "ssl.connection_error"));
      rt.tls->no_filter_chain_match =
          store.counter(stats::listener_stat(address, "no_filter_chain_match"));
      rt.tls->fail_verify_san = store.counter(stats::listener_stat(address, "ssl.fail_verify_san"));
      rt.tls->session_reused = store.counter(stats::listener_stat(address, "ssl.session_reused"));
      tls_reloader_.watch(li, l, address);
    }
    listeners_.push_back(std::move(rt));
  }

  // Background Wasm services: a singleton runs on the main thread, the others on every worker.
  for (const auto& service : b.wasm_services) {
    auto plugin = filters::load_wasm_plugin(service.plugin, b);
    if (!plugin) {
      return str_cat("bootstrap extension '", service.name, "': ", plugin.error());
    }
    (service.singleton ? singletons_ : wasm_plugins_).push_back(std::move(*plugin));
  }
  loading_plugins.reset();

  for (int i = 0; i < options_.concurrency; ++i) {
    auto w = std::make_unique<Worker>(i, clusters_, wasm_plugins_);
    for (size_t c = 0; c < clusters_.size(); ++c) {
      w->clusters().set_hosts(clusters_[c]->name(), host_sets_[c]);
    }
    for (size_t l = 0; l < b.listeners.size(); ++l) {
      const auto& lc = b.listeners[l];
      if (std::string err = w->add_listener(listeners_[l]); !err.empty()) {
        return str_cat("listener '", lc.name, "': cannot bind ",
                       net::endpoint_to_string(listener_endpoints_[l]), ": ", err);
      }
    }
    workers_.push_back(std::move(w));
  }

  if (b.admin.address) {
    asio::error_code ec;
    const auto addr = asio::ip::make_address(b.admin.address->address, ec);
    if (ec) return str_cat("admin: invalid address '", b.admin.address->address, "'");
    admin_ = std::make_unique<admin::AdminServer>(main_loop_, *this);
    asio::ip::tcp::endpoint ep(addr, b.admin.address->port);
    if (std::string err = admin_->listen(ep); !err.empty()) {
      return str_cat("admin: cannot bind ", net::endpoint_to_string(ep), ": ", err);
    }
  }
  concurrency_.set(options_.concurrency);
  return "";
}

void Server::run() {
  for (auto& w : workers_) w->start();
  tls_reloader_.start();
  for (size_t i = 0; i < clusters_.size(); ++i) {
    if (health_checkers_[i]) health_checkers_[i]->start();
    if (outlier_timers_[i]) schedule_outlier_sweep(i);
  }
  for (size_t i = 0; i < clusters_.size(); ++i) {
    if (clusters_[i]->config().type != config::Cluster::Type::Static) schedule_dns_refresh(i);
  }
  if (options_.install_signal_handlers) {
    signals_.add(SIGTERM);
    signals_.add(SIGINT);
    signals_.add(SIGHUP);
    on_signal_ = [this](const asio::error_code& ec, int sig) {
      if (ec) return;
      if (sig == SIGINT && ++sigint_count_ > 1) {
        spdlog::warn("second SIGINT: exiting now");
        stop_now();
        return;
      }
      if (sig == SIGHUP) {
        spdlog::info("SIGHUP: configuration reload is not implemented yet; ignoring");
      } else {
        spdlog::info("{}: draining for up to {} s", sig == SIGTERM ? "SIGTERM" : "SIGINT",
                     options_.drain_time.count());
        begin_drain();
      }
      signals_.async_wait(on_signal_);
    };
    signals_.async_wait(on_signal_);
  }
  live_.set(1);
  spdlog::info("sluice {} started: {} worker(s), {} listener(s), {} cluster(s)", SLUICE_VERSION,
               workers_.size(), listener_endpoints_.size(), clusters_.size());
  for (size_t i = 0; i < listener_endpoints_.size(); ++i) {
    spdlog::info("listener '{}' on {}", bootstrap_->listeners[i].name,
                 net::endpoint_to_string(listener_endpoints_[i]));
  }
  if (admin_) spdlog::info("admin on port {}", admin_->port());
  auto guard = asio::make_work_guard(main_loop_);
  {
    // The singletons' thread: their ticks and callouts run on this loop.
    wasm::ScopedThreadLoop wasm_loop(main_loop_, main_http_client_.get());
    start_singletons();
    main_loop_.run();
    wasm::release_thread_instances();  // the singletons' VMs, here on their own thread
  }
  live_.set(0);
  for (auto& w : workers_) w->stop();
  spdlog::info("sluice stopped");
}

void Server::start_singletons() {
  for (const auto& plugin : singletons_) {
    if (!plugin->running_on_this_thread()) {
      // Its canary started at load; a failure here is logged (by the plugin) and not fatal.
      spdlog::error("bootstrap extension '{}' did not start on the main thread",
                    plugin->spec().name);
    } else {
      spdlog::info("bootstrap extension '{}' running (singleton, main thread)",
                   plugin->spec().name);
    }
  }
}

void Server::schedule_dns_refresh(size_t i) {
  if (dns_timers_.size() <= i) dns_timers_.resize(clusters_.size());
  if (!dns_timers_[i]) dns_timers_[i] = std::make_unique<asio::steady_timer>(main_loop_);
  auto& timer = *dns_timers_[i];
  timer.expires_after(clusters_[i]->config().dns_refresh_rate);
  timer.async_wait([this, i](const asio::error_code& ec) {
    if (ec || draining_) return;
    auto& info = *clusters_[i];
    info.stats().update_attempt.inc();
    std::string error;
    upstream::HostSet hosts = upstream::resolve_hosts(info.config(), &error);
    if (!error.empty() && hosts.empty()) {
      // Keep the last good answer: a DNS hiccup must not empty a cluster.
      info.stats().update_failure.inc();
      spdlog::warn("cluster '{}': DNS refresh failed: {}", info.name(), error);
    } else {
      info.stats().update_success.inc();
      bool changed = hosts.size() != host_sets_[i].size();
      for (size_t h = 0; !changed && h < hosts.size(); ++h) {
        changed = hosts[h]->endpoint != host_sets_[i][h]->endpoint;
      }
      if (changed) {
        spdlog::info("cluster '{}': {} host(s) after DNS refresh", info.name(), hosts.size());
        carry_host_health(info, host_sets_[i], hosts);
        host_sets_[i] = hosts;
        if (health_checkers_[i]) health_checkers_[i]->set_hosts(hosts);
        info.stats().membership_total.set(static_cast<int64_t>(hosts.size()));
        refresh_membership_healthy(i);
        if (main_clusters_) main_clusters_->set_hosts(info.name(), hosts);
        for (auto& w : workers_) {
          Worker* worker = w.get();
          w->post(
              [worker, name = info.name(), hosts] { worker->clusters().set_hosts(name, hosts); });
        }
      }
    }
    schedule_dns_refresh(i);
  });
}

// A host that stays (same address) keeps its health across a DNS refresh; an ejected host that
// goes away gives its ejection slot back.
void Server::carry_host_health(upstream::ClusterInfo& info, const upstream::HostSet& before,
                               const upstream::HostSet& after) {
  for (const auto& old : before) {
    bool kept = false;
    for (const auto& h : after) {
      if (h->endpoint != old->endpoint) continue;
      kept = true;
      h->health_flags.store(old->health_flags.load());
      h->consecutive_5xx.store(old->consecutive_5xx.load());
      h->ejections.store(old->ejections.load());
      h->ejected_until_ms.store(old->ejected_until_ms.load());
    }
    if (!kept && info.outlier()) info.outlier()->host_removed(*old);
  }
}

void Server::refresh_membership_healthy(size_t i) {
  int64_t healthy = 0;
  for (const auto& h : host_sets_[i]) healthy += h->healthy() ? 1 : 0;
  clusters_[i]->stats().membership_healthy.set(healthy);
}

// Ejected hosts come back when their time is up (checked every outlier_detection.interval).
void Server::schedule_outlier_sweep(size_t i) {
  auto& timer = *outlier_timers_[i];
  timer.expires_after(clusters_[i]->outlier()->interval());
  timer.async_wait([this, i](const asio::error_code& ec) {
    if (ec) return;
    clusters_[i]->outlier()->sweep(host_sets_[i]);
    refresh_membership_healthy(i);
    schedule_outlier_sweep(i);
  });
}

void Server::shutdown() {
  asio::post(main_loop_, [this] { begin_drain(); });
}

void Server::stop_now() {
  asio::post(main_loop_, [this] {
    for (auto& t : dns_timers_) {
      if (t) t->cancel();
    }
    main_loop_.stop();
  });
}

void Server::quit() { stop_now(); }

void Server::begin_drain() {
  if (draining_) return;
  draining_ = true;
  health_check_failed_ = true;
  if (admin_) admin_->close();
  for (auto& w : workers_) w->drain();
  const auto deadline = std::chrono::steady_clock::now() + options_.drain_time;
  // Poll until every connection is gone or the drain time is up.
  drain_check_ = [this, deadline]() {
    drain_timer_.expires_after(std::chrono::milliseconds(50));
    drain_timer_.async_wait([this, deadline](const asio::error_code& ec) {
      if (ec) return;
      size_t open = 0;
      for (auto& w : workers_) {
        std::promise<size_t> p;
        auto f = p.get_future();
        w->post([&p, worker = w.get()] { p.set_value(worker->connection_count()); });
        open += f.get();
      }
      if (open == 0 || std::chrono::steady_clock::now() >= deadline) {
        if (open) spdlog::info("drain time over: closing {} connection(s)", open);
        finish_shutdown();
        return;
      }
      drain_check_();
    });
  };
  drain_check_();
}

void Server::finish_shutdown() {
  for (auto& t : dns_timers_) {
    if (t) t->cancel();
  }
  tls_reloader_.stop();
  for (auto& hc : health_checkers_) {
    if (hc) hc->stop();
  }
  for (auto& t : outlier_timers_) {
    if (t) t->cancel();
  }
  main_loop_.stop();
}

void Server::refresh_server_stats() {
  uptime_.set(std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now() -
                                                               start_time_)
                  .count());
  state_.set(draining_ ? 1 : 0);
}

std::string Server::server_info_json() {
  const auto uptime = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now() - start_time_)
                          .count();
  const auto& n = bootstrap_->node;
  return str_cat("{\"version\":", json_str(str_cat("sluice/", SLUICE_VERSION)),
                 ",\"state\":", json_str(health_check_failed_ ? "DRAINING" : "LIVE"),
                 ",\"uptime_current_epoch\":", json_str(str_cat(uptime, "s")),
                 ",\"uptime_all_epochs\":", json_str(str_cat(uptime, "s")),
                 ",\"hot_restart_version\":\"disabled\"",
                 ",\"command_line_options\":{\"concurrency\":", options_.concurrency,
                 ",\"drain_time\":", json_str(str_cat(options_.drain_time.count(), "s")),
                 ",\"command_line\":", json_str(options_.command_line), "}",
                 ",\"node\":{\"id\":", json_str(n.id), ",\"cluster\":", json_str(n.cluster),
                 ",\"metadata\":", n.metadata_json,
                 ",\"locality\":{\"region\":", json_str(n.locality_region),
                 ",\"zone\":", json_str(n.locality_zone),
                 ",\"sub_zone\":", json_str(n.locality_sub_zone), "}}}\n");
}

std::string Server::config_dump_json() {
  return str_cat(
      "{\"configs\":[{\"@type\":\"type.googleapis.com/envoy.admin.v3.BootstrapConfigDump\","
      "\"bootstrap\":",
      bootstrap_->source_json.empty() ? "{}" : bootstrap_->source_json, "}]}\n");
}

std::string Server::clusters_text(bool json) {
  std::string out = json ? "{\"cluster_statuses\":[" : "";
  for (size_t i = 0; i < clusters_.size(); ++i) {
    const auto& info = *clusters_[i];
    const std::string& name = info.name();
    const auto& cb = info.config().circuit_breakers;
    if (json) {
      str_append(&out, i ? "," : "", "{\"name\":", json_str(name), ",\"host_statuses\":[");
      for (size_t h = 0; h < host_sets_[i].size(); ++h) {
        const auto& host = *host_sets_[i][h];
        str_append(&out, h ? "," : "", "{\"address\":{\"socket_address\":{\"address\":",
                   json_str(host.endpoint.address().to_string()),
                   ",\"port_value\":", host.endpoint.port(), "}},\"weight\":", host.weight,
                   ",\"health_status\":{\"eds_health_status\":\"HEALTHY\"",
                   host.health_flags & upstream::Host::kFailedActiveHc
                       ? ",\"failed_active_health_check\":true"
                       : "",
                   host.health_flags & upstream::Host::kFailedOutlierCheck
                       ? ",\"failed_outlier_check\":true"
                       : "",
                   "}}");
      }
      out += "]}";
      continue;
    }
    str_append(&out, name, "::default_priority::max_connections::", cb.max_connections, "\n", name,
               "::default_priority::max_pending_requests::", cb.max_pending_requests, "\n", name,
               "::default_priority::max_requests::", cb.max_requests, "\n", name,
               "::default_priority::max_retries::", cb.max_retries, "\n");
    for (const auto& host : host_sets_[i]) {
      const uint32_t flags = host->health_flags.load();
      std::string health;
      if (flags & upstream::Host::kFailedActiveHc) health += "/failed_active_hc";
      if (flags & upstream::Host::kFailedOutlierCheck) health += "/failed_outlier_check";
      str_append(&out, name, "::", host->address, "::weight::", host->weight, "\n", name,
                 "::", host->address, "::health_flags::", health.empty() ? "healthy" : health,
                 "\n");
    }
  }
  if (json) out += "]}\n";
  return out;
}

std::string Server::listeners_text(bool json) {
  std::string out = json ? "{\"listener_statuses\":[" : "";
  for (size_t i = 0; i < listener_endpoints_.size(); ++i) {
    const auto& name = bootstrap_->listeners[i].name;
    const auto& ep = listener_endpoints_[i];
    if (json) {
      str_append(&out, i ? "," : "", "{\"name\":", json_str(name),
                 ",\"local_address\":{\"socket_address\":{\"address\":",
                 json_str(ep.address().to_string()), ",\"port_value\":", ep.port(), "}}}");
    } else {
      str_append(&out, name, "::", net::endpoint_to_string(ep), "\n");
    }
  }
  if (json) out += "]}\n";
  return out;
}

}  // namespace sluice::server
