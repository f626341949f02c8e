// What is known about one HTTP request/response exchange, for access logs, stats and (later) the
// Proxy-Wasm property API. Filled in by the connection manager and router as the stream progresses.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/header_map.h"

namespace sluice::net {
struct TlsInfo;
}

namespace sluice {

// Envoy's %RESPONSE_FLAGS% letters. A stream may carry several. The bits are Envoy's own
// (envoy/stream_info/stream_info.h), because the `response.flags` property hands them to plugins
// written against Envoy (Istio's telemetry maps them back to letters); bits Sluice never sets
// (UAEX, RLSE, IH, RFCF, NFCF) keep their places.
enum ResponseFlag : uint32_t {
  kFailedLocalHealthCheck = 1u << 0,             // LH
  kNoHealthyUpstream = 1u << 1,                  // UH
  kUpstreamRequestTimeout = 1u << 2,             // UT
  kLocalReset = 1u << 3,                         // LR
  kUpstreamRemoteReset = 1u << 4,                // UR
  kUpstreamConnectionFailure = 1u << 5,          // UF
  kUpstreamConnectionTermination = 1u << 6,      // UC
  kUpstreamOverflow = 1u << 7,                   // UO
  kNoRouteFound = 1u << 8,                       // NR
  kDelayInjected = 1u << 9,                      // DI
  kFaultInjected = 1u << 10,                     // FI
  kRateLimited = 1u << 11,                       // RL
  kDownstreamConnectionTermination = 1u << 14,   // DC
  kUpstreamRetryLimitExceeded = 1u << 15,        // URX
  kStreamIdleTimeout = 1u << 16,                 // SI
  kDownstreamProtocolError = 1u << 18,           // DPE
  kUpstreamMaxStreamDurationReached = 1u << 19,  // UMSDR
  kDurationTimeout = 1u << 22,                   // DT
  kUpstreamProtocolError = 1u << 23,             // UPE
  kNoClusterFound = 1u << 24,                    // NC
  kOverloadManager = 1u << 25,                   // OM
};

// Formats flags the way Envoy prints them: comma-separated short codes, "-" when none.
std::string response_flags_to_string(uint32_t flags);

struct StreamInfo {
  using SystemTime = std::chrono::system_clock::time_point;
  using MonoTime = std::chrono::steady_clock::time_point;

  SystemTime start_time{};
  MonoTime start_mono{};
  std::optional<MonoTime> last_downstream_rx_byte;  // request fully received
  std::optional<MonoTime> first_upstream_tx_byte;
  std::optional<MonoTime> first_upstream_rx_byte;
  std::optional<MonoTime> last_downstream_tx_byte;  // response fully sent

  std::string protocol;  // "HTTP/1.1", "HTTP/1.0"
  std::optional<uint32_t> response_code;
  uint32_t response_flags = 0;
  std::string response_code_details;  // e.g. "via_upstream", "route_not_found"
  uint64_t bytes_received = 0;        // request body bytes
  uint64_t bytes_sent = 0;            // response body bytes
  std::string upstream_host;          // "ip:port" of the chosen upstream host
  std::string upstream_cluster;
  std::string downstream_remote_address;         // "ip:port" of the client (after XFF handling)
  std::string downstream_direct_remote_address;  // peer address of the socket
  std::string downstream_local_address;
  std::string route_name;
  std::string request_id;

  // Set by the connection manager; valid while the stream is alive (the access log runs before the
  // stream is destroyed).
  const HeaderMap* request_headers = nullptr;
  const HeaderMap* response_headers = nullptr;
  const HeaderMap* response_trailers = nullptr;
  // The downstream connection's TLS, or nullptr for plain TCP (valid like the maps above).
  const net::TlsInfo* tls = nullptr;

  // Back to a new stream's state, keeping the strings' buffers: the next request on a
  // keep-alive connection fills the same fields (a long cluster name, an IPv6 address, a
  // request id) without allocating.
  void clear();

  void set_flag(ResponseFlag f) { response_flags |= f; }
  bool has_flag(ResponseFlag f) const { return (response_flags & f) != 0; }
};

}  // namespace sluice
