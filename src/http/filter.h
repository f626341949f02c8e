// HTTP stream filters: the extension point between the connection manager and the router. The
// Wasm filter (src/filters/http/) is one; the router is built into the connection manager and
// always runs last.
//
// Decoding (the request) runs filters in config order, encoding (the response) in reverse order,
// as in Envoy. A filter that stops iteration holds the stream at itself: later filters and the
// router see nothing until it calls continue_decoding() / continue_encoding(). Body bytes that
// arrive meanwhile are buffered by the connection manager for that filter, within the listener's
// per_connection_buffer_limit_bytes (past it: 413 for a request, 500 for a response).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/header_map.h"
#include "common/stream_info.h"

namespace sluice::config {
struct Route;
}

namespace sluice::http {

enum class FilterHeadersStatus {
  Continue,
  StopIteration,  // hold the headers (and buffer any body) until continue_*()
};

enum class FilterTrailersStatus {
  Continue,
  StopIteration,  // hold the trailers (the end of the message) until continue_*()
};

enum class FilterDataStatus {
  Continue,
  StopIterationAndBuffer,  // keep these bytes buffered and call again with more (or the end)
  StopIterationNoBuffer,   // hold these bytes until continue_*(); do not call again before
};

// What the connection manager offers a filter, for the stream it was created for.
class StreamFilterCallbacks {
 public:
  virtual ~StreamFilterCallbacks() = default;

  virtual HeaderMap& request_headers() = 0;
  // nullptr until the response headers reach this filter.
  virtual HeaderMap* response_headers() = 0;
  // The body bytes currently held for this filter in this direction (what a decode_data /
  // encode_data call is looking at); nullptr outside a body callback or a stop.
  virtual std::string* request_body() = 0;
  virtual std::string* response_body() = 0;
  // The message's trailers once they reached this filter, else nullptr (HTTP/1 carries trailers
  // only in chunked messages, and only with http_protocol_options.enable_trailers).
  virtual HeaderMap* request_trailers() = 0;
  virtual HeaderMap* response_trailers() = 0;
  // During the last decode_data / encode_data call (end_stream) of a message without trailers: a
  // filter may give it trailers (Envoy's addDecodedTrailers); the message then ends with them
  // (the filters after this one see end_stream false, then decode_trailers). nullptr otherwise.
  virtual HeaderMap* add_request_trailers() = 0;
  virtual HeaderMap* add_response_trailers() = 0;
  // The request headers changed: the router picks the route again (Envoy's clearRouteCache).
  virtual void clear_route_cache() = 0;
  // The route picked for the current headers, or nullptr (no route).
  virtual const config::Route* route() = 0;

  // Resume a stream this filter stopped. Safe to call from inside the filter's own callback:
  // the connection manager resumes once that callback has returned.
  virtual void continue_decoding() = 0;
  virtual void continue_encoding() = 0;
  // Answers the request locally. The reply goes through the encoding filters that come before
  // this one; never through this filter. Deferred until the current callback returns.
  virtual void send_local_reply(uint32_t status, std::string body, HeaderMap extra_headers,
                                std::string details) = 0;
  // Aborts the stream: HTTP/2 resets it (RST_STREAM); HTTP/1, which has no per-stream reset,
  // closes the connection.
  virtual void reset_stream(std::string details) = 0;

  virtual StreamInfo& stream_info() = 0;
  virtual uint64_t connection_id() const = 0;
  virtual uint32_t buffer_limit() const = 0;
};

class StreamFilter {
 public:
  virtual ~StreamFilter() = default;

  virtual FilterHeadersStatus decode_headers(HeaderMap& headers, bool end_stream) = 0;
  // `data` is every body byte held for this filter (the new chunk appended): it may edit it.
  virtual FilterDataStatus decode_data(std::string& data, bool end_stream) = 0;
  virtual FilterHeadersStatus encode_headers(HeaderMap& headers, bool end_stream) = 0;
  virtual FilterDataStatus encode_data(std::string& data, bool end_stream) = 0;
  // The message ends with trailers (instead of end_stream on the last data). A filter that was
  // buffering the body (StopIterationAndBuffer) learns here that the body is complete.
  virtual FilterTrailersStatus decode_trailers(HeaderMap& trailers) {
    return FilterTrailersStatus::Continue;
  }
  virtual FilterTrailersStatus encode_trailers(HeaderMap& trailers) {
    return FilterTrailersStatus::Continue;
  }
  // The stream is over (after the access log line was written): last look, then destruction.
  virtual void on_stream_complete() = 0;
};

// One configured filter (e.g. a loaded Wasm plugin): built once per config on the main thread,
// shared by the workers. create_filter runs on a worker thread and may keep per-thread state
// there (a Wasm VM per worker).
class HttpFilterConfig {
 public:
  virtual ~HttpFilterConfig() = default;
  // The filter's configured name (typed_per_filter_config disables by this name).
  virtual const std::string& name() const = 0;
  // nullptr: this filter sits this stream out (e.g. a failed plugin set to fail open).
  virtual std::unique_ptr<StreamFilter> create_filter(StreamFilterCallbacks& callbacks) = 0;
};

}  // namespace sluice::http
