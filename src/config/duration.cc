#include "config/duration.h"

#include <charconv>

namespace sluice::config {
namespace {

// google.protobuf.Duration's limit: about 10,000 years.
constexpr uint64_t kMaxSeconds = 315'576'000'000;

bool all_digits(std::string_view s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string_view::npos;
}

}  // namespace

std::optional<Duration> duration_from_parts(uint64_t seconds, uint64_t nanos) {
  if (seconds > kMaxSeconds || nanos > 999'999'999) return std::nullopt;
  return Duration(static_cast<int64_t>(seconds * 1000 + nanos / 1'000'000));
}

std::optional<Duration> parse_duration(std::string_view text) {
  if (text.size() < 2 || text.back() != 's') return std::nullopt;
  text.remove_suffix(1);
  std::string_view whole = text;
  std::string_view fraction;
  if (size_t dot = text.find('.'); dot != std::string_view::npos) {
    whole = text.substr(0, dot);
    fraction = text.substr(dot + 1);
    if (!all_digits(fraction) || fraction.size() > 9) return std::nullopt;
  }
  if (!all_digits(whole) || whole.size() > 12) return std::nullopt;
  uint64_t seconds = 0;
  std::from_chars(whole.data(), whole.data() + whole.size(), seconds);
  uint64_t nanos = 0;
  for (size_t i = 0; i < 9; ++i) nanos = nanos * 10 + (i < fraction.size() ? fraction[i] - '0' : 0);
  return duration_from_parts(seconds, nanos);
}

}  // namespace sluice::config
