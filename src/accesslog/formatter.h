// Envoy text access-log formats ("%START_TIME% %REQ(:METHOD)% ..."). A format is parsed once, at
// config load, into a flat list of pieces; formatting a request is then a loop over the pieces that
// only appends to the caller's buffer (no parsing, no lookups by operator name).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/stream_info.h"

namespace sluice::accesslog {

// Envoy's default access log format, used when a config gives none.
inline constexpr std::string_view kDefaultFormat =
    "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" "
    "%RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% "
    "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" "
    "\"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\"\n";

// Operators (Envoy semantics; a missing value prints "-", ":N" truncates a value to N bytes):
//   %START_TIME%, %START_TIME(strftime)%  UTC; also %s, %f, %1f..%9f, %E#S, %E*S, %E#f, %E*f, %Ez
//   %REQ(H)%, %REQ(H?ALT)%, %RESP(...)%, %TRAILER(...)%   first value of a header, case-insensitive
//   %PROTOCOL% %RESPONSE_CODE% %RESPONSE_CODE_DETAILS% %RESPONSE_FLAGS% %BYTES_RECEIVED%
//   %BYTES_SENT% %DURATION% %REQUEST_DURATION% %RESPONSE_DURATION% %RESPONSE_TX_DURATION%
//   %UPSTREAM_HOST% %UPSTREAM_REMOTE_ADDRESS[_WITHOUT_PORT]% %UPSTREAM_REMOTE_PORT%
//   %UPSTREAM_CLUSTER% %ROUTE_NAME% %STREAM_ID% %HOSTNAME%
//   %DOWNSTREAM_{REMOTE,DIRECT_REMOTE,LOCAL}_ADDRESS[_WITHOUT_PORT]%, %DOWNSTREAM_..._PORT%
//   %% is a literal '%'.
class Formatter {
 public:
  // Parses an Envoy text format. On failure returns nullopt and, if `error` is non-null, stores a
  // message naming the offending operator (e.g. "unknown access log operator %FOO%").
  static std::optional<Formatter> parse(std::string_view format, std::string* error);

  // Appends one formatted entry for `info` to `out`. Thread-safe (const, no shared mutable state).
  void format(const StreamInfo& info, std::string& out) const;
  // Convenience for tests and one-off uses.
  std::string format(const StreamInfo& info) const {
    std::string out;
    format(info, out);
    return out;
  }

  // Number of parsed pieces (literal runs and operators); exposed for tests.
  size_t piece_count() const { return pieces_.size(); }

 private:
  enum class Op : uint8_t {
    kLiteral,
    kStartTime,        // Envoy's default ISO-8601 rendering
    kStartTimeCustom,  // `time` segments
    kRequestHeader,
    kResponseHeader,
    kResponseTrailer,
    kString,              // a std::string field of StreamInfo; empty means unknown
    kAddressWithoutPort,  // "ip:port" field, printed without the port
    kAddressPort,         // "ip:port" field, only the port
    kResponseCode,
    kResponseFlags,
    kBytesReceived,
    kBytesSent,
    kDuration,  // milliseconds between two StreamInfo timestamps
  };

  // One piece of a custom START_TIME format.
  struct TimeSegment {
    enum class Kind : uint8_t {
      kStrftime,      // `text` handed to strftime
      kEpochSeconds,  // %s
      kFraction,  // %f / %Nf / %E#f / %E*f: `digits` digits, no dot (0: trimmed, full precision)
      kSeconds,   // %E#S / %E*S: two-digit seconds, then "." and `digits` digits when non-zero
    };
    Kind kind = Kind::kStrftime;
    int digits = 0;
    bool trim = false;  // %E*S / %E*f: drop trailing zeros
    std::string text;
  };

  using StringField = std::string StreamInfo::*;
  using TimeField = std::optional<StreamInfo::MonoTime> StreamInfo::*;

  struct Piece {
    Op op = Op::kLiteral;
    size_t max_length = std::string::npos;  // ":N"
    std::string text;                       // literal text, or the (lower-case) header name
    std::string fallback;                   // REQ(X?Y): Y, lower-case; empty when none
    StringField string_field = nullptr;
    TimeField from = nullptr;  // nullptr: start_mono
    TimeField to = nullptr;
    std::vector<TimeSegment> time;
  };

  // Appends the value of `p`; returns false (appending nothing) when the value is unknown.
  bool append_value(const Piece& p, const StreamInfo& info, std::string& out) const;

  static bool parse_operator(std::string_view name, std::optional<std::string_view> arg,
                             size_t max_length, Piece& piece, std::string* error);
  static bool parse_header_arg(std::string_view name, std::optional<std::string_view> arg,
                               Piece& piece, std::string* error);
  static bool parse_time_format(std::string_view fmt, Piece& piece, std::string* error);

  std::vector<Piece> pieces_;
};

}  // namespace sluice::accesslog
