// grpc_check: asks a gRPC service about each request before letting it through, over
// proxy_grpc_call (unary) or proxy_grpc_stream (server streaming). A template for extensions
// that talk gRPC; the tests run it against tests/grpc's Echo service (tests/grpc/echo.proto).
//
// On request headers it pauses the request and sends `service`/`method` an EchoRequest-shaped
// message: field 1 = the request's path, field 2 = its x-count header, field 3 = its
// x-fail-code header (the Echo service fails with that gRPC status when it is not 0). Then:
//   - unary (`stream = false`): an answer lets the request continue with
//     x-grpc-check: <field 1 of the reply>; a failure answers 403 "grpc status N: message";
//   - streaming (`stream = true`): the replies are counted and the request continues with
//     x-grpc-check: <replies> replies, <initial metadata> + <trailing metadata> metadata
//     once the stream closes with OK; a failure answers 403 as above.
//
// Configuration (key = value lines): cluster (required; an HTTP/2 cluster), service
// (default sluice.test.Echo), method (default Echo), stream (true/false, default false),
// timeout_ms (unary only, default 1000).
#include <string>

#include "sluice/sdk.h"

namespace {

// Protobuf's wire format, the two field kinds the request needs.
void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
void put_string(std::string& out, uint32_t field, std::string_view s) {
  put_varint(out, (field << 3) | 2);
  put_varint(out, s.size());
  out.append(s);
}
void put_uint(std::string& out, uint32_t field, uint64_t v) {
  put_varint(out, field << 3);
  put_varint(out, v);
}
// Field 1 of a reply when it is a string (EchoReply.message); empty otherwise.
std::string first_string_field(std::string_view msg) {
  if (msg.size() < 2 || static_cast<unsigned char>(msg[0]) != 0x0a) return {};
  size_t len = 0, at = 1;
  for (int shift = 0; at < msg.size() && shift < 35; shift += 7) {
    const auto b = static_cast<unsigned char>(msg[at++]);
    len |= static_cast<size_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) break;
  }
  if (at + len > msg.size()) return {};
  return std::string(msg.substr(at, len));
}

class CheckRoot : public sluice::RootContext {
 public:
  using RootContext::RootContext;
  bool on_configure(size_t) override {
    for (auto& [key, value] : sluice::parse_key_value_lines(sluice::plugin_configuration())) {
      if (key == "cluster") {
        cluster = value;
      } else if (key == "service") {
        service = value;
      } else if (key == "method") {
        method = value;
      } else if (key == "stream") {
        if (value != "true" && value != "false") {
          sluice::log_error("grpc_check: stream must be true or false");
          return false;
        }
        stream = value == "true";
      } else if (key == "timeout_ms") {
        auto v = sluice::parse_uint64(value);
        if (!v || *v > 600000) {
          sluice::log_error("grpc_check: timeout_ms must be a number of milliseconds up to 600000");
          return false;
        }
        timeout_ms = static_cast<uint32_t>(*v);
      } else {
        sluice::log_error("grpc_check: unknown configuration key '{}'", key);
        return false;
      }
    }
    if (cluster.empty()) {
      sluice::log_error("grpc_check: 'cluster' is required");
      return false;
    }
    return true;
  }
  std::string cluster, service = "sluice.test.Echo", method = "Echo";
  bool stream = false;
  uint32_t timeout_ms = 1000;
};

void refuse(sluice::GrpcStatus status, std::string_view message) {
  sluice::send_local_response(
      403, sluice::format("grpc status {}: {}\n", static_cast<int32_t>(status), message));
}

// Counts a stream's events and resumes the request it was opened for when it closes.
class CountingHandler : public sluice::GrpcStreamHandler {
 public:
  explicit CountingHandler(uint32_t stream_id) : stream_id_(stream_id) {}
  void on_initial_metadata(uint32_t n) override { initial_ = n; }
  void on_message(std::string_view) override { ++replies_; }
  void on_trailing_metadata(uint32_t n) override { trailing_ = n; }
  void on_close(sluice::GrpcStatus status, std::string_view message) override {
    // The request may have ended meanwhile: then there is nothing to resume.
    if (sluice::set_effective_context(stream_id_) != sluice::Status::Ok) return;
    if (status != sluice::GrpcStatus::Ok) {
      refuse(status, message);
      return;
    }
    sluice::request_headers().replace(
        "x-grpc-check",
        sluice::format("{} replies, {} + {} metadata", replies_, initial_, trailing_));
    sluice::continue_request();
  }

 private:
  uint32_t stream_id_;
  uint32_t replies_ = 0, initial_ = 0, trailing_ = 0;
};

class CheckStream : public sluice::HttpContext {
 public:
  CheckStream(uint32_t id, CheckRoot* root) : HttpContext(id, root), root_(root) {}

  sluice::FilterHeadersStatus on_request_headers(uint32_t, bool) override {
    std::string request;
    put_string(request, 1, sluice::request_headers().get(":path").value_or("/"));
    if (auto n = sluice::parse_uint64(sluice::request_headers().get("x-count").value_or(""))) {
      put_uint(request, 2, *n);
    }
    if (auto c = sluice::parse_uint64(sluice::request_headers().get("x-fail-code").value_or(""))) {
      put_uint(request, 3, *c);
    }
    const sluice::Pairs metadata = {{"x-checked-by", "grpc_check"}};
    sluice::Status s;
    if (root_->stream) {
      auto handler = std::make_unique<CountingHandler>(id());
      sluice::GrpcStreamHandler* h = handler.get();
      s = root_->grpc_stream(root_->cluster, root_->service, root_->method, metadata,
                             std::move(handler));
      if (s == sluice::Status::Ok) {
        s = h->send(request, /*end_stream=*/true);
        if (s != sluice::Status::Ok) h->cancel();  // deletes the handler
      }
    } else {
      s = grpc_call(root_->cluster, root_->service, root_->method, metadata, request,
                    root_->timeout_ms, [](const sluice::GrpcCallResult& r) { decide(r); });
    }
    if (s != sluice::Status::Ok) {
      sluice::send_local_response(503, "grpc check unavailable\n");
    }
    return sluice::FilterHeadersStatus::StopIteration;  // until the service answers
  }

 private:
  // Runs with this stream as the effective context (the SDK switches to it).
  static void decide(const sluice::GrpcCallResult& r) {
    if (!r.ok()) {
      refuse(r.status, r.status_message);
      return;
    }
    sluice::request_headers().replace("x-grpc-check", first_string_field(r.response));
    sluice::continue_request();
  }

  CheckRoot* root_;
};

sluice::RegisterContextFactory<CheckRoot, CheckStream> registration("grpc_check");

}  // namespace
