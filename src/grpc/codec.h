// gRPC over HTTP/2, the parts a client needs (PROTOCOL-HTTP2 in grpc/grpc's doc): message
// framing, status codes and their HTTP fallbacks, grpc-timeout and grpc-message encodings, and
// the GrpcService proto that Proxy-Wasm SDKs may pass instead of a cluster name.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::grpc {

enum class Status : int32_t {
  Ok = 0,
  Canceled = 1,
  Unknown = 2,
  InvalidArgument = 3,
  DeadlineExceeded = 4,
  NotFound = 5,
  AlreadyExists = 6,
  PermissionDenied = 7,
  ResourceExhausted = 8,
  FailedPrecondition = 9,
  Aborted = 10,
  OutOfRange = 11,
  Unimplemented = 12,
  Internal = 13,
  Unavailable = 14,
  DataLoss = 15,
  Unauthenticated = 16,
};

// Appends `message` as one length-prefixed message (uncompressed).
void append_frame(std::string& out, std::string_view message);

// Splits a response body, arriving in pieces, into messages.
class FrameDecoder {
 public:
  explicit FrameDecoder(size_t max_message_size) : max_message_size_(max_message_size) {}
  // Appends whole messages to `out`; false (with error()) on a compressed message (none was
  // negotiated) or one above the size limit. Partial frames wait for more bytes.
  bool decode(std::string_view data, std::vector<std::string>& out);
  const std::string& error() const { return error_; }
  Status error_status() const { return error_status_; }
  // Bytes of an unfinished frame: at the end of the stream they mean a truncated message.
  bool has_partial_frame() const { return !pending_.empty(); }

 private:
  size_t max_message_size_;
  std::string pending_;
  std::string error_;
  Status error_status_ = Status::Internal;
};

// The status a response without grpc-status means, from its HTTP status (the gRPC doc's table).
Status status_from_http(uint32_t http_status);
// grpc-status's value, or nullopt when it is not a number in 0..16.
std::optional<Status> parse_status(std::string_view value);
// grpc-message is percent-encoded on the wire.
std::string decode_message(std::string_view value);
// A grpc-timeout header value for `ms` milliseconds ("250m"; at most 8 digits, as the spec says).
std::string timeout_header(uint32_t ms);

// envoy.config.core.v3.GrpcService in its wire form, as SDKs may serialize it for
// proxy_grpc_call: the envoy_grpc target (cluster_name, authority) and the timeout.
struct ServiceTarget {
  std::string cluster;
  std::string authority;  // empty: the cluster name
  std::optional<uint32_t> timeout_ms;
};
// nullopt unless `bytes` is a well-formed GrpcService with an envoy_grpc cluster name.
std::optional<ServiceTarget> parse_grpc_service(std::string_view bytes);

}  // namespace sluice::grpc
