// Small string helpers over std::string_view. (Debian's Abseil is built with its own string_view
// type, so absl::StrCat and friends do not take std::string_view; these do, via fmt.)
#pragma once

#include <cstdint>
#include <cstring>
#include <functional>
#include <iterator>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <fmt/format.h>

namespace sluice {

namespace detail {
template <typename T>
void append_one(std::string* out, const T& v) {
  // Strings are appended directly: these helpers sit on the request path (status lines, headers).
  if constexpr (std::is_convertible_v<const T&, std::string_view>) {
    out->append(std::string_view(v));
  } else if constexpr (std::is_same_v<T, char>) {
    out->push_back(v);
  } else {
    fmt::format_to(std::back_inserter(*out), "{}", v);
  }
}
}  // namespace detail

// Hash for std::unordered_map<std::string, V, StringHash, std::equal_to<>>: lookups by
// std::string_view without building a std::string.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

template <typename... Args>
void str_append(std::string* out, const Args&... args) {
  (detail::append_one(out, args), ...);
}

template <typename... Args>
std::string str_cat(const Args&... args) {
  std::string out;
  str_append(&out, args...);
  return out;
}

inline std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    const size_t pos = s.find(sep, start);
    out.push_back(
        s.substr(start, pos == std::string_view::npos ? std::string_view::npos : pos - start));
    if (pos == std::string_view::npos) break;
    start = pos + 1;
  }
  return out;
}

// Calls fn(piece) for each `sep`-separated piece of `s` (like split(), without a vector).
template <typename Fn>
void for_each_piece(std::string_view s, char sep, Fn&& fn) {
  size_t start = 0;
  while (true) {
    const size_t pos = s.find(sep, start);
    fn(s.substr(start, pos == std::string_view::npos ? std::string_view::npos : pos - start));
    if (pos == std::string_view::npos) break;
    start = pos + 1;
  }
}

inline std::string_view trim(std::string_view s) {
  const auto ws = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!s.empty() && ws(s.front())) s.remove_prefix(1);
  while (!s.empty() && ws(s.back())) s.remove_suffix(1);
  return s;
}

inline char ascii_lower_char(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

inline bool equals_ignore_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (ascii_lower_char(a[i]) != ascii_lower_char(b[i])) return false;
  }
  return true;
}

inline bool starts_with_ignore_case(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && equals_ignore_case(s.substr(0, prefix.size()), prefix);
}

inline std::string to_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ascii_lower_char(c);
  return out;
}

// Whether any byte is 'A'..'Z': eight bytes at a time (the per-byte loop showed in profiles of
// plugins' header calls). A byte is upper case when its low seven bits, plus 0x3F, carry into
// the high bit ('A' and above) but, plus 0x25, do not ('Z' and below), and its own high bit is 0.
inline bool has_ascii_upper(std::string_view s) {
  constexpr uint64_t kHigh = 0x8080808080808080ull, kLow7 = 0x7F7F7F7F7F7F7F7Full;
  constexpr uint64_t kFromA = 0x3F3F3F3F3F3F3F3Full, kPastZ = 0x2525252525252525ull;
  const auto any_upper = [&](uint64_t x) {
    const uint64_t low = x & kLow7;
    return ((low + kFromA) & ~(low + kPastZ) & ~x & kHigh) != 0;
  };
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t x;
    std::memcpy(&x, s.data() + i, 8);
    if (any_upper(x)) return true;
  }
  if (i < s.size()) {
    uint64_t x = 0;  // zero bytes are not upper case
    std::memcpy(&x, s.data() + i, s.size() - i);
    return any_upper(x);
  }
  return false;
}

// Whether any byte is a control character other than HTAB, or DEL: what a header value may not
// contain (RFC 9110 section 5.5). Eight bytes at a time, as above (a byte loop was 4.8k
// instructions a request with Istio's 500-byte peer metadata header): with its high bit clear, a
// byte is 0x20 or above when, plus 0x60, it carries into the high bit, and DEL when, plus 1, it
// does; no sum carries into the next byte. A word with anything else (a control byte, or a rare
// HTAB) is looked at byte by byte.
inline bool has_control_byte(std::string_view s) {
  constexpr uint64_t kHigh = 0x8080808080808080ull, kLow7 = 0x7F7F7F7F7F7F7F7Full;
  constexpr uint64_t kOnes = 0x0101010101010101ull;
  const auto control = [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return (u < 0x20 && u != '\t') || u == 0x7F;
  };
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t x;
    std::memcpy(&x, s.data() + i, 8);
    const uint64_t low = x & kLow7;
    const uint64_t plain = ((low + 0x60 * kOnes) & ~(low + kOnes)) | x;  // per byte, high bit
    if ((plain & kHigh) != kHigh) {
      for (size_t j = i; j < i + 8; ++j) {
        if (control(s[j])) return true;
      }
    }
  }
  for (; i < s.size(); ++i) {
    if (control(s[i])) return true;
  }
  return false;
}

// A lower-cased view of a name for one lookup: the name itself when it has no upper case, else a
// copy, on the stack when it is short (header names are), so that the lookups plugins make per
// request allocate nothing. The name must outlive it.
class LowerCased {
 public:
  explicit LowerCased(std::string_view s) {
    if (!has_ascii_upper(s)) {  // the common case: plugins and parsers send lower case
      view_ = s;
    } else if (s.size() <= sizeof inline_) {
      for (size_t i = 0; i < s.size(); ++i) inline_[i] = ascii_lower_char(s[i]);
      view_ = std::string_view(inline_, s.size());
    } else {
      heap_ = to_lower(s);
      view_ = heap_;
    }
  }
  LowerCased(const LowerCased&) = delete;
  LowerCased& operator=(const LowerCased&) = delete;

  std::string_view view() const { return view_; }
  operator std::string_view() const { return view_; }

 private:
  char inline_[96];
  std::string heap_;
  std::string_view view_;
};

}  // namespace sluice
