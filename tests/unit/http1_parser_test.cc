// Unit tests for src/http/http1_parser.{h,cc}: the http-parser wrapper (requests and responses) and
// the HTTP/1.1 head/chunk encoders.
#include "http/http1_parser.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/header_map.h"

namespace sluice::http {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

constexpr uint32_t kDefaultMaxHeaderBytes = 60 * 1024;  // max_request_headers_kb: 60

// What the parser reported for one message.
struct Message {
  std::vector<std::pair<std::string, std::string>> headers;  // in order, pseudo-headers included
  bool end_stream = false;
  std::string body;
  int body_calls = 0;
  bool complete = false;
  // Parser state sampled inside on_message_headers (where it is documented as valid).
  bool keep_alive = false;
  int http_major = -1;
  int http_minor = -1;
  bool chunked = false;
  std::optional<uint64_t> content_length;
  std::vector<std::pair<std::string, std::string>> trailers;
  int trailer_calls = 0;

  std::string get(std::string_view key) const {
    for (const auto& [k, v] : headers) {
      if (k == key) return v;
    }
    return "<absent>";
  }
  size_t count(std::string_view key) const {
    return static_cast<size_t>(std::count_if(headers.begin(), headers.end(),
                                             [&](const auto& e) { return e.first == key; }));
  }
};

class Recorder : public Http1ParserCallbacks {
 public:
  void on_message_headers(HeaderMap& headers, bool end_stream) override {
    Message& m = messages.emplace_back();
    for (const auto& e : headers) m.headers.emplace_back(e.key, e.value);
    m.end_stream = end_stream;
    m.keep_alive = parser->keep_alive();
    m.http_major = parser->http_major();
    m.http_minor = parser->http_minor();
    m.chunked = parser->chunked();
    m.content_length = parser->content_length();
  }
  void on_message_body(std::string_view data) override {
    ASSERT_FALSE(messages.empty()) << "body before headers";
    EXPECT_FALSE(messages.back().complete) << "body after message complete";
    messages.back().body.append(data);
    ++messages.back().body_calls;
  }
  void on_message_trailers(HeaderMap& trailers) override {
    ASSERT_FALSE(messages.empty()) << "trailers before headers";
    EXPECT_FALSE(messages.back().complete) << "trailers after message complete";
    for (const auto& e : trailers) messages.back().trailers.emplace_back(e.key, e.value);
    ++messages.back().trailer_calls;
  }
  void on_message_complete() override {
    ASSERT_FALSE(messages.empty()) << "complete before headers";
    EXPECT_FALSE(messages.back().complete) << "message completed twice";
    messages.back().complete = true;
    ++completions;
  }

  Http1Parser* parser = nullptr;
  std::vector<Message> messages;
  int completions = 0;
};

// A parser and its recorder.
struct Harness {
  explicit Harness(MessageType type, uint32_t max_header_bytes = kDefaultMaxHeaderBytes)
      : parser(type, recorder, max_header_bytes) {
    recorder.parser = &parser;
  }

  // Feeds `data` in pieces of at most `step` bytes, as a connection would: bytes not consumed
  // because the parser paused after a message are fed again after resume(). Returns false when the
  // parser failed.
  bool feed(std::string_view data, size_t step = SIZE_MAX) {
    size_t off = 0;
    while (off < data.size()) {
      const size_t n = std::min(step, data.size() - off);
      const size_t consumed = parser.execute(data.data() + off, n);
      if (parser.failed()) return false;
      EXPECT_LE(consumed, n);
      if (parser.paused()) {
        parser.resume();
      } else if (consumed != n) {
        ADD_FAILURE() << "consumed " << consumed << " of " << n << " bytes without pausing";
        return false;
      }
      off += consumed;
    }
    return true;
  }

