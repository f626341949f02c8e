#include "grpc/async_client.h"

#include "common/strings.h"

namespace sluice::grpc {

bool Stream::start(http::AsyncClient& client, std::string_view cluster, std::string_view authority,
                   std::string_view service, std::string_view method, const HeaderMap& metadata,
                   const Options& options, std::string* error) {
  decoder_ = FrameDecoder(options.max_message_size);
  HeaderMap h;
  h.add(":method", "POST");
  h.add(":path", str_cat("/", service, "/", method));
  h.add(":authority", authority.empty() ? cluster : authority);
  h.add(":scheme", "http");
  h.add("content-type", "application/grpc");
  // Without it, an HTTP/1 hop would drop the trailers that carry the status.
  h.add("te", "trailers");
  if (options.timeout_ms > 0) h.add("grpc-timeout", timeout_header(options.timeout_ms));
  for (const auto& [k, v] : metadata) {
    // The plugin's metadata may not replace what makes this a gRPC request.
    if (k.empty() || k[0] == ':' || k == "content-type" || k == "te") continue;
    h.add(k, v);
  }
  http::AsyncClient::Options http_options;
  http_options.timeout = std::chrono::milliseconds(options.timeout_ms);
  http_ = client.start_stream(cluster, h, http_options, *this, error);
  return http_ != nullptr;
}

void Stream::send_message(std::string_view message, bool end_stream) {
  if (!http_ || local_closed_) return;
  frame_.clear();
  append_frame(frame_, message);
  local_closed_ = end_stream;
  http_->send_data(frame_, end_stream);
}

void Stream::close() {
  if (!http_ || local_closed_) return;
  local_closed_ = true;
  http_->send_data({}, true);
}

void Stream::reset() {
  closed_ = true;
  if (http_) {
    http::AsyncStream* s = http_;
    http_ = nullptr;
    s->reset();
  }
}

void Stream::on_stream_headers(HeaderMap& headers, bool end_stream) {
  if (closed_) return;
  uint32_t http_status = 0;
  for (char c : headers.status()) http_status = http_status * 10 + static_cast<uint32_t>(c - '0');
  if (end_stream) {
    // Trailers-only: the status is in the headers. It is reported once the HTTP exchange is
    // complete (next), so the stream ends normally rather than being reset.
    HeaderMap none;
    callbacks_.on_initial_metadata(none);
    if (closed_) return;
    if (http_status == 200 || !headers.get_or_empty("grpc-status").empty()) {
      callbacks_.on_trailing_metadata(headers);
      if (closed_) return;
      status_from_metadata(headers);
    } else {
      final_status_ = status_from_http(http_status);
      final_message_ = str_cat("HTTP status ", http_status);
    }
    return;
  }
  callbacks_.on_initial_metadata(headers);
  if (closed_) return;
  if (http_status != 200) {
    finish(status_from_http(http_status), str_cat("HTTP status ", http_status));
  }
}

void Stream::on_stream_data(std::string_view data) {
  if (closed_) return;
  messages_.clear();
  const bool ok = decoder_.decode(data, messages_);
  for (std::string& m : messages_) {
    callbacks_.on_message(m);
    if (closed_) return;
  }
  if (!ok) finish(decoder_.error_status(), decoder_.error());
}

void Stream::on_stream_trailers(HeaderMap& trailers) {
  if (closed_) return;
  callbacks_.on_trailing_metadata(trailers);
  if (closed_) return;
  status_from_metadata(trailers);  // reported when the exchange completes, right after
}

void Stream::on_stream_complete() {
  if (closed_) return;
  http_ = nullptr;  // the HTTP exchange is over and frees itself: nothing to reset
  if (final_status_) {
    finish(*final_status_, final_message_);
    return;
  }
  // The response ended without trailers, so without a status (Envoy: Unknown).
  finish(Status::Unknown,
         decoder_.has_partial_frame() ? "truncated message" : "response ended without grpc-status");
}

void Stream::on_stream_failure(http::AsyncFailure failure) {
  if (closed_) return;
  http_ = nullptr;  // the HTTP stream is over and gone
  switch (failure) {
    case http::AsyncFailure::Timeout:
      finish(Status::DeadlineExceeded, "deadline exceeded");
      return;
    case http::AsyncFailure::NoHost:
    case http::AsyncFailure::ConnectFailure:
    case http::AsyncFailure::Overflow:
      finish(Status::Unavailable, http::async_failure_name(failure));
      return;
    default:
      finish(Status::Internal, http::async_failure_name(failure));
      return;
  }
}

void Stream::status_from_metadata(const HeaderMap& metadata) {
  const std::optional<Status> status = parse_status(metadata.get_or_empty("grpc-status"));
  final_status_ = status.value_or(Status::Unknown);
  final_message_ =
      status ? decode_message(metadata.get_or_empty("grpc-message")) : "no valid grpc-status";
}

void Stream::finish(Status status, std::string_view message) {
  if (closed_) return;
  closed_ = true;
  if (http_) {
    // Done with the HTTP stream whatever its state (a server may answer before we half-close).
    http::AsyncStream* s = http_;
    http_ = nullptr;
    s->reset();
  }
  callbacks_.on_close(status, message);
}

}  // namespace sluice::grpc
