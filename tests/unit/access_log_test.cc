#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "accesslog/file_sink.h"
#include "accesslog/formatter.h"
#include "common/header_map.h"
#include "common/stream_info.h"

namespace sluice::accesslog {
namespace {

using namespace std::chrono_literals;

// 2024-01-02T03:04:05.678901234Z
StreamInfo::SystemTime test_start_time() {
  return StreamInfo::SystemTime(std::chrono::seconds(1704164645)) +
         std::chrono::duration_cast<StreamInfo::SystemTime::duration>(678901234ns);
}

class AccessLogFormatterTest : public ::testing::Test {
 protected:
  AccessLogFormatterTest() {
    request_.add(":method", "GET");
    request_.add(":path", "/api?x=1");
    request_.add(":authority", "example.com");
    request_.add("User-Agent", "curl/8.0");
    request_.add("x-forwarded-for", "10.0.0.1");
    request_.add("x-request-id", "abc-123");
    request_.add("x-multi", "first");
    request_.add("x-multi", "second");
    request_.add("x-empty", "");
    response_.add(":status", "200");
    response_.add("x-envoy-upstream-service-time", "15");
    response_.add("content-type", "text/plain");
    trailers_.add("grpc-status", "0");

    info_.start_time = test_start_time();
    info_.start_mono = StreamInfo::MonoTime(1000s);
    info_.last_downstream_rx_byte = info_.start_mono + 5ms;
    info_.first_upstream_tx_byte = info_.start_mono + 6ms;
    info_.first_upstream_rx_byte = info_.start_mono + 20ms;
    info_.last_downstream_tx_byte = info_.start_mono + 25ms + 900us;
    info_.protocol = "HTTP/1.1";
    info_.response_code = 200;
    info_.response_code_details = "via_upstream";
    info_.bytes_received = 12;
    info_.bytes_sent = 34;
    info_.upstream_host = "10.1.2.3:8080";
    info_.upstream_cluster = "backend";
    info_.downstream_remote_address = "192.168.1.7:51000";
    info_.downstream_direct_remote_address = "127.0.0.1:40000";
    info_.downstream_local_address = "[::1]:10000";
    info_.route_name = "default_route";
    info_.request_id = "abc-123";
    info_.request_headers = &request_;
    info_.response_headers = &response_;
    info_.response_trailers = &trailers_;
  }

  // Formats `format` against `info` (default: the filled info_), failing the test on parse errors.
  std::string fmt(std::string_view format, const StreamInfo* info = nullptr) {
    std::string error;
    auto f = Formatter::parse(format, &error);
    EXPECT_TRUE(f.has_value()) << format << ": " << error;
    if (!f) return "<parse error>";
    return f->format(info ? *info : info_);
  }

  std::string parse_error(std::string_view format) {
    std::string error;
    auto f = Formatter::parse(format, &error);
    EXPECT_FALSE(f.has_value()) << "expected a parse error for " << format;
    EXPECT_FALSE(error.empty()) << format;
    return error;
  }

