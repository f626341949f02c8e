#include "accesslog/formatter.h"

#include <unistd.h>

#include <charconv>
#include <chrono>
#include <ctime>
#include <ratio>
#include <type_traits>
#include <utility>

#include "common/header_map.h"

namespace sluice::accesslog {
namespace {

bool is_name_char(char c) { return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

bool set_error(std::string* error, std::string message) {
  if (error != nullptr) *error = std::move(message);
  return false;
}

// The operator as written, for error messages: "%NAME%", "%NAME(arg)%".
std::string spell(std::string_view name, std::optional<std::string_view> arg) {
  std::string s = "%";
  s += name;
  if (arg) {
    s += '(';
    s += *arg;
    s += ')';
  }
  s += '%';
  return s;
}

// A short excerpt of the format starting at `pos`, so errors point at the offending text.
std::string excerpt(std::string_view format, size_t pos) {
  constexpr size_t kMax = 32;
  std::string_view rest = format.substr(pos);
  std::string s(rest.substr(0, kMax));
  if (rest.size() > kMax) s += "...";
  return s;
}

template <typename T>
void append_number(std::string& out, T value) {
  char buf[24];
  auto res = std::to_chars(buf, buf + sizeof(buf), value);
  out.append(buf, res.ptr);
}

// Appends `value` zero-padded to `width` digits (value >= 0).
void append_padded(std::string& out, int64_t value, int width) {
  char buf[24];
  auto res = std::to_chars(buf, buf + sizeof(buf), value);
  for (int n = static_cast<int>(res.ptr - buf); n < width; ++n) out.push_back('0');
  out.append(buf, res.ptr);
}

// Appends the first `digits` digits of a nanosecond fraction (truncated, as Envoy does). With
// `trim`, prints every significant digit instead ("0" when the fraction is zero).
void append_fraction(std::string& out, uint32_t nanos, int digits, bool trim) {
  char buf[9];
  uint32_t v = nanos;
  for (int i = 8; i >= 0; --i) {
    buf[i] = static_cast<char>('0' + v % 10);
    v /= 10;
  }
  size_t n = static_cast<size_t>(digits);
  if (trim) {
    n = 9;
    while (n > 1 && buf[n - 1] == '0') --n;
  }
  out.append(buf, n);
}

// UTC civil time, computed arithmetically: gmtime_r takes glibc's global time-zone lock, which
// every worker would contend on for every log line.
struct CivilTime {
  int64_t epoch_seconds;
  uint32_t nanos;
  int64_t year;
  int month, day, hour, minute, second, weekday, yearday;
};

// Howard Hinnant's days_from_civil / civil_from_days (proleptic Gregorian calendar).
int64_t days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

CivilTime to_civil(StreamInfo::SystemTime t) {
  const int64_t ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  CivilTime c{};
  int64_t secs = ns / 1000000000;
  int64_t rem = ns % 1000000000;
  if (rem < 0) {
    rem += 1000000000;
    --secs;
  }
  c.epoch_seconds = secs;
  c.nanos = static_cast<uint32_t>(rem);

  int64_t days = secs / 86400;
  int64_t sod = secs % 86400;
  if (sod < 0) {
    sod += 86400;
    --days;
  }
  c.hour = static_cast<int>(sod / 3600);
  c.minute = static_cast<int>(sod / 60 % 60);
  c.second = static_cast<int>(sod % 60);
  c.weekday = static_cast<int>(((days + 4) % 7 + 7) % 7);  // 1970-01-01 was a Thursday

  const int64_t z = days + 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const int64_t doe = z - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  c.day = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
  c.month = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  c.year = yoe + era * 400 + (c.month <= 2);
  c.yearday = static_cast<int>(days - days_from_civil(c.year, 1, 1));
  return c;
}

std::tm to_tm(const CivilTime& c) {
  std::tm tm{};
  tm.tm_year = static_cast<int>(c.year - 1900);
  tm.tm_mon = c.month - 1;
  tm.tm_mday = c.day;
  tm.tm_hour = c.hour;
  tm.tm_min = c.minute;
  tm.tm_sec = c.second;
  tm.tm_wday = c.weekday;
  tm.tm_yday = c.yearday;
  tm.tm_isdst = 0;
#ifdef __USE_MISC
  tm.tm_gmtoff = 0;
  tm.tm_zone = "UTC";  // %Z; without it glibc would consult the process time zone
#endif
  return tm;
}

// Envoy's default START_TIME rendering: 2024-01-02T03:04:05.678Z. Built in a fixed buffer and
// appended once, since it is in nearly every format.
void append_default_time(std::string& out, const CivilTime& c) {
  // A nanosecond system_clock spans years 1677..2262, so four digits always suffice.
  static_assert(std::is_same_v<StreamInfo::SystemTime::period, std::nano>);
  char b[] = "0000-00-00T00:00:00.000Z";
  auto put = [&b](int pos, int64_t v, int width) {
    for (int i = pos + width - 1; i >= pos; --i, v /= 10) b[i] = static_cast<char>('0' + v % 10);
  };
  put(0, c.year, 4);
  put(5, c.month, 2);
  put(8, c.day, 2);
  put(11, c.hour, 2);
  put(14, c.minute, 2);
  put(17, c.second, 2);
  put(20, c.nanos / 1000000, 3);
  out.append(b, sizeof(b) - 1);
}

// Splits "ip:port" or "[v6]:port". A bare IPv6 address or a path has no port.
std::pair<std::string_view, std::string_view> split_host_port(std::string_view a) {
  if (!a.empty() && a.front() == '[') {
    const size_t close = a.find(']');
    if (close == std::string_view::npos) return {a, {}};
    std::string_view port;
    if (close + 1 < a.size() && a[close + 1] == ':') port = a.substr(close + 2);
    return {a.substr(1, close - 1), port};
  }
  const size_t colon = a.rfind(':');
  if (colon == std::string_view::npos || a.find(':') != colon) return {a, {}};
  return {a.substr(0, colon), a.substr(colon + 1)};
}

std::string local_hostname() {
  char buf[256];
  if (gethostname(buf, sizeof(buf)) != 0) return "-";
  buf[sizeof(buf) - 1] = '\0';
  return buf;
}

}  // namespace

std::optional<Formatter> Formatter::parse(std::string_view format, std::string* error) {
  Formatter f;
  std::string literal;
  auto flush_literal = [&] {
    if (literal.empty()) return;
    Piece p;
    p.op = Op::kLiteral;
    p.text = std::move(literal);
    f.pieces_.push_back(std::move(p));
    literal.clear();
  };
  auto fail = [&](std::string message) -> std::optional<Formatter> {
    set_error(error, std::move(message));
    return std::nullopt;
  };

  size_t pos = 0;
  while (pos < format.size()) {
    if (format[pos] != '%') {
      const size_t next = format.find('%', pos);
      const size_t end = next == std::string_view::npos ? format.size() : next;
      literal.append(format.substr(pos, end - pos));
      pos = end;
      continue;
    }
    if (pos + 1 < format.size() && format[pos + 1] == '%') {
      literal.push_back('%');
      pos += 2;
      continue;
    }

    // %NAME[(ARG)][:N]% -- the grammar of Envoy's command regex.
    const size_t start = pos;
    size_t i = pos + 1;
    while (i < format.size() && is_name_char(format[i])) ++i;
    const std::string_view name = format.substr(start + 1, i - start - 1);
    if (name.empty()) {
      return fail("malformed access log operator at position " + std::to_string(start) + " (\"" +
                  excerpt(format, start) +
                  "\"): expected an upper-case operator name after '%' (write %% for a literal "
                  "'%')");
    }
    std::optional<std::string_view> arg;
    if (i < format.size() && format[i] == '(') {
      const size_t close = format.find(')', i + 1);
      if (close == std::string_view::npos) {
        return fail("malformed access log operator at position " + std::to_string(start) + " (\"" +
                    excerpt(format, start) + "\"): missing ')'");
      }
      arg = format.substr(i + 1, close - i - 1);
      i = close + 1;
    }
    size_t max_length = std::string::npos;
    if (i < format.size() && format[i] == ':') {
      const size_t digits_start = ++i;
      while (i < format.size() && is_digit(format[i])) ++i;
      const std::string_view digits = format.substr(digits_start, i - digits_start);
      size_t n = 0;
      auto res = std::from_chars(digits.data(), digits.data() + digits.size(), n);
      if (digits.empty() || res.ec != std::errc()) {
        return fail("malformed access log operator at position " + std::to_string(start) + " (\"" +
                    excerpt(format, start) + "\"): expected a length after ':'");
      }
      max_length = n;
    }
    if (i >= format.size() || format[i] != '%') {
      return fail("malformed access log operator at position " + std::to_string(start) + " (\"" +
                  excerpt(format, start) + "\"): expected a closing '%'");
    }
    pos = i + 1;

    Piece piece;
    piece.max_length = max_length;
    if (!parse_operator(name, arg, max_length, piece, error)) return std::nullopt;
    if (piece.op == Op::kLiteral) {
      literal += piece.text;  // resolved at parse time (%HOSTNAME%)
    } else {
      flush_literal();
      f.pieces_.push_back(std::move(piece));
    }
  }
  flush_literal();
  return f;
}

bool Formatter::parse_operator(std::string_view name, std::optional<std::string_view> arg,
                               size_t max_length, Piece& piece, std::string* error) {
  if (name == "REQ" || name == "RESP" || name == "TRAILER") {
    piece.op = name == "REQ"    ? Op::kRequestHeader
               : name == "RESP" ? Op::kResponseHeader
                                : Op::kResponseTrailer;
    return parse_header_arg(name, arg, piece, error);
  }
  if (name == "START_TIME") {
    if (!arg || arg->empty()) {
      piece.op = Op::kStartTime;
      return true;
    }
    piece.op = Op::kStartTimeCustom;
    return parse_time_format(*arg, piece, error);
  }

  // Everything else takes no argument.
  struct Simple {
    std::string_view name;
    Op op;
    StringField field = nullptr;
    TimeField from = nullptr;
    TimeField to = nullptr;
  };
  using SI = StreamInfo;
  static const Simple kSimple[] = {
      {"PROTOCOL", Op::kString, &SI::protocol},
      {"RESPONSE_CODE", Op::kResponseCode},
      {"RESPONSE_CODE_DETAILS", Op::kString, &SI::response_code_details},
      {"RESPONSE_FLAGS", Op::kResponseFlags},
      {"BYTES_RECEIVED", Op::kBytesReceived},
      {"BYTES_SENT", Op::kBytesSent},
      {"DURATION", Op::kDuration, nullptr, nullptr, &SI::last_downstream_tx_byte},
      {"REQUEST_DURATION", Op::kDuration, nullptr, nullptr, &SI::last_downstream_rx_byte},
      {"RESPONSE_DURATION", Op::kDuration, nullptr, nullptr, &SI::first_upstream_rx_byte},
      {"RESPONSE_TX_DURATION", Op::kDuration, nullptr, &SI::first_upstream_rx_byte,
       &SI::last_downstream_tx_byte},
      {"UPSTREAM_HOST", Op::kString, &SI::upstream_host},
      {"UPSTREAM_REMOTE_ADDRESS", Op::kString, &SI::upstream_host},
      {"UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT", Op::kAddressWithoutPort, &SI::upstream_host},
      {"UPSTREAM_REMOTE_PORT", Op::kAddressPort, &SI::upstream_host},
      {"UPSTREAM_CLUSTER", Op::kString, &SI::upstream_cluster},
      {"DOWNSTREAM_REMOTE_ADDRESS", Op::kString, &SI::downstream_remote_address},
      {"DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT", Op::kAddressWithoutPort,
       &SI::downstream_remote_address},
      {"DOWNSTREAM_REMOTE_PORT", Op::kAddressPort, &SI::downstream_remote_address},
      {"DOWNSTREAM_DIRECT_REMOTE_ADDRESS", Op::kString, &SI::downstream_direct_remote_address},
      {"DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT", Op::kAddressWithoutPort,
       &SI::downstream_direct_remote_address},
      {"DOWNSTREAM_DIRECT_REMOTE_PORT", Op::kAddressPort, &SI::downstream_direct_remote_address},
      {"DOWNSTREAM_LOCAL_ADDRESS", Op::kString, &SI::downstream_local_address},
      {"DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT", Op::kAddressWithoutPort,
       &SI::downstream_local_address},
      {"DOWNSTREAM_LOCAL_PORT", Op::kAddressPort, &SI::downstream_local_address},
      {"ROUTE_NAME", Op::kString, &SI::route_name},
      {"STREAM_ID", Op::kString, &SI::request_id},
      {"HOSTNAME", Op::kLiteral},
  };
  for (const Simple& s : kSimple) {
    if (s.name != name) continue;
    if (arg) {
      return set_error(error, "access log operator %" + std::string(name) +
                                  "% takes no argument, got " + spell(name, arg));
    }
    piece.op = s.op;
    piece.string_field = s.field;
    piece.from = s.from;
    piece.to = s.to;
    if (s.op == Op::kLiteral) {
      // The host name does not change while we run: resolve it once, like Envoy.
      piece.text = local_hostname();
      if (piece.text.size() > max_length) piece.text.resize(max_length);
    }
    return true;
  }
  return set_error(error, "unknown access log operator " + spell(name, arg));
}

bool Formatter::parse_header_arg(std::string_view name, std::optional<std::string_view> arg,
                                 Piece& piece, std::string* error) {
  const std::string op = spell(name, arg);
  if (!arg || arg->empty()) {
    return set_error(error, "access log operator " + op + " needs a header name, e.g. %" +
                                std::string(name) + "(USER-AGENT)%");
  }
  std::string_view main = *arg;
  std::string_view fallback;
  if (const size_t q = arg->find('?'); q != std::string_view::npos) {
    main = arg->substr(0, q);
    fallback = arg->substr(q + 1);
    if (fallback.find('?') != std::string_view::npos) {
      return set_error(error, "access log operator " + op + " has more than one fallback header");
    }
    if (fallback.empty()) {
      return set_error(error, "access log operator " + op + " has an empty fallback header");
    }
  }
  if (main.empty()) {
    return set_error(error, "access log operator " + op + " has an empty header name");
  }
  for (char c : *arg) {
    if (c == '\0' || c == '\r' || c == '\n' || c == ' ' || c == '\t') {
      return set_error(error, "access log operator " + op + " has an invalid header name");
    }
  }
  piece.text.assign(main);
  ascii_lower(piece.text);
  piece.fallback.assign(fallback);
  ascii_lower(piece.fallback);
  return true;
}

bool Formatter::parse_time_format(std::string_view fmt, Piece& piece, std::string* error) {
  const std::string op = spell("START_TIME", fmt);
  std::string chunk;  // pending strftime text
  auto flush_chunk = [&] {
    if (chunk.empty()) return;
    TimeSegment seg;
    seg.kind = TimeSegment::Kind::kStrftime;
    seg.text = std::move(chunk);
    piece.time.push_back(std::move(seg));
    chunk.clear();
  };
  auto add = [&](TimeSegment::Kind kind, int digits, bool trim) {
    flush_chunk();
    TimeSegment seg;
    seg.kind = kind;
    seg.digits = digits;
    seg.trim = trim;
    piece.time.push_back(std::move(seg));
  };

  for (size_t i = 0; i < fmt.size();) {
    if (fmt[i] != '%') {
      chunk.push_back(fmt[i++]);
      continue;
    }
    if (i + 1 >= fmt.size()) {
      return set_error(error, "access log operator " + op + " ends with a lone '%'");
    }
    const char c = fmt[i + 1];
    if (c == '%') {
      chunk += "%%";
      i += 2;
    } else if (c == 's') {
      add(TimeSegment::Kind::kEpochSeconds, 0, false);
      i += 2;
    } else if (c == 'f') {
      add(TimeSegment::Kind::kFraction, 9, false);  // Envoy: %f is nanoseconds
      i += 2;
    } else if (c >= '1' && c <= '9' && i + 2 < fmt.size() && fmt[i + 2] == 'f') {
      add(TimeSegment::Kind::kFraction, c - '0', false);
      i += 3;
    } else if (c == 'E' && i + 2 < fmt.size()) {
      // Abseil's extensions, which Envoy's formatter inherits from absl::FormatTime.
      const std::string_view rest = fmt.substr(i + 2);
      if (rest.starts_with("*S") || rest.starts_with("*f")) {
        add(rest[1] == 'S' ? TimeSegment::Kind::kSeconds : TimeSegment::Kind::kFraction, 9, true);
        i += 4;
      } else if (rest.size() >= 2 && is_digit(rest[0]) && (rest[1] == 'S' || rest[1] == 'f')) {
        add(rest[1] == 'S' ? TimeSegment::Kind::kSeconds : TimeSegment::Kind::kFraction,
            rest[0] - '0', false);
        i += 4;
      } else if (rest.starts_with("z")) {
        chunk += "+00:00";  // always UTC
        i += 3;
      } else if (rest.starts_with("*z")) {
        chunk += "+00:00:00";
        i += 4;
      } else if (rest.starts_with("4Y")) {
        chunk += "%Y";
        i += 4;
      } else {
        chunk += "%E";  // POSIX alternative forms (%Ec, %EY, ...): strftime knows them
        i += 2;
      }
    } else {
      chunk.push_back('%');  // a strftime conversion; its letter follows as ordinary text
      i += 1;
    }
  }
  flush_chunk();
  return true;
}

void Formatter::format(const StreamInfo& info, std::string& out) const {
  for (const Piece& p : pieces_) {
    if (p.op == Op::kLiteral) {
      out.append(p.text);
      continue;
    }
    const size_t before = out.size();
    if (!append_value(p, info, out)) {
      out.push_back('-');
    } else if (out.size() - before > p.max_length) {
      out.resize(before + p.max_length);
    }
  }
}

bool Formatter::append_value(const Piece& p, const StreamInfo& info, std::string& out) const {
  switch (p.op) {
    case Op::kLiteral:
      out.append(p.text);
      return true;

    case Op::kStartTime:
      append_default_time(out, to_civil(info.start_time));
      return true;

    case Op::kStartTimeCustom: {
      const CivilTime c = to_civil(info.start_time);
      std::tm tm{};
      bool have_tm = false;
      for (const TimeSegment& seg : p.time) {
        switch (seg.kind) {
          case TimeSegment::Kind::kStrftime: {
            if (!have_tm) {
              tm = to_tm(c);
              have_tm = true;
            }
            // Conversions expand to at most a few dozen bytes each; size generously and trim.
            const size_t at = out.size();
            const size_t cap = seg.text.size() * 16 + 64;
            out.resize(at + cap);
            const size_t n = std::strftime(out.data() + at, cap, seg.text.c_str(), &tm);
            out.resize(at + n);
            break;
          }
          case TimeSegment::Kind::kEpochSeconds:
            append_number(out, c.epoch_seconds);
            break;
          case TimeSegment::Kind::kFraction:
            append_fraction(out, c.nanos, seg.digits, seg.trim);
            break;
          case TimeSegment::Kind::kSeconds:
            append_padded(out, c.second, 2);
            if (seg.trim ? c.nanos != 0 : seg.digits > 0) {
              out.push_back('.');
              append_fraction(out, c.nanos, seg.digits, seg.trim);
            }
            break;
        }
      }
      return true;
    }

    case Op::kRequestHeader:
    case Op::kResponseHeader:
    case Op::kResponseTrailer: {
      const HeaderMap* headers = p.op == Op::kRequestHeader    ? info.request_headers
                                 : p.op == Op::kResponseHeader ? info.response_headers
                                                               : info.response_trailers;
      if (headers == nullptr) return false;
      const std::string* v = headers->get(p.text);
      if (v == nullptr && !p.fallback.empty()) v = headers->get(p.fallback);
      if (v == nullptr) return false;
      out.append(*v);
      return true;
    }

    case Op::kString: {
      const std::string& v = info.*p.string_field;
      if (v.empty()) return false;
      out.append(v);
      return true;
    }

    case Op::kAddressWithoutPort:
    case Op::kAddressPort: {
      const std::string& v = info.*p.string_field;
      if (v.empty()) return false;
      const auto [host, port] = split_host_port(v);
      const std::string_view part = p.op == Op::kAddressPort ? port : host;
      if (part.empty()) return false;
      out.append(part);
      return true;
    }

    case Op::kResponseCode:
      append_number(out, info.response_code.value_or(0));  // Envoy prints 0, not "-"
      return true;

    case Op::kResponseFlags:
      if (info.response_flags == 0) {
        out.push_back('-');
      } else {
        out.append(response_flags_to_string(info.response_flags));
      }
      return true;

    case Op::kBytesReceived:
      append_number(out, info.bytes_received);
      return true;

    case Op::kBytesSent:
      append_number(out, info.bytes_sent);
      return true;

    case Op::kDuration: {
      const std::optional<StreamInfo::MonoTime>& to = info.*p.to;
      if (!to) return false;
      StreamInfo::MonoTime from = info.start_mono;
      if (p.from != nullptr) {
        const std::optional<StreamInfo::MonoTime>& f = info.*p.from;
        if (!f) return false;
        from = *f;
      }
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(*to - from).count();
      append_number(out, ms < 0 ? int64_t{0} : static_cast<int64_t>(ms));
      return true;
    }
  }
  return false;
}

}  // namespace sluice::accesslog
