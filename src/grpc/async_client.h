// gRPC calls the proxy makes itself (Proxy-Wasm's proxy_grpc_call and proxy_grpc_stream): one
// HTTP/2 stream to a cluster through the worker's http::AsyncClient, messages framed and
// unframed here, the outcome reduced to a gRPC status. Envoy's Grpc::AsyncClient plays this part.
//
// Single-threaded, like the http::AsyncClient it uses.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/header_map.h"
#include "grpc/codec.h"
#include "http/async_client.h"

namespace sluice::grpc {

class StreamCallbacks {
 public:
  virtual ~StreamCallbacks() = default;
  // The response headers (with ":status"); empty for a trailers-only response, as Envoy does.
  virtual void on_initial_metadata(HeaderMap& metadata) = 0;
  virtual void on_message(std::string& message) = 0;
  virtual void on_trailing_metadata(HeaderMap& metadata) = 0;
  // Exactly once, last, unless the stream was reset by its owner first. Never inside start().
  virtual void on_close(Status status, std::string_view message) = 0;
};

class Stream final : http::AsyncStreamCallbacks {
 public:
  struct Options {
    uint32_t timeout_ms = 0;                    // 0: none (the whole stream, with grpc-timeout)
    size_t max_message_size = 4 * 1024 * 1024;  // gRPC's own default receive limit
  };

  explicit Stream(StreamCallbacks& callbacks) : callbacks_(callbacks) {}
  ~Stream() override { reset(); }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  // Opens POST /<service>/<method> on `cluster` (":authority" is `authority`, or the cluster
  // name) with `metadata` added to the headers. False with *error when it cannot start (an
  // unknown cluster); failures after that arrive through on_close.
  bool start(http::AsyncClient& client, std::string_view cluster, std::string_view authority,
             std::string_view service, std::string_view method, const HeaderMap& metadata,
             const Options& options, std::string* error);
  // One message; `end_stream` half-closes after it.
  void send_message(std::string_view message, bool end_stream);
  // Half-close: no more messages from us; the server's may still arrive.
  void close();
  // Cancels: no callback afterwards.
  void reset();
  bool open() const { return http_ != nullptr; }
  bool local_closed() const { return local_closed_; }

 private:
  void on_stream_headers(HeaderMap& headers, bool end_stream) override;
  void on_stream_data(std::string_view data) override;
  void on_stream_trailers(HeaderMap& trailers) override;
  void on_stream_complete() override;
  void on_stream_failure(http::AsyncFailure failure) override;
  void finish(Status status, std::string_view message);
  // The status trailers (or a trailers-only reply) carry, kept for on_stream_complete.
  void status_from_metadata(const HeaderMap& metadata);

  StreamCallbacks& callbacks_;
  http::AsyncStream* http_ = nullptr;
  FrameDecoder decoder_{4 * 1024 * 1024};
  std::vector<std::string> messages_;
  std::string frame_;
  std::optional<Status> final_status_;
  std::string final_message_;
  bool local_closed_ = false;
  bool closed_ = false;  // on_close ran (or is about to)
};

}  // namespace sluice::grpc