  HeaderMap request_, response_, trailers_;
  StreamInfo info_;
};

// A connection's next request reuses its StreamInfo: clear() resets every field, and the strings
// keep their buffers.
TEST(StreamInfoClear, ResetsEveryFieldAndKeepsTheStringsBuffers) {
  StreamInfo info;
  const std::string long_text(100, 'x');
  info.start_mono = std::chrono::steady_clock::now();
  info.last_downstream_tx_byte = info.start_mono;
  info.protocol = "HTTP/1.1";
  info.response_code = 503;
  info.response_flags = kNoRouteFound;
  info.response_code_details = long_text;
  info.bytes_received = info.bytes_sent = 7;
  info.upstream_host = long_text;
  info.upstream_cluster = long_text;
  info.downstream_remote_address = long_text;
  info.downstream_direct_remote_address = long_text;
  info.downstream_local_address = long_text;
  info.route_name = long_text;
  info.request_id = long_text;
  HeaderMap headers;
  info.request_headers = info.response_headers = info.response_trailers = &headers;
  const char* cluster_buffer = info.upstream_cluster.data();

  info.clear();
  EXPECT_EQ(info.start_mono, StreamInfo::MonoTime{});
  EXPECT_FALSE(info.last_downstream_tx_byte);
  EXPECT_FALSE(info.response_code);
  EXPECT_EQ(info.response_flags, 0u);
  EXPECT_EQ(info.bytes_received + info.bytes_sent, 0u);
  EXPECT_EQ(info.request_headers, nullptr);
  EXPECT_EQ(info.response_headers, nullptr);
  EXPECT_EQ(info.response_trailers, nullptr);
  for (const std::string* s :
       {&info.protocol, &info.response_code_details, &info.upstream_host, &info.upstream_cluster,
        &info.downstream_remote_address, &info.downstream_direct_remote_address,
        &info.downstream_local_address, &info.route_name, &info.request_id}) {
    EXPECT_EQ(*s, "");
    if (s != &info.protocol) {
      EXPECT_GE(s->capacity(), long_text.size());
    }
  }
  EXPECT_EQ(info.upstream_cluster.data(), cluster_buffer);
}

TEST(AccessLogResponseFlags, NoneIsDash) { EXPECT_EQ(response_flags_to_string(0), "-"); }

TEST(AccessLogResponseFlags, SingleFlags) {
  const std::map<ResponseFlag, std::string> codes = {
      {kFailedLocalHealthCheck, "LH"},
      {kNoHealthyUpstream, "UH"},
      {kUpstreamRequestTimeout, "UT"},
      {kLocalReset, "LR"},
      {kUpstreamRemoteReset, "UR"},
      {kUpstreamConnectionFailure, "UF"},
      {kUpstreamConnectionTermination, "UC"},
      {kUpstreamOverflow, "UO"},
      {kNoRouteFound, "NR"},
      {kDelayInjected, "DI"},
      {kFaultInjected, "FI"},
      {kRateLimited, "RL"},
      {kDownstreamConnectionTermination, "DC"},
      {kUpstreamRetryLimitExceeded, "URX"},
      {kStreamIdleTimeout, "SI"},
      {kDownstreamProtocolError, "DPE"},
      {kUpstreamProtocolError, "UPE"},
      {kUpstreamMaxStreamDurationReached, "UMSDR"},
      {kNoClusterFound, "NC"},
      {kDurationTimeout, "DT"},
      {kOverloadManager, "OM"},
  };
  EXPECT_EQ(codes.size(), 21u);
  for (const auto& [flag, code] : codes) EXPECT_EQ(response_flags_to_string(flag), code);
}

TEST(AccessLogResponseFlags, MultipleInEnvoyOrder) {
  EXPECT_EQ(response_flags_to_string(kUpstreamConnectionFailure | kNoHealthyUpstream), "UH,UF");
  EXPECT_EQ(response_flags_to_string(kUpstreamRetryLimitExceeded | kUpstreamRemoteReset), "UR,URX");
  EXPECT_EQ(response_flags_to_string(kOverloadManager | kNoClusterFound | kUpstreamProtocolError |
                                     kDurationTimeout | kUpstreamMaxStreamDurationReached),
            "UMSDR,DT,UPE,NC,OM");
  // Every flag Sluice sets; the bits in between (Envoy's UAEX, RLSE, IH, RFCF, NFCF) print nothing.
  EXPECT_EQ(response_flags_to_string((1u << 26) - 1),
            "LH,UH,UT,LR,UR,UF,UC,UO,NR,DI,FI,RL,DC,URX,SI,DPE,UMSDR,DT,UPE,NC,OM");
}

// The bits are Envoy's (plugins read them through the response.flags property).
TEST(AccessLogResponseFlags, EnvoysBitLayout) {
  EXPECT_EQ(kUpstreamConnectionFailure, 0x20u);
  EXPECT_EQ(kRateLimited, 0x800u);
  EXPECT_EQ(kDownstreamConnectionTermination, 0x4000u);
  EXPECT_EQ(kUpstreamRetryLimitExceeded, 0x8000u);
  EXPECT_EQ(kDownstreamProtocolError, 0x40000u);
  EXPECT_EQ(kNoClusterFound, 0x1000000u);
  EXPECT_EQ(kOverloadManager, 0x2000000u);
}

TEST(AccessLogResponseFlags, UnknownBitsIgnored) {
  EXPECT_EQ(response_flags_to_string(1u << 31), "-");
  EXPECT_EQ(response_flags_to_string((1u << 31) | kNoRouteFound), "NR");
}

TEST_F(AccessLogFormatterTest, DefaultFormatFilled) {
  EXPECT_EQ(fmt(kDefaultFormat),
            "[2024-01-02T03:04:05.678Z] \"GET /api?x=1 HTTP/1.1\" 200 - 12 34 25 15 \"10.0.0.1\" "
            "\"curl/8.0\" \"abc-123\" \"example.com\" \"10.1.2.3:8080\"\n");
}

TEST_F(AccessLogFormatterTest, DefaultFormatUsesOriginalPathAndFlags) {
  request_.add("x-envoy-original-path", "/original");
  info_.set_flag(kUpstreamRetryLimitExceeded);
  info_.set_flag(kUpstreamRemoteReset);
  info_.response_code = 503;
  EXPECT_EQ(fmt(kDefaultFormat),
            "[2024-01-02T03:04:05.678Z] \"GET /original HTTP/1.1\" 503 UR,URX 12 34 25 15 "
            "\"10.0.0.1\" \"curl/8.0\" \"abc-123\" \"example.com\" \"10.1.2.3:8080\"\n");
}

TEST_F(AccessLogFormatterTest, DefaultFormatEmptyStreamInfo) {
  StreamInfo empty;
  EXPECT_EQ(fmt(kDefaultFormat, &empty),
            "[1970-01-01T00:00:00.000Z] \"- - -\" 0 - 0 0 - - \"-\" \"-\" \"-\" \"-\" \"-\"\n");
}

TEST_F(AccessLogFormatterTest, FormatAppends) {
  auto f = Formatter::parse("%RESPONSE_CODE%\n", nullptr);
  ASSERT_TRUE(f);
  std::string out = "existing\n";
  f->format(info_, out);
  f->format(info_, out);
  EXPECT_EQ(out, "existing\n200\n200\n");
}

TEST_F(AccessLogFormatterTest, LiteralsAndPercentEscape) {
  EXPECT_EQ(fmt(""), "");
  EXPECT_EQ(fmt("plain text"), "plain text");
  EXPECT_EQ(fmt("100%% done %%%RESPONSE_CODE%%%"), "100% done %200%");
  // Adjacent literal text, "%%" and %HOSTNAME% collapse into a single piece.
  auto f = Formatter::parse("a %% b %HOSTNAME% c", nullptr);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->piece_count(), 1u);
  f = Formatter::parse("a %PROTOCOL% b", nullptr);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->piece_count(), 3u);
}

