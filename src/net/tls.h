// TLS for downstream connections (OpenSSL 3 through asio::ssl): a server context built once per
// filter chain from its DownstreamTlsContext, shared read-only by every worker, and what a
// finished handshake tells about the connection (for plugins' connection.* properties and logs).
#pragma once

#include <memory>
#include <string>

#include <asio/ssl.hpp>

#include "common/result.h"
#include "config/bootstrap.h"

namespace sluice::net {

// What the handshake settled: empty strings when not known (a plain TCP connection).
struct TlsInfo {
  std::string version;                     // "TLSv1.3"
  std::string alpn;                        // the negotiated protocol, "" when none
  std::string sni;                         // the server name the client asked for
  bool peer_certificate = false;           // the client presented one (and it verified)
  std::string peer_subject;                // RFC 2253 form
  std::string peer_uri_san, peer_dns_san;  // first of each
  std::string peer_sha256;                 // hex digest of the DER certificate
  std::string local_subject;
};

class TlsServerContext {
 public:
  // Errors say what OpenSSL refused (the certificate was checked at config load already).
  static Result<std::shared_ptr<TlsServerContext>> create(const config::DownstreamTls& config);

  asio::ssl::context& context() { return context_; }

 private:
  TlsServerContext() : context_(asio::ssl::context::tls_server) {}
  asio::ssl::context context_;
};

// Reads what the finished handshake of `ssl` settled.
TlsInfo tls_info_of(SSL* ssl);

}  // namespace sluice::net
