#include "grpc/codec.h"

#include <algorithm>
#include <cstdint>

#include "common/strings.h"

namespace sluice::grpc {

void append_frame(std::string& out, std::string_view message) {
  const auto n = static_cast<uint32_t>(message.size());
  const char prefix[5] = {0, static_cast<char>(n >> 24), static_cast<char>(n >> 16),
                          static_cast<char>(n >> 8), static_cast<char>(n)};
  out.append(prefix, sizeof prefix);
  out.append(message);
}

bool FrameDecoder::decode(std::string_view data, std::vector<std::string>& out) {
  if (!error_.empty()) return false;
  pending_.append(data);
  size_t at = 0;
  while (pending_.size() - at >= 5) {
    const auto* p = reinterpret_cast<const unsigned char*>(pending_.data() + at);
    const uint32_t len =
        (uint32_t{p[1]} << 24) | (uint32_t{p[2]} << 16) | (uint32_t{p[3]} << 8) | uint32_t{p[4]};
    if (p[0] != 0) {
      // We never offer grpc-accept-encoding, so a compressed message breaks the protocol.
      error_ = "compressed message, but no compression was negotiated";
      error_status_ = Status::Internal;
      return false;
    }
    if (len > max_message_size_) {
      error_ =
          str_cat("message of ", len, " bytes is larger than the limit of ", max_message_size_);
      error_status_ = Status::ResourceExhausted;
      return false;
    }
    if (pending_.size() - at - 5 < len) break;
    out.emplace_back(pending_.data() + at + 5, len);
    at += 5 + len;
  }
  pending_.erase(0, at);
  return true;
}

Status status_from_http(uint32_t http_status) {
  switch (http_status) {
    case 400:
      return Status::Internal;
    case 401:
      return Status::Unauthenticated;
    case 403:
      return Status::PermissionDenied;
    case 404:
      return Status::Unimplemented;
    case 429:
    case 502:
    case 503:
    case 504:
      return Status::Unavailable;
    default:
      return Status::Unknown;
  }
}

std::optional<Status> parse_status(std::string_view value) {
  if (value.empty() || value.size() > 2) return std::nullopt;
  int n = 0;
  for (char c : value) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + (c - '0');
  }
  if (n > static_cast<int>(Status::Unauthenticated)) return std::nullopt;
  return static_cast<Status>(n);
}

std::string decode_message(std::string_view value) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(value.size());
  for (size_t i = 0; i < value.size(); ++i) {
    if (value[i] == '%' && i + 2 < value.size()) {
      const int hi = hex(value[i + 1]), lo = hex(value[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(value[i]);  // not an escape: kept as it is, as the spec asks
  }
  return out;
}

std::string timeout_header(uint32_t ms) {
  // At most 8 digits: beyond 99,999,999 ms, whole seconds.
  if (ms <= 99'999'999) return str_cat(ms, "m");
  return str_cat(ms / 1000, "S");
}

namespace {

// A reader of protobuf's wire format: varints, fixed 32/64-bit and length-delimited fields.
class WireReader {
 public:
  explicit WireReader(std::string_view data) : data_(data) {}
  bool done() const { return at_ == data_.size(); }
  bool varint(uint64_t& v) {
    v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (at_ >= data_.size()) return false;
      const auto b = static_cast<unsigned char>(data_[at_++]);
      v |= uint64_t{b & 0x7fu} << shift;
      if ((b & 0x80) == 0) return true;
    }
    return false;
  }
  // One field: its number and wire type, and for wire type 2 its bytes. Unknown fields are
  // skipped by the caller simply not looking at them.
  bool field(uint32_t& number, uint32_t& type, std::string_view& bytes, uint64_t& value) {
    uint64_t tag;
    if (!varint(tag)) return false;
    number = static_cast<uint32_t>(tag >> 3);
    type = static_cast<uint32_t>(tag & 7);
    if (number == 0) return false;
    switch (type) {
      case 0:
        return varint(value);
      case 1:
        return skip(8);
      case 5:
        return skip(4);
      case 2: {
        uint64_t len;
        if (!varint(len) || len > data_.size() - at_) return false;
        bytes = data_.substr(at_, len);
        at_ += len;
        return true;
      }
      default:
        return false;  // groups (3, 4) are long deprecated; 6 and 7 do not exist
    }
  }

 private:
  bool skip(size_t n) {
    if (n > data_.size() - at_) return false;
    at_ += n;
    return true;
  }
  std::string_view data_;
  size_t at_ = 0;
};

bool printable(std::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return false;
  }
  return true;
}

}  // namespace

std::optional<ServiceTarget> parse_grpc_service(std::string_view bytes) {
  ServiceTarget target;
  WireReader r(bytes);
  uint32_t number, type;
  std::string_view sub;
  uint64_t value;
  bool have_envoy_grpc = false;
  while (!r.done()) {
    if (!r.field(number, type, sub, value)) return std::nullopt;
    if (number == 1 && type == 2) {  // envoy_grpc: EnvoyGrpc
      WireReader e(sub);
      while (!e.done()) {
        std::string_view s;
        if (!e.field(number, type, s, value)) return std::nullopt;
        if (number == 1 && type == 2) target.cluster = std::string(s);
        if (number == 2 && type == 2) target.authority = std::string(s);
      }
      have_envoy_grpc = true;
    } else if (number == 3 && type == 2) {  // timeout: google.protobuf.Duration
      WireReader d(sub);
      uint64_t seconds = 0, nanos = 0;
      while (!d.done()) {
        std::string_view s;
        if (!d.field(number, type, s, value)) return std::nullopt;
        if (number == 1 && type == 0) seconds = value;
        if (number == 2 && type == 0) nanos = value;
      }
      // Clamped (the wire may carry any varint), and a non-zero timeout never rounds to "none".
      const uint64_t ms = std::min<uint64_t>(seconds, UINT32_MAX / 1000) * 1000 +
                          std::min<uint64_t>(nanos, 999'999'999) / 1'000'000;
      target.timeout_ms = static_cast<uint32_t>(std::min<uint64_t>(ms, UINT32_MAX));
      if (target.timeout_ms == 0 && (seconds != 0 || nanos != 0)) target.timeout_ms = 1;
    }
  }
  if (!have_envoy_grpc || target.cluster.empty() || !printable(target.cluster) ||
      !printable(target.authority)) {
    return std::nullopt;
  }
  return target;
}

}  // namespace sluice::grpc