TEST_F(AccessLogFormatterTest, RequestHeaders) {
  EXPECT_EQ(fmt("%REQ(:METHOD)% %REQ(:PATH)% %REQ(:AUTHORITY)%"), "GET /api?x=1 example.com");
  EXPECT_EQ(fmt("%REQ(USER-AGENT)%|%REQ(user-agent)%|%REQ(User-Agent)%"),
            "curl/8.0|curl/8.0|curl/8.0");
  EXPECT_EQ(fmt("%REQ(X-REQUEST-ID)%"), "abc-123");
  EXPECT_EQ(fmt("%REQ(X-MISSING)%"), "-");
  EXPECT_EQ(fmt("%REQ(X-MULTI)%"), "first");  // first value, as Envoy
  EXPECT_EQ(fmt("[%REQ(X-EMPTY)%]"), "[]");   // present but empty is not missing
}

TEST_F(AccessLogFormatterTest, HeaderFallback) {
  EXPECT_EQ(fmt("%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%"), "/api?x=1");
  request_.add("x-envoy-original-path", "/orig");
  EXPECT_EQ(fmt("%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%"), "/orig");
  EXPECT_EQ(fmt("%REQ(X-NOPE?X-ALSO-NOPE)%"), "-");
  EXPECT_EQ(fmt("%REQ(X-NOPE?user-agent)%"), "curl/8.0");
  EXPECT_EQ(fmt("%RESP(X-NOPE?CONTENT-TYPE)%"), "text/plain");
}

