#include "server/worker.h"

#include <openssl/x509_vfy.h>

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

#include <spdlog/spdlog.h>

#include "accesslog/file_sink.h"
#include "wasm/plugin.h"
#include "wasm/thread_loop.h"

namespace sluice::server {

Worker::Worker(int index, const std::vector<std::unique_ptr<upstream::ClusterInfo>>& clusters,
               std::vector<std::shared_ptr<wasm::Plugin>> plugins)
    : index_(index),
      // One thread runs this loop and does all of its socket I/O: asio may skip its per-socket
      // locks. The scheduler stays locked: the main thread posts to workers.
      loop_(ASIO_CONCURRENCY_HINT_UNSAFE_IO),
      clusters_(clusters, &loop_, static_cast<uint64_t>(index) * 7919 + 1),
      rng_(std::random_device{}() + static_cast<uint64_t>(index)),
      plugins_(std::move(plugins)) {}

Worker::~Worker() { stop(); }

std::string Worker::bind_listener(std::shared_ptr<const ListenerRuntime> listener,
                                  std::unique_ptr<Acceptor>* out) {
  const auto endpoint = listener->endpoint;
  auto a =
      std::make_unique<Acceptor>(Acceptor{std::move(listener), asio::ip::tcp::acceptor(loop_), {}});
  asio::error_code ec;
  a->acceptor.open(endpoint.protocol(), ec);
  if (!ec) a->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) {
    int one = 1;
    if (setsockopt(a->acceptor.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
      ec = asio::error_code(errno, asio::system_category());
    }
  }
  if (!ec) a->acceptor.bind(endpoint, ec);
  if (!ec) a->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return ec.message();
  refresh_slots(*a);
  *out = std::move(a);
  return "";
}

std::string Worker::add_listener(std::shared_ptr<const ListenerRuntime> listener) {
  std::unique_ptr<Acceptor> a;
  if (std::string err = bind_listener(std::move(listener), &a); !err.empty()) return err;
  acceptors_.push_back(std::move(a));
  return "";
}

void Worker::refresh_slots(Acceptor& a) {
  const auto& chains = a.listener->chains;
  for (size_t i = chains.size(); i < a.slots.size(); ++i) a.slots[i]->current = nullptr;
  a.slots.resize(chains.size());
  for (size_t i = 0; i < chains.size(); ++i) {
    if (!a.slots[i]) a.slots[i] = std::make_shared<http::HttpConfigSlot>();
    a.slots[i]->current = chains[i].http;
  }
}

void Worker::reconfigure(std::shared_ptr<Reconfiguration> update) {
  post([this, update = std::move(update)] { apply(*update); });
}

void Worker::apply(Reconfiguration& update) {
  if (draining_) return;  // shutting down: the acceptors are closed already
  plugins_ = std::move(update.plugins);
  start_plugins();
  size_t kept = 0, removed = 0;
  for (auto it = acceptors_.begin(); it != acceptors_.end();) {
    Acceptor& a = **it;
    auto same = std::find_if(update.listeners.begin(), update.listeners.end(), [&](const auto& l) {
      return a.listener->same_socket(l->name, l->endpoint);
    });
    if (same != update.listeners.end()) {
      a.listener = *same;
      refresh_slots(a);
      ++kept;
      ++it;
      continue;
    }
    asio::error_code ec;
    a.acceptor.close(ec);
    for (auto& slot : a.slots) slot->current = nullptr;
    removed_acceptors_.push_back(std::move(*it));
    it = acceptors_.erase(it);
    ++removed;
  }
  for (auto& a : update.new_acceptors) {
    if (started_) accept(*a);
    acceptors_.push_back(std::move(a));
  }
  // HTTP connections of chains that are gone: finish their stream and close.
  std::vector<std::shared_ptr<http::DownstreamConnection>> orphans;
  for (auto& [_, c] : connections_) {
    if (c.slot && !c.slot->current) orphans.push_back(c.connection);
  }
  for (auto& c : orphans) c->start_drain();
  spdlog::debug("worker {}: reconfigured: {} listener(s) kept, {} added, {} removed", index_, kept,
                update.new_acceptors.size(), removed);
  wasm::release_idle_instances(plugins_);
}

void Worker::start() {
  started_ = true;
  for (auto& a : acceptors_) accept(*a);
  schedule_log_flush();
  schedule_plugin_sweep();
  thread_ = std::thread([this] {
    // The Wasm host arms plugin timers on this loop and posts queue notifications to it.
    wasm::ScopedThreadLoop wasm_loop(loop_, &async_client_);
    start_plugins();
    auto guard = asio::make_work_guard(loop_);
    loop_.run();
  });
}

// Every plugin gets its instance on this thread now rather than on its first stream, so its
// ticks and queue consumers run without traffic. A plugin that cannot start is logged (and
// remembered) by running_on_this_thread; its streams then get its failure policy.
void Worker::start_plugins() {
  size_t started = 0;
  for (const auto& plugin : plugins_) {
    if (plugin->running_on_this_thread()) ++started;
  }
  if (!plugins_.empty()) {
    spdlog::debug("worker {}: {} of {} Wasm plugin(s) started", index_, started, plugins_.size());
  }
}

void Worker::accept(Acceptor& a) {
  a.acceptor.async_accept([this, &a](const asio::error_code& ec, asio::ip::tcp::socket socket) {
    if (ec) {
      if (ec == asio::error::operation_aborted || draining_ || !a.acceptor.is_open()) return;
      // EMFILE and friends: log and keep accepting; the listener must not die.
      spdlog::warn("listener {}: accept failed: {}", a.listener->name, ec.message());
    } else if (const Runtime& rt = a.listener; rt->balancer) {
      // Counted where it goes (the count the connection holds releases it); a worker without
      // peers (outside a server) keeps it.
      const size_t self = static_cast<size_t>(index_);
      size_t target = self;
      if (peers_) {
        target = rt->balancer->pick(self);
      } else {
        rt->balancer->add(self);
      }
      if (target == self) {
        serve_accepted(a, std::move(socket));
      } else {
        // Handed over as a file descriptor: the socket object belongs to this loop.
        asio::error_code release_ec;
        const int fd = socket.release(release_ec);
        if (release_ec) {
          rt->balancer->release(target);
        } else {
          Worker* to = (*peers_)[target].get();
          auto handed = std::make_shared<HandedOver>(fd, rt, target);
          to->post([to, handed] { to->adopt(*handed); });
        }
      }
    } else {
      serve_accepted(a, std::move(socket));
    }
    if (!draining_ && a.acceptor.is_open()) accept(a);
  });
}

namespace {

// Counts a downstream connection on its worker while the connection object lives.
struct ConnectionCount {
  ConnectionCount(const ListenerRuntime& rt, size_t worker)
      : worker(worker),
        balancer(rt.balancer),
        active(worker < rt.worker_stats.size() ? rt.worker_stats[worker].active : stats::Gauge()) {
    if (worker < rt.worker_stats.size()) rt.worker_stats[worker].total.inc();
    if (active.valid()) active.inc();
  }
  ~ConnectionCount() {
    if (active.valid()) active.dec();
    if (balancer) balancer->release(worker);
  }
  ConnectionCount(const ConnectionCount&) = delete;
  ConnectionCount& operator=(const ConnectionCount&) = delete;

