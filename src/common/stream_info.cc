#include "common/stream_info.h"

#include <array>

namespace sluice {
namespace {

struct FlagCode {
  ResponseFlag flag;
  std::string_view code;
};

// Envoy's ResponseFlagUtils::ALL_RESPONSE_STRING_FLAGS order, so multi-flag strings match Envoy's
// byte for byte.
constexpr std::array<FlagCode, 21> kFlagCodes{{
    {kFailedLocalHealthCheck, "LH"},
    {kNoHealthyUpstream, "UH"},
    {kUpstreamRequestTimeout, "UT"},
    {kLocalReset, "LR"},
    {kUpstreamRemoteReset, "UR"},
    {kUpstreamConnectionFailure, "UF"},
    {kUpstreamConnectionTermination, "UC"},
    {kUpstreamOverflow, "UO"},
    {kNoRouteFound, "NR"},
    {kDelayInjected, "DI"},
    {kFaultInjected, "FI"},
    {kRateLimited, "RL"},
    {kDownstreamConnectionTermination, "DC"},
    {kUpstreamRetryLimitExceeded, "URX"},
    {kStreamIdleTimeout, "SI"},
    {kDownstreamProtocolError, "DPE"},
    {kUpstreamMaxStreamDurationReached, "UMSDR"},
    {kDurationTimeout, "DT"},
    {kUpstreamProtocolError, "UPE"},
    {kNoClusterFound, "NC"},
    {kOverloadManager, "OM"},
}};

}  // namespace

std::string response_flags_to_string(uint32_t flags) {
  std::string out;
  for (const FlagCode& f : kFlagCodes) {
    if ((flags & f.flag) == 0) continue;
    if (!out.empty()) out += ',';
    out += f.code;
  }
  // Also covers bits we have no code for, which Envoy would not print either.
  // (Returned, not assigned: g++ 12 warns falsely about assigning a literal here.)
  if (out.empty()) return std::string(1, '-');
  return out;
}

void StreamInfo::clear() {
  static constexpr std::string StreamInfo::*kStrings[] = {
      &StreamInfo::protocol,
      &StreamInfo::response_code_details,
      &StreamInfo::upstream_host,
      &StreamInfo::upstream_cluster,
      &StreamInfo::downstream_remote_address,
      &StreamInfo::downstream_direct_remote_address,
      &StreamInfo::downstream_local_address,
      &StreamInfo::route_name,
      &StreamInfo::request_id};
  // Every other field from a fresh StreamInfo, so one added later is reset too.
  StreamInfo fresh;
  for (std::string StreamInfo::*field : kStrings) {
    (this->*field).clear();
    (fresh.*field).swap(this->*field);
  }
  *this = std::move(fresh);
}

}  // namespace sluice