TEST_F(AccessLogFormatterTest, HeaderTruncation) {
  EXPECT_EQ(fmt("%REQ(USER-AGENT):4%"), "curl");
  EXPECT_EQ(fmt("%REQ(USER-AGENT):100%"), "curl/8.0");
  EXPECT_EQ(fmt("%REQ(USER-AGENT):0%|"), "|");
  EXPECT_EQ(fmt("%REQ(X-NOPE?:PATH):4%"), "/api");
  EXPECT_EQ(fmt("%REQ(X-MISSING):0%"), "-");  // "-" marks missing; it is not truncated
  EXPECT_EQ(fmt("%RESP(CONTENT-TYPE):4%"), "text");
  EXPECT_EQ(fmt("%TRAILER(GRPC-STATUS):1%"), "0");
  EXPECT_EQ(fmt("%UPSTREAM_HOST:8%"), "10.1.2.3");
  EXPECT_EQ(fmt("%START_TIME:10%"), "2024-01-02");
}

TEST_F(AccessLogFormatterTest, ResponseHeadersAndTrailers) {
  EXPECT_EQ(fmt("%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% %RESP(:STATUS)% %RESP(x-missing)%"),
            "15 200 -");
  EXPECT_EQ(fmt("%TRAILER(GRPC-STATUS)% %TRAILER(GRPC-MESSAGE)%"), "0 -");
  info_.request_headers = nullptr;
  info_.response_headers = nullptr;
  info_.response_trailers = nullptr;
  EXPECT_EQ(fmt("%REQ(:METHOD)% %RESP(:STATUS)% %TRAILER(GRPC-STATUS)%"), "- - -");
}

TEST_F(AccessLogFormatterTest, StreamInfoFields) {
  EXPECT_EQ(fmt("%PROTOCOL%"), "HTTP/1.1");
  EXPECT_EQ(fmt("%RESPONSE_CODE%"), "200");
  EXPECT_EQ(fmt("%RESPONSE_CODE_DETAILS%"), "via_upstream");
  EXPECT_EQ(fmt("%RESPONSE_FLAGS%"), "-");
  EXPECT_EQ(fmt("%BYTES_RECEIVED% %BYTES_SENT%"), "12 34");
  EXPECT_EQ(fmt("%UPSTREAM_HOST% %UPSTREAM_REMOTE_ADDRESS%"), "10.1.2.3:8080 10.1.2.3:8080");
  EXPECT_EQ(fmt("%UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% %UPSTREAM_REMOTE_PORT%"), "10.1.2.3 8080");
  EXPECT_EQ(fmt("%UPSTREAM_CLUSTER%"), "backend");
  EXPECT_EQ(fmt("%ROUTE_NAME%"), "default_route");
  EXPECT_EQ(fmt("%STREAM_ID%"), "abc-123");
  info_.set_flag(kNoRouteFound);
  info_.set_flag(kFailedLocalHealthCheck);
  EXPECT_EQ(fmt("%RESPONSE_FLAGS%"), "LH,NR");
  info_.bytes_sent = 18446744073709551615ull;
  EXPECT_EQ(fmt("%BYTES_SENT%"), "18446744073709551615");
}

