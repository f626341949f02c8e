// Parses google.protobuf.Duration in its JSON form ("5s", "0.25s"), as Envoy configs write it.
#pragma once

#include <optional>
#include <string_view>

#include "config/bootstrap.h"

namespace sluice::config {

// "<seconds>[.<up to 9 fraction digits>]s", non-negative; sub-millisecond parts are truncated (as
// Envoy's millisecond getters do). nullopt when malformed or out of the protobuf range.
std::optional<Duration> parse_duration(std::string_view text);

// The {seconds, nanos} form; nullopt when out of range.
std::optional<Duration> duration_from_parts(uint64_t seconds, uint64_t nanos);

}  // namespace sluice::config
