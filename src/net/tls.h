// TLS (OpenSSL 3 through asio::ssl) for both sides of the proxy:
// - a listener's filter chains as OpenSSL sees them (TlsFilterChains): one server context per
//   chain, the chain picked by the ClientHello's SNI (Envoy's filter_chain_match.server_names);
// - a cluster's client context (TlsClientContext): SNI, CA and SAN checks of the upstream's
//   certificate, a client certificate;
// - what a finished handshake tells about the connection (TlsInfo), for plugins and logs.
// Contexts are immutable once built and shared read-only between workers; a certificate reload
// builds new ones (see server/tls_reloader.h).
#pragma once

#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <asio/ssl.hpp>

#include "common/result.h"
#include "config/bootstrap.h"

namespace sluice::net {

// What the handshake settled: empty strings when not known (a plain TCP connection).
struct TlsInfo {
  std::string version;                     // "TLSv1.3"
  std::string alpn;                        // the negotiated protocol, "" when none
  std::string sni;                         // the server name the client asked for
  bool peer_certificate = false;           // the peer presented one (and it verified)
  bool session_reused = false;             // a resumed session (no full handshake)
  std::string peer_subject;                // RFC 2253 form
  std::string peer_uri_san, peer_dns_san;  // first of each
  std::string peer_sha256;                 // hex digest of the DER certificate
  std::string local_subject;
  std::string local_uri_san;  // first URI SAN of our own certificate (a SPIFFE id in a mesh)
};

class TlsServerContext {
 public:
  // `chain_index` keeps sessions apart: one chain's session never resumes on another.
  // Errors say what OpenSSL refused (the certificate was checked at config load already).
  static Result<std::shared_ptr<TlsServerContext>> create(const config::DownstreamTls& config,
                                                          size_t chain_index);

  asio::ssl::context& context() { return context_; }
  const config::DownstreamTls& config() const { return config_; }

 private:
  explicit TlsServerContext(const config::DownstreamTls& config)
      : context_(asio::ssl::context::tls_server), config_(config) {}
  asio::ssl::context context_;
  config::DownstreamTls config_;
  std::string alpn_wire_;  // the protocols to select from, in ALPN wire format
};

// A TLS listener's filter chains, in config order.
struct TlsFilterChains {
  struct Chain {
    std::vector<std::string> server_names;      // lower case; exact or "*.suffix"; empty: default
    std::shared_ptr<TlsServerContext> context;  // null for the plaintext chain
    bool plaintext = false;  // the listener's chain for clients that do not start a handshake
  };
  std::vector<Chain> chains;  // in config order: an index here is the filter chain's index

  // A context per TLS chain of a listener; a plaintext chain (a listener may have one besides
  // its TLS chains) keeps its place with no context, and is never selected.
  static Result<std::shared_ptr<const TlsFilterChains>> build(
      const std::vector<config::FilterChain>& filter_chains);

  // The chain for `sni` ("" when the client sent none), as Envoy picks: an exact name, then the
  // longest matching "*.suffix", then the chain without server names. -1 when none matches.
  int select(std::string_view sni) const;
};

// One server-side handshake: where OpenSSL's ClientHello callback finds the chains, and what it
// chose. Owned by the connection for the length of the handshake.
struct TlsServerHandshake {
  std::shared_ptr<const TlsFilterChains> chains;
  int chain = -1;         // the chain chosen, once the ClientHello is read
  bool no_match = false;  // no chain matched the SNI: the handshake was refused
};
// Makes `ssl` (created from any chain's context) pick its chain during the handshake.
void attach_server_handshake(SSL* ssl, TlsServerHandshake* handshake);

class TlsClientContext {
 public:
  // `http2`: the cluster speaks HTTP/2, so ALPN offers h2 (always, as Envoy does for HTTP/2
  // clusters); otherwise http/1.1, and only when the config lists ALPN protocols.
  static Result<std::shared_ptr<TlsClientContext>> create(const config::UpstreamTls& config,
                                                          bool http2 = false);

  ~TlsClientContext();
  asio::ssl::context& context() { return context_; }
  const config::UpstreamTls& config() const { return config_; }
  // Sets SNI on a new client connection, and offers the latest session to resume.
  void prepare(SSL* ssl);
  // A session an upstream issued (OpenSSL's new-session callback; owns the reference).
  void remember_session(SSL_SESSION* session);

 private:
  explicit TlsClientContext(const config::UpstreamTls& config)
      : context_(asio::ssl::context::tls_client), config_(config) {}
  asio::ssl::context context_;
  config::UpstreamTls config_;
  // Upstream session resumption (max_session_keys), newest first. Every worker's connections to
  // the cluster share it; the lock is taken at handshakes only, never per request.
  std::mutex sessions_mutex_;
  std::deque<SSL_SESSION*> sessions_;
};

// Reads what the finished handshake of `ssl` settled.
TlsInfo tls_info_of(SSL* ssl);

// Whether the server name `sni` is matched by the filter-chain pattern `pattern` ("*.suffix"
// matches any name ending in ".suffix" with at least one more label).
bool server_name_matches(std::string_view pattern, std::string_view sni);

}  // namespace sluice::net
