// Shared driver for the two Http1Parser fuzz targets (http1_request_fuzz.cc,
// http1_response_fuzz.cc).
//
// Input layout: [options byte][split byte][bytes from the peer...]
//   options bits 0-1: max_header_bytes (0: the production value, 1: 8 KiB, 2: 256, 3: 40)
//   options bits 2-3: responses only, which responses answer a HEAD request
//                     (0: none, 1: all, 2: every other one starting with the second, 3: the first)
//   split byte: 0 = the whole input in one execute() call, 1 = one byte per call, otherwise the
//   seed
//               of the pseudo-random cut points.
// Corpus files therefore start with two bytes of options; the seeds use printable ones ("@0").
//
// Each input is parsed twice: once whole and once cut into pieces as a socket would deliver it.
// Both runs resume after every paused message (pipelining), as HttpConnection / UpstreamRequest
// do, and call finish() at the end (the peer closed). Checked:
//   * execute() never consumes more than it was given, stops only at a message end (paused) or an
//     error, pauses after each complete message, and always makes progress after resume();
//   * no callback ever runs on a failed parser, and a failed parser consumes nothing more;
//   * callbacks come in order (headers, body*, complete); no body for an end_stream message or a
//     HEAD response; a Content-Length body is exactly that long;
//   * the header map is well formed: pseudo-headers first (:method :scheme :path :authority, or
//     :status), no Host, names lower-case tokens, values without CR/LF/NUL or surrounding blanks,
//     at most one Transfer-Encoding and only "chunked" (requests); no 1xx reaches the caller;
//   * the parser de-chunks the body exactly when Transfer-Encoding ends in "chunked" (checked,
//     like the round trips below, only for heads the parser goes on to accept);
//   * after finish() without an error, every message whose headers were delivered completed;
//   * the outcome (messages, headers, bodies, failure) does not depend on how input is cut;
//   * the head re-encoded by encode_request_head/encode_response_head parses back to the same
//     header map, and a body re-encoded with encode_chunk parses back to the same bytes;
//   * HeaderMap operations (get/count/get_joined/byte_size/set/add/remove/remove_prefix) agree with
//     a plain scan of the entries, on the map the parser hands out.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/header_map.h"
#include "common/strings.h"
#include "fuzz_check.h"
#include "http/http1_parser.h"

namespace sluice::fuzz {

using http::Http1Parser;
using http::MessageType;

struct Options {
  uint32_t max_header_bytes = 60 * 1024;
  uint8_t head_mode = 0;
  uint8_t split_seed = 0;
};

inline Options decode_options(MessageType type, uint8_t options, uint8_t split) {
  // HttpConnection: max_request_headers_kb (default 60); UpstreamRequest: 96 KiB.
  const uint32_t production = type == MessageType::Request ? 60 * 1024 : 96 * 1024;
  static constexpr uint32_t kSmall[] = {0, 8 * 1024, 256, 40};
  Options o;
  o.max_header_bytes = (options & 3) == 0 ? production : kSmall[options & 3];
  o.head_mode = type == MessageType::Response ? (options >> 2) & 3 : 0;
  o.split_seed = split;
  return o;
}

inline bool answers_head(uint8_t mode, size_t index) {
  switch (mode) {
    case 1:
      return true;
    case 2:
      return index % 2 == 1;
    case 3:
      return index == 0;
    default:
      return false;
  }
}

// Printable rendering of bytes for failure messages.
inline std::string escape(std::string_view s, size_t max = 400) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < max; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '\r') {
      out += "\\r";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\\') {
      out += "\\\\";
    } else if (c < 0x20 || c >= 0x7f) {
      static const char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (s.size() > max) out += "...";
  return out;
}

using HeaderList = std::vector<std::pair<std::string, std::string>>;

inline HeaderList snapshot(const HeaderMap& h) {
  HeaderList out;
  for (const auto& e : h) out.emplace_back(e.key, e.value);
  return out;
}

inline std::string describe(const HeaderList& headers) {
  std::string out;
  for (const auto& [k, v] : headers) out += "\n    " + escape(k) + ": " + escape(v);
  return out;
}

