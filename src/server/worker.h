// A worker thread: its own event loop, listening sockets (SO_REUSEPORT: the kernel spreads new
// connections), connections, upstream connection pools and load balancers, and an instance of each
// Wasm plugin. Nothing on a worker's request path is shared with another worker except stats slots
// of its own, circuit breakers, and what plugins share on purpose (Proxy-Wasm shared data/queues).
#pragma once

#include <memory>
#include <random>
#include <thread>
#include <unordered_map>
#include <vector>

#include <asio.hpp>

#include "common/stats.h"
#include "filters/network/wasm_filter.h"
#include "http/async_client.h"
#include "http/conn_manager.h"
#include "http/http2_server.h"
#include "net/tls.h"
#include "server/connection_balancer.h"
#include "tcp/tcp_proxy.h"
#include "upstream/cluster_manager.h"
#include "wasm/plugin.h"

namespace sluice::server {

// A TLS listener's settings and Envoy's listener.<address> counters for it.
struct ListenerTls {
  stats::Counter handshake, connection_error, no_filter_chain_match, fail_verify_san,
      session_reused;
  std::chrono::milliseconds handshake_timeout{10000};
};

struct ListenerRuntime {
  std::string name;
  asio::ip::tcp::endpoint endpoint;
  uint32_t buffer_limit;
  // What serves a filter chain's connections: an HTTP connection manager or a TCP proxy.
  struct Chain {
    std::shared_ptr<const http::HttpListenerConfig> http;
    std::shared_ptr<const tcp::TcpProxyConfig> tcp;
    // Wasm network filters before the terminal one, in config order.
    std::vector<std::shared_ptr<filters::NetworkWasmFilterConfig>> network_filters;
  };
  // One per filter chain, in config order (a plain-text listener has one).
  std::vector<Chain> chains;
  std::shared_ptr<ListenerTls> tls;  // null: plain TCP
  // The chains' TLS contexts; each worker keeps its own pointer, replaced on certificate reload.
  std::shared_ptr<const net::TlsFilterChains> tls_chains;
  // With TLS: the plaintext chain beside the TLS ones (-1: none), for connections whose first
  // byte is not a TLS handshake record.
  int plain_chain = -1;
  // connection_balance_config.exact_balance (null: the kernel spreads connections). Kept by a
  // reload that keeps the listener, with its counts of the open connections.
  std::shared_ptr<ConnectionBalancer> balancer = nullptr;
  // Per worker index: listener.<address>.worker_<i>.downstream_cx_total / _active, as Envoy's.
  struct WorkerStats {
    stats::Counter total;
    stats::Gauge active;
  };
  std::vector<WorkerStats> worker_stats = {};

  // Whether a listener named `other_name` on `other_endpoint` is this one's socket: the one rule
  // a reload uses to keep a listener (socket and connections) rather than bind it anew.
  bool same_socket(std::string_view other_name,
                   const asio::ip::tcp::endpoint& other_endpoint) const {
    return name == other_name && endpoint == other_endpoint;
  }
};

class Worker : public http::WorkerContext, public tcp::TcpProxyOwner {
 public:
  // One listener's socket on this worker, and what it serves now.
  struct Acceptor {
    std::shared_ptr<const ListenerRuntime>
        listener;  // replaced by a reload; connections keep theirs
    asio::ip::tcp::acceptor acceptor;
    // Per filter chain: the HTTP config its connections follow (see http::HttpConfigSlot).
    std::vector<std::shared_ptr<http::HttpConfigSlot>> slots;
  };

  // What a reload hands to a worker (Server::reload).
  struct Reconfiguration {
    // Every listener of the new configuration. Those this worker serves already (same name and
    // address) keep their sockets; the ones it serves and that are not here stop accepting, and
    // their HTTP connections drain.
    std::vector<std::shared_ptr<const ListenerRuntime>> listeners;
    // Sockets bound (bind_listener) for the listeners that are new.
    std::vector<std::unique_ptr<Acceptor>> new_acceptors;
    // Every plugin of the new configuration: new ones start here now; dropped ones stop once no
    // stream uses them.
    std::vector<std::shared_ptr<wasm::Plugin>> plugins;
  };

  // `plugins` start on the worker's thread when it starts, before it serves a request.
  Worker(int index, const std::vector<std::unique_ptr<upstream::ClusterInfo>>& clusters,
         std::vector<std::shared_ptr<wasm::Plugin>> plugins = {});
  ~Worker() override;

  // Binds a socket for `listener` on this worker's loop (any thread; SO_REUSEPORT). Returns an
  // error message or "" with `out` set.
  std::string bind_listener(std::shared_ptr<const ListenerRuntime> listener,
                            std::unique_ptr<Acceptor>* out);
  // Binds and serves `listener` (call before start()). Returns an error message or "".
  std::string add_listener(std::shared_ptr<const ListenerRuntime> listener);
  void start();
  // Stops accepting and drains connections (they close after their current request).
  void drain();
  // Closes everything and stops the loop; joins the thread.
  void stop();
  // From the main thread: new connections to the listener `name` use `chains` (reloaded
  // certificates). Connections already open keep theirs.
  void update_tls_chains(const std::string& name,
                         std::shared_ptr<const net::TlsFilterChains> chains);
  // From the main thread: switch to a new configuration (on this worker's thread, soon).
  void reconfigure(std::shared_ptr<Reconfiguration> update);
  // Runs `fn` on this worker's loop.
  void post(std::function<void()> fn) { asio::post(loop_, std::move(fn)); }
  // Every worker, this one included, by index: where a balanced listener hands connections.
  // Set before start(); the vector outlives the workers' loops.
  void set_peers(const std::vector<std::unique_ptr<Worker>>* peers) { peers_ = peers; }

