#include "server/server.h"

#include "upstream/outlier_detector.h"

#include "filters/http/wasm_filter.h"
#include "filters/network/wasm_filter.h"

#include <algorithm>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <future>
#include <optional>
#include <set>
#include <thread>

#include <sys/inotify.h>
#include <unistd.h>

#include <fmt/chrono.h>
#include <spdlog/spdlog.h>
#include "absl/strings/str_join.h"
#include "common/files.h"
#include "common/strings.h"

#include "accesslog/access_log.h"
#include "config/loader.h"
#include "net/connection.h"
#include "server/remote_code.h"
#include "wasm/thread_loop.h"

namespace sluice::server {
namespace {

// "2026-12-03T16:08:06Z", for the admin's JSON.
std::string utc_time(std::chrono::system_clock::time_point t) {
  return fmt::format("{:%Y-%m-%dT%H:%M:%S}Z", fmt::gmtime(std::chrono::system_clock::to_time_t(t)));
}

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
      tls_reloader_(
          main_loop_, std::chrono::seconds(1),
          [this](const std::string& listener, std::shared_ptr<const net::TlsFilterChains> chains) {
            for (auto& w : workers_) w->update_tls_chains(listener, chains);
          }),
      reload_debounce_(main_loop_),
      start_time_(std::chrono::system_clock::now()) {
  if (options_.concurrency <= 0) {
    options_.concurrency = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }
  auto& s = stats::Store::instance();
  live_ = s.gauge(stats::server_stat("live"));
  uptime_ = s.gauge(stats::server_stat("uptime"));
  concurrency_ = s.gauge(stats::server_stat("concurrency"));
  state_ = s.gauge(stats::server_stat("state"));
  const auto reloads = [&](const char* result) {
    return s.counter(stats::MetricName{str_cat("sluice.config_reloads_total.", result),
                                       "sluice.config_reloads_total",
                                       {{"result", result}}});
  };
  reloads_accepted_ = reloads("accepted");
  reloads_rejected_ = reloads("rejected");
  const auto manager = [&](const char* stat) {
    const std::string name = str_cat("listener_manager.", stat);
    return s.counter(stats::MetricName{name, name, {}});
  };
  listeners_added_ = manager("listener_added");
  listeners_removed_ = manager("listener_removed");
}

Server::~Server() {
  remote_fetch_.reset();  // its request belongs to main_http_client_
  for (auto& w : workers_) w->stop();
  inotify_.reset();  // closes inotify_fd_
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

  // Remote module code first: the main loop runs the fetch (nothing else is on it yet).
  if (!remote_code_of(*bootstrap_).empty()) {
    std::vector<std::string> errors;
    bool finished = false;
    auto fetch = fetch_remote_code(main_loop_, *main_http_client_, *bootstrap_,
                                   [&](std::vector<std::string> e) {
                                     errors = std::move(e);
                                     finished = true;
                                     main_loop_.stop();
                                   });
    if (!finished) main_loop_.run();
    main_loop_.restart();
    fetch.reset();
    if (!errors.empty()) {
      std::string all;
      for (const auto& e : errors) str_append(&all, all.empty() ? "" : "; ", e);
      return all;
    }
  }

  auto first = std::make_shared<Snapshot>();
  {
    wasm::ScopedLoadingClient loading_plugins(main_http_client_.get());
    if (std::string err = build_snapshot(bootstrap_, nullptr, first.get()); !err.empty()) {
      return err;
    }
  }
  snapshot_ = first;
  watch_tls_files(*first);

  for (int i = 0; i < options_.concurrency; ++i) {
    auto w = std::make_unique<Worker>(i, clusters_, first->worker_plugins);
    for (size_t c = 0; c < clusters_.size(); ++c) {
      w->clusters().set_hosts(clusters_[c]->name(), host_sets_[c]);
    }
    for (const auto& l : first->listeners) {
      if (std::string err = w->add_listener(l); !err.empty()) {
        return str_cat("listener '", l->name, "': cannot bind ",
                       net::endpoint_to_string(l->endpoint), ": ", err);
      }
    }
    workers_.push_back(std::move(w));
  }
  for (auto& w : workers_) w->set_peers(&workers_);

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

std::string Server::build_snapshot(std::shared_ptr<const config::Bootstrap> bootstrap,
                                   const Snapshot* previous, Snapshot* out) {
  const config::Bootstrap& b = *bootstrap;
  out->bootstrap = bootstrap;
  out->version = previous ? previous->version + 1 : 1;
  // Plugins of the serving snapshot that load the same again are taken as they are.
  wasm::PluginReuse reuse;
  if (previous) {
    for (const auto& p : previous->worker_plugins) reuse.offer(p);
    for (const auto& p : previous->singletons) reuse.offer(p);
  }
  wasm::ScopedPluginReuse reusing(previous ? &reuse : nullptr);
  std::vector<std::shared_ptr<wasm::Plugin>> worker_plugins;

  for (const auto& l : b.listeners) {
    // One HTTP connection manager per filter chain (chains are told apart by SNI).
    std::vector<ListenerRuntime::Chain> chains_rt;
    for (size_t ci = 0; ci < l.filter_chains.size(); ++ci) {
      const auto& chain = l.filter_chains[ci];
      std::shared_ptr<http::HttpListenerConfig> http;
      for (const auto& f : chain.filters) {
        if (const auto* hcm = std::get_if<config::HttpConnectionManager>(&f.config)) {
          http =
              std::make_shared<http::HttpListenerConfig>(*hcm, l.per_connection_buffer_limit_bytes);
          http->config_owner = bootstrap;
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
            worker_plugins.push_back((*filter)->plugin());
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
          worker_plugins.push_back((*filter)->plugin());
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
    // A listener that stays (same name and address) keeps its sockets: no bind needed.
    const bool kept =
        previous && std::any_of(previous->listeners.begin(), previous->listeners.end(),
                                [&](const auto& old) { return old->same_socket(l.name, ep); });
    if (!kept) {
      if (std::string err = probe_bind(ep); !err.empty()) {
        return str_cat("listener '", l.name, "': cannot bind ", net::endpoint_to_string(ep), ": ",
                       err);
      }
    }
    auto rt = std::make_shared<ListenerRuntime>(ListenerRuntime{
        l.name, ep, l.per_connection_buffer_limit_bytes, std::move(chains_rt), nullptr, nullptr});
    auto& store = stats::Store::instance();
    const std::string address = net::endpoint_to_string(ep);  // the listener.<address> stats
    const bool any_tls =
        std::any_of(l.filter_chains.begin(), l.filter_chains.end(),
                    [](const config::FilterChain& c) { return c.tls.has_value(); });
    if (any_tls) {
      for (size_t ci = 0; ci < l.filter_chains.size(); ++ci) {
        if (!l.filter_chains[ci].tls) rt->plain_chain = static_cast<int>(ci);
      }
      auto chains = net::TlsFilterChains::build(l.filter_chains);
      if (!chains) return str_cat("listener '", l.name, "': TLS: ", chains.error());
      rt->tls_chains = std::move(*chains);
      rt->tls = std::make_shared<ListenerTls>();
      // The chain is known only once the ClientHello is read: the longest bound applies.
      std::chrono::milliseconds bound{0};
      for (const auto& chain : l.filter_chains) {
        bound = std::max(bound, chain.transport_socket_connect_timeout);
      }
      if (bound.count() > 0) rt->tls->handshake_timeout = bound;
      rt->tls->handshake = store.counter(stats::listener_stat(address, "ssl.handshake"));
      rt->tls->connection_error =
          store.counter(stats::listener_stat(address, "ssl.connection_error"));
      rt->tls->no_filter_chain_match =
          store.counter(stats::listener_stat(address, "no_filter_chain_match"));
      rt->tls->fail_verify_san =
          store.counter(stats::listener_stat(address, "ssl.fail_verify_san"));
      rt->tls->session_reused = store.counter(stats::listener_stat(address, "ssl.session_reused"));
    }
    for (int w = 0; w < options_.concurrency; ++w) {
      const std::string worker = str_cat("worker_", w, ".");
      rt->worker_stats.push_back(
          {store.counter(stats::listener_stat(address, worker + "downstream_cx_total")),
           store.gauge(stats::listener_stat(address, worker + "downstream_cx_active"))});
    }
    if (l.exact_balance) {
      // A kept listener keeps its balancer: its counts are of the connections still open.
      std::shared_ptr<ConnectionBalancer> kept_balancer;
      if (previous) {
        for (const auto& old : previous->listeners) {
          if (old->same_socket(l.name, ep)) kept_balancer = old->balancer;
        }
      }
      rt->balancer =
          kept_balancer
              ? std::move(kept_balancer)
              : std::make_shared<ConnectionBalancer>(static_cast<size_t>(options_.concurrency));
    }
    out->listeners.push_back(std::move(rt));
  }

  // Background Wasm services: a singleton runs on the main thread, the others on every worker.
  for (const auto& service : b.wasm_services) {
    auto plugin = filters::load_wasm_plugin(service.plugin, b);
    if (!plugin) {
      return str_cat("bootstrap extension '", service.name, "': ", plugin.error());
    }
    (service.singleton ? out->singletons : worker_plugins).push_back(std::move(*plugin));
  }
  out->worker_plugins = std::move(worker_plugins);
  if (previous) {
    spdlog::info("configuration {}: {} of its Wasm plugin(s) unchanged (VMs kept)", out->version,
                 reuse.reused());
  }
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
        reload("SIGHUP");
      } else {
        spdlog::info("{}: draining for up to {} s", sig == SIGTERM ? "SIGTERM" : "SIGINT",
                     options_.drain_time.count());
        begin_drain();
      }
      signals_.async_wait(on_signal_);
    };
    signals_.async_wait(on_signal_);
  }
  if (options_.watch_files) watch_config_files(*snapshot_);
  live_.set(1);
  spdlog::info("sluice {} started: {} worker(s), {} listener(s), {} cluster(s)", SLUICE_VERSION,
               workers_.size(), snapshot_->listeners.size(), clusters_.size());
  for (const auto& l : snapshot_->listeners) {
    spdlog::info("listener '{}' on {}", l->name, net::endpoint_to_string(l->endpoint));
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
  for (const auto& plugin : snapshot_->singletons) {
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
  reload_debounce_.cancel();
  remote_fetch_.reset();
  if (inotify_) {
    asio::error_code ignored;
    inotify_->cancel(ignored);
  }
  for (auto& hc : health_checkers_) {
    if (hc) hc->stop();
  }
  for (auto& t : outlier_timers_) {
    if (t) t->cancel();
  }
  main_loop_.stop();
}

void Server::watch_tls_files(const Snapshot& snapshot) {
  tls_reloader_.unwatch_listeners();
  const auto& listeners = snapshot.bootstrap->listeners;
  for (size_t i = 0; i < listeners.size(); ++i) {
    if (!snapshot.listeners[i]->tls) continue;
    tls_reloader_.watch(listeners[i], net::endpoint_to_string(snapshot.listeners[i]->endpoint));
  }
}

std::string ReloadOutcome::json() const {
  std::string out = str_cat("{\"version\":", version, ",\"state\":",
                            json_str(pending    ? "PENDING"
                                     : accepted ? "ACCEPTED"
                                                : "REJECTED"),
                            ",\"trigger\":", json_str(trigger),
                            ",\"time\":", json_str(utc_time(time)), ",\"errors\":[");
  for (size_t i = 0; i < errors.size(); ++i) str_append(&out, i ? "," : "", json_str(errors[i]));
  out += "]}";
  return out;
}

std::string Server::restart_only_changes(const config::Bootstrap& from,
                                         const config::Bootstrap& to) {
  // What a reload can change; the rest (clusters, admin, node, stats, ...) needs a restart.
  static const std::set<std::string> kReloadable = {"static_resources.listeners",
                                                    "bootstrap_extensions", "sluice"};
  std::set<std::string> sections;
  for (const auto& [k, _] : from.section_json) sections.insert(k);
  for (const auto& [k, _] : to.section_json) sections.insert(k);
  std::string changed;
  for (const auto& k : sections) {
    if (kReloadable.count(k)) continue;
    auto a = from.section_json.find(k);
    auto b = to.section_json.find(k);
    const bool same = a != from.section_json.end() && b != to.section_json.end()
                          ? a->second == b->second
                          : a == from.section_json.end() && b == to.section_json.end();
    if (!same) str_append(&changed, changed.empty() ? "" : ", ", k);
  }
  return changed;
}

ReloadOutcome Server::reject_reload(ReloadOutcome outcome, std::vector<std::string> errors) {
  outcome.errors = std::move(errors);
  outcome.pending = false;
  reloads_rejected_.inc();
  spdlog::error("configuration reload ({}) rejected; version {} keeps serving:", outcome.trigger,
                snapshot_->version);
  for (const auto& e : outcome.errors) spdlog::error("  {}", e);
  last_reload_ = outcome;
  return outcome;
}

ReloadOutcome Server::reload(std::string trigger, std::optional<std::string> overlay_text,
                             std::function<void(const ReloadOutcome&)> on_done) {
  ReloadOutcome outcome;
  outcome.trigger = std::move(trigger);
  outcome.time = std::chrono::system_clock::now();
  outcome.version = snapshot_->version;
  // Every outcome but "pending" ends here; a pending one ends in the fetch callback.
  const auto done = [&](ReloadOutcome o) {
    if (on_done) on_done(o);
    return o;
  };
  const auto reject = [&](std::vector<std::string> errors) {
    return done(reject_reload(outcome, std::move(errors)));
  };
  if (draining_) return reject({"the server is draining"});
  if (remote_fetch_ && on_done) {
    return reject(
        {"another reload is fetching remote Wasm code: try again when it ends "
         "(/config_dump's last_update)"});
  }
  if (remote_fetch_) {
    // One reload at a time: this one runs when the one fetching code is done.
    reload_again_ = outcome.trigger;
    outcome.pending = true;
    return outcome;
  }

  config::LoadResult loaded;
  std::string source;
  const config::LoadOptions load_options{std::move(overlay_text)};
  if (!options_.config_path.empty()) {
    source = options_.config_path;
    loaded = config::load_from_file(options_.config_path, load_options);
  } else {
    source = "--config-yaml";
    loaded = config::load_from_string(options_.config_yaml, source, load_options);
  }
  for (const auto& w : loaded.warnings) spdlog::warn("{}: {}", source, w.to_string());
  if (!loaded.ok()) {
    std::vector<std::string> errors;
    for (const auto& e : loaded.errors) errors.push_back(str_cat(source, ": ", e.to_string()));
    return reject(std::move(errors));
  }
  if (std::string changed = restart_only_changes(*snapshot_->bootstrap, *loaded.bootstrap);
      !changed.empty()) {
    return reject({str_cat(
        "changes to ", changed,
        " need a restart (a reload changes listeners, bootstrap_extensions and sluice only)")});
  }

  // Remote code not fetched yet: fetch it in the background, then go on (the outcome is
  // PENDING until then; /config_dump's last_update shows the end of it).
  std::shared_ptr<const config::Bootstrap> bootstrap = loaded.bootstrap;
  bool fetched_now = false;
  std::vector<std::string> fetch_errors;
  remote_fetch_ = fetch_remote_code(
      main_loop_, *main_http_client_, *bootstrap,
      [this, &fetched_now, &fetch_errors, bootstrap, outcome,
       on_done](std::vector<std::string> errors) {
        if (!remote_fetch_) {  // still inside fetch_remote_code: nothing needed fetching
          fetched_now = true;
          fetch_errors = std::move(errors);
          return;
        }
        asio::post(main_loop_, [done = std::move(remote_fetch_)] {});  // on the call stack
        ReloadOutcome end;
        if (draining_) {
          end = reject_reload(outcome, {"the server is draining"});
        } else if (!errors.empty()) {
          end = reject_reload(outcome, std::move(errors));
        } else {
          end = apply_reload(bootstrap, outcome);
        }
        if (on_done) on_done(end);
        if (!reload_again_.empty() && !draining_) {
          asio::post(main_loop_, [this, trigger = std::move(reload_again_)]() mutable {
            reload(std::move(trigger));
          });
          reload_again_.clear();
        }
      });
  if (!fetched_now) {
    outcome.pending = true;
    last_reload_ = outcome;
    spdlog::info("configuration reload ({}): fetching remote Wasm code first", outcome.trigger);
    return outcome;
  }
  remote_fetch_.reset();
  if (!fetch_errors.empty()) return reject(std::move(fetch_errors));
  return done(apply_reload(bootstrap, outcome));
}

ReloadOutcome Server::apply_reload(std::shared_ptr<const config::Bootstrap> bootstrap,
                                   ReloadOutcome outcome) {
  const auto reject = [&](std::vector<std::string> errors) {
    return reject_reload(outcome, std::move(errors));
  };
  outcome.pending = false;
  auto next = std::make_shared<Snapshot>();
  if (std::string err = build_snapshot(bootstrap, snapshot_.get(), next.get()); !err.empty()) {
    return reject({err});
  }
  // New listeners get their sockets on every worker before anything switches.
  std::vector<std::shared_ptr<Worker::Reconfiguration>> updates;
  size_t added = 0, kept_count = 0;
  for (size_t w = 0; w < workers_.size(); ++w) {
    auto update = std::make_shared<Worker::Reconfiguration>();
    update->listeners = next->listeners;
    update->plugins = next->worker_plugins;
    updates.push_back(std::move(update));
  }
  for (size_t i = 0; i < next->listeners.size(); ++i) {
    const auto& l = next->listeners[i];
    const bool kept =
        std::any_of(snapshot_->listeners.begin(), snapshot_->listeners.end(),
                    [&](const auto& old) { return old->same_socket(l->name, l->endpoint); });
    if (kept) {
      ++kept_count;
      continue;
    }
    ++added;
    for (size_t w = 0; w < workers_.size(); ++w) {
      std::unique_ptr<Worker::Acceptor> acceptor;
      if (std::string err = workers_[w]->bind_listener(l, &acceptor); !err.empty()) {
        return reject({str_cat("listener '", l->name, "': cannot bind ",
                               net::endpoint_to_string(l->endpoint), ": ", err)});
      }
      updates[w]->new_acceptors.push_back(std::move(acceptor));
    }
  }
  const size_t removed = snapshot_->listeners.size() - kept_count;

  // Switch. Each worker applies it on its own thread; what was in flight finishes on the old.
  for (size_t w = 0; w < workers_.size(); ++w) workers_[w]->reconfigure(std::move(updates[w]));
  for (const auto& plugin : next->singletons) {
    if (!plugin->running_on_this_thread()) {
      spdlog::error("bootstrap extension '{}' did not start on the main thread",
                    plugin->spec().name);
    }
  }
  wasm::release_idle_instances(next->singletons);
  watch_tls_files(*next);
  listeners_added_.inc(added);
  listeners_removed_.inc(removed);
  snapshot_ = next;
  if (options_.watch_files) watch_config_files(*snapshot_);  // modules may be new
  reloads_accepted_.inc();
  outcome.accepted = true;
  outcome.version = next->version;
  last_reload_ = outcome;
  spdlog::info(
      "configuration reload ({}) accepted: version {}; {} listener(s) kept, {} added, {} removed",
      outcome.trigger, next->version, kept_count, added, removed);
  return outcome;
}

void Server::request_reload(std::string trigger) {
  asio::post(main_loop_,
             [this, trigger = std::move(trigger)]() mutable { reload(std::move(trigger)); });
}

std::string Server::reload_config(int* status) {
  ReloadOutcome outcome = reload("admin");
  *status = outcome.pending ? 202 : outcome.accepted ? 200 : 400;
  return outcome.json() + "\n";
}

std::string Server::admin_token() const { return snapshot_->bootstrap->sluice.admin.token; }

std::string Server::deployed_plugins_json() {
  const config::Bootstrap& b = *snapshot_->bootstrap;
  std::string out =
      str_cat("{\"overlay_path\":", json_str(b.sluice.overlay_path), ",\"plugins\":[");
  for (size_t i = 0; i < b.overlay.plugins.size(); ++i) {
    str_append(&out, i ? "," : "", config::deployed_plugin_json(b.overlay.plugins[i]));
  }
  return out + "]}\n";
}

namespace {

admin::AdminResponse json_error(int status, std::string_view message) {
  return {status, "application/json", str_cat("{\"error\":", json_str(message), "}\n")};
}

// The listeners of `b` with an HTTP connection manager, by name.
std::vector<std::string> http_listeners(const config::Bootstrap& b) {
  std::vector<std::string> names;
  for (const auto& l : b.listeners) {
    const bool http =
        std::any_of(l.filter_chains.begin(), l.filter_chains.end(), [](const auto& c) {
          return !c.filters.empty() &&
                 std::holds_alternative<config::HttpConnectionManager>(c.filters.back().config);
        });
    if (http) names.push_back(l.name);
  }
  return names;
}

}  // namespace

void Server::deploy_plugin(std::string body, std::function<void(admin::AdminResponse)> done) {
  const config::Bootstrap& b = *snapshot_->bootstrap;
  Result<config::DeployedPlugin> plugin = config::parse_deployed_plugin(body);
  if (!plugin) return done(json_error(400, plugin.error()));
  // Name the listener now, so the overlay keeps saying where the plugin goes.
  const std::vector<std::string> http = http_listeners(b);
  if (plugin->listener.empty()) {
    if (http.size() != 1) {
      return done(json_error(
          400, http.empty() ? "this server has no listener with an HTTP connection manager"
                            : str_cat("name the listener (\"listener\"): one of ",
                                      absl::StrJoin(http, ", "))));
    }
    plugin->listener = http.front();
  } else if (std::find(http.begin(), http.end(), plugin->listener) == http.end()) {
    return done(json_error(400, str_cat("no listener '", plugin->listener,
                                        "' with an HTTP connection manager (there are: ",
                                        absl::StrJoin(http, ", "), ")")));
  }
  plugin->deployed_at = utc_time(std::chrono::system_clock::now());
  config::Overlay next = b.overlay;
  const bool replacing = next.find(plugin->name) != nullptr;
  std::string plugin_json = config::deployed_plugin_json(*plugin);
  const std::string trigger = str_cat("admin: deploy ", plugin->name);
  next.put(std::move(*plugin));
  change_overlay(std::move(next), trigger, replacing ? 200 : 201, std::move(plugin_json),
                 std::move(done));
}

void Server::undeploy_plugin(std::string name, std::function<void(admin::AdminResponse)> done) {
  const config::Bootstrap& b = *snapshot_->bootstrap;
  config::Overlay next = b.overlay;
  const config::DeployedPlugin* p = next.find(name);
  if (p == nullptr) {
    std::vector<std::string> names;
    for (const auto& d : next.plugins) names.push_back(d.name);
    return done(json_error(
        404, str_cat("no deployed plugin '", name,
                     "' (deployed: ", names.empty() ? "none" : absl::StrJoin(names, ", "),
                     "); plugins written in the config file are removed by editing it")));
  }
  std::string plugin_json = config::deployed_plugin_json(*p);
  next.erase(name);
  change_overlay(std::move(next), str_cat("admin: undeploy ", name), 200, std::move(plugin_json),
                 std::move(done));
}

void Server::change_overlay(config::Overlay next, std::string trigger, int accepted_status,
                            std::string plugin_json,
                            std::function<void(admin::AdminResponse)> done) {
  const std::string path = snapshot_->bootstrap->sluice.overlay_path;
  if (path.empty()) {
    return done(json_error(
        400,
        "deploying needs sluice.overlay_path in the config: the file that keeps deployed "
        "plugins across reloads and restarts"));
  }
  if (remote_fetch_) {
    return done(json_error(409,
                           "another reload is fetching remote Wasm code: try again when it ends "
                           "(/config_dump's last_update)"));
  }
  std::string text = config::overlay_json(next);
  reload(std::move(trigger), text,
         [path, text, accepted_status, plugin_json = std::move(plugin_json),
          done = std::move(done)](const ReloadOutcome& outcome) {
           const std::string result =
               str_cat("{\"plugin\":", plugin_json, ",\"reload\":", outcome.json(), "}\n");
           if (!outcome.accepted) {
             done(admin::AdminResponse{400, "application/json", result});
             return;
           }
           // Saved only once running: a plugin that never loaded must not come back at the next
           // start. The reload cannot be taken back here, so a write failure says what to fix.
           if (Status saved = write_file_atomically(path, text); !saved) {
             spdlog::error("deployed plugins are running but not saved: {}", saved.error());
             done(json_error(500, str_cat("applied, but not saved (the next reload or restart "
                                          "will not have it): ",
                                          saved.error())));
             return;
           }
           done(admin::AdminResponse{accepted_status, "application/json", result});
         });
}

// inotify on the folders (not the files): editors save by writing a new file and renaming it
// over the old one, and Kubernetes swaps a symlink; a watch on the file itself would miss both.
void Server::watch_config_files(const Snapshot& snapshot) {
  std::vector<std::string> files;
  const auto absolute = [](const std::string& path) {
    std::error_code ec;
    auto p = std::filesystem::absolute(path, ec);
    return ec ? path : p.lexically_normal().string();
  };
  if (!options_.config_path.empty()) files.push_back(absolute(options_.config_path));
  snapshot.bootstrap->for_each_wasm_plugin([&](const config::WasmPlugin& w) {
    if (!w.code_file.empty()) files.push_back(absolute(w.code_file));
  });
  std::sort(files.begin(), files.end());
  files.erase(std::unique(files.begin(), files.end()), files.end());
  if (files.empty()) return;

  if (inotify_fd_ < 0) {
    inotify_fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (inotify_fd_ < 0) {
      spdlog::warn(
          "cannot watch the configuration files (inotify: {}); reload with SIGHUP or "
          "POST /reload",
          std::strerror(errno));
      return;
    }
    inotify_ = std::make_unique<asio::posix::stream_descriptor>(main_loop_, inotify_fd_);
    on_files_changed();
  }
  std::set<std::string> dirs;
  for (const auto& f : files) dirs.insert(std::filesystem::path(f).parent_path().string());
  for (const auto& d : dirs) {
    const bool known = std::any_of(watched_dirs_.begin(), watched_dirs_.end(),
                                   [&](const auto& w) { return w.second == d; });
    if (known) continue;
    const int wd = inotify_add_watch(inotify_fd_, d.c_str(),
                                     IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE);
    if (wd < 0) {
      spdlog::warn("cannot watch {} for changes: {}", d, std::strerror(errno));
      continue;
    }
    watched_dirs_.emplace_back(wd, d);
  }
  watched_files_ = std::move(files);
}

void Server::on_files_changed() {
  inotify_->async_read_some(asio::buffer(inotify_buffer_), [this](const asio::error_code& ec,
                                                                  size_t n) {
    if (ec) return;  // closed at shutdown
    bool relevant = false;
    for (size_t off = 0; off + sizeof(inotify_event) <= n;) {
      const auto* ev = reinterpret_cast<const inotify_event*>(inotify_buffer_.data() + off);
      off += sizeof(inotify_event) + ev->len;
      if (ev->len == 0) continue;
      for (const auto& [wd, dir] : watched_dirs_) {
        if (wd != ev->wd) continue;
        const std::string path = (std::filesystem::path(dir) / ev->name).string();
        if (std::find(watched_files_.begin(), watched_files_.end(), path) != watched_files_.end()) {
          relevant = true;
        }
      }
    }
    if (relevant && !reload_pending_) {
      // Wait for the writer to finish (several events come for one save).
      reload_pending_ = true;
      reload_debounce_.expires_after(std::chrono::milliseconds(200));
      reload_debounce_.async_wait([this](const asio::error_code& ec) {
        reload_pending_ = false;
        if (!ec && !draining_) reload("file change");
      });
    }
    on_files_changed();
  });
}

std::string Server::wasm_json() {
  const std::shared_ptr<const Snapshot> snap = snapshot_;
  // Each worker describes its own instances, on its own thread.
  using States = std::vector<wasm::ThreadInstanceState>;
  std::vector<std::future<States>> answers;
  for (auto& w : workers_) {
    auto promise = std::make_shared<std::promise<States>>();
    answers.push_back(promise->get_future());
    w->post([promise, plugins = snap->worker_plugins] {
      States states;
      for (const auto& p : plugins) states.push_back(wasm::describe_on_this_thread(*p));
      promise->set_value(std::move(states));
    });
  }
  std::vector<std::optional<States>> per_worker;
  for (auto& a : answers) {
    if (a.wait_for(std::chrono::seconds(2)) == std::future_status::ready) {
      per_worker.push_back(a.get());
    } else {
      per_worker.push_back(std::nullopt);  // a worker stuck longer than any CPU budget allows
    }
  }
  const auto list = [](const std::vector<std::string>& items) {
    std::string out = "[";
    for (size_t i = 0; i < items.size(); ++i) str_append(&out, i ? "," : "", json_str(items[i]));
    return out + "]";
  };
  const auto vm_json = [&list](std::string_view thread, const wasm::ThreadInstanceState& s) {
    return str_cat(
        "{\"thread\":", json_str(thread), ",\"state\":", json_str(s.state),
        ",\"memory_bytes\":", s.memory_bytes, ",\"return_buffer_bytes\":", s.return_buffer_bytes,
        ",\"skipped_callbacks\":", list(s.skipped_callbacks),
        ",\"fused_callbacks\":", list(s.fused_callbacks),
        s.failure.empty() ? "" : ",\"failure\":", s.failure.empty() ? "" : json_str(s.failure),
        "}");
  };
  const auto plugin_json = [&](const wasm::Plugin& p, std::string vms) {
    const wasm::PluginSpec& s = p.spec();
    static constexpr std::string_view kPolicies[] = {"FAIL_CLOSED", "FAIL_OPEN", "FAIL_RELOAD"};
    const wasm::FailureRecord f = s.health->last();
    std::string failure = "null";
    if (f.count) {
      failure = str_cat("{\"time\":", json_str(utc_time(f.time)),
                        ",\"callback\":", json_str(f.callback), ",\"reason\":", json_str(f.reason),
                        ",\"message\":", json_str(f.message), ",\"count\":", f.count, "}");
    }
    return str_cat("{\"name\":", json_str(s.name), ",\"root_id\":", json_str(s.root_id),
                   ",\"vm_id\":", json_str(s.vm_id), ",\"runtime\":", json_str(s.runtime),
                   ",\"code\":", json_str(s.code_origin),
                   ",\"failure_policy\":", json_str(kPolicies[static_cast<int>(s.failure_policy)]),
                   ",\"self_healing\":", s.heal ? "true" : "false",
                   ",\"limits\":{\"memory_limit_mb\":", s.memory_limit_mb,
                   ",\"callback_cpu_ms\":", s.callback_cpu_ms,
                   ",\"startup_cpu_ms\":", s.startup_cpu_ms,
                   "},\"hidden\":{\"request_headers\":", list(s.hide.request_headers),
                   ",\"response_headers\":", list(s.hide.response_headers),
                   ",\"client_address\":", s.hide.client_address ? "true" : "false",
                   "},\"allowed_capabilities\":", list(s.allowed_capabilities), ",\"vms\":[", vms,
                   "],\"last_failure\":", failure, "}");
  };
  std::string out = str_cat("{\"version\":", snap->version, ",\"plugins\":[");
  bool first = true;
  for (size_t i = 0; i < snap->worker_plugins.size(); ++i) {
    const auto& p = snap->worker_plugins[i];
    // A plugin listed twice (two filters naming one plugin object) is shown once.
    bool seen = false;
    for (size_t j = 0; j < i; ++j) seen = seen || snap->worker_plugins[j] == p;
    if (seen) continue;
    std::string vms;
    for (size_t w = 0; w < per_worker.size(); ++w) {
      wasm::ThreadInstanceState unknown;
      unknown.state = "unknown (worker busy)";
      str_append(&vms, w ? "," : "",
                 vm_json(str_cat("worker ", w), per_worker[w] ? (*per_worker[w])[i] : unknown));
    }
    str_append(&out, first ? "" : ",", plugin_json(*p, std::move(vms)));
    first = false;
  }
  for (const auto& p : snap->singletons) {
    str_append(&out, first ? "" : ",",
               plugin_json(*p, vm_json("main", wasm::describe_on_this_thread(*p))));
    first = false;
  }
  return out + "]}\n";
}

void Server::refresh_server_stats() {
  wasm::refresh_thread_gauges();  // the main thread's singletons
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
  const auto& serving = *snapshot_->bootstrap;
  return str_cat(
      "{\"configs\":[{\"@type\":\"type.googleapis.com/envoy.admin.v3.BootstrapConfigDump\","
      "\"bootstrap\":",
      serving.source_json.empty() ? "{}" : serving.source_json,
      "}],\"version\":", snapshot_->version,
      last_reload_.trigger.empty() ? "" : ",\"last_update\":",
      last_reload_.trigger.empty() ? "" : last_reload_.json(), "}\n");
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
  for (size_t i = 0; i < snapshot_->listeners.size(); ++i) {
    const auto& name = snapshot_->listeners[i]->name;
    const auto& ep = snapshot_->listeners[i]->endpoint;
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
