#include "http/http1_parser.h"

#include <cstring>

#include "common/strings.h"

namespace sluice::http {
namespace {
constexpr uint32_t kMaxHeadersCount = 100;  // Envoy's default max_headers_count
}

Http1Parser::Http1Parser(MessageType type, Http1ParserCallbacks& callbacks,
                         uint32_t max_header_bytes)
    : type_(type), callbacks_(callbacks), max_header_bytes_(max_header_bytes) {
  http_parser_init(&parser_, type == MessageType::Request ? HTTP_REQUEST : HTTP_RESPONSE);
  parser_.data = this;
  http_parser_settings_init(&settings_);
  settings_.on_message_begin = on_message_begin;
  settings_.on_url = on_url;
  settings_.on_status = on_status;
  settings_.on_header_field = on_header_field;
  settings_.on_header_value = on_header_value;
  settings_.on_headers_complete = on_headers_complete;
  settings_.on_body = on_body;
  settings_.on_chunk_header = on_chunk_header;
  settings_.on_message_complete = on_message_complete_cb;
}

void Http1Parser::fail(std::string message, int status) {
  if (error_.empty()) {
    error_ = std::move(message);
    error_status_ = status;
  }
}

size_t Http1Parser::execute(const char* data, size_t len) {
  if (failed() || paused_) return 0;
  size_t total = 0;
  while (total < len) {
    // The raw scan must cover exactly the header section http-parser is about to read, so it runs
    // per message: interim (1xx) responses pause the parser too, and we come back here.
    if (in_headers_ && !scan_header_bytes(data + total, len - total)) return total;
    total += http_parser_execute(&parser_, &settings_, data + total, len - total);
    if (failed()) return total;
    const http_errno err = HTTP_PARSER_ERRNO(&parser_);
    if (err == HPE_PAUSED) {
      if (interim_pause_ || trailer_pause_) {
        interim_pause_ = trailer_pause_ = false;
        http_parser_pause(&parser_, 0);
        continue;
      }
      paused_ = true;
      return total;
    }
    if (err != HPE_OK) {
      int status = 400;
      if (err == HPE_HEADER_OVERFLOW) status = 431;
      fail(str_cat("http/1.1 protocol error: ", http_errno_name(err)), status);
    }
    return total;
  }
  return total;
}

void Http1Parser::finish() {
  if (failed()) return;
  if (paused_) resume();
  http_parser_execute(&parser_, &settings_, nullptr, 0);
  const http_errno err = HTTP_PARSER_ERRNO(&parser_);
  if (err != HPE_OK && err != HPE_PAUSED && in_message_) {
    fail(str_cat("http/1.1 protocol error: ", http_errno_name(err)), 400);
  }
}

void Http1Parser::resume() {
  if (!paused_) return;
  paused_ = false;
  http_parser_pause(&parser_, 0);
}

// http-parser accepts obs-folded lines and bare LF; Envoy rejects both (they enable request
// smuggling through intermediaries that read them differently). Scan the raw header bytes first,
// a line at a time (memchr finds the line ends and stray CRs far faster than a byte loop).
// State carried across reads: prev_byte_ (the last byte seen), at_line_start_ (no content byte
// on this line yet) and seen_content_ (the message has started: leading empty lines are allowed).
bool Http1Parser::scan_header_bytes(const char* data, size_t len) {
  size_t i = 0;
  while (i < len) {
    const char* lf = static_cast<const char*>(std::memchr(data + i, '\n', len - i));
    const size_t end = lf ? static_cast<size_t>(lf - data) : len;  // this line's bytes: [i, end)
    if (end > i) {
      if (prev_byte_ == '\r') {
        fail("http/1.1 protocol error: bare CR in headers", 400);
        return false;
      }
      // A CR may only be the last byte before the LF (or the last byte read so far).
      const char* cr = static_cast<const char*>(std::memchr(data + i, '\r', end - i));
      if (cr && static_cast<size_t>(cr - data) != end - 1) {
        fail("http/1.1 protocol error: bare CR in headers", 400);
        return false;
      }
      const size_t content = end - i - (cr ? 1 : 0);
      if (content > 0) {
        if (at_line_start_ && seen_content_ && (data[i] == ' ' || data[i] == '\t')) {
          fail("http/1.1 protocol error: obsolete line folding in headers", 400);
          return false;
        }
        at_line_start_ = false;
        seen_content_ = true;
      }
      prev_byte_ = data[end - 1];
    }
    if (!lf) return true;
    if (prev_byte_ != '\r') {
      fail("http/1.1 protocol error: bare LF line ending", 400);
      return false;
    }
    if (at_line_start_ && seen_content_) {
      in_headers_ = false;  // end of the header section: the body is http-parser's business
      return true;
    }
    at_line_start_ = true;
    prev_byte_ = '\n';
    i = end + 1;
  }
  return true;
}

int Http1Parser::on_message_begin(http_parser* p) {
  auto* self = static_cast<Http1Parser*>(p->data);
  self->in_message_ = true;
  self->headers_.clear();
  self->trailers_.clear();
  self->in_trailers_ = false;
  // Pseudo-headers first, as HTTP/2 orders them: placeholders now, values once known.
  if (self->type_ == MessageType::Request) {
    for (const char* key : {":method", ":scheme", ":path", ":authority"}) {
      self->headers_.append_empty().key = key;
    }
  } else {
    self->headers_.append_empty().key = ":status";
  }
  self->url_.clear();
  self->building_header_ = false;
  self->last_was_value_ = false;
  self->header_bytes_ = 0;
  self->host_count_ = 0;
  self->header_count_ = 0;
  self->transfer_encoding_count_ = 0;
  self->chunked_ = false;
  self->content_length_.reset();
  return 0;
}

int Http1Parser::on_url(http_parser* p, const char* at, size_t len) {
  auto* self = static_cast<Http1Parser*>(p->data);
  self->header_bytes_ += static_cast<uint32_t>(len);
  if (self->header_bytes_ > self->max_header_bytes_) {
    self->fail("request headers too large", 431);
    return 1;
  }
  self->url_.append(at, len);
  return 0;
}

int Http1Parser::on_status(http_parser* p, const char*, size_t) { return 0; }

namespace {
// Header names: each byte's lower-case form where it is an RFC 9110 tchar, 0 where it is not, so
// one table lookup both checks and lower-cases it (values: has_control_byte).
struct TokenBytes {
  char lower[256] = {};
  constexpr TokenBytes() {
    for (int c = 'a'; c <= 'z'; ++c) lower[c] = static_cast<char>(c);
    for (int c = 'A'; c <= 'Z'; ++c) lower[c] = static_cast<char>(c - 'A' + 'a');
    for (int c = '0'; c <= '9'; ++c) lower[c] = static_cast<char>(c);
    for (char c : std::string_view("!#$%&'*+-.^_`|~")) lower[static_cast<unsigned char>(c)] = c;
  }
};
constexpr TokenBytes kTokenBytes;
}  // namespace

// The header being built is the map's last entry (http-parser may hand a name or a value over in
// pieces, across reads): validated, lower-cased and trimmed here once it is complete.
bool Http1Parser::commit_header() {
  if (!building_header_) return true;
  building_header_ = false;
  HeaderMap& map = in_trailers_ ? trailers_ : headers_;
  HeaderMap::Entry& e = map.back();
  // http-parser (non-strict) lets "Host : x" through with a space in the name, and checks value
  // bytes only from the second one on; both are smuggling and injection vectors.
  for (char& c : e.key) {
    const char lower = kTokenBytes.lower[static_cast<unsigned char>(c)];
    if (lower == 0) {
      fail("http/1.1 protocol error: invalid character in header name", 400);
      return false;
    }
    c = lower;
  }
  if (has_control_byte(e.value)) {
    fail("http/1.1 protocol error: invalid character in header value", 400);
    return false;
  }
  if (++header_count_ > kMaxHeadersCount) {
    fail("too many headers", 431);
    return false;
  }
  // Trailing whitespace of a value is not part of it (RFC 9110); http-parser keeps it.
  while (!e.value.empty() && (e.value.back() == ' ' || e.value.back() == '\t')) e.value.pop_back();
  if (in_trailers_) return true;
  if (e.key == "transfer-encoding") ++transfer_encoding_count_;
  if (type_ == MessageType::Request && e.key == "host") {
    // HTTP/1's Host is :authority (a second one is refused once the headers are complete).
    if (++host_count_ == 1) headers_[kAuthorityIndex].value.swap(e.value);
    headers_.pop_back();
  }
  return true;
}

int Http1Parser::on_header_field(http_parser* p, const char* at, size_t len) {
  auto* self = static_cast<Http1Parser*>(p->data);
  if (self->last_was_value_) {
    if (!self->commit_header()) return 1;
    self->last_was_value_ = false;
  }
  self->header_bytes_ += static_cast<uint32_t>(len);
  if (self->header_bytes_ > self->max_header_bytes_) {
    self->fail("headers too large", 431);
    return 1;
  }
  HeaderMap& map = self->in_trailers_ ? self->trailers_ : self->headers_;
  if (!self->building_header_) {
    map.append_empty();
    self->building_header_ = true;
  }
  map.back().key.append(at, len);
  return 0;
}

int Http1Parser::on_header_value(http_parser* p, const char* at, size_t len) {
  auto* self = static_cast<Http1Parser*>(p->data);
  self->last_was_value_ = true;
  self->header_bytes_ += static_cast<uint32_t>(len);
  if (self->header_bytes_ > self->max_header_bytes_) {
    self->fail("headers too large", 431);
    return 1;
  }
  HeaderMap& map = self->in_trailers_ ? self->trailers_ : self->headers_;
  if (!self->building_header_) {  // (http-parser always sends a field first)
    map.append_empty();
    self->building_header_ = true;
  }
  map.back().value.append(at, len);
  return 0;
}

int Http1Parser::on_headers_complete(http_parser* p) {
  auto* self = static_cast<Http1Parser*>(p->data);
  if (!self->commit_header()) return -1;
  HeaderMap& h = self->headers_;
  // http-parser drops its chunked flag when a later header merely starts with
  // "Transfer-Encoding" ("Transfer-Encoding-X: y"), which would read a chunked body as no body
  // (a smuggling vector) or as a close-delimited one. Decide framing from the header map.
  if (self->transfer_encoding_count_ > 0) {
    if (h.has("content-length")) {
      self->fail("both Content-Length and Transfer-Encoding", 400);
      return -1;
    }
    const std::string joined = h.get_joined("transfer-encoding");
    std::string_view last = joined;  // the last coding decides the framing
    if (const size_t comma = last.rfind(','); comma != std::string_view::npos) {
      last.remove_prefix(comma + 1);
    }
    if (equals_ignore_case(trim(last), "chunked")) p->flags |= F_CHUNKED;
  }
  self->chunked_ = (p->flags & F_CHUNKED) != 0;
  if (!self->chunked_ && (p->flags & F_CONTENTLENGTH)) self->content_length_ = p->content_length;
  // Upgrades (WebSocket, h2c) are not supported: carry on as a plain request; the Upgrade and
  // Connection headers are hop-by-hop and get removed before forwarding.
  p->upgrade = 0;

  if (self->type_ == MessageType::Request) {
    if (p->method == HTTP_CONNECT) {
      self->fail("CONNECT is not supported", 400);
      return -1;
    }
    // Only "chunked" is understood; anything else would leave the body length ambiguous (a
    // smuggling vector). Envoy answers 501.
    if (const std::string* te = h.get("transfer-encoding");
        te && (self->transfer_encoding_count_ > 1 || !equals_ignore_case(trim(*te), "chunked"))) {
      self->fail("unsupported transfer encoding", 501);
      return -1;
    }
    if (self->host_count_ > 1) {
      self->fail("duplicate Host header", 400);
      return -1;
    }
    const std::string& target = self->url_;
    const bool origin_form = !target.empty() && target[0] == '/';
    const bool asterisk_form = target == "*" && p->method == HTTP_OPTIONS;
    const bool absolute_form =
        starts_with_ignore_case(target, "http://") || starts_with_ignore_case(target, "https://");
    if (!origin_form && !asterisk_form && !absolute_form) {
      self->fail("invalid request target", 400);
      return -1;
    }
    HeaderMap::Entry* pseudo = &h.front_mutable();
    pseudo[0].value = http_method_str(static_cast<http_method>(p->method));
    pseudo[1].value = "http";
    pseudo[2].value = target;
    // Absolute-form targets ("GET http://host/path"): the authority comes from the URL.
    if (absolute_form) {
      http_parser_url u;
      http_parser_url_init(&u);
      if (http_parser_parse_url(target.data(), target.size(), 0, &u) != 0) {
        self->fail("invalid request target", 400);
        return -1;
      }
      std::string& authority = pseudo[kAuthorityIndex].value;
      if (u.field_set & (1 << UF_HOST)) {
        authority.assign(target, u.field_data[UF_HOST].off, u.field_data[UF_HOST].len);
        if (u.field_set & (1 << UF_PORT)) {
          str_append(&authority, ":",
                     std::string_view(target).substr(u.field_data[UF_PORT].off,
                                                     u.field_data[UF_PORT].len));
        }
      }
      if (u.field_set & (1 << UF_PATH)) {
        pseudo[2].value.assign(target, u.field_data[UF_PATH].off);
      } else {
        pseudo[2].value = "/";
      }
    }
  } else {
    // http-parser only accepts three-digit status codes.
    const unsigned code = p->status_code;
    const char digits[3] = {static_cast<char>('0' + code / 100 % 10),
                            static_cast<char>('0' + code / 10 % 10),
                            static_cast<char>('0' + code % 10)};
    h.front_mutable().value.assign(digits, 3);
  }

  const bool has_body = self->chunked_ || (self->content_length_ && *self->content_length_ > 0) ||
                        (self->type_ == MessageType::Response && !self->content_length_);
  bool skip_body = false;
  if (self->type_ == MessageType::Response) {
    // HEAD responses, 1xx, 204 and 304 carry no body whatever their headers say.
    skip_body = self->head_response_ || p->status_code / 100 == 1 || p->status_code == 204 ||
                p->status_code == 304;
  }
  const bool end_stream = skip_body || !has_body;
  // 1xx interim responses are not messages of their own for the caller: swallow them.
  if (self->type_ == MessageType::Response && p->status_code / 100 == 1) return 1;
  self->callbacks_.on_message_headers(h, end_stream);
  return skip_body ? 1 : 0;
}

int Http1Parser::on_body(http_parser* p, const char* at, size_t len) {
  auto* self = static_cast<Http1Parser*>(p->data);
  self->callbacks_.on_message_body(std::string_view(at, len));
  return 0;
}

// The last chunk ("0") of a chunked body: what follows is the trailer section, a header section
// of its own. Pause so execute() scans its raw bytes (bare LF, obs-fold) before http-parser reads
// them, as it does for the headers.
int Http1Parser::on_chunk_header(http_parser* p) {
  auto* self = static_cast<Http1Parser*>(p->data);
  if (p->content_length != 0) return 0;
  self->in_trailers_ = true;
  self->header_bytes_ = 0;  // the trailers get a size budget of their own
  self->header_count_ = 0;
  self->in_headers_ = true;
  self->prev_byte_ = '\n';
  self->at_line_start_ = true;
  self->seen_content_ = true;  // an empty line right away ends the (empty) trailer section
  self->trailer_pause_ = true;
  http_parser_pause(p, 1);
  return 0;
}

int Http1Parser::on_message_complete_cb(http_parser* p) {
  auto* self = static_cast<Http1Parser*>(p->data);
  if (self->in_trailers_) {
    if (!self->commit_header()) return -1;
    self->in_trailers_ = false;
  }
  const bool interim = self->type_ == MessageType::Response && p->status_code / 100 == 1;
  // Reset the raw scanner for the next message's header section.
  self->in_headers_ = true;
  self->prev_byte_ = '\n';
  self->at_line_start_ = true;
  self->seen_content_ = false;
  if (interim) {
    // The real response follows; headers_ are rebuilt by on_message_begin. Pause so execute()
    // scans the next header section before http-parser reads it.
    self->interim_pause_ = true;
    http_parser_pause(p, 1);
    return 0;
  }
  self->in_message_ = false;
  self->head_response_ = false;
  if (!self->trailers_.empty()) self->callbacks_.on_message_trailers(self->trailers_);
  self->callbacks_.on_message_complete();
  http_parser_pause(p, 1);
  return 0;
}

namespace {
void append_headers(const HeaderMap& headers, std::string& out) {
  for (const auto& e : headers) {
    if (!e.key.empty() && e.key[0] == ':') continue;
    str_append(&out, e.key, ": ", e.value, "\r\n");
  }
}
}  // namespace

std::string_view reason_phrase(int status) {
  // http-parser answers "<unknown>" for codes it has no name for; Envoy writes "Unknown".
  const std::string_view s = http_status_str(static_cast<http_status>(status));
  return s.empty() || s[0] == '<' ? std::string_view("Unknown") : s;
}

void encode_response_head(const HeaderMap& headers, bool http10, std::string& out) {
  const std::string_view status = headers.status();
  int code = 0;
  for (char c : status) code = code * 10 + (c - '0');
  str_append(&out, http10 ? "HTTP/1.0 " : "HTTP/1.1 ", status, " ", reason_phrase(code), "\r\n");
  append_headers(headers, out);
  out += "\r\n";
}

void encode_request_head(const HeaderMap& headers, std::string& out) {
  str_append(&out, headers.method(), " ", headers.path(), " HTTP/1.1\r\n");
  if (!headers.authority().empty()) str_append(&out, "host: ", headers.authority(), "\r\n");
  append_headers(headers, out);
  out += "\r\n";
}

void encode_last_chunk(const HeaderMap& trailers, std::string& out) {
  out += "0\r\n";
  append_headers(trailers, out);
  out += "\r\n";
}

void encode_chunk(std::string_view data, std::string& out) {
  if (data.empty()) return;
  char size[20];
  const int n = snprintf(size, sizeof(size), "%zx\r\n", data.size());
  out.append(size, static_cast<size_t>(n));
  out.append(data);
  out += "\r\n";
}

}  // namespace sluice::http