// What the parser reported for one message.
struct Message {
  HeaderList headers;
  bool end_stream = false;
  std::string body;
  bool complete = false;
  bool keep_alive = false;
  int http_major = 0;
  int http_minor = 0;
  bool chunked = false;
  std::optional<uint64_t> content_length;

  bool operator==(const Message&) const = default;
};

struct Outcome {
  std::vector<Message> messages;
  bool failed = false;
};

// The non-empty elements of a comma-separated list, trimmed.
inline std::vector<std::string> list_elements(std::string_view list) {
  std::vector<std::string> out;
  for (std::string_view e : split(list, ',')) {
    e = trim(e);
    if (!e.empty()) out.emplace_back(e);
  }
  return out;
}

inline bool is_tchar(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

// Collects the first message's head (and its body) from a throwaway parser: used to re-parse
// what the encoders produced.
class Collector : public http::Http1ParserCallbacks {
 public:
  void on_message_headers(HeaderMap& headers, bool end_stream) override {
    if (!got_headers) head = snapshot(headers);
    got_headers = true;
  }
  void on_message_body(std::string_view data) override { body.append(data); }
  void on_message_complete() override { complete = true; }

  bool got_headers = false;
  bool complete = false;
  HeaderList head;
  std::string body;
};

class Recorder : public http::Http1ParserCallbacks {
 public:
  Recorder(MessageType type, bool deep) : type_(type), deep_(deep) {}

  void on_message_headers(HeaderMap& h, bool end_stream) override {
    check_alive("on_message_headers");
    FUZZ_CHECK(!in_message_, "headers of message %zu before message %zu completed",
               out.messages.size(), out.messages.size() - 1);
    in_message_ = true;
    rechunked_.clear();
    deferred_error_.clear();
    Message& m = out.messages.emplace_back();
    m.headers = snapshot(h);
    m.end_stream = end_stream;
    m.keep_alive = parser->keep_alive();
    m.http_major = parser->http_major();
    m.http_minor = parser->http_minor();
    m.chunked = parser->chunked();
    m.content_length = parser->content_length();
    FUZZ_CHECK(!(m.chunked && m.content_length), "chunked message with a content length");
    if (type_ == MessageType::Response && head_) {
      FUZZ_CHECK(end_stream, "a response to HEAD announced a body");
    }
    check_header_map(h, m);
    // The framing the parser applies must be the one the headers announce (the caller forwards
    // the headers and re-frames the body from what the parser says).
    // (A trailing empty element, "chunked,", is left alone: whether chunked is then the final
    // coding is debatable, and reading until close is the safe answer for a response.)
    const std::string te = h.get_joined("transfer-encoding");
    const bool chunked_last =
        !te.empty() && equals_ignore_case(trim(split(te, ',').back()), "chunked");
    if (chunked_last != m.chunked) {
      defer("transfer-encoding '" + escape(te) + "' but the parser " +
            (m.chunked ? "de-chunks" : "does not de-chunk") + " the body:" + describe(m.headers));
    }
    if (deep_) {
      round_trip_head(h);
      exercise_header_map(h);
    }
  }

  // http-parser can still reject a message after on_headers_complete (e.g. a request whose
  // Transfer-Encoding is not chunked). Problems with a head (framing that disagrees with the
  // headers, a re-encoded head that does not read back) are bugs only if the head was accepted:
  // the message went on to a body, completed, or was still going when the input ended.
  void head_accepted() { FUZZ_CHECK(deferred_error_.empty(), "%s", deferred_error_.c_str()); }

  void on_message_body(std::string_view data) override {
    check_alive("on_message_body");
    FUZZ_CHECK(in_message_, "body outside a message");
    head_accepted();
    Message& m = out.messages.back();
    FUZZ_CHECK(!m.end_stream, "body for a message announced without one (%zu bytes: %s)",
               data.size(), escape(data, 80).c_str());
    m.body.append(data);
    if (m.content_length && !m.chunked) {
      FUZZ_CHECK(m.body.size() <= *m.content_length, "body longer than content-length %llu",
                 static_cast<unsigned long long>(*m.content_length));
    }
    if (deep_) http::encode_chunk(data, rechunked_);
  }

  void on_message_complete() override {
    check_alive("on_message_complete");
    FUZZ_CHECK(in_message_, "message complete without headers");
    head_accepted();
    in_message_ = false;
    ++completions;
    Message& m = out.messages.back();
    m.complete = true;
    if (m.end_stream) FUZZ_CHECK(m.body.empty());
    if (m.content_length && !m.chunked && !m.end_stream) {
      FUZZ_CHECK(m.body.size() == *m.content_length, "body of %zu bytes, content-length %llu",
                 m.body.size(), static_cast<unsigned long long>(*m.content_length));
    }
    if (deep_ && !m.body.empty()) round_trip_chunks(m.body);
  }

  Http1Parser* parser = nullptr;
  Outcome out;
  size_t completions = 0;
  bool in_message() const { return in_message_; }
  void set_head(bool head) { head_ = head; }

 private:
  void check_alive(const char* what) {
    FUZZ_CHECK(!parser->failed(), "%s called on a failed parser (%s)", what,
               parser->error().c_str());
  }

  void check_header_map(const HeaderMap& h, const Message& m) {
    const HeaderList& e = m.headers;
    size_t pseudo = 0;
    if (type_ == MessageType::Request) {
      static constexpr std::string_view kPseudo[] = {":method", ":scheme", ":path", ":authority"};
      FUZZ_CHECK(e.size() >= 4, "request without its pseudo-headers:%s",
                 describe(m.headers).c_str());
      for (size_t i = 0; i < 4; ++i) {
        FUZZ_CHECK(e[i].first == kPseudo[i], "entry %zu is '%s', expected %s", i,
                   escape(e[i].first).c_str(), std::string(kPseudo[i]).c_str());
      }
      pseudo = 4;
      FUZZ_CHECK(!h.method().empty() && h.method() != "CONNECT", "method '%s'",
                 escape(h.method()).c_str());
      FUZZ_CHECK(h.scheme() == "http");
      const std::string_view path = h.path();
      FUZZ_CHECK(path == "*" || (!path.empty() && path[0] == '/'), ":path '%s'",
                 escape(path).c_str());
      FUZZ_CHECK(h.count("host") == 0, "host header left in the map");
      if (const std::string* te = h.get("transfer-encoding")) {
        FUZZ_CHECK(h.count("transfer-encoding") == 1 && equals_ignore_case(trim(*te), "chunked"),
                   "transfer-encoding '%s' accepted",
                   escape(h.get_joined("transfer-encoding")).c_str());
      }
    } else {
      FUZZ_CHECK(!e.empty() && e[0].first == ":status", "response without :status first:%s",
                 describe(m.headers).c_str());
      pseudo = 1;
      const std::string& status = e[0].second;
      FUZZ_CHECK(!status.empty() && status.size() <= 3 &&
                     std::all_of(status.begin(), status.end(),
                                 [](char c) { return c >= '0' && c <= '9'; }),
                 ":status '%s'", escape(status).c_str());
      FUZZ_CHECK(!(status.size() == 3 && status[0] == '1'), "interim %s response delivered",
                 status.c_str());
    }
    FUZZ_CHECK(e.size() - pseudo <= 100, "%zu headers accepted (limit 100)", e.size() - pseudo);
    for (size_t i = pseudo; i < e.size(); ++i) {
      const std::string& k = e[i].first;
      const std::string& v = e[i].second;
      FUZZ_CHECK(!k.empty(), "empty header name");
      for (unsigned char c : k) {
        FUZZ_CHECK(is_tchar(c) && !(c >= 'A' && c <= 'Z'), "header name '%s'", escape(k).c_str());
      }
      for (unsigned char c : v) {
        FUZZ_CHECK(!((c < 0x20 && c != '\t') || c == 0x7f), "header %s value '%s'",
                   escape(k).c_str(), escape(v).c_str());
      }
      FUZZ_CHECK(v.empty() ||
                     (v.front() != ' ' && v.front() != '\t' && v.back() != ' ' && v.back() != '\t'),
                 "header %s value with surrounding blanks '%s'", escape(k).c_str(),
                 escape(v).c_str());
    }
  }

  // What the proxy writes to the next hop must read back the same.
  void round_trip_head(const HeaderMap& h) {
    // The Host header an absolute-form request gains may push the re-encoded head over the
    // 100-header limit; that is not what this checks.
    if (h.size() > 95) return;
    std::string wire;
    if (type_ == MessageType::Request) {
      http::encode_request_head(h, wire);
    } else {
      http::encode_response_head(h, /*http10=*/false, wire);
    }
    Collector c;
    Http1Parser p(type_, c, 1 << 20);
    p.expect_head_response(true);
    const size_t n = p.execute(wire.data(), wire.size());
    FUZZ_CHECK(n <= wire.size());
    const HeaderList original = snapshot(h);
    if (p.failed() || !c.got_headers) {
      defer("re-encoded head rejected (" + p.error() + "):\n  " + escape(wire));
    } else if (c.head != original) {
      defer("re-encoded head reads differently:\n  " + escape(wire) +
            "\n  original:" + describe(original) + "\n  re-parsed:" + describe(c.head));
    }
  }

  void round_trip_chunks(const std::string& body) {
    std::string wire = "POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n";
    wire += rechunked_;
    wire += http::kLastChunk;
    Collector c;
    Http1Parser p(MessageType::Request, c, 1 << 20);
    const size_t n = p.execute(wire.data(), wire.size());
    FUZZ_CHECK(!p.failed() && c.complete && n == wire.size(), "re-chunked body rejected: %s",
               p.error().c_str());
    FUZZ_CHECK(c.body == body, "re-chunked body reads differently");
  }

  // HeaderMap operations, checked against a plain scan of the entries. Mutates the map the parser
  // handed out, as HttpConnection does (hop-by-hop removal, x-forwarded-*, rewrites).
  void exercise_header_map(HeaderMap& h) {
    const HeaderList before = snapshot(h);
    size_t bytes = 0;
    for (const auto& [k, v] : before) bytes += k.size() + v.size();
    FUZZ_CHECK(h.byte_size() == bytes);
    FUZZ_CHECK(h.size() == before.size() && h.empty() == before.empty());
    for (size_t i = 0; i < before.size() && i < 8; ++i) {
      const std::string& key = before[i].first;
      size_t count = 0;
      std::string joined;
      const std::string* first = nullptr;
      for (const auto& [k, v] : before) {
        if (k != key) continue;
        if (count++ > 0) joined += ", ";
        joined += v;
        if (!first) first = &v;
      }
      FUZZ_CHECK(h.has(key) && h.count(key) == count);
      // Empty list elements carry nothing (RFC 9110 5.6.1); get_joined drops leading ones.
      FUZZ_CHECK(list_elements(h.get_joined(key)) == list_elements(joined),
                 "get_joined(%s): '%s', values joined: '%s'", escape(key).c_str(),
                 escape(h.get_joined(key)).c_str(), escape(joined).c_str());
      FUZZ_CHECK(h.get(key) != nullptr && *h.get(key) == *first && h.get_or_empty(key) == *first);
    }
    FUZZ_CHECK(h.get("x-fuzz absent") == nullptr && h.get_or_empty("x-fuzz absent").empty() &&
               h.get_joined("x-fuzz absent").empty() && h.count("x-fuzz absent") == 0);

    HeaderMap copy = h;
    // Connection-nominated hop-by-hop headers, then the fixed ones.
    const std::string connection = h.get_joined("connection");
    for (std::string_view token : split(connection, ',')) {
      const std::string name = to_lower(trim(token));
      if (name.empty() || name[0] == ':') continue;
      h.remove(name);
      FUZZ_CHECK(!h.has(name));
    }
    for (std::string_view name :
         {"connection", "keep-alive", "proxy-connection", "te", "transfer-encoding", "upgrade"}) {
      const size_t had = h.count(name);
      FUZZ_CHECK(h.remove(name) == had && !h.has(name));
    }
    const size_t xff = h.count("x-forwarded-for");
    h.add("X-Forwarded-For", "10.0.0.1");
    FUZZ_CHECK(h.count("x-forwarded-for") == xff + 1);
    h.set("X-Forwarded-Proto", "http");
    FUZZ_CHECK(h.count("x-forwarded-proto") == 1 && *h.get("x-forwarded-proto") == "http");
    const size_t removed = h.remove_prefix("x-");
    FUZZ_CHECK(removed >= 2);
    for (const auto& e : h) FUZZ_CHECK(!e.key.starts_with("x-"));
    if (type_ == MessageType::Request) {
      h.set(":path", "/rewritten");
      FUZZ_CHECK(h.path() == "/rewritten" && h[2].key == ":path");
    }
    // The copy is independent of what was done to the original.
    FUZZ_CHECK(snapshot(copy) == before);
    std::string wire;
    if (type_ == MessageType::Request) {
      http::encode_request_head(h, wire);
    } else {
      http::encode_response_head(h, /*http10=*/true, wire);
    }
    FUZZ_CHECK(wire.ends_with("\r\n\r\n"));
  }

  MessageType type_;
  bool deep_;
  bool head_ = false;
  bool in_message_ = false;
  std::string rechunked_;
  std::string deferred_error_;

  void defer(std::string problem) {
    if (deferred_error_.empty()) deferred_error_ = std::move(problem);
  }
};

// Where the input is cut between execute() calls.
class Splitter {
 public:
  Splitter(uint8_t seed, size_t size)
      : seed_(seed), state_(seed * 0x9E3779B97F4A7C15ull ^ (size + 1)) {}

  size_t next(size_t remaining) {
    if (seed_ == 0) return remaining;
    if (seed_ == 1) return 1;
    // splitmix64
    state_ += 0x9E3779B97F4A7C15ull;
    uint64_t z = state_;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    size_t n;
    switch (z & 3) {
      case 0:
        n = 1 + (z >> 8) % 3;
        break;
      case 1:
        n = 1 + (z >> 8) % 16;
        break;
      case 2:
        n = 1 + (z >> 8) % 256;
        break;
      default:
        n = 1 + (z >> 8) % remaining;
        break;
    }
    return std::min(n, remaining);
  }

 private:
  uint8_t seed_;
  uint64_t state_;
};

inline Outcome run_parser(MessageType type, const Options& opt, std::string_view input,
                          uint8_t split_seed, bool deep) {
  Recorder rec(type, deep);
  Http1Parser parser(type, rec, opt.max_header_bytes);
  rec.parser = &parser;
  // A client knows which of its requests were HEAD; tell the parser before each response.
  const auto arm = [&] {
    if (type != MessageType::Response) return;
    const bool head = answers_head(opt.head_mode, rec.completions);
    rec.set_head(head);
    parser.expect_head_response(head);
  };
  arm();

  Splitter splitter(split_seed, input.size());
  size_t pos = 0;
  int stalls = 0;
  while (pos < input.size() && !parser.failed()) {
    const size_t end = pos + splitter.next(input.size() - pos);
    while (pos < end) {
      if (parser.paused()) {
        arm();
        parser.resume();
        FUZZ_CHECK(!parser.paused(), "resume() left the parser paused");
      }
      const size_t before = rec.completions;
      const size_t len = end - pos;
      const size_t n = parser.execute(input.data() + pos, len);
      FUZZ_CHECK(n <= len, "execute() consumed %zu of %zu bytes", n, len);
      pos += n;
      const size_t done = rec.completions - before;
      FUZZ_CHECK(done <= 1,
                 "%zu messages completed in one execute() call: it must pause after each", done);
      if (parser.failed()) {
        FUZZ_CHECK(done == 0, "failed in the call that completed a message");
        FUZZ_CHECK(!parser.error().empty());
        const int status = parser.error_status();
        FUZZ_CHECK(status == 400 || status == 431 || status == 501, "error status %d", status);
        break;
      }
      if (done == 1) FUZZ_CHECK(parser.paused(), "not paused after a complete message");
      if (n < len) {
        FUZZ_CHECK(parser.paused(),
                   "execute() consumed %zu of %zu bytes without pausing or failing", n, len);
      }
      // After resume() the parser must move: two calls in a row without a byte consumed is a
      // connection that never gets anywhere.
      stalls = n == 0 ? stalls + 1 : 0;
      FUZZ_CHECK(stalls < 2, "no progress at offset %zu (paused=%d)", pos, parser.paused());
    }
  }

  if (parser.failed()) {
    // A failed parser stays failed: it consumes nothing and calls nothing (check_alive).
    parser.resume();
    FUZZ_CHECK(parser.execute(input.data(), input.size()) == 0 || input.empty());
    parser.finish();
    FUZZ_CHECK(parser.failed());
  } else {
    FUZZ_CHECK(pos == input.size());
    // The peer closed: completes a close-delimited response, or fails a truncated message.
    parser.finish();
    if (!parser.failed()) {
      FUZZ_CHECK(!rec.in_message(), "finish() without an error left message %zu incomplete",
                 rec.out.messages.size() - 1);
      rec.head_accepted();
    } else {
      FUZZ_CHECK(!parser.error().empty());
    }
  }
  rec.out.failed = parser.failed();
  return std::move(rec.out);
}

inline void compare(const Outcome& whole, const Outcome& pieces, uint8_t seed) {
  const size_t n = std::min(whole.messages.size(), pieces.messages.size());
  for (size_t i = 0; i < n; ++i) {
    const Message& a = whole.messages[i];
    const Message& b = pieces.messages[i];
    FUZZ_CHECK(a.headers == b.headers, "message %zu headers depend on the cut (seed %u):%s\n vs%s",
               i, seed, describe(a.headers).c_str(), describe(b.headers).c_str());
    FUZZ_CHECK(a.body == b.body, "message %zu body depends on the cut (seed %u): %zu vs %zu bytes",
               i, seed, a.body.size(), b.body.size());
    FUZZ_CHECK(a == b,
               "message %zu flags depend on the cut (seed %u): complete %d/%d end_stream %d/%d", i,
               seed, a.complete, b.complete, a.end_stream, b.end_stream);
  }
  FUZZ_CHECK(whole.messages.size() == pieces.messages.size(),
             "%zu messages whole, %zu when cut (seed %u)", whole.messages.size(),
             pieces.messages.size(), seed);
  FUZZ_CHECK(whole.failed == pieces.failed, "failed whole=%d cut=%d (seed %u)", whole.failed,
             pieces.failed, seed);
}

// SLUICE_FUZZ_VERBOSE=1: print what the parser reported, to see what a reproducer does.
inline void print_outcome(const Options& opt, const Outcome& o) {
  std::fprintf(stderr, "max_header_bytes=%u head_mode=%u split=%u: %zu message(s)%s\n",
               opt.max_header_bytes, opt.head_mode, opt.split_seed, o.messages.size(),
               o.failed ? ", then FAILED" : "");
  for (const Message& m : o.messages) {
    std::fprintf(stderr, "  HTTP/%d.%d%s%s end_stream=%d body=%zu complete=%d%s\n", m.http_major,
                 m.http_minor, m.chunked ? " chunked" : "", m.keep_alive ? " keep-alive" : "",
                 m.end_stream, m.body.size(), m.complete, describe(m.headers).c_str());
  }
}

inline int fuzz_http1(MessageType type, const uint8_t* data, size_t size) {
  static const bool verbose = std::getenv("SLUICE_FUZZ_VERBOSE") != nullptr;
  if (size < 2) return 0;
  const Options opt = decode_options(type, data[0], data[1]);
  const std::string_view input(reinterpret_cast<const char*>(data) + 2, size - 2);
  const Outcome whole =
      run_parser(type, opt, input, /*split_seed=*/0, /*deep=*/opt.split_seed == 0);
  if (verbose) print_outcome(opt, whole);
  if (opt.split_seed != 0) {
    const Outcome pieces = run_parser(type, opt, input, opt.split_seed, /*deep=*/true);
    compare(whole, pieces, opt.split_seed);
  }
  return 0;
}

}  // namespace sluice::fuzz
