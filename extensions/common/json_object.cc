#include "json_object.h"

namespace ext_common {
inline namespace SLUICE_SDK_NS {
namespace {

class Reader {
 public:
  Reader(std::string_view text, int max_depth) : s_(text), max_depth_(max_depth) {}

  bool fail(const char* why) {
    if (error_.empty()) error_ = std::string(why) + " at byte " + std::to_string(pos_);
    return false;
  }
  const std::string& error() const { return error_; }
  bool at_end() {
    skip_space();
    return pos_ == s_.size();
  }

  void skip_space() {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) {
      ++pos_;
    }
  }
  bool consume(char c) {
    skip_space();
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }

  // A value of any kind; `out` gets what JsonMember::value holds for it.
  bool value(JsonMember::Kind* kind, std::string* out, int depth) {
    skip_space();
    if (pos_ >= s_.size()) return fail("unexpected end");
    const char c = s_[pos_];
    const size_t start = pos_;
    if (c == '"') {
      *kind = JsonMember::Kind::String;
      return string(out);
    }
    if (c == '{' || c == '[') {
      if (depth >= max_depth_) return fail("nested too deep");
      *kind = c == '{' ? JsonMember::Kind::Object : JsonMember::Kind::Array;
      if (!(c == '{' ? object(nullptr, depth + 1) : array(depth + 1))) return false;
      *out = std::string(s_.substr(start, pos_ - start));
      return true;
    }
    if (c == 't' || c == 'f' || c == 'n') {
      for (std::string_view word : {"true", "false", "null"}) {
        if (s_.substr(pos_, word.size()) == word) {
          pos_ += word.size();
          *kind = word == "null" ? JsonMember::Kind::Null : JsonMember::Kind::Bool;
          *out = std::string(word);
          return true;
        }
      }
      return fail("unknown literal");
    }
    *kind = JsonMember::Kind::Number;
    return number(out);
  }

  // {...}; with `members`, the top level's members are collected.
  bool object(std::vector<JsonMember>* members, int depth) {
    if (!consume('{')) return fail("expected '{'");
    if (consume('}')) return true;
    for (;;) {
      skip_space();
      JsonMember m;
      if (pos_ >= s_.size() || s_[pos_] != '"') return fail("expected a member name");
      if (!string(&m.name)) return false;
      if (!consume(':')) return fail("expected ':'");
      if (!value(&m.kind, &m.value, depth)) return false;
      if (members) members->push_back(std::move(m));
      if (consume('}')) return true;
      if (!consume(',')) return fail("expected ',' or '}'");
    }
  }

  bool array(int depth) {
    if (!consume('[')) return fail("expected '['");
    if (consume(']')) return true;
    for (;;) {
      JsonMember::Kind kind;
      std::string ignored;
      if (!value(&kind, &ignored, depth)) return false;
      if (consume(']')) return true;
      if (!consume(',')) return fail("expected ',' or ']'");
    }
  }

  // Every element of an array, nested ones kept as their JSON text.
  bool elements(std::vector<JsonMember>* out) {
    if (!consume('[')) return fail("expected '['");
    if (consume(']')) return true;
    for (;;) {
      JsonMember m;
      if (!value(&m.kind, &m.value, 1)) return false;
      out->push_back(std::move(m));
      if (consume(']')) return true;
      if (!consume(',')) return fail("expected ',' or ']'");
    }
  }

  // Elements of an array whose elements are all strings or numbers.
  bool scalar_elements(std::vector<std::string>* out) {
    if (!consume('[')) return fail("expected '['");
    if (consume(']')) return true;
    for (;;) {
      JsonMember::Kind kind;
      std::string v;
      if (!value(&kind, &v, max_depth_ - 1)) return false;
      if (kind != JsonMember::Kind::String && kind != JsonMember::Kind::Number) {
        return fail("not a scalar");
      }
      out->push_back(std::move(v));
      if (consume(']')) return true;
      if (!consume(',')) return fail("expected ',' or ']'");
    }
  }

 private:
  bool string(std::string* out) {
    ++pos_;  // the opening quote
    out->clear();
    while (pos_ < s_.size()) {
      const unsigned char c = static_cast<unsigned char>(s_[pos_++]);
      if (c == '"') return true;
      if (c < 0x20) return fail("control character in a string");
      if (c >= 0x80) {
        if (!utf8_sequence(c, out)) return fail("invalid UTF-8 in a string");
        continue;
      }
      if (c != '\\') {
        out->push_back(static_cast<char>(c));
        continue;
      }
      if (pos_ >= s_.size()) break;
      const char e = s_[pos_++];
      switch (e) {
        case '"':
        case '\\':
        case '/':
          out->push_back(e);
          break;
        case 'b':
          out->push_back('\b');
          break;
        case 'f':
          out->push_back('\f');
          break;
        case 'n':
          out->push_back('\n');
          break;
        case 'r':
          out->push_back('\r');
          break;
        case 't':
          out->push_back('\t');
          break;
        case 'u': {
          uint32_t cp = 0;
          if (!hex4(&cp)) return false;
          if (cp >= 0xD800 && cp <= 0xDBFF) {  // a high surrogate: its low half must follow
            uint32_t low = 0;
            if (s_.substr(pos_, 2) != "\\u") return fail("unpaired surrogate");
            pos_ += 2;
            if (!hex4(&low) || low < 0xDC00 || low > 0xDFFF) return fail("unpaired surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            return fail("unpaired surrogate");
          }
          append_utf8(cp, out);
          break;
        }
        default:
          return fail("bad escape");
      }
    }
    return fail("unterminated string");
  }

  // The rest of a UTF-8 sequence that starts with `lead` (already read): well-formed as RFC 3629
  // says (no overlong forms, no surrogates, nothing past U+10FFFF), appended to `out`.
  bool utf8_sequence(unsigned char lead, std::string* out) {
    int more;
    uint32_t cp, min;
    if (lead >= 0xC2 && lead <= 0xDF) {
      more = 1, cp = lead & 0x1F, min = 0x80;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      more = 2, cp = lead & 0x0F, min = 0x800;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      more = 3, cp = lead & 0x07, min = 0x10000;
    } else {
      return false;
    }
    if (pos_ + more > s_.size()) return false;
    for (int i = 0; i < more; ++i) {
      const unsigned char c = static_cast<unsigned char>(s_[pos_ + i]);
      if ((c & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (c & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    out->push_back(static_cast<char>(lead));
    out->append(s_.substr(pos_, more));
    pos_ += more;
    return true;
  }

  bool hex4(uint32_t* cp) {
    if (pos_ + 4 > s_.size()) return fail("short \\u escape");
    for (int i = 0; i < 4; ++i) {
      const char h = s_[pos_++];
      *cp <<= 4;
      if (h >= '0' && h <= '9') {
        *cp |= h - '0';
      } else if (h >= 'a' && h <= 'f') {
        *cp |= h - 'a' + 10;
      } else if (h >= 'A' && h <= 'F') {
        *cp |= h - 'A' + 10;
      } else {
        return fail("bad \\u escape");
      }
    }
    return true;
  }

  static void append_utf8(uint32_t cp, std::string* out) {
    if (cp < 0x80) {
      out->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }

  // -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
  bool number(std::string* out) {
    const size_t start = pos_;
    auto digits = [&] {
      const size_t from = pos_;
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
      return pos_ > from;
    };
    if (pos_ < s_.size() && s_[pos_] == '-') ++pos_;
    if (pos_ < s_.size() && s_[pos_] == '0') {
      ++pos_;
    } else if (!digits()) {
      return fail("expected a value");
    }
    if (pos_ < s_.size() && s_[pos_] == '.') {
      ++pos_;
      if (!digits()) return fail("bad number");
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      if (!digits()) return fail("bad number");
    }
    *out = std::string(s_.substr(start, pos_ - start));
    return true;
  }

  std::string_view s_;
  size_t pos_ = 0;
  int max_depth_;
  std::string error_;
};

}  // namespace

std::optional<std::vector<JsonMember>> parse_json_object(std::string_view text, std::string* error,
                                                         int max_depth) {
  Reader r(text, max_depth);
  std::vector<JsonMember> members;
  if (!r.object(&members, 1)) {
    *error = r.error();
    return std::nullopt;
  }
  if (!r.at_end()) {
    r.fail("trailing bytes after the object");
    *error = r.error();
    return std::nullopt;
  }
  return members;
}

std::optional<std::vector<std::string>> scalar_array(std::string_view array_json) {
  Reader r(array_json, 2);
  std::vector<std::string> out;
  if (!r.scalar_elements(&out) || !r.at_end()) return std::nullopt;
  return out;
}

std::optional<std::vector<JsonMember>> parse_json_array(std::string_view text, std::string* error,
                                                        int max_depth) {
  Reader r(text, max_depth);
  std::vector<JsonMember> elements;
  if (!r.elements(&elements)) {
    *error = r.error();
    return std::nullopt;
  }
  if (!r.at_end()) {
    r.fail("trailing bytes after the array");
    *error = r.error();
    return std::nullopt;
  }
  return elements;
}

}  // namespace SLUICE_SDK_NS
}  // namespace ext_common