TEST_F(AccessLogFormatterTest, Addresses) {
  EXPECT_EQ(fmt("%DOWNSTREAM_REMOTE_ADDRESS%"), "192.168.1.7:51000");
  EXPECT_EQ(fmt("%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"), "192.168.1.7");
  EXPECT_EQ(fmt("%DOWNSTREAM_REMOTE_PORT%"), "51000");
  EXPECT_EQ(fmt("%DOWNSTREAM_DIRECT_REMOTE_ADDRESS%"), "127.0.0.1:40000");
  EXPECT_EQ(fmt("%DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT%"), "127.0.0.1");
  EXPECT_EQ(fmt("%DOWNSTREAM_DIRECT_REMOTE_PORT%"), "40000");
  EXPECT_EQ(fmt("%DOWNSTREAM_LOCAL_ADDRESS%"), "[::1]:10000");
  EXPECT_EQ(fmt("%DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%"), "::1");
  EXPECT_EQ(fmt("%DOWNSTREAM_LOCAL_PORT%"), "10000");
  info_.downstream_remote_address = "2001:db8::1";  // bare IPv6: no port to strip
  EXPECT_EQ(fmt("%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% %DOWNSTREAM_REMOTE_PORT%"),
            "2001:db8::1 -");
  info_.downstream_remote_address = "/tmp/sock";
  EXPECT_EQ(fmt("%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% %DOWNSTREAM_REMOTE_PORT%"),
            "/tmp/sock -");
}

TEST_F(AccessLogFormatterTest, Durations) {
  EXPECT_EQ(fmt("%DURATION% %REQUEST_DURATION% %RESPONSE_DURATION% %RESPONSE_TX_DURATION%"),
            "25 5 20 5");
  info_.last_downstream_tx_byte.reset();
  EXPECT_EQ(fmt("%DURATION% %RESPONSE_TX_DURATION%"), "- -");
  info_.first_upstream_rx_byte.reset();
  info_.last_downstream_rx_byte.reset();
  EXPECT_EQ(fmt("%REQUEST_DURATION% %RESPONSE_DURATION%"), "- -");
}

TEST_F(AccessLogFormatterTest, MissingValuesPrintDash) {
  StreamInfo empty;
  EXPECT_EQ(fmt("%PROTOCOL% %RESPONSE_CODE% %RESPONSE_CODE_DETAILS% %RESPONSE_FLAGS% "
                "%BYTES_RECEIVED% %BYTES_SENT% %DURATION% %REQUEST_DURATION% %RESPONSE_DURATION% "
                "%UPSTREAM_HOST% %UPSTREAM_CLUSTER% %DOWNSTREAM_REMOTE_ADDRESS% "
                "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% %DOWNSTREAM_DIRECT_REMOTE_ADDRESS% "
                "%DOWNSTREAM_LOCAL_ADDRESS% %ROUTE_NAME% %STREAM_ID% %REQ(X-REQUEST-ID)%",
                &empty),
            "- 0 - - 0 0 - - - - - - - - - - - -");
}

TEST_F(AccessLogFormatterTest, Hostname) {
  char buf[256] = {};
  ASSERT_EQ(gethostname(buf, sizeof(buf) - 1), 0);
  EXPECT_EQ(fmt("%HOSTNAME%"), buf);
  EXPECT_EQ(fmt("%HOSTNAME:1%"), std::string(buf).substr(0, 1));
}

TEST_F(AccessLogFormatterTest, StartTimeDefault) {
  EXPECT_EQ(fmt("%START_TIME%"), "2024-01-02T03:04:05.678Z");
  EXPECT_EQ(fmt("%START_TIME()%"), "2024-01-02T03:04:05.678Z");
  StreamInfo early;
  early.start_time = StreamInfo::SystemTime(-500ms);
  EXPECT_EQ(fmt("%START_TIME%", &early), "1969-12-31T23:59:59.500Z");
  StreamInfo leap;
  leap.start_time = StreamInfo::SystemTime(std::chrono::seconds(1709251199));  // 2024-02-29
  EXPECT_EQ(fmt("%START_TIME%", &leap), "2024-02-29T23:59:59.000Z");
}

TEST_F(AccessLogFormatterTest, StartTimeStrftime) {
  EXPECT_EQ(fmt("%START_TIME(%Y/%m/%d %H:%M:%S)%"), "2024/01/02 03:04:05");
  EXPECT_EQ(fmt("%START_TIME(%a %b %e %j %y %Z %z %%)%"), "Tue Jan  2 002 24 UTC +0000 %");
  EXPECT_EQ(fmt("%START_TIME(%FT%T)%"), "2024-01-02T03:04:05");
  StreamInfo leap;
  leap.start_time = StreamInfo::SystemTime(std::chrono::seconds(1709251199));
  EXPECT_EQ(fmt("%START_TIME(%j %A)%", &leap), "060 Thursday");
}

