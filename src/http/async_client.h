// An HTTP client for requests the proxy makes itself (Proxy-Wasm's proxy_http_call and, under
// grpc::Stream, its gRPC calls): one request to a cluster by name, over the worker's own
// connection pool (HTTP/1 or HTTP/2 as the cluster says). send() buffers the whole response
// (bounded) and hands it back once; start_stream() streams both directions. Envoy's
// Http::AsyncClient plays this part.
//
// Single-threaded: a client belongs to one worker loop, and so do its requests and callbacks.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <asio.hpp>

#include "common/header_map.h"
#include "upstream/cluster_manager.h"

namespace sluice::http {

enum class AsyncFailure {
  NoHost,           // the cluster has no host
  ConnectFailure,   // could not connect (or the connect timed out)
  Reset,            // the upstream closed or reset the connection before the response ended
  ProtocolError,    // the response was not valid HTTP/1
  Overflow,         // a circuit breaker refused it
  Timeout,          // no complete response within the timeout
  ResponseTooLarge  // the response body exceeded the client's limit
};
std::string_view async_failure_name(AsyncFailure f);

struct AsyncResponse {
  HeaderMap headers;  // with ":status"
  std::string body;
  HeaderMap trailers;
};

class AsyncRequestCallbacks {
 public:
  virtual ~AsyncRequestCallbacks() = default;
  // Exactly one of these runs, from the loop (never inside send()), unless the request was
  // cancelled first.
  virtual void on_async_success(AsyncResponse& response) = 0;
  virtual void on_async_failure(AsyncFailure failure) = 0;
};

// A request in flight; cancel() stops it and guarantees no callback afterwards.
class AsyncRequest {
 public:
  virtual ~AsyncRequest() = default;
  virtual void cancel() = 0;
};

class AsyncStreamCallbacks {
 public:
  virtual ~AsyncStreamCallbacks() = default;
  // The response, piece by piece, then on_stream_complete; or on_stream_failure at any point.
  // From the loop, never inside start_stream() or send_data(); nothing after reset().
  virtual void on_stream_headers(HeaderMap& headers, bool end_stream) = 0;
  virtual void on_stream_data(std::string_view data) = 0;
  virtual void on_stream_trailers(HeaderMap& trailers) = 0;
  virtual void on_stream_complete() = 0;
  virtual void on_stream_failure(AsyncFailure failure) = 0;
};

// A streamed request in flight.
class AsyncStream {
 public:
  virtual ~AsyncStream() = default;
  // More of the request body; `end_stream` ends it (data may then be empty).
  virtual void send_data(std::string_view data, bool end_stream) = 0;
  // Abandons the request (an HTTP/2 stream is reset): no callback afterwards. Safe inside a
  // callback; the stream is freed by the client later.
  virtual void reset() = 0;
};

class AsyncClient {
 public:
  AsyncClient(asio::io_context& loop, upstream::ClusterManager& clusters);
  ~AsyncClient();  // cancels what is still in flight
  AsyncClient(const AsyncClient&) = delete;
  AsyncClient& operator=(const AsyncClient&) = delete;

  struct Options {
    std::chrono::milliseconds timeout{0};  // 0: none
    size_t max_response_body = 4 * 1024 * 1024;
  };

  // Sends `headers` (":method", ":path" and ":authority" required; ":scheme" ignored), `body`
  // and `trailers` (sent only if non-empty, with chunked framing) to `cluster`. Returns nullptr
  // and sets *error when the request cannot start (unknown cluster, missing pseudo-headers);
  // otherwise the request, owned by the client until it finishes or is cancelled.
  AsyncRequest* send(std::string_view cluster, const HeaderMap& headers, std::string_view body,
                     const HeaderMap& trailers, const Options& options,
                     AsyncRequestCallbacks& callbacks, std::string* error);

  // Starts a request whose body follows through AsyncStream::send_data (or none, with
  // `end_stream`), with the response streamed to `callbacks`. The timeout, if any, bounds the
  // whole exchange. Same errors as send().
  AsyncStream* start_stream(std::string_view cluster, const HeaderMap& headers,
                            const Options& options, AsyncStreamCallbacks& callbacks,
                            std::string* error, bool end_stream = false);

  size_t in_flight() const;

 private:
  class Request;
  friend class Request;
  void finished(Request* r);
  Request* create(std::string_view cluster, const HeaderMap& headers, const Options& options,
                  std::string* error);

  asio::io_context& loop_;
  upstream::ClusterManager& clusters_;
  std::vector<std::unique_ptr<Request>> requests_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace sluice::http
