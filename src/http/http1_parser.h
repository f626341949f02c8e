// HTTP/1.x message parsing on top of http-parser (the parser Node.js and Envoy used for years).
// This wrapper turns its callbacks into a HeaderMap with pseudo-headers, streams body bytes through
// without buffering them, and adds the checks Envoy makes that http-parser leaves to the caller:
// obs-folded header lines, bare LF line endings and the header size limit.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <http_parser.h>

#include "common/header_map.h"

namespace sluice::http {

class Http1ParserCallbacks {
 public:
  virtual ~Http1ParserCallbacks() = default;
  // Headers of a message are complete. `end_stream`: the message has no body.
  virtual void on_message_headers(HeaderMap& headers, bool end_stream) = 0;
  // A piece of (de-chunked) body.
  virtual void on_message_body(std::string_view data) = 0;
  // The trailer fields of a chunked message (only when it has some), just before
  // on_message_complete. The callee may take them (swap).
  virtual void on_message_trailers(HeaderMap& trailers) {}
  // The whole message has been read.
  virtual void on_message_complete() = 0;
};

enum class MessageType { Request, Response };

class Http1Parser {
 public:
  Http1Parser(MessageType type, Http1ParserCallbacks& callbacks, uint32_t max_header_bytes);
  Http1Parser(const Http1Parser&) = delete;
  Http1Parser& operator=(const Http1Parser&) = delete;

  // Parses as much of `data` as possible and returns how many bytes were consumed. Parsing stops
  // (consumed < len) after each complete message so the caller can hold pipelined requests until
  // the current response is done (call resume()), or on an error (failed()).
  size_t execute(const char* data, size_t len);
  // Tells http-parser that the peer closed: completes a close-delimited response body.
  void finish();
  void resume();

  bool failed() const { return !error_.empty(); }
  const std::string& error() const { return error_; }
  // The status to answer a failed request with: 400, 431 or 501.
  int error_status() const { return error_status_; }
  bool paused() const { return paused_; }
  bool in_message() const { return in_message_; }

  // Valid after on_message_headers.
  bool keep_alive() const { return http_should_keep_alive(&parser_) != 0; }
  int http_major() const { return parser_.http_major; }
  int http_minor() const { return parser_.http_minor; }
  bool chunked() const { return chunked_; }
  // Content-Length of the current message when given.
  std::optional<uint64_t> content_length() const { return content_length_; }

  // Hands a finished message's header map back so the next message reuses its storage (its
  // entries' strings) instead of allocating. `used` is left empty.
  void recycle_headers(HeaderMap& used) {
    if (!in_message_ && headers_.empty()) headers_.swap(used);
    used.clear();
  }

  // Response parsing: the next response answers a HEAD request, so it has no body.
  void expect_head_response(bool v) { head_response_ = v; }

 private:
  static int on_message_begin(http_parser* p);
  static int on_url(http_parser* p, const char* at, size_t len);
  static int on_status(http_parser* p, const char* at, size_t len);
  static int on_header_field(http_parser* p, const char* at, size_t len);
  static int on_header_value(http_parser* p, const char* at, size_t len);
  static int on_headers_complete(http_parser* p);
  static int on_body(http_parser* p, const char* at, size_t len);
  static int on_chunk_header(http_parser* p);
  static int on_message_complete_cb(http_parser* p);

  bool commit_header();
  // Requests' pseudo-headers are :method, :scheme, :path, :authority (see on_message_begin).
  static constexpr size_t kAuthorityIndex = 3;
  bool scan_header_bytes(const char* data, size_t len);
  void fail(std::string message, int status);

  http_parser parser_;
  http_parser_settings settings_;
  MessageType type_;
  Http1ParserCallbacks& callbacks_;
  uint32_t max_header_bytes_;

  HeaderMap headers_;
  std::string url_;
  HeaderMap trailers_;
  bool building_header_ = false;  // the map's last entry is a field still being read
  bool in_trailers_ = false;      // after the last chunk: fields go to trailers_
  bool last_was_value_ = false;
  uint32_t host_count_ = 0;
  uint32_t header_count_ = 0;  // headers read (Host included), for the count limit
  uint32_t transfer_encoding_count_ = 0;
  uint32_t header_bytes_ = 0;
  bool in_headers_ = true;  // before the end of the header section of the current message
  bool in_message_ = false;
  bool chunked_ = false;
  bool head_response_ = false;
  bool paused_ = false;
  bool interim_pause_ = false;  // paused after a 1xx response: execute() resumes by itself
  bool trailer_pause_ = false;  // paused at the trailer section: execute() scans it, resumes
  std::optional<uint64_t> content_length_;
  // Raw-byte scanner state for the header section (bare LF and obs-fold detection).
  char prev_byte_ = '\n';
  bool at_line_start_ = true;
  bool seen_content_ = false;

  std::string error_;
  int error_status_ = 400;
};

// Appends "HTTP/1.1 <status> <reason>\r\n" and the headers (pseudo-headers skipped) and "\r\n".
void encode_response_head(const HeaderMap& headers, bool http10, std::string& out);
// Appends the request line and headers (Host from :authority) and "\r\n".
void encode_request_head(const HeaderMap& headers, std::string& out);
// Appends one chunk in chunked transfer encoding (nothing for an empty piece).
void encode_chunk(std::string_view data, std::string& out);
// Appends the last chunk of a chunked body with `trailers` ("0", the fields, an empty line).
void encode_last_chunk(const HeaderMap& trailers, std::string& out);
constexpr std::string_view kLastChunk = "0\r\n\r\n";

std::string_view reason_phrase(int status);

}  // namespace sluice::http