TEST_F(AccessLogFormatterTest, StartTimeFractionsAndEpoch) {
  EXPECT_EQ(fmt("%START_TIME(%s)%"), "1704164645");
  EXPECT_EQ(fmt("%START_TIME(%s.%3f)%"), "1704164645.678");
  EXPECT_EQ(fmt("%START_TIME(%f)%"), "678901234");
  EXPECT_EQ(fmt("%START_TIME(%1f|%3f|%6f|%9f)%"), "6|678|678901|678901234");
  EXPECT_EQ(fmt("%START_TIME(%H:%M:%S.%3f)%"), "03:04:05.678");
  EXPECT_EQ(fmt("%START_TIME(%%s %%f)%"), "%s %f");  // escaped, not specifiers
  // Abseil's extensions, which Envoy accepts too.
  EXPECT_EQ(fmt("%START_TIME(%Y-%m-%dT%H:%M:%E3SZ)%"), "2024-01-02T03:04:05.678Z");
  EXPECT_EQ(fmt("%START_TIME(%E6S|%E*S|%E3f|%E*f|%Ez)%"),
            "05.678901|05.678901234|678|678901234|+00:00");
  StreamInfo whole;
  whole.start_time = StreamInfo::SystemTime(std::chrono::seconds(1704164645)) + 500ms;
  EXPECT_EQ(fmt("%START_TIME(%E*S %E*f %E0S)%", &whole), "05.5 5 05");
  whole.start_time = StreamInfo::SystemTime(std::chrono::seconds(1704164645));
  EXPECT_EQ(fmt("%START_TIME(%E*S %E*f %3f)%", &whole), "05 0 000");
}

TEST_F(AccessLogFormatterTest, ParseErrors) {
  EXPECT_EQ(parse_error("%FOO%"), "unknown access log operator %FOO%");
  EXPECT_EQ(parse_error("x %DYNAMIC_METADATA(a:b)% y"),
            "unknown access log operator %DYNAMIC_METADATA(a:b)%");
  EXPECT_EQ(parse_error("%PROTOCOL(x)%"),
            "access log operator %PROTOCOL% takes no argument, got %PROTOCOL(x)%");
  EXPECT_EQ(parse_error("%REQ%"),
            "access log operator %REQ% needs a header name, e.g. %REQ(USER-AGENT)%");
  EXPECT_EQ(parse_error("%REQ()%"),
            "access log operator %REQ()% needs a header name, e.g. %REQ(USER-AGENT)%");
  EXPECT_EQ(parse_error("%REQ(A?B?C)%"),
            "access log operator %REQ(A?B?C)% has more than one fallback header");
  EXPECT_EQ(parse_error("%RESP(?B)%"), "access log operator %RESP(?B)% has an empty header name");
  EXPECT_EQ(parse_error("%TRAILER(A?)%"),
            "access log operator %TRAILER(A?)% has an empty fallback header");
  EXPECT_EQ(parse_error("%START_TIME(%Y%)%"),
            "access log operator %START_TIME(%Y%)% ends with a lone '%'");

  // Malformed operators name their position and text.
  EXPECT_EQ(parse_error("ab %"),
            "malformed access log operator at position 3 (\"%\"): expected an upper-case operator "
            "name after '%' (write %% for a literal '%')");
  EXPECT_NE(parse_error("100% done").find("position 3 (\"% done\")"), std::string::npos);
  EXPECT_NE(parse_error("%req(x)%").find("upper-case operator name"), std::string::npos);
  EXPECT_EQ(parse_error("%REQ(X"),
            "malformed access log operator at position 0 (\"%REQ(X\"): missing ')'");
  EXPECT_NE(parse_error("%REQ(X)abc%").find("expected a closing '%'"), std::string::npos);
  EXPECT_NE(parse_error("%PROTOCOL").find("expected a closing '%'"), std::string::npos);
  EXPECT_NE(parse_error("%REQ(X):%").find("expected a length after ':'"), std::string::npos);
  EXPECT_NE(parse_error("%REQ(X):abc%").find("expected a length after ':'"), std::string::npos);
  EXPECT_NE(parse_error("%REQ(X):99999999999999999999999%").find("expected a length"),
            std::string::npos);

  // A null error pointer is allowed.
  EXPECT_FALSE(Formatter::parse("%FOO%", nullptr).has_value());
}

