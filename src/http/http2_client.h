// The client side of HTTP/2 (nghttp2) for clusters with http2_protocol_options: each worker
// keeps one connection per host and multiplexes every request to that host over it (a new one
// replaces it once it is closed or going away). Http2UpstreamRequest is one request as a stream
// on such a connection, behind the same UpstreamRequest face as HTTP/1.1.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "http/upstream_request.h"
#include "upstream/cluster_manager.h"

struct nghttp2_session;

namespace sluice::http {

class Http2ClientConnection;

// One request on an HTTP/2 upstream connection.
class Http2UpstreamRequest final : public UpstreamRequest {
 public:
  Http2UpstreamRequest(upstream::WorkerCluster& cluster, std::shared_ptr<const upstream::Host> host,
                       UpstreamRequestCallbacks& callbacks);
  ~Http2UpstreamRequest() override;

  // UpstreamRequest
  void start(asio::io_context& loop, bool head_request) override;
  void encode_headers(const HeaderMap& headers, bool end_stream) override;
  void encode_data(std::string_view data) override;
  void encode_end(const HeaderMap* trailers) override;
  bool forwards_trailers() const override { return true; }
  void cancel() override;
  void read_disable(bool disable) override;
  void recycle_response_headers(HeaderMap&) override {}
  bool connected() const override;
  bool request_not_processed() const override { return refused_; }
  bool response_started() const override { return response_started_; }
  const upstream::Host& host() const override { return *host_; }

  // From the connection.
  void on_connected();
  void on_headers(HeaderMap& headers, bool end_stream);
  void on_data(std::string_view data);
  void on_trailers(HeaderMap& trailers);
  void on_complete();
  void on_failure(UpstreamFailure failure);
  void on_send_blocked(bool blocked);

 private:
  friend class Http2ClientConnection;
  upstream::WorkerCluster& cluster_;
  std::shared_ptr<const upstream::Host> host_;
  UpstreamRequestCallbacks& callbacks_;
  std::shared_ptr<Http2ClientConnection> conn_;
  int32_t stream_id_ = -1;
  bool response_started_ = false;
  void release_pending_slot();
  bool pending_slot_ = false;  // holds a max_pending_requests slot until connected
  bool refused_ = false;       // the server refused the stream: it never saw the request
  bool done_ = false;          // completed, failed or cancelled: nothing more is reported
};

}  // namespace sluice::http