  // http::WorkerContext
  asio::io_context& loop() override { return loop_; }
  upstream::ClusterManager& clusters() override { return clusters_; }
  bool draining() const override { return draining_; }
  std::mt19937_64& rng() override { return rng_; }
  void connection_closed(http::DownstreamConnection* conn) override;
  void switch_to_http2(http::DownstreamConnection* http1, std::shared_ptr<net::Connection> conn,
                       std::string received) override;
  // tcp::TcpProxyOwner (loop, clusters and rng are shared with WorkerContext)
  void tcp_session_closed(tcp::TcpProxySession* session) override;

  size_t connection_count() const {
    return connections_.size() + handshaking_.size() + tcp_sessions_.size() + held_.size();
  }

 private:
  using Runtime = std::shared_ptr<const ListenerRuntime>;
  void accept(Acceptor& a);
  // Serves a connection accepted on `a` (here, or by another worker that handed it over):
  // counts it for this worker while it lives, then TLS, network filters, HTTP or TCP.
  void serve_accepted(Acceptor& a, asio::ip::tcp::socket socket);
  // A balanced listener's connection one worker accepted for another: its descriptor, and the
  // runtime whose balancer counted it on `worker`. Closed (and uncounted) if never adopted.
  struct HandedOver {
    HandedOver(int fd, Runtime rt, size_t worker) : fd(fd), rt(std::move(rt)), worker(worker) {}
    ~HandedOver();
    HandedOver(const HandedOver&) = delete;
    HandedOver& operator=(const HandedOver&) = delete;
    int fd;
    Runtime rt;
    size_t worker;
  };
  // Serves a handed-over connection on this worker's socket of the same listener, or closes it
  // if it has none now (a reload removed it, or the worker drains).
  void adopt(HandedOver& handed);
  // The connection keeps `rt`, the listener's runtime when it was accepted, to its end.
  void start_tls(Acceptor& a, Runtime rt, std::shared_ptr<net::Connection> conn);
  // A listener with TLS and plaintext chains: waits for the client's first byte (within the
  // handshake timeout) and takes the TLS path for a handshake record, the plaintext chain else.
  void detect_tls(Acceptor& a, Runtime rt, std::shared_ptr<net::Connection> conn);
  // Runs the chain's network filters, then (once they let the connection through) its
  // terminal filter: start_terminal.
  void serve(Acceptor& a, Runtime rt, std::shared_ptr<net::Connection> conn, size_t chain);
  void start_terminal(Acceptor& a, Runtime rt, std::shared_ptr<net::Connection> conn, size_t chain);
  // Points each chain's slot at the acceptor's current runtime (a gone chain's at nothing).
  static void refresh_slots(Acceptor& a);
  void apply(Reconfiguration& update);
  void schedule_log_flush();
  void schedule_plugin_sweep();
  void start_plugins();

  int index_;
  asio::io_context loop_;
  upstream::ClusterManager clusters_;
  // Requests the proxy makes itself (Proxy-Wasm http_call) over clusters_. The plugin instances
  // that use it are destroyed in stop(), on this worker's thread, before it.
  http::AsyncClient async_client_{loop_, clusters_};
  std::mt19937_64 rng_;
  std::vector<std::shared_ptr<wasm::Plugin>> plugins_;
  std::vector<std::unique_ptr<Acceptor>> acceptors_;
  // Listeners a reload removed: closed, kept until the worker stops because connections still
  // in their TLS handshake or network filters refer to them.
  std::vector<std::unique_ptr<Acceptor>> removed_acceptors_;
  // HTTP connections (HTTP/1 or HTTP/2, each the same listener config's).
  struct HttpEntry {
    std::shared_ptr<http::DownstreamConnection> connection;
    std::shared_ptr<const http::HttpListenerConfig> config;
    std::shared_ptr<http::HttpConfigSlot> slot;
  };
  std::unordered_map<http::DownstreamConnection*, HttpEntry> connections_;
  std::unordered_map<tcp::TcpProxySession*, std::shared_ptr<tcp::TcpProxySession>> tcp_sessions_;
  // TLS connections still in their handshake (HTTP starts when it is done).
  std::unordered_map<net::Connection*, std::shared_ptr<net::Connection>> handshaking_;
  // Connections a network filter holds before their terminal filter starts (a plugin waiting
  // for a callout in proxy_on_new_connection).
  std::unordered_map<net::Connection*, std::shared_ptr<net::Connection>> held_;
  std::thread thread_;
  asio::steady_timer log_flush_timer_{loop_};
  // Stops instances of plugins a reload dropped, once no stream uses them; refreshes this
  // worker's share of the per-plugin VM and memory gauges.
  asio::steady_timer plugin_sweep_timer_{loop_};
  bool started_ = false;
  bool draining_ = false;
  const std::vector<std::unique_ptr<Worker>>* peers_ = nullptr;
};

}  // namespace sluice::server
