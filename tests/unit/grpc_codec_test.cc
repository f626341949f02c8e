#include "grpc/codec.h"

#include <gtest/gtest.h>

namespace sluice::grpc {
namespace {

std::string frame(std::string_view m) {
  std::string out;
  append_frame(out, m);
  return out;
}

TEST(GrpcFraming, PrefixesLengthBigEndianUncompressed) {
  EXPECT_EQ(frame("hi"), std::string("\0\0\0\0\2hi", 7));
  EXPECT_EQ(frame(""), std::string(5, '\0'));
  EXPECT_EQ(frame(std::string(300, 'x')).substr(0, 5), std::string("\0\0\0\x01\x2c", 5));
}

TEST(GrpcFraming, DecodesMessagesSplitAnywhere) {
  const std::string wire = frame("one") + frame("") + frame(std::string(1000, 'z'));
  for (size_t step : {1u, 2u, 5u, 7u, 100u, 5000u}) {
    FrameDecoder d(4096);
    std::vector<std::string> out;
    for (size_t i = 0; i < wire.size(); i += step) {
      ASSERT_TRUE(d.decode(std::string_view(wire).substr(i, step), out));
    }
    ASSERT_EQ(out.size(), 3u) << "step " << step;
    EXPECT_EQ(out[0], "one");
    EXPECT_EQ(out[1], "");
    EXPECT_EQ(out[2], std::string(1000, 'z'));
    EXPECT_FALSE(d.has_partial_frame());
  }
}

TEST(GrpcFraming, PartialFrameIsReported) {
  FrameDecoder d(4096);
  std::vector<std::string> out;
  ASSERT_TRUE(d.decode(frame("truncated").substr(0, 8), out));
  EXPECT_TRUE(out.empty());
  EXPECT_TRUE(d.has_partial_frame());
}

TEST(GrpcFraming, RefusesCompressedAndOversizedMessages) {
  FrameDecoder compressed(4096);
  std::vector<std::string> out;
  std::string wire = frame("x");
  wire[0] = 1;
  EXPECT_FALSE(compressed.decode(wire, out));
  EXPECT_EQ(compressed.error_status(), Status::Internal);
  EXPECT_NE(compressed.error().find("compress"), std::string::npos);

  FrameDecoder small(10);
  EXPECT_FALSE(small.decode(frame(std::string(11, 'a')).substr(0, 5), out));  // header is enough
  EXPECT_EQ(small.error_status(), Status::ResourceExhausted);
  EXPECT_FALSE(small.decode(frame("a"), out));  // stays failed
}

TEST(GrpcStatus, HttpFallbacksFollowTheSpec) {
  EXPECT_EQ(status_from_http(400), Status::Internal);
  EXPECT_EQ(status_from_http(401), Status::Unauthenticated);
  EXPECT_EQ(status_from_http(403), Status::PermissionDenied);
  EXPECT_EQ(status_from_http(404), Status::Unimplemented);
  EXPECT_EQ(status_from_http(503), Status::Unavailable);
  EXPECT_EQ(status_from_http(500), Status::Unknown);
}

TEST(GrpcStatus, ParsesOnlyKnownCodes) {
  EXPECT_EQ(parse_status("0"), Status::Ok);
  EXPECT_EQ(parse_status("16"), Status::Unauthenticated);
  EXPECT_EQ(parse_status("17"), std::nullopt);
  EXPECT_EQ(parse_status(""), std::nullopt);
  EXPECT_EQ(parse_status("-1"), std::nullopt);
  EXPECT_EQ(parse_status("007"), std::nullopt);
}

TEST(GrpcStatus, MessageIsPercentDecoded) {
  EXPECT_EQ(decode_message("no%20such%20thing%3A%20%C3%A9"), "no such thing: \xC3\xA9");
  EXPECT_EQ(decode_message("100%"), "100%");      // a lone % stays
  EXPECT_EQ(decode_message("%zz ok"), "%zz ok");  // not an escape
}

TEST(GrpcTimeout, MillisecondsThenSeconds) {
  EXPECT_EQ(timeout_header(250), "250m");
  EXPECT_EQ(timeout_header(99'999'999), "99999999m");
  EXPECT_EQ(timeout_header(100'000'000), "100000S");
}

// GrpcService { envoy_grpc { cluster_name: NAME authority: AUTH } timeout { seconds: 2 nanos: 5e8 }
// }
std::string grpc_service(std::string_view cluster, std::string_view authority) {
  std::string envoy;
  envoy += '\x0a';
  envoy += static_cast<char>(cluster.size());
  envoy += cluster;
  if (!authority.empty()) {
    envoy += '\x12';
    envoy += static_cast<char>(authority.size());
    envoy += authority;
  }
  std::string out;
  out += '\x0a';
  out += static_cast<char>(envoy.size());
  out += envoy;
  const std::string timeout = std::string("\x08\x02\x10\x80\xca\xb5\xee\x01", 8);  // 2 s 500 ms
  out += '\x1a';
  out += static_cast<char>(timeout.size());
  out += timeout;
  return out;
}

TEST(GrpcServiceProto, ReadsTheEnvoyGrpcTarget) {
  auto t = parse_grpc_service(grpc_service("echo", "echo.internal"));
  ASSERT_TRUE(t);
  EXPECT_EQ(t->cluster, "echo");
  EXPECT_EQ(t->authority, "echo.internal");
  EXPECT_EQ(t->timeout_ms, 2500u);
}

TEST(GrpcServiceProto, TimeoutsAreClampedAndNeverRoundToNone) {
  // envoy_grpc { cluster_name: "e" } timeout { nanos: 500000 }: half a millisecond.
  const std::string half_ms(
      "\x0a\x03\x0a\x01"
      "e"
      "\x1a\x04\x10\xa0\xc2\x1e",
      11);
  auto t = parse_grpc_service(half_ms);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->timeout_ms, 1u);
  // timeout { seconds: 2^63 }: clamped, not wrapped.
  const std::string huge(
      "\x0a\x03\x0a\x01"
      "e"
      "\x1a\x0b\x08\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01",
      18);
  t = parse_grpc_service(huge);
  ASSERT_TRUE(t);
  EXPECT_GE(*t->timeout_ms, 4'000'000'000u);
}

TEST(GrpcServiceProto, PlainClusterNamesAreNotProtos) {
  for (std::string_view name :
       {"echo", "grpc_backend", "auth-service", "a", "x.y.z", "echo_cluster"}) {
    EXPECT_FALSE(parse_grpc_service(name)) << name;
  }
  EXPECT_FALSE(parse_grpc_service(""));
  EXPECT_FALSE(parse_grpc_service(grpc_service("", "")));                   // no cluster name
  EXPECT_FALSE(parse_grpc_service(grpc_service("echo", "").substr(0, 4)));  // truncated
}

}  // namespace
}  // namespace sluice::grpc