// --- FileSink ---

std::string temp_path(const std::string& name) {
  return ::testing::TempDir() + "sluice_access_log_" + std::to_string(::getpid()) + "_" + name;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> lines;
  std::istringstream in(s);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

TEST(AccessLogFileSink, TwoThreadsLinesIntactAndOrdered) {
  const std::string path = temp_path("threads.log");
  std::remove(path.c_str());
  constexpr int kLines = 20000;
  {
    std::string error;
    std::shared_ptr<FileSink> sink = FileSink::open(path, &error);
    ASSERT_TRUE(sink) << error;
    auto worker = [&](char id) {
      // Long enough lines that batches and the 64 KiB flush threshold are crossed many times.
      const std::string padding(60 + id, id);
      for (int i = 0; i < kLines; ++i) {
        sink->log_line(std::string(1, id) + " " + std::to_string(i) + " " + padding + "\n");
      }
    };
    std::thread a(worker, 'a');
    std::thread b(worker, 'b');
    a.join();
    b.join();
  }  // thread exit hands over staged lines; destruction flushes

  const std::vector<std::string> lines = split_lines(read_file(path));
  ASSERT_EQ(lines.size(), 2u * kLines);
  std::map<char, int> next = {{'a', 0}, {'b', 0}};
  for (const std::string& line : lines) {
    ASSERT_GE(line.size(), 3u) << line;
    const char id = line[0];
    ASSERT_TRUE(id == 'a' || id == 'b') << line;
    const std::string expected =
        std::string(1, id) + " " + std::to_string(next[id]++) + " " + std::string(60 + id, id);
    ASSERT_EQ(line, expected);  // whole, and in each thread's order
  }
  EXPECT_EQ(next['a'], kLines);
  EXPECT_EQ(next['b'], kLines);
  std::remove(path.c_str());
}

TEST(AccessLogFileSink, FlushOnDestroy) {
  const std::string path = temp_path("destroy.log");
  std::remove(path.c_str());
  auto formatter = Formatter::parse("%RESPONSE_CODE% %REQ(:PATH)%\n", nullptr);
  ASSERT_TRUE(formatter);
  HeaderMap headers;
  headers.add(":path", "/x");
  StreamInfo info;
  info.request_headers = &headers;
  info.response_code = 204;
  {
    std::shared_ptr<FileSink> sink = FileSink::open(path, nullptr);
    ASSERT_TRUE(sink);
    sink->log(*formatter, info);  // staged on this thread only
    sink->log(*formatter, info);
  }
  EXPECT_EQ(read_file(path), "204 /x\n204 /x\n");
  std::remove(path.c_str());
}

// A sink owned by a thread_local that outlives the thread's staging buffers (destroyed later in
// the exit sequence) still takes lines and flushes them.
struct ExitHolder {
  std::shared_ptr<FileSink> sink;
  ~ExitHolder() {
    if (sink) sink->log_line("from exit\n");
  }
};
thread_local ExitHolder t_exit_holder;

TEST(AccessLogFileSink, SinkReleasedDuringThreadExit) {
  const std::string path = temp_path("thread_exit.log");
  std::remove(path.c_str());
  std::shared_ptr<FileSink> sink = FileSink::open(path, nullptr);
  ASSERT_TRUE(sink);
  std::thread([&] {
    t_exit_holder.sink = std::move(sink);  // constructed before the staging buffers
    t_exit_holder.sink->log_line("staged\n");
  }).join();
  EXPECT_EQ(read_file(path), "staged\nfrom exit\n");
  std::remove(path.c_str());
}

TEST(AccessLogFileSink, FlusherWritesInBackground) {
  const std::string path = temp_path("background.log");
  std::remove(path.c_str());
  std::shared_ptr<FileSink> sink = FileSink::open(path, nullptr);
  ASSERT_TRUE(sink);
  sink->log_line("hello\n");
  FileSink::flush_thread();
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (read_file(path).empty() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(read_file(path), "hello\n");
  sink.reset();
  std::remove(path.c_str());
}

TEST(AccessLogFileSink, ExplicitFlushAppendsWithMode0644) {
  const std::string path = temp_path("append.log");
  std::remove(path.c_str());
  {
    std::shared_ptr<FileSink> sink = FileSink::open(path, nullptr);
    ASSERT_TRUE(sink);
    std::string batch = "one\ntwo\n";
    sink->write(batch);
    EXPECT_TRUE(batch.empty());
    sink->write(std::string_view("three\n"));
    sink->flush();
    EXPECT_EQ(read_file(path), "one\ntwo\nthree\n");
  }
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  const mode_t mask = ::umask(0);
  ::umask(mask);
  EXPECT_EQ(st.st_mode & 0777, 0644 & ~mask);
  {
    std::shared_ptr<FileSink> sink = FileSink::open(path, nullptr);
    ASSERT_TRUE(sink);
    sink->write(std::string_view("four\n"));
  }
  EXPECT_EQ(read_file(path), "one\ntwo\nthree\nfour\n");  // O_APPEND keeps what was there
  std::remove(path.c_str());
}

TEST(AccessLogFileSink, ReopenAfterRotation) {
  const std::string path = temp_path("rotate.log");
  const std::string rotated = path + ".1";
  std::remove(path.c_str());
  std::remove(rotated.c_str());
  std::shared_ptr<FileSink> sink = FileSink::open(path, nullptr);
  ASSERT_TRUE(sink);
  sink->write(std::string_view("before\n"));
  ASSERT_EQ(std::rename(path.c_str(), rotated.c_str()), 0);
  std::string error;
  ASSERT_TRUE(sink->reopen(&error)) << error;
  sink->write(std::string_view("after\n"));
  sink.reset();
  EXPECT_EQ(read_file(rotated), "before\n");
  EXPECT_EQ(read_file(path), "after\n");
  std::remove(path.c_str());
  std::remove(rotated.c_str());
}

TEST(AccessLogFileSink, OpenFailureIsReported) {
  std::string error;
  EXPECT_EQ(FileSink::get("/nonexistent-sluice-dir/access.log", &error), nullptr);
  EXPECT_NE(error.find("/nonexistent-sluice-dir/access.log"), std::string::npos) << error;
  EXPECT_NE(error.find("No such file"), std::string::npos) << error;
  error.clear();
  EXPECT_EQ(FileSink::open("", &error), nullptr);
  EXPECT_FALSE(error.empty());
}

TEST(AccessLogFileSink, RegistrySharesSinksPerPath) {
  const std::string path = temp_path("shared.log");
  const std::string other = temp_path("other.log");
  std::shared_ptr<FileSink> a = FileSink::get(path, nullptr);
  std::shared_ptr<FileSink> b = FileSink::get(path, nullptr);
  std::shared_ptr<FileSink> c = FileSink::get(other, nullptr);
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(a.get(), b.get());
  EXPECT_NE(a.get(), c.get());
  EXPECT_EQ(a->path(), path);
  std::string error;
  EXPECT_TRUE(FileSink::reopen_all(&error)) << error;
  a->log_line("x\n");
  b->log_line("y\n");
  a.reset();
  b.reset();
  c.reset();
  EXPECT_EQ(read_file(path), "x\ny\n");
  std::remove(path.c_str());
  std::remove(other.c_str());
}

TEST(AccessLogFileSink, StandardStreamsOpen) {
  std::string error;
  EXPECT_NE(FileSink::get("/dev/stdout", &error), nullptr) << error;
  EXPECT_NE(FileSink::get("/dev/stderr", &error), nullptr) << error;
}

}  // namespace
}  // namespace sluice::accesslog
