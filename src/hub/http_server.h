// The hub's HTTP/1.1 server: the same connection and parser as the proxy (net::Connection,
// http::Http1Parser), on one event loop, with what a registry needs that a proxy's admin does
// not: request bodies streamed to the handler as they arrive (a blob upload is never held in
// memory), files streamed back under back-pressure, "Expect: 100-continue", idle timeouts and
// optional TLS.
//
// A handler sees a request's headers first (HttpService::begin) and returns an Exchange: it
// takes the body piece by piece and gives the response at the end, or refuses at once.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <asio.hpp>
#include <nlohmann/json_fwd.hpp>

#include "common/header_map.h"
#include "net/tls.h"

namespace sluice::hub {

struct HttpRequest {
  std::string method;
  std::string target;  // as sent: path and query
  std::string path;    // up to '?', not decoded
  std::string query;   // after '?'
  HeaderMap headers;
  std::string remote;  // the peer's address
  bool tls = false;

  std::string_view header(std::string_view name) const;
  // The Host header (the parser keeps it as :authority).
  std::string_view host() const;
  // The first value of a query parameter, percent-decoded ("" when absent).
  std::string param(std::string_view name) const;
  std::vector<std::string> params(std::string_view name) const;
  bool has_param(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // Instead of `body`: a file streamed after the headers.
  std::string file;
  uint64_t file_size = 0;

  HttpResponse& header(std::string name, std::string value) {
    headers.emplace_back(std::move(name), std::move(value));
    return *this;
  }
  static HttpResponse json(int status, const nlohmann::json& body);
  static HttpResponse text(int status, std::string body);
};

class Exchange {
 public:
  virtual ~Exchange() = default;
  // false: the response is ready now (on_complete is called at once) and the body, if any, is
  // not read: the connection closes after the response.
  virtual bool wants_body() const { return true; }
  // A piece of the request body. Returning a response ends the exchange with it (the rest of
  // the body is not read; the connection closes after it).
  virtual std::optional<HttpResponse> on_body(std::string_view data) = 0;
  virtual HttpResponse on_complete() = 0;
};

class HttpService {
 public:
  virtual ~HttpService() = default;
  virtual std::unique_ptr<Exchange> begin(HttpRequest& request) = 0;
};

// An exchange that answers now, without reading a body.
std::unique_ptr<Exchange> respond_now(HttpResponse response);
// One that collects the body (answering 413 past `limit` bytes), then calls `handler`.
std::unique_ptr<Exchange> collect_body(size_t limit,
                                       std::function<HttpResponse(std::string body)> handler,
                                       std::function<HttpResponse(size_t limit)> too_large);

struct HttpServerOptions {
  std::chrono::seconds idle_timeout{60};  // no byte either way for this long: closed
  uint32_t max_header_bytes = 64 * 1024;
  std::shared_ptr<const net::TlsFilterChains> tls;  // null: plain HTTP
  std::string server_name = "sluice-hub";
};

class HttpServer {
 public:
  HttpServer(asio::io_context& loop, HttpService& service, HttpServerOptions options);
  ~HttpServer();
  std::string listen(const asio::ip::tcp::endpoint& endpoint);  // "" or the error
  uint16_t port() const;
  void close();
  // Requests answered so far (tests, the progress line).
  uint64_t requests() const { return requests_; }

 private:
  class Session;
  void accept();
  asio::io_context& loop_;
  HttpService& service_;
  HttpServerOptions options_;
  asio::ip::tcp::acceptor acceptor_;
  uint64_t requests_ = 0;
  std::unordered_map<Session*, std::weak_ptr<Session>> sessions_;  // open connections
};

// Percent-decoding of a URL component ('+' stays '+'); nullopt for a malformed escape.
std::optional<std::string> url_decode(std::string_view s);
std::string url_encode(std::string_view s);

}  // namespace sluice::hub