  Recorder recorder;
  Http1Parser parser;
};

// Feeds `data` byte by byte, in one piece, and in two pieces split at every offset: the outcome
// must not depend on how the bytes arrive.
template <typename Check>
void ForEachSplit(MessageType type, std::string_view data, Check check) {
  {
    SCOPED_TRACE("whole buffer");
    Harness h(type);
    ASSERT_TRUE(h.feed(data)) << h.parser.error();
    check(h);
  }
  {
    SCOPED_TRACE("byte by byte");
    Harness h(type);
    ASSERT_TRUE(h.feed(data, 1)) << h.parser.error();
    check(h);
  }
  for (size_t split = 1; split < data.size(); ++split) {
    SCOPED_TRACE(fmt::format("split at {}", split));
    Harness h(type);
    ASSERT_TRUE(h.feed(data.substr(0, split))) << h.parser.error();
    ASSERT_TRUE(h.feed(data.substr(split))) << h.parser.error();
    check(h);
  }
}

// Feeds `data` whole and byte by byte, and expects a failure with `status` both times.
void ExpectRejected(std::string_view data, int status, std::string_view error_substr = {},
                    uint32_t max_header_bytes = kDefaultMaxHeaderBytes) {
  for (size_t step : {SIZE_MAX, size_t{1}}) {
    SCOPED_TRACE(step == 1 ? "byte by byte" : "whole buffer");
    Harness h(MessageType::Request, max_header_bytes);
    EXPECT_FALSE(h.feed(data, step));
    EXPECT_TRUE(h.parser.failed());
    EXPECT_EQ(h.parser.error_status(), status) << h.parser.error();
    if (!error_substr.empty()) {
      EXPECT_THAT(h.parser.error(), HasSubstr(error_substr));
    }
    // A failed parser stays failed and consumes nothing more.
    EXPECT_EQ(h.parser.execute("GET / HTTP/1.1\r\n\r\n", 18), 0u);
    for (const Message& m : h.recorder.messages) EXPECT_FALSE(m.complete);
  }
}

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

TEST(Http1ParserRequest, SimpleGetHasPseudoHeadersAndNoHost) {
  Harness h(MessageType::Request);
  const std::string req =
      "GET /index.html?q=1 HTTP/1.1\r\n"
      "Host: example.com\r\n"
      "User-Agent: curl/8.0\r\n"
      "Accept: */*\r\n"
      "\r\n";
  EXPECT_EQ(h.parser.execute(req.data(), req.size()), req.size());
  ASSERT_FALSE(h.parser.failed()) << h.parser.error();
  ASSERT_EQ(h.recorder.messages.size(), 1u);
  const Message& m = h.recorder.messages[0];
  EXPECT_THAT(m.headers,
              ElementsAre(Pair(":method", "GET"), Pair(":scheme", "http"),
                          Pair(":path", "/index.html?q=1"), Pair(":authority", "example.com"),
                          Pair("user-agent", "curl/8.0"), Pair("accept", "*/*")));
  EXPECT_EQ(m.count("host"), 0u);
  EXPECT_TRUE(m.end_stream);
  EXPECT_TRUE(m.complete);
  EXPECT_TRUE(m.body.empty());
  EXPECT_EQ(m.body_calls, 0);
  EXPECT_TRUE(m.keep_alive);
  EXPECT_EQ(m.http_major, 1);
  EXPECT_EQ(m.http_minor, 1);
  EXPECT_FALSE(m.chunked);
  EXPECT_FALSE(m.content_length.has_value());
  EXPECT_FALSE(h.parser.in_message());
  // The parser pauses after every message, even the last one in the buffer.
  EXPECT_TRUE(h.parser.paused());
}

TEST(Http1ParserRequest, MethodsAreReported) {
  for (std::string_view method : {"GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"}) {
    SCOPED_TRACE(method);
    Harness h(MessageType::Request);
    ASSERT_TRUE(h.feed(fmt::format("{} /x HTTP/1.1\r\nHost: a\r\n\r\n", method)));
    ASSERT_EQ(h.recorder.messages.size(), 1u);
    EXPECT_EQ(h.recorder.messages[0].get(":method"), method);
  }
}

TEST(Http1ParserRequest, HeaderNamesLowerCasedAndValuesTrimmed) {
  Harness h(MessageType::Request);
  ASSERT_TRUE(
      h.feed("GET / HTTP/1.1\r\n"
             "HOST: Example.COM\r\n"
             "X-Custom-Header:    padded value \t \r\n"
             "X-Empty:\r\n"
             "X-Inner:  a  b  \r\n"
             "x-custom-header: second\r\n"
             "\r\n"))
      << h.parser.error();
  ASSERT_EQ(h.recorder.messages.size(), 1u);
  const Message& m = h.recorder.messages[0];
  // The authority keeps its case: virtual host matching lower-cases it.
  EXPECT_EQ(m.get(":authority"), "Example.COM");
  EXPECT_THAT(m.headers, ElementsAre(Pair(":method", "GET"), Pair(":scheme", "http"),
                                     Pair(":path", "/"), Pair(":authority", "Example.COM"),
                                     Pair("x-custom-header", "padded value"), Pair("x-empty", ""),
                                     Pair("x-inner", "a  b"), Pair("x-custom-header", "second")));
}

TEST(Http1ParserRequest, HeaderValueTrimmedWhenSplitAcrossReads) {
  // Trailing whitespace arriving in a separate read from the value is still trimmed.
  Harness h(MessageType::Request);
  ASSERT_TRUE(h.feed("GET / HTTP/1.1\r\nHost: a\r\nX-A: val"));
  ASSERT_TRUE(h.feed("ue  "));
  ASSERT_TRUE(h.feed(" \r"));
  ASSERT_TRUE(h.feed("\n\r\n"));
  ASSERT_EQ(h.recorder.messages.size(), 1u);
  EXPECT_EQ(h.recorder.messages[0].get("x-a"), "value");
}

TEST(Http1ParserRequest, NoHostGivesEmptyAuthority) {
  Harness h(MessageType::Request);
  ASSERT_TRUE(h.feed("GET / HTTP/1.1\r\n\r\n"));
  ASSERT_EQ(h.recorder.messages.size(), 1u);
  EXPECT_EQ(h.recorder.messages[0].get(":authority"), "");
}

TEST(Http1ParserRequest, ContentLengthBodyAnySplit) {
  const std::string req =
      "POST /upload HTTP/1.1\r\n"
      "Host: h\r\n"
      "Content-Length: 11\r\n"
      "\r\n"
      "hello world";
  ForEachSplit(MessageType::Request, req, [](Harness& h) {
    ASSERT_EQ(h.recorder.messages.size(), 1u);
    const Message& m = h.recorder.messages[0];
    EXPECT_EQ(m.get(":method"), "POST");
    EXPECT_EQ(m.get("content-length"), "11");
    EXPECT_FALSE(m.end_stream);
    EXPECT_FALSE(m.chunked);
    EXPECT_EQ(m.content_length, std::optional<uint64_t>(11));
    EXPECT_EQ(m.body, "hello world");
    EXPECT_TRUE(m.complete);
  });
}

TEST(Http1ParserRequest, ContentLengthBodyByteByByteStreamsEachByte) {
  Harness h(MessageType::Request);
  ASSERT_TRUE(h.feed("PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nabcde", 1));
  ASSERT_EQ(h.recorder.messages.size(), 1u);
  EXPECT_EQ(h.recorder.messages[0].body, "abcde");
  // Body bytes are streamed through, not buffered until the end.
  EXPECT_EQ(h.recorder.messages[0].body_calls, 5);
  EXPECT_TRUE(h.recorder.messages[0].complete);
}

TEST(Http1ParserRequest, BodyBytesAreBinarySafe) {
  // Body bytes are not subject to the header section's line checks (bare LF, folding, NUL).
  std::string body("a\nb\n c\r\n\td\0e\n\n", 15);
  const std::string req =
      fmt::format("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n", body.size()) + body;
  ForEachSplit(MessageType::Request, req, [&](Harness& h) {
    ASSERT_EQ(h.recorder.messages.size(), 1u);
    EXPECT_EQ(h.recorder.messages[0].body, body);
    EXPECT_TRUE(h.recorder.messages[0].complete);
  });
}

TEST(Http1ParserRequest, ZeroContentLengthEndsStreamAtHeaders) {
  Harness h(MessageType::Request);
  ASSERT_TRUE(h.feed("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"));
  ASSERT_EQ(h.recorder.messages.size(), 1u);
  EXPECT_TRUE(h.recorder.messages[0].end_stream);
  EXPECT_EQ(h.recorder.messages[0].content_length, std::optional<uint64_t>(0));
  EXPECT_TRUE(h.recorder.messages[0].complete);
}

TEST(Http1ParserRequest, ChunkedBodyAnySplit) {
  const std::string req =
      "POST /c HTTP/1.1\r\n"
      "Host: h\r\n"
      "Transfer-Encoding: chunked\r\n"
      "\r\n"
      "5\r\nhello\r\n"
      "1;ext=val\r\n \r\n"
      "A\r\n0123456789\r\n"
      "0\r\n"
      "\r\n";
  ForEachSplit(MessageType::Request, req, [](Harness& h) {
    ASSERT_EQ(h.recorder.messages.size(), 1u);
    const Message& m = h.recorder.messages[0];
    EXPECT_FALSE(m.end_stream);
    EXPECT_TRUE(m.chunked);
    EXPECT_FALSE(m.content_length.has_value());
    EXPECT_EQ(m.get("transfer-encoding"), "chunked");
    EXPECT_EQ(m.body, "hello 0123456789");
    EXPECT_TRUE(m.complete);
  });
}

TEST(Http1ParserRequest, ChunkedBodyWithTrailers) {
  const std::string req =
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3\r\nabc\r\n0\r\nX-Trailer-One: 1\r\nX-Trailer-Two: 2\r\n\r\n"
      "GET /next HTTP/1.1\r\nHost: h\r\n\r\n";
  ForEachSplit(MessageType::Request, req, [](Harness& h) {
    ASSERT_EQ(h.recorder.messages.size(), 2u);
    EXPECT_EQ(h.recorder.messages[0].body, "abc");
    EXPECT_TRUE(h.recorder.messages[0].complete);
    // Trailers come separately, lower-cased, once, before the message completes.
    EXPECT_EQ(h.recorder.messages[0].trailer_calls, 1);
    EXPECT_THAT(h.recorder.messages[0].trailers,
                ElementsAre(Pair("x-trailer-one", "1"), Pair("x-trailer-two", "2")));
    EXPECT_EQ(h.recorder.messages[0].count("x-trailer-one"), 0u);
    EXPECT_EQ(h.recorder.messages[1].trailer_calls, 0);
    // The next message starts clean: no trailer leaks into its headers.
    EXPECT_THAT(h.recorder.messages[1].headers,
                ElementsAre(Pair(":method", "GET"), Pair(":scheme", "http"), Pair(":path", "/next"),
                            Pair(":authority", "h")));
  });
}

TEST(Http1ParserRequest, EmptyTrailerSectionReportsNoTrailers) {
  const std::string req =
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
  ForEachSplit(MessageType::Request, req, [](Harness& h) {
    ASSERT_EQ(h.recorder.messages.size(), 1u);
    EXPECT_TRUE(h.recorder.messages[0].complete);
    EXPECT_EQ(h.recorder.messages[0].trailer_calls, 0);
  });
}

TEST(Http1ParserResponse, ChunkedResponseTrailers) {
  const std::string resp =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n"
      "grpc-status: 0\r\ngrpc-message: fine  \r\n\r\n";
  ForEachSplit(MessageType::Response, resp, [](Harness& h) {
    ASSERT_EQ(h.recorder.messages.size(), 1u);
    EXPECT_EQ(h.recorder.messages[0].body, "ok");
    EXPECT_THAT(h.recorder.messages[0].trailers,
                ElementsAre(Pair("grpc-status", "0"), Pair("grpc-message", "fine")));
  });
}

TEST(Http1ParserRequest, PipelinedRequestsPauseAfterEachMessage) {
  Harness h(MessageType::Request);
  const std::string first = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n";
  const std::string second = "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nxyz";
  const std::string third = "GET /c HTTP/1.1\r\nHost: h\r\n\r\n";
  const std::string all = first + second + third;

  size_t n = h.parser.execute(all.data(), all.size());
  EXPECT_EQ(n, first.size());
  EXPECT_TRUE(h.parser.paused());
  ASSERT_EQ(h.recorder.messages.size(), 1u);
  EXPECT_TRUE(h.recorder.messages[0].complete);
  EXPECT_EQ(h.recorder.messages[0].get(":path"), "/a");

  // While paused, nothing more is consumed.
  EXPECT_EQ(h.parser.execute(all.data() + n, all.size() - n), 0u);
  EXPECT_EQ(h.recorder.messages.size(), 1u);

  h.parser.resume();
  EXPECT_FALSE(h.parser.paused());
  size_t off = n;
  n = h.parser.execute(all.data() + off, all.size() - off);
  EXPECT_EQ(n, second.size());
  EXPECT_TRUE(h.parser.paused());
  ASSERT_EQ(h.recorder.messages.size(), 2u);
  EXPECT_EQ(h.recorder.messages[1].get(":path"), "/b");
  EXPECT_EQ(h.recorder.messages[1].body, "xyz");
  EXPECT_TRUE(h.recorder.messages[1].complete);

  h.parser.resume();
  off += n;
  n = h.parser.execute(all.data() + off, all.size() - off);
  EXPECT_EQ(n, third.size());
  ASSERT_EQ(h.recorder.messages.size(), 3u);
  EXPECT_EQ(h.recorder.messages[2].get(":path"), "/c");
  EXPECT_TRUE(h.recorder.messages[2].complete);
  EXPECT_FALSE(h.parser.failed());
}

TEST(Http1ParserRequest, PipelinedRequestsAnySplit) {
  const std::string all =
      "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
      "POST /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"
      "GET /c HTTP/1.1\r\nHost: other\r\nX-Last: 1\r\n\r\n";
  ForEachSplit(MessageType::Request, all, [](Harness& h) {
    ASSERT_EQ(h.recorder.messages.size(), 3u);
    EXPECT_EQ(h.recorder.completions, 3);
    EXPECT_EQ(h.recorder.messages[0].get(":path"), "/a");
    EXPECT_EQ(h.recorder.messages[1].get(":path"), "/b");
    EXPECT_EQ(h.recorder.messages[1].body, "hi");
    EXPECT_TRUE(h.recorder.messages[1].chunked);
    EXPECT_EQ(h.recorder.messages[2].get(":path"), "/c");
    EXPECT_EQ(h.recorder.messages[2].get(":authority"), "other");
    EXPECT_FALSE(h.recorder.messages[2].chunked);
    EXPECT_EQ(h.recorder.messages[2].count("transfer-encoding"), 0u);
  });
}

TEST(Http1ParserRequest, InMessageTracksMessageBoundaries) {
  Harness h(MessageType::Request);
  EXPECT_FALSE(h.parser.in_message());
  ASSERT_TRUE(h.feed("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nab"));
  EXPECT_TRUE(h.parser.in_message());
  ASSERT_TRUE(h.feed("cd"));
  EXPECT_FALSE(h.parser.in_message());
}

TEST(Http1ParserRequest, AbsoluteFormTarget) {
  Harness h(MessageType::Request);
  ASSERT_TRUE(
      h.feed("GET http://upstream.example:8080/a/b?x=1&y=2 HTTP/1.1\r\n"
             "Host: ignored.example\r\n"
             "\r\n"))
      << h.parser.error();
  ASSERT_EQ(h.recorder.messages.size(), 1u);
  const Message& m = h.recorder.messages[0];
  EXPECT_EQ(m.get(":path"), "/a/b?x=1&y=2");
  EXPECT_EQ(m.get(":authority"), "upstream.example:8080");
  EXPECT_EQ(m.count("host"), 0u);
}

TEST(Http1ParserRequest, AbsoluteFormTargetWithoutPortOrPath) {
  {
    Harness h(MessageType::Request);
    ASSERT_TRUE(h.feed("GET http://example.com/p HTTP/1.1\r\n\r\n")) << h.parser.error();
    ASSERT_EQ(h.recorder.messages.size(), 1u);
    EXPECT_EQ(h.recorder.messages[0].get(":authority"), "example.com");
    EXPECT_EQ(h.recorder.messages[0].get(":path"), "/p");
  }
  {
    Harness h(MessageType::Request);
    ASSERT_TRUE(h.feed("GET http://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n"))
        << h.parser.error();
    ASSERT_EQ(h.recorder.messages.size(), 1u);
    EXPECT_EQ(h.recorder.messages[0].get(":authority"), "example.com");
    EXPECT_EQ(h.recorder.messages[0].get(":path"), "/");
  }
}

TEST(Http1ParserRequest, AsteriskFormIsKept) {
  Harness h(MessageType::Request);
  ASSERT_TRUE(h.feed("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n")) << h.parser.error();
  ASSERT_EQ(h.recorder.messages.size(), 1u);
  EXPECT_EQ(h.recorder.messages[0].get(":path"), "*");
  EXPECT_EQ(h.recorder.messages[0].get(":authority"), "h");
}

TEST(Http1ParserRequest, UpgradeRequestIsParsedAsPlainRequest) {
  // Upgrades are not supported: the request is an ordinary one and what follows is HTTP again.
  const std::string all =
      "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
      "GET /next HTTP/1.1\r\nHost: h\r\n\r\n";
  ForEachSplit(MessageType::Request, all, [](Harness& h) {
    ASSERT_EQ(h.recorder.messages.size(), 2u);
    EXPECT_EQ(h.recorder.messages[0].get("upgrade"), "websocket");
    EXPECT_TRUE(h.recorder.messages[0].end_stream);
    EXPECT_TRUE(h.recorder.messages[0].complete);
    EXPECT_EQ(h.recorder.messages[1].get(":path"), "/next");
    EXPECT_TRUE(h.recorder.messages[1].complete);
  });
}

TEST(Http1ParserRequest, LeadingEmptyLinesBetweenRequestsAreTolerated) {
  // RFC 9112 2.2: a server SHOULD ignore at least one empty line before a request-line.
  Harness h(MessageType::Request);
  ASSERT_TRUE(h.feed("GET /a HTTP/1.1\r\nHost: h\r\n\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n"))
      << h.parser.error();
  ASSERT_EQ(h.recorder.messages.size(), 2u);
  EXPECT_EQ(h.recorder.messages[1].get(":path"), "/b");
}

TEST(Http1ParserRequest, Http10KeepAliveSemantics) {
  struct Case {
    std::string request;
    bool keep_alive;
    int minor;
  };
  const std::vector<Case> cases = {
      {"GET / HTTP/1.0\r\n\r\n", false, 0},
      {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true, 0},
      {"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true, 0},
      {"GET / HTTP/1.0\r\nConnection: close\r\n\r\n", false, 0},
      {"GET / HTTP/1.1\r\nHost: h\r\n\r\n", true, 1},
      {"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", false, 1},
      {"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n", true, 1},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.request);
    Harness h(MessageType::Request);
    ASSERT_TRUE(h.feed(c.request)) << h.parser.error();
    ASSERT_EQ(h.recorder.messages.size(), 1u);
    EXPECT_EQ(h.recorder.messages[0].keep_alive, c.keep_alive);
    EXPECT_EQ(h.recorder.messages[0].http_major, 1);
    EXPECT_EQ(h.recorder.messages[0].http_minor, c.minor);
    // Still answerable after the message completed (the parser is paused there).
    EXPECT_EQ(h.parser.keep_alive(), c.keep_alive);
  }
}

TEST(Http1ParserRequest, Http10RequestWithoutHostHasEmptyAuthority) {
  Harness h(MessageType::Request);
  ASSERT_TRUE(h.feed("GET /old HTTP/1.0\r\n\r\n"));
  ASSERT_EQ(h.recorder.messages.size(), 1u);
  EXPECT_EQ(h.recorder.messages[0].get(":authority"), "");
  EXPECT_EQ(h.recorder.messages[0].get(":path"), "/old");
}

TEST(Http1ParserRequest, ExactlyMaxHeaderBytesIsAccepted) {
  // Counted: URL + names + values. "/" (1) + "x-a" (3) + 16 = 20.
  Harness h(MessageType::Request, 20);
  ASSERT_TRUE(h.feed("GET / HTTP/1.1\r\nx-a: 0123456789abcdef\r\n\r\n")) << h.parser.error();
  ASSERT_EQ(h.recorder.messages.size(), 1u);
  Harness over(MessageType::Request, 19);
  EXPECT_FALSE(over.feed("GET / HTTP/1.1\r\nx-a: 0123456789abcdef\r\n\r\n"));
  EXPECT_EQ(over.parser.error_status(), 431);
}

TEST(Http1ParserRequest, HeaderByteLimitIsPerMessage) {
  // Two requests each under the limit, pipelined: the count restarts with each message.
  const std::string one = "GET / HTTP/1.1\r\nx-a: 0123456789\r\n\r\n";
  Harness h(MessageType::Request, 20);
  ASSERT_TRUE(h.feed(one + one + one)) << h.parser.error();
  EXPECT_EQ(h.recorder.messages.size(), 3u);
}

TEST(Http1ParserRequest, ExactlyHundredHeadersAreAccepted) {
  std::string req = "GET / HTTP/1.1\r\nHost: h\r\n";
  for (int i = 0; i < 99; ++i) req += fmt::format("x-h{}: v\r\n", i);
  req += "\r\n";
  Harness h(MessageType::Request);
  ASSERT_TRUE(h.feed(req)) << h.parser.error();
  ASSERT_EQ(h.recorder.messages.size(), 1u);
  EXPECT_EQ(h.recorder.messages[0].count("x-h98"), 1u);
}

// ---------------------------------------------------------------------------------------------
// Request rejections
// ---------------------------------------------------------------------------------------------

TEST(Http1ParserReject, ContentLengthAndTransferEncoding) {
  ExpectRejected(
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n0\r\n\r\n",
      400);
  ExpectRejected(
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
      "5\r\nhello\r\n0\r\n\r\n",
      400);
}

TEST(Http1ParserReject, DuplicateContentLength) {
  ExpectRejected("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
                 400);
  ExpectRejected("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
                 400);
}

TEST(Http1ParserReject, InvalidContentLength) {
  ExpectRejected("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: abc\r\n\r\n", 400);
  ExpectRejected("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", 400);
}

TEST(Http1ParserReject, ObsFoldedHeaderLine) {
  ExpectRejected("GET / HTTP/1.1\r\nHost: h\r\nX-Folded: a\r\n b\r\n\r\n", 400, "folding");
  ExpectRejected("GET / HTTP/1.1\r\nHost: h\r\nX-Folded: a\r\n\tb\r\n\r\n", 400, "folding");
  // A line starting with whitespace right after the request line is folding too.
  ExpectRejected("GET / HTTP/1.1\r\n Host: h\r\n\r\n", 400, "folding");
}

TEST(Http1ParserReject, BareLf) {
  ExpectRejected("GET / HTTP/1.1\nHost: h\r\n\r\n", 400, "bare LF");
  ExpectRejected("GET / HTTP/1.1\r\nHost: h\nX-A: b\r\n\r\n", 400, "bare LF");
  ExpectRejected("GET / HTTP/1.1\r\nHost: h\r\n\n", 400, "bare LF");
}

TEST(Http1ParserReject, BareLfInSecondPipelinedRequest) {
  // The header checks are re-armed for each message of a pipeline.
  for (size_t step : {SIZE_MAX, size_t{1}}) {
    Harness h(MessageType::Request);
    EXPECT_FALSE(
        h.feed("GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\nHost: h\r\n\r\n", step));
    EXPECT_EQ(h.parser.error_status(), 400);
    ASSERT_EQ(h.recorder.messages.size(), 1u);
    EXPECT_TRUE(h.recorder.messages[0].complete);
  }
}

TEST(Http1ParserReject, ObsFoldInSecondPipelinedRequestAfterBody) {
  for (size_t step : {SIZE_MAX, size_t{1}}) {
    Harness h(MessageType::Request);
    EXPECT_FALSE(
        h.feed("POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nok"
               "GET /b HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n 2\r\n\r\n",
               step));
    EXPECT_EQ(h.parser.error_status(), 400);
    ASSERT_EQ(h.recorder.messages.size(), 1u);
    EXPECT_EQ(h.recorder.messages[0].body, "ok");
  }
}

// The trailer section is a header section: the same smuggling checks apply.
TEST(Http1ParserReject, BareLfInTrailers) {
  ExpectRejected(
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX: 1\n\r\n",
      400, "bare LF");
}

TEST(Http1ParserReject, ObsFoldInTrailers) {
  ExpectRejected(
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX: 1\r\n "
      "folded\r\n\r\n",
      400, "folding");
}

TEST(Http1ParserReject, BadCharacterInTrailerName) {
  ExpectRejected(
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX Y: "
      "1\r\n\r\n",
      400);
}

TEST(Http1ParserReject, InvalidChunkSize) {
  ExpectRejected(
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
      400);
  ExpectRejected(
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n",
      400);
}

TEST(Http1ParserReject, HeadersTooLarge) {
  const std::string big(200, 'v');
  ExpectRejected(fmt::format("GET / HTTP/1.1\r\nHost: h\r\nX-Big: {}\r\n\r\n", big), 431, "", 128);
  // Many small headers that add up.
  std::string many = "GET / HTTP/1.1\r\nHost: h\r\n";
  for (int i = 0; i < 20; ++i) many += fmt::format("x-header-{:02}: value\r\n", i);
  many += "\r\n";
  ExpectRejected(many, 431, "", 128);
  // A long header name.
  ExpectRejected(fmt::format("GET / HTTP/1.1\r\nHost: h\r\nX-{}: v\r\n\r\n", big), 431, "", 128);
}

TEST(Http1ParserReject, UrlCountsTowardsHeaderLimit) {
  ExpectRejected(fmt::format("GET /{} HTTP/1.1\r\nHost: h\r\n\r\n", std::string(200, 'p')), 431, "",
                 128);
}

TEST(Http1ParserReject, HeadersOverHttpParserLimit) {
  // http-parser's own limit (80 KiB) is a 431 too, whatever max_header_bytes says.
  const std::string huge(100 * 1024, 'v');
  ExpectRejected(fmt::format("GET / HTTP/1.1\r\nHost: h\r\nX-Huge: {}\r\n\r\n", huge), 431, "",
                 1024 * 1024);
}

TEST(Http1ParserReject, TooManyHeaders) {
  std::string req = "GET / HTTP/1.1\r\nHost: h\r\n";
  for (int i = 0; i < 100; ++i) req += fmt::format("x-h{}: v\r\n", i);  // 101 with Host
  req += "\r\n";
  ExpectRejected(req, 431, "too many headers");
}

TEST(Http1ParserReject, Connect) {
  ExpectRejected("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 400,
                 "CONNECT");
}

TEST(Http1ParserReject, DuplicateHost) {
  ExpectRejected("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "Host");
  // Even when both carry the same value.
  ExpectRejected("GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", 400, "Host");
}

TEST(Http1ParserReject, MalformedRequestLine) {
  ExpectRejected("GARBAGE\r\n\r\n", 400);
  ExpectRejected("GET / HTTP/9.9.9\r\n\r\n", 400);
  ExpectRejected("GET / HTTP/1.1\r\nX\tY: v\r\n\r\n", 400);
  ExpectRejected("GET / HTTP/1.1\r\nX-A: a\x01\r\n\r\n", 400);
  ExpectRejected("GET / HTTP/1.1\r\nX-A: a\x7f\r\n\r\n", 400);
}

TEST(Http1ParserReject, BareCrInsideHeaderValue) {
  ExpectRejected("GET / HTTP/1.1\r\nHost: h\r\nX-A: a\rXInjected: 1\r\n\r\n", 400);
}

// Regression: a bare CR as the first byte of a header value ends the line, and http-parser
// (non-strict) swallows whatever byte follows it in place of the LF: "X-A: \rXInjected: 1" yields
// the headers "x-a: " and "injected: 1" (the 'X' is eaten), where an intermediary that keeps the CR
// in the value sees one header -- a header injection/smuggling vector. (A CR later in the value is
// rejected, see BareCrInsideHeaderValue.) The raw scanner in Http1Parser::scan_header_bytes only
// looks for bare LF. RFC 9112 section 2.2: a recipient of a bare CR MUST consider the element
// invalid or replace the CR with SP before processing or forwarding.
TEST(Http1ParserReject, BareCrAtStartOfHeaderValue) {
  {
    Harness h(MessageType::Request);
    h.feed("GET / HTTP/1.1\r\nHost: h\r\nX-A: \rXInjected: 1\r\n\r\n");
    for (const Message& m : h.recorder.messages) EXPECT_EQ(m.count("injected"), 0u);
  }
  ExpectRejected("GET / HTTP/1.1\r\nHost: h\r\nX-A: \rXInjected: 1\r\n\r\n", 400);
}

// Regression: http-parser checks header value bytes only from the second byte on, so a NUL or other
// control character as the first byte of a value is accepted and forwarded. RFC 9110 section 5.5:
// a recipient of CR, LF or NUL within a field value MUST reject the message or replace them with
// SP.
TEST(Http1ParserReject, ControlCharacterAtStartOfHeaderValue) {
  static constexpr char kNul[] = "GET / HTTP/1.1\r\nHost: h\r\nX-A: \0b\r\n\r\n";
  ExpectRejected(std::string_view(kNul, sizeof(kNul) - 1), 400);
  ExpectRejected("GET / HTTP/1.1\r\nHost: h\r\nX-A: \x01\r\n\r\n", 400);
}

// Regression: whitespace between a field name and the colon is accepted. http-parser (not built
// with HTTP_PARSER_STRICT) takes ' ' as a token character, so "Host : evil" becomes a header named
// "host " (kept and forwarded by encode_request_head as "host : evil") next to an empty
// :authority, and the duplicate-Host check does not see it; "Content-Length : 5" is honoured by
// http-parser for framing while the header is kept under the name "content-length ". RFC 9112
// section 5.1: "A server MUST reject, with a response status code of 400 (Bad Request), any
// received request message that contains whitespace between a header field name and colon." (a
// request smuggling vector through lenient upstreams). A space inside a name ("Bad Header") is not
// a token either.
TEST(Http1ParserReject, WhitespaceBetweenFieldNameAndColon) {
  ExpectRejected("GET / HTTP/1.1\r\nHost : evil.example\r\n\r\n", 400);
  ExpectRejected("GET / HTTP/1.1\r\nHost: good.example\r\nHost : evil.example\r\n\r\n", 400);
  ExpectRejected("POST / HTTP/1.1\r\nHost: h\r\nContent-Length : 5\r\n\r\nhello", 400);
  ExpectRejected("GET / HTTP/1.1\r\nHost: h\r\nBad Header: v\r\n\r\n", 400);
}

TEST(Http1ParserReject, NoCallbacksAfterFailure) {
  Harness h(MessageType::Request);
  EXPECT_FALSE(h.feed("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"));
  EXPECT_TRUE(h.recorder.messages.empty());
  const std::string ok = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
  EXPECT_EQ(h.parser.execute(ok.data(), ok.size()), 0u);
  h.parser.finish();
  EXPECT_TRUE(h.recorder.messages.empty());
  EXPECT_EQ(h.recorder.completions, 0);
}

// ---------------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------------

TEST(Http1ParserResponse, StatusHeadersAndBody) {
  const std::string resp =
      "HTTP/1.1 404 Not Found\r\n"
      "Content-Type: text/plain\r\n"
      "Content-Length: 9\r\n"
      "X-Trim: v  \r\n"
      "\r\n"
      "not found";
  ForEachSplit(MessageType::Response, resp, [](Harness& h) {
    ASSERT_EQ(h.recorder.messages.size(), 1u);
    const Message& m = h.recorder.messages[0];
    EXPECT_THAT(m.headers, ElementsAre(Pair(":status", "404"), Pair("content-type", "text/plain"),
                                       Pair("content-length", "9"), Pair("x-trim", "v")));
    EXPECT_FALSE(m.end_stream);
    EXPECT_EQ(m.body, "not found");
    EXPECT_TRUE(m.complete);
    EXPECT_TRUE(m.keep_alive);
  });
}

TEST(Http1ParserResponse, ChunkedBody) {
  const std::string resp =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n";
  ForEachSplit(MessageType::Response, resp, [](Harness& h) {
    ASSERT_EQ(h.recorder.messages.size(), 1u);
    EXPECT_TRUE(h.recorder.messages[0].chunked);
    EXPECT_EQ(h.recorder.messages[0].body, "Wikipedia");
    EXPECT_TRUE(h.recorder.messages[0].complete);
  });
}

TEST(Http1ParserResponse, ZeroContentLength) {
  Harness h(MessageType::Response);
  ASSERT_TRUE(h.feed("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
  ASSERT_EQ(h.recorder.messages.size(), 1u);
  EXPECT_TRUE(h.recorder.messages[0].end_stream);
  EXPECT_TRUE(h.recorder.messages[0].complete);
}

TEST(Http1ParserResponse, HeadResponseHasNoBody) {
  Harness h(MessageType::Response);
  h.parser.expect_head_response(true);
  const std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n";
  const std::string next = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
  const std::string all = head + next;
  EXPECT_EQ(h.parser.execute(all.data(), all.size()), head.size());
  ASSERT_EQ(h.recorder.messages.size(), 1u);
  EXPECT_TRUE(h.recorder.messages[0].end_stream);
  EXPECT_TRUE(h.recorder.messages[0].complete);
  EXPECT_TRUE(h.recorder.messages[0].body.empty());
  EXPECT_EQ(h.recorder.messages[0].get("content-length"), "1234");
  EXPECT_FALSE(h.parser.in_message());
  // The HEAD expectation applies to one response only.
  h.parser.resume();
  EXPECT_EQ(h.parser.execute(all.data() + head.size(), next.size()), next.size());
  ASSERT_EQ(h.recorder.messages.size(), 2u);
  EXPECT_FALSE(h.recorder.messages[1].end_stream);
  EXPECT_EQ(h.recorder.messages[1].body, "abc");
}

TEST(Http1ParserResponse, HeadResponseChunkedHasNoBody) {
  Harness h(MessageType::Response);
  h.parser.expect_head_response(true);
  ASSERT_TRUE(h.feed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 1));
  ASSERT_EQ(h.recorder.messages.size(), 1u);
  EXPECT_TRUE(h.recorder.messages[0].end_stream);
  EXPECT_TRUE(h.recorder.messages[0].complete);
}

TEST(Http1ParserResponse, NoContentAndNotModifiedHaveNoBody) {
  for (std::string_view resp : {
           "HTTP/1.1 204 No Content\r\n\r\n",
           "HTTP/1.1 204 No Content\r\nX-A: b\r\n\r\n",
           "HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n",
       }) {
    SCOPED_TRACE(resp);
    Harness h(MessageType::Response);
    ASSERT_TRUE(h.feed(resp)) << h.parser.error();
    ASSERT_EQ(h.recorder.messages.size(), 1u);
    EXPECT_TRUE(h.recorder.messages[0].end_stream);
    EXPECT_TRUE(h.recorder.messages[0].complete);
    EXPECT_TRUE(h.recorder.messages[0].body.empty());
    EXPECT_TRUE(h.recorder.messages[0].keep_alive);
  }
}

TEST(Http1ParserResponse, NoContentFollowedByAnotherResponse) {
  const std::string all =
      "HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  ForEachSplit(MessageType::Response, all, [](Harness& h) {
    ASSERT_EQ(h.recorder.messages.size(), 2u);
    EXPECT_EQ(h.recorder.messages[0].get(":status"), "204");
    EXPECT_EQ(h.recorder.messages[1].get(":status"), "200");
    EXPECT_EQ(h.recorder.messages[1].body, "ok");
  });
}

TEST(Http1ParserResponse, ContinueInterimIsSwallowedInSeparateReads) {
  Harness h(MessageType::Response);
  ASSERT_TRUE(h.feed("HTTP/1.1 100 Continue\r\n\r\n"));
  EXPECT_TRUE(h.recorder.messages.empty());
  EXPECT_EQ(h.recorder.completions, 0);
  EXPECT_FALSE(h.parser.paused());
  ASSERT_TRUE(h.feed("HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"));
  ASSERT_EQ(h.recorder.messages.size(), 1u);
  EXPECT_THAT(h.recorder.messages[0].headers,
              ElementsAre(Pair(":status", "201"), Pair("content-length", "2")));
  EXPECT_EQ(h.recorder.messages[0].body, "ok");
  EXPECT_TRUE(h.recorder.messages[0].complete);
  EXPECT_EQ(h.recorder.completions, 1);
}

constexpr std::string_view kContinueThenOk =
    "HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\n"
    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";

void ExpectContinueThenOk(Harness& h) {
  ASSERT_EQ(h.recorder.messages.size(), 1u);
  const Message& m = h.recorder.messages[0];
  EXPECT_EQ(m.get(":status"), "200");
  EXPECT_EQ(m.count("x-interim"), 0u);
  EXPECT_EQ(m.count(":status"), 1u);
  EXPECT_EQ(m.body, "hello");
  EXPECT_TRUE(m.complete);
  EXPECT_EQ(h.recorder.completions, 1);
}

TEST(Http1ParserResponse, ContinueInterimIsSwallowed) {
  for (size_t step : {SIZE_MAX, size_t{1}}) {
    SCOPED_TRACE(step);
    Harness h(MessageType::Response);
    ASSERT_TRUE(h.feed(kContinueThenOk, step)) << h.parser.error();
    ExpectContinueThenOk(h);
  }
  // Split right after the interim response, and right before the final response's body.
  const size_t interim_end = kContinueThenOk.find("HTTP/1.1 200");
  const size_t body_start = kContinueThenOk.size() - 5;
  for (size_t split : {interim_end, body_start}) {
    SCOPED_TRACE(split);
    Harness h(MessageType::Response);
    ASSERT_TRUE(h.feed(kContinueThenOk.substr(0, split))) << h.parser.error();
    ASSERT_TRUE(h.feed(kContinueThenOk.substr(split))) << h.parser.error();
    ExpectContinueThenOk(h);
  }
}

TEST(Http1ParserResponse, SeveralInterimResponses) {
  Harness h(MessageType::Response);
  ASSERT_TRUE(h.feed("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n", 1));
  ASSERT_TRUE(h.feed("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 1));
  ASSERT_EQ(h.recorder.messages.size(), 1u);
  EXPECT_EQ(h.recorder.messages[0].get(":status"), "200");
  EXPECT_EQ(h.recorder.completions, 1);
}

// Regression (same cause as BodyAfterContinueInSameReadIsNotScannedAsHeaders below): when a
// read holds the 100 Continue and part of the final response head, the next read is scanned with
// the state reset by the interim message's completion. A read boundary between the CR and LF of
// the final status line (split 55 here) fails the valid response with "bare LF line ending".
TEST(Http1ParserResponse, ContinueInterimIsSwallowedAnySplit) {
  ForEachSplit(MessageType::Response, kContinueThenOk, [](Harness& h) { ExpectContinueThenOk(h); });
}

TEST(Http1ParserResponse, CloseDelimitedBodyFinishedByFinish) {
  Harness h(MessageType::Response);
  ASSERT_TRUE(h.feed("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nsome "));
  ASSERT_TRUE(h.feed("body bytes"));
  ASSERT_EQ(h.recorder.messages.size(), 1u);
  const Message& m = h.recorder.messages[0];
  EXPECT_FALSE(m.end_stream);
  EXPECT_FALSE(m.keep_alive);  // the body ends with the connection
  EXPECT_FALSE(m.content_length.has_value());
  EXPECT_FALSE(m.complete);
  EXPECT_TRUE(h.parser.in_message());
  h.parser.finish();
  EXPECT_FALSE(h.parser.failed()) << h.parser.error();
  EXPECT_TRUE(h.recorder.messages[0].complete);
  EXPECT_EQ(h.recorder.messages[0].body, "some body bytes");
  EXPECT_FALSE(h.parser.in_message());
}

TEST(Http1ParserResponse, CloseDelimitedHttp10Body) {
  Harness h(MessageType::Response);
  ASSERT_TRUE(h.feed("HTTP/1.0 200 OK\r\n\r\nabc", 1));
  ASSERT_EQ(h.recorder.messages.size(), 1u);
  EXPECT_EQ(h.recorder.messages[0].http_minor, 0);
  EXPECT_FALSE(h.recorder.messages[0].complete);
  h.parser.finish();
  EXPECT_TRUE(h.recorder.messages[0].complete);
  EXPECT_EQ(h.recorder.messages[0].body, "abc");
}

TEST(Http1ParserResponse, FinishAfterCompleteMessageIsHarmless) {
  Harness h(MessageType::Response);
  ASSERT_TRUE(h.feed("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"));
  h.parser.finish();
  EXPECT_FALSE(h.parser.failed()) << h.parser.error();
  EXPECT_EQ(h.recorder.completions, 1);
}

TEST(Http1ParserResponse, FinishInsideContentLengthBodyFails) {
  Harness h(MessageType::Response);
  ASSERT_TRUE(h.feed("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"));
  h.parser.finish();
  EXPECT_TRUE(h.parser.failed());
  EXPECT_FALSE(h.recorder.messages[0].complete);
}

TEST(Http1ParserResponse, KeepAlive) {
  {
    Harness h(MessageType::Response);
    ASSERT_TRUE(h.feed("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"));
    EXPECT_FALSE(h.recorder.messages.at(0).keep_alive);
  }
  {
    Harness h(MessageType::Response);
    ASSERT_TRUE(h.feed("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"));
    EXPECT_FALSE(h.recorder.messages.at(0).keep_alive);
  }
  {
    Harness h(MessageType::Response);
    ASSERT_TRUE(h.feed("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n"));
    EXPECT_TRUE(h.recorder.messages.at(0).keep_alive);
  }
}

TEST(Http1ParserResponse, ObsFoldAndBareLfRejected) {
  for (std::string_view resp : {
           "HTTP/1.1 200 OK\r\nX-A: 1\r\n 2\r\nContent-Length: 0\r\n\r\n",
           "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n",
       }) {
    SCOPED_TRACE(resp);
    Harness h(MessageType::Response);
    EXPECT_FALSE(h.feed(resp));
    EXPECT_TRUE(h.recorder.messages.empty());
  }
}

// Regression: after a 1xx interim response, the raw header scanner (bare LF / obs-fold detection)
// is re-armed by on_message_complete_cb while http-parser is still inside the same execute() call.
// When the final response's head arrives in the same read as the 100 Continue, the scanner never
// sees it end (it had already stopped scanning at the end of the 100's head), so it stays armed
// and the next read -- body bytes -- is scanned as if it were headers. A body byte sequence with a
// bare LF (any binary body) then fails the response with "bare LF line ending"; a body line that
// begins with a space after CRLF fails with "obsolete line folding".
TEST(Http1ParserResponse, BodyAfterContinueInSameReadIsNotScannedAsHeaders) {
  Harness h(MessageType::Response);
  ASSERT_TRUE(h.feed("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n"))
      << h.parser.error();
  ASSERT_EQ(h.recorder.messages.size(), 1u);
  EXPECT_TRUE(h.feed("ab\ncd\n")) << h.parser.error();
  EXPECT_EQ(h.recorder.messages[0].body, "ab\ncd\n");
  EXPECT_TRUE(h.recorder.messages[0].complete);
}

// ---------------------------------------------------------------------------------------------
// Encoders
// ---------------------------------------------------------------------------------------------

TEST(Http1ParserEncode, ResponseHead) {
  HeaderMap headers;
  headers.add(":status", "200");
  headers.add("Content-Type", "text/plain");
  headers.add("content-length", "5");
  headers.add("set-cookie", "a=1");
  headers.add("set-cookie", "b=2");
  std::string out = "prefix|";
  encode_response_head(headers, false, out);
  EXPECT_EQ(out,
            "prefix|HTTP/1.1 200 OK\r\n"
            "content-type: text/plain\r\n"
            "content-length: 5\r\n"
            "set-cookie: a=1\r\n"
            "set-cookie: b=2\r\n"
            "\r\n");
}

TEST(Http1ParserEncode, ResponseHeadHttp10AndReasonPhrases) {
  struct Case {
    const char* status;
    const char* line;
  };
  for (const Case& c : {Case{"404", "HTTP/1.0 404 Not Found\r\n"},
                        Case{"503", "HTTP/1.0 503 Service Unavailable\r\n"},
                        Case{"301", "HTTP/1.0 301 Moved Permanently\r\n"},
                        Case{"431", "HTTP/1.0 431 Request Header Fields Too Large\r\n"}}) {
    HeaderMap headers;
    headers.add(":status", c.status);
    std::string out;
    encode_response_head(headers, true, out);
    EXPECT_EQ(out, std::string(c.line) + "\r\n");
  }
}

TEST(Http1ParserEncode, ResponseHeadSkipsPseudoHeaders) {
  HeaderMap headers;
  headers.add("x-first", "1");
  headers.add(":status", "204");
  headers.add(":custom-pseudo", "ignored");
  headers.add("x-second", "2");
  std::string out;
  encode_response_head(headers, false, out);
  EXPECT_EQ(out, "HTTP/1.1 204 No Content\r\nx-first: 1\r\nx-second: 2\r\n\r\n");
}

TEST(Http1ParserEncode, ReasonPhrase) {
  EXPECT_EQ(reason_phrase(200), "OK");
  EXPECT_EQ(reason_phrase(100), "Continue");
  EXPECT_EQ(reason_phrase(413), "Payload Too Large");
  EXPECT_EQ(reason_phrase(502), "Bad Gateway");
  EXPECT_EQ(reason_phrase(504), "Gateway Timeout");
  EXPECT_FALSE(reason_phrase(599).empty());
}

TEST(Http1ParserEncode, RequestHead) {
  HeaderMap headers;
  headers.add(":method", "POST");
  headers.add(":scheme", "http");
  headers.add(":path", "/api/v1?x=y");
  headers.add(":authority", "backend:8080");
  headers.add("Content-Length", "2");
  headers.add("x-forwarded-for", "10.0.0.1");
  std::string out;
  encode_request_head(headers, out);
  EXPECT_EQ(out,
            "POST /api/v1?x=y HTTP/1.1\r\n"
            "host: backend:8080\r\n"
            "content-length: 2\r\n"
            "x-forwarded-for: 10.0.0.1\r\n"
            "\r\n");
}

TEST(Http1ParserEncode, RequestHeadWithoutAuthorityHasNoHost) {
  HeaderMap headers;
  headers.add(":method", "GET");
  headers.add(":path", "/");
  headers.add(":authority", "");
  std::string out = "x";
  encode_request_head(headers, out);
  EXPECT_EQ(out, "xGET / HTTP/1.1\r\n\r\n");
}

TEST(Http1ParserEncode, RequestHeadRoundTripsThroughParser) {
  HeaderMap headers;
  headers.add(":method", "PUT");
  headers.add(":scheme", "http");
  headers.add(":path", "/a?b=c");
  headers.add(":authority", "example.com");
  headers.add("transfer-encoding", "chunked");
  std::string wire;
  encode_request_head(headers, wire);
  encode_chunk("hello", wire);
  encode_chunk("", wire);  // no-op: must not end the body early
  encode_chunk(std::string(300, 'z'), wire);
  wire += kLastChunk;
  Harness h(MessageType::Request);
  ASSERT_TRUE(h.feed(wire, 7)) << h.parser.error();
  ASSERT_EQ(h.recorder.messages.size(), 1u);
  const Message& m = h.recorder.messages[0];
  EXPECT_THAT(m.headers,
              ElementsAre(Pair(":method", "PUT"), Pair(":scheme", "http"), Pair(":path", "/a?b=c"),
                          Pair(":authority", "example.com"), Pair("transfer-encoding", "chunked")));
  EXPECT_EQ(m.body, "hello" + std::string(300, 'z'));
  EXPECT_TRUE(m.complete);
}

TEST(Http1ParserEncode, LastChunkWithTrailers) {
  HeaderMap t;
  t.add("grpc-status", "0");
  t.add("x-sum", "abc");
  std::string out;
  encode_last_chunk(t, out);
  EXPECT_EQ(out, "0\r\ngrpc-status: 0\r\nx-sum: abc\r\n\r\n");
  out.clear();
  encode_last_chunk(HeaderMap(), out);
  EXPECT_EQ(out, "0\r\n\r\n");
}

TEST(Http1ParserEncode, Chunk) {
  std::string out;
  encode_chunk("hello", out);
  EXPECT_EQ(out, "5\r\nhello\r\n");
  encode_chunk("", out);
  EXPECT_EQ(out, "5\r\nhello\r\n");
  out.clear();
  encode_chunk(std::string(26, 'a'), out);
  EXPECT_EQ(out, "1a\r\n" + std::string(26, 'a') + "\r\n");
  out.clear();
  encode_chunk(std::string(4096, 'b'), out);
  EXPECT_EQ(out, "1000\r\n" + std::string(4096, 'b') + "\r\n");
  out.clear();
  encode_chunk(std::string_view("a\0b", 3), out);
  EXPECT_EQ(out, std::string("3\r\na\0b\r\n", 8));
  EXPECT_EQ(kLastChunk, "0\r\n\r\n");
}

}  // namespace
}  // namespace sluice::http

namespace sluice::http {
namespace {

// Found by tests/fuzz/http1_request_fuzz: "GET *a" is neither origin-form nor absolute-form.
TEST(Http1ParserReject, TargetThatIsNoFormOfRequestTarget) {
  ExpectRejected("GET *a HTTP/1.1\r\nHost: h\r\n\r\n", 400);
  ExpectRejected("GET ftp://h/x HTTP/1.1\r\nHost: h\r\n\r\n", 400);
  Harness h(MessageType::Request);
  ASSERT_TRUE(h.feed("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n")) << h.parser.error();
  EXPECT_EQ(h.recorder.messages.at(0).get(":path"), "*");
}

// Found by tests/fuzz/http1_response_fuzz: http-parser forgets "chunked" when a later header name
// only starts with "Transfer-Encoding"; the body must still be read as chunks.
TEST(Http1ParserResponse, TransferEncodingPrefixedHeaderKeepsChunking) {
  Harness h(MessageType::Response);
  ASSERT_TRUE(
      h.feed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding-X: y\r\n"
             "\r\n5\r\nhello\r\n0\r\n\r\n"))
      << h.parser.error();
  ASSERT_EQ(h.recorder.messages.size(), 1u);
  EXPECT_EQ(h.recorder.messages[0].body, "hello");
  EXPECT_TRUE(h.recorder.messages[0].complete);
}

// The same confusion on a request would read the chunks as a second, smuggled request.
TEST(Http1ParserRequest, TransferEncodingPrefixedHeaderDoesNotSmuggle) {
  Harness h(MessageType::Request);
  ASSERT_TRUE(
      h.feed("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
             "Transfer-Encoding-X: y\r\n\r\n"
             "1a\r\nGET /smuggled HTTP/1.1\r\n\r\n\r\n0\r\n\r\n"))
      << h.parser.error();
  ASSERT_EQ(h.recorder.messages.size(), 1u);
  EXPECT_EQ(h.recorder.messages[0].body, "GET /smuggled HTTP/1.1\r\n\r\n");
}

}  // namespace
}  // namespace sluice::http