  size_t worker;
  std::shared_ptr<ConnectionBalancer> balancer;  // the one that counted it
  stats::Gauge active;
};

}  // namespace

void Worker::serve_accepted(Acceptor& a, asio::ip::tcp::socket socket) {
  Runtime rt = a.listener;
  auto conn = std::make_shared<net::Connection>(std::move(socket), rt->buffer_limit);
  conn->keep_until_destroyed(std::make_shared<ConnectionCount>(*rt, static_cast<size_t>(index_)));
  if (rt->tls_chains && rt->plain_chain >= 0) {
    detect_tls(a, std::move(rt), std::move(conn));
  } else if (rt->tls_chains) {
    start_tls(a, std::move(rt), std::move(conn));
  } else {
    serve(a, std::move(rt), std::move(conn), 0);
  }
}

Worker::HandedOver::~HandedOver() {
  // Never adopted (the target's loop stopped first): closed, and no longer counted.
  if (fd < 0) return;
  ::close(fd);
  rt->balancer->release(worker);
}

void Worker::adopt(HandedOver& handed) {
  const Runtime rt = handed.rt;
  const int fd = std::exchange(handed.fd, -1);
  auto it = std::find_if(acceptors_.begin(), acceptors_.end(), [&](const auto& a) {
    return a->listener->same_socket(rt->name, rt->endpoint);
  });
  asio::ip::tcp::socket socket(loop_);
  asio::error_code ec;
  if (!draining_ && it != acceptors_.end()) socket.assign(rt->endpoint.protocol(), fd, ec);
  if (draining_ || it == acceptors_.end() || ec) {
    ::close(fd);
    rt->balancer->release(static_cast<size_t>(index_));
    return;
  }
  // pick() counted it for this worker already; the count the connection holds releases it
  // from the balancer it came through, this acceptor's own after a reload.
  if (const auto& now = (*it)->listener->balancer; now != rt->balancer) {
    rt->balancer->release(static_cast<size_t>(index_));
    if (now) now->add(static_cast<size_t>(index_));
  }
  serve_accepted(**it, std::move(socket));
}

void Worker::detect_tls(Acceptor& a, Runtime rt, std::shared_ptr<net::Connection> conn) {
  net::Connection* key = conn.get();
  handshaking_.emplace(key, conn);
  // A client that sends nothing is cut off like a stalled handshake.
  auto timer = std::make_shared<asio::steady_timer>(loop_);
  timer->expires_after(rt->tls->handshake_timeout);
  timer->async_wait([this, key](const asio::error_code& ec) {
    if (ec) return;
    if (auto it = handshaking_.find(key); it != handshaking_.end()) {
      asio::error_code ignored;
      it->second->socket().cancel(ignored);
    }
  });
  conn->socket().async_wait(
      asio::socket_base::wait_read, [this, &a, rt, key, timer](const asio::error_code& ec) {
        timer->cancel();
        auto it = handshaking_.find(key);
        if (it == handshaking_.end()) return;  // the worker stopped
        std::shared_ptr<net::Connection> conn = std::move(it->second);
        handshaking_.erase(it);
        unsigned char first = 0;
        const ssize_t n =
            ec ? -1 : ::recv(conn->socket().native_handle(), &first, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n <= 0) {  // timed out, an error, or the client left without a byte
          conn->close(false);
          return;
        }
        if (first == 0x16) {  // a TLS handshake record: a ClientHello follows
          start_tls(a, rt, std::move(conn));
        } else {
          serve(a, rt, std::move(conn), static_cast<size_t>(rt->plain_chain));
        }
      });
}

// HTTP starts once the handshake is done, on the filter chain it chose by SNI. A failed one
// drops the connection, counted in ssl.connection_error (or no_filter_chain_match) only.
void Worker::start_tls(Acceptor& a, Runtime rt, std::shared_ptr<net::Connection> conn) {
  net::Connection* key = conn.get();
  handshaking_.emplace(key, conn);
  // The certificates now (a reload of them replaces the acceptor's runtime), and the chain
  // they choose indexes rt's chains: both from one runtime.
  rt = a.listener;
  conn->start_tls_server(
      rt->tls_chains, rt->tls->handshake_timeout, [this, &a, rt, key](const asio::error_code& ec) {
        auto it = handshaking_.find(key);
        if (it == handshaking_.end()) return;  // the worker stopped
        std::shared_ptr<net::Connection> conn = std::move(it->second);
        handshaking_.erase(it);
        const auto& tls = rt->tls;
        if (ec) {
          if (conn->tls_no_chain_match()) {
            tls->no_filter_chain_match.inc();
          } else {
            tls->connection_error.inc();
            // A client certificate that verified but carries none of the required SANs.
            if (conn->tls_verify_result() == X509_V_ERR_HOSTNAME_MISMATCH) {
              tls->fail_verify_san.inc();
            }
          }
          spdlog::debug("TLS handshake with {} failed: {}", conn->remote_address(), ec.message());
          conn->close(false);
          return;
        }
        tls->handshake.inc();
        if (conn->tls_info().session_reused) tls->session_reused.inc();
        const auto chain = static_cast<size_t>(conn->tls_chain());
        serve(a, rt, std::move(conn), chain);
      });
}

void Worker::serve(Acceptor& a, Runtime rt, std::shared_ptr<net::Connection> conn, size_t chain) {
  const auto& c = rt->chains.at(chain);
  if (c.network_filters.empty()) {
    start_terminal(a, std::move(rt), std::move(conn), chain);
    return;
  }
  std::vector<std::unique_ptr<net::ConnectionFilter>> filters;
  for (const auto& f : c.network_filters) {
    if (auto filter = f->create_filter()) filters.push_back(std::move(filter));
  }
  if (filters.empty()) {  // every plugin failed open
    start_terminal(a, std::move(rt), std::move(conn), chain);
    return;
  }
  net::Connection* key = conn.get();
  conn->install_filters(std::move(filters));
  held_.emplace(key, conn);
  conn->filters()->start(
      [this, &a, rt, key, chain] {
        auto it = held_.find(key);
        if (it == held_.end()) return;
        std::shared_ptr<net::Connection> held = std::move(it->second);
        held_.erase(it);
        start_terminal(a, rt, std::move(held), chain);
      },
      [this, key] {
        // Closed while held: release it on a later turn (its close is on the call stack).
        auto it = held_.find(key);
        if (it == held_.end()) return;
        asio::post(loop_, [keep = std::move(it->second)] {});
        held_.erase(it);
      });
}

void Worker::start_terminal(Acceptor& a, Runtime rt, std::shared_ptr<net::Connection> conn,
                            size_t chain) {
  const auto& c = rt->chains.at(chain);
  if (c.tcp) {
    auto session = std::make_shared<tcp::TcpProxySession>(*this, c.tcp, std::move(conn));
    tcp_sessions_.emplace(session.get(), session);
    session->start();
    return;
  }
  using Codec = config::HttpConnectionManager::Codec;
  const Codec codec = c.http->config.codec_type;
  // HTTP/2: configured, or chosen by ALPN. AUTO without ALPN also detects the HTTP/2 preface
  // (prior knowledge) on the first bytes (HttpConnection::detect_http2).
  // The chain's slot on this acceptor: connections follow reloads of it. (A connection accepted
  // before its listener lost this chain in a reload finds it cleared, and drains.)
  std::shared_ptr<http::HttpConfigSlot> slot =
      chain < a.slots.size() ? a.slots[chain] : std::make_shared<http::HttpConfigSlot>();
  if (codec == Codec::Http2 ||
      (codec == Codec::Auto && conn->tls() && conn->tls_info().alpn == "h2")) {
    auto h2 = std::make_shared<http::Http2ServerConnection>(*this, c.http, std::move(conn));
    h2->follow(slot);
    connections_.emplace(h2.get(), HttpEntry{h2, c.http, slot});
    h2->start();
    return;
  }
  auto http = std::make_shared<http::HttpConnection>(*this, c.http, std::move(conn));
  http->follow(slot);
  connections_.emplace(http.get(), HttpEntry{http, c.http, slot});
  http->start();
}

void Worker::switch_to_http2(http::DownstreamConnection* http1,
                             std::shared_ptr<net::Connection> conn, std::string received) {
  auto it = connections_.find(http1);
  if (it == connections_.end()) return;
  auto config = it->second.config;
  auto slot = std::move(it->second.slot);
  asio::post(loop_, [keep = std::move(it->second.connection)] {});  // on the call stack
  connections_.erase(it);
  auto h2 = std::make_shared<http::Http2ServerConnection>(*this, config, std::move(conn));
  if (slot) h2->follow(slot);
  connections_.emplace(h2.get(), HttpEntry{h2, config, slot});
  h2->start(std::move(received), /*handed_over=*/true);
}

void Worker::tcp_session_closed(tcp::TcpProxySession* session) {
  auto it = tcp_sessions_.find(session);
  if (it == tcp_sessions_.end()) return;
  // Release on a later turn: the session is on the call stack.
  asio::post(loop_, [keep = std::move(it->second)] {});
  tcp_sessions_.erase(it);
}

void Worker::update_tls_chains(const std::string& name,
                               std::shared_ptr<const net::TlsFilterChains> chains) {
  post([this, name, chains = std::move(chains)]() mutable {
    for (auto& a : acceptors_) {
      if (a->listener->name != name || !a->listener->tls_chains) continue;
      auto updated = std::make_shared<ListenerRuntime>(*a->listener);
      updated->tls_chains = chains;
      a->listener = std::move(updated);
    }
  });
}

// Access-log lines are staged per thread; hand them to the file writer regularly so a quiet
// worker's lines do not wait for its next request.
void Worker::schedule_log_flush() {
  log_flush_timer_.expires_after(std::chrono::milliseconds(250));
  log_flush_timer_.async_wait([this](const asio::error_code& ec) {
    if (ec) return;
    accesslog::FileSink::flush_thread();
    schedule_log_flush();
  });
}

// Plugins a reload dropped keep their instance here while streams use them; then it stops.
void Worker::schedule_plugin_sweep() {
  plugin_sweep_timer_.expires_after(std::chrono::seconds(1));
  plugin_sweep_timer_.async_wait([this](const asio::error_code& ec) {
    if (ec || draining_) return;
    wasm::release_idle_instances(plugins_);
    wasm::refresh_thread_gauges();
    schedule_plugin_sweep();
  });
}

void Worker::connection_closed(http::DownstreamConnection* conn) {
  auto it = connections_.find(conn);
  if (it == connections_.end()) return;
  // Release on a later turn: the connection is on the call stack.
  asio::post(loop_, [keep = std::move(it->second.connection)] {});
  connections_.erase(it);
}

void Worker::drain() {
  post([this] {
    draining_ = true;
    for (auto& a : acceptors_) {
      asio::error_code ec;
      a->acceptor.close(ec);
    }
    std::vector<std::shared_ptr<http::DownstreamConnection>> conns;
    for (auto& [_, c] : connections_) conns.push_back(c.connection);
    for (auto& c : conns) c->start_drain();
  });
}

void Worker::stop() {
  if (!thread_.joinable()) return;
  post([this] {
    draining_ = true;
    for (auto& a : acceptors_) {
      asio::error_code ec;
      a->acceptor.close(ec);
    }
    std::vector<std::shared_ptr<http::DownstreamConnection>> conns;
    for (auto& [_, c] : connections_) conns.push_back(c.connection);
    for (auto& c : conns) c->close_now();
    for (auto& [_, c] : handshaking_) c->close(false);
    handshaking_.clear();
    std::vector<std::shared_ptr<net::Connection>> held;
    for (auto& [_, c] : held_) held.push_back(c);
    for (auto& c : held) c->close(false);  // their filters end their plugin contexts
    held_.clear();
    std::vector<std::shared_ptr<tcp::TcpProxySession>> sessions;
    for (auto& [_, s] : tcp_sessions_) sessions.push_back(s);
    for (auto& s : sessions) s->close_now();
    tcp_sessions_.clear();
    clusters_.close_idle();
    log_flush_timer_.cancel();
    plugin_sweep_timer_.cancel();
    accesslog::FileSink::flush_thread();
    // Streams are gone: stop this worker's plugin VMs on their own thread.
    wasm::release_thread_instances();
    loop_.stop();
  });
  thread_.join();
  // Handlers still queued own connection objects: destroy them on this (now idle) loop's thread.
  connections_.clear();
  tcp_sessions_.clear();
  held_.clear();
  acceptors_.clear();
  removed_acceptors_.clear();
  loop_.restart();
  loop_.poll();
}

}  // namespace sluice::server
