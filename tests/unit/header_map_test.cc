// Unit tests for src/common/header_map.{h,cc}.
#include "common/header_map.h"

#include <string>
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace sluice {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Pair;

std::vector<std::pair<std::string, std::string>> Entries(const HeaderMap& h) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& e : h) out.emplace_back(e.key, e.value);
  return out;
}

TEST(HeaderMap, StartsEmpty) {
  HeaderMap h;
  EXPECT_TRUE(h.empty());
  EXPECT_EQ(h.size(), 0u);
  EXPECT_EQ(h.byte_size(), 0u);
  EXPECT_EQ(h.get("x"), nullptr);
  EXPECT_EQ(h.get_or_empty("x"), "");
  EXPECT_FALSE(h.has("x"));
  EXPECT_EQ(h.get_joined("x"), "");
  EXPECT_EQ(h.count("x"), 0u);
  EXPECT_EQ(h.begin(), h.end());
}

TEST(HeaderMap, AddLowerCasesKeysAndKeepsOrderAndDuplicates) {
  HeaderMap h;
  h.add("Content-Type", "Text/HTML");
  h.add("X-FOO", "1");
  h.add("x-foo", "2");
  h.add("Accept", "");
  EXPECT_EQ(h.size(), 4u);
  EXPECT_FALSE(h.empty());
  // Keys are lower-cased, values are kept as given.
  EXPECT_THAT(Entries(h), ElementsAre(Pair("content-type", "Text/HTML"), Pair("x-foo", "1"),
                                      Pair("x-foo", "2"), Pair("accept", "")));
  ASSERT_NE(h.get("x-foo"), nullptr);
  EXPECT_EQ(*h.get("x-foo"), "1");  // the first value
  EXPECT_EQ(h.get_or_empty("content-type"), "Text/HTML");
  EXPECT_TRUE(h.has("accept"));  // present with an empty value
  EXPECT_EQ(h.get_or_empty("accept"), "");
  EXPECT_EQ(h.count("x-foo"), 2u);
  EXPECT_EQ(h.count("content-type"), 1u);
}

TEST(HeaderMap, LookupsTakeLowerCaseKeys) {
  HeaderMap h;
  h.add("X-Mixed", "v");
  EXPECT_TRUE(h.has("x-mixed"));
  // Documented contract: lookups take lower-case keys; no folding on the lookup side.
  EXPECT_FALSE(h.has("X-Mixed"));
  EXPECT_EQ(h.count("X-Mixed"), 0u);
}

TEST(HeaderMap, AddOnlyLowerCasesAscii) {
  HeaderMap h;
  h.add("X-\xC3\x84-Z", "v");  // UTF-8 'Ä' stays as is
  EXPECT_THAT(Entries(h), ElementsAre(Pair("x-\xC3\x84-z", "v")));
}

TEST(HeaderMap, SetReplacesAllValuesInPlace) {
  HeaderMap h;
  h.add("a", "1");
  h.add("Via", "first");
  h.add("b", "2");
  h.add("via", "second");
  h.add("c", "3");
  h.set("VIA", "only");
  // The first occurrence keeps its position, the others are removed.
  EXPECT_THAT(Entries(h),
              ElementsAre(Pair("a", "1"), Pair("via", "only"), Pair("b", "2"), Pair("c", "3")));
  EXPECT_EQ(h.count("via"), 1u);
}

TEST(HeaderMap, SetAppendsWhenAbsent) {
  HeaderMap h;
  h.add("a", "1");
  h.set("New-Key", "v");
  EXPECT_THAT(Entries(h), ElementsAre(Pair("a", "1"), Pair("new-key", "v")));
  h.set("new-key", "");
  EXPECT_THAT(Entries(h), ElementsAre(Pair("a", "1"), Pair("new-key", "")));
}

TEST(HeaderMap, SetOnPseudoHeaders) {
  HeaderMap h;
  h.add(":method", "GET");
  h.add(":path", "/old");
  h.add(":authority", "a.example");
  h.add(":scheme", "http");
  h.set(":path", "/new");
  EXPECT_EQ(h.method(), "GET");
  EXPECT_EQ(h.path(), "/new");
  EXPECT_EQ(h.authority(), "a.example");
  EXPECT_EQ(h.scheme(), "http");
  EXPECT_EQ(h.status(), "");
  h.add(":status", "200");
  EXPECT_EQ(h.status(), "200");
}

TEST(HeaderMap, RemoveRemovesEveryValue) {
  HeaderMap h;
  h.add("keep", "1");
  h.add("drop", "a");
  h.add("keep", "2");
  h.add("drop", "b");
  h.add("dropper", "c");  // a different key with the same prefix stays
  EXPECT_EQ(h.remove("drop"), 2u);
  EXPECT_THAT(Entries(h), ElementsAre(Pair("keep", "1"), Pair("keep", "2"), Pair("dropper", "c")));
  EXPECT_EQ(h.remove("drop"), 0u);
  EXPECT_EQ(h.remove("absent"), 0u);
  EXPECT_EQ(h.size(), 3u);
}

TEST(HeaderMap, RemovePrefix) {
  HeaderMap h;
  h.add("x-envoy-upstream-service-time", "5");
  h.add("content-length", "0");
  h.add("X-Envoy-Internal", "true");
  h.add("x-envoyish", "stays");  // prefix is "x-envoy-": no match
  h.add("x-envoy-", "exact prefix");
  EXPECT_EQ(h.remove_prefix("x-envoy-"), 3u);
  EXPECT_THAT(Entries(h), ElementsAre(Pair("content-length", "0"), Pair("x-envoyish", "stays")));
  EXPECT_EQ(h.remove_prefix("x-envoy-"), 0u);
  // An empty prefix removes everything.
  EXPECT_EQ(h.remove_prefix(""), 2u);
  EXPECT_TRUE(h.empty());
}

TEST(HeaderMap, GetJoined) {
  HeaderMap h;
  h.add("accept", "text/html");
  h.add("other", "x");
  h.add("Accept", "application/json");
  h.add("accept", "*/*");
  EXPECT_EQ(h.get_joined("accept"), "text/html, application/json, */*");
  EXPECT_EQ(h.get_joined("other"), "x");
  EXPECT_EQ(h.get_joined("absent"), "");
}

TEST(HeaderMap, Count) {
  HeaderMap h;
  for (int i = 0; i < 5; ++i) h.add("Set-Cookie", std::to_string(i));
  h.add("cookie", "c");
  EXPECT_EQ(h.count("set-cookie"), 5u);
  EXPECT_EQ(h.count("cookie"), 1u);
  EXPECT_EQ(h.count("set-cookie2"), 0u);
  h.remove("set-cookie");
  EXPECT_EQ(h.count("set-cookie"), 0u);
}

TEST(HeaderMap, ByteSizeCountsNamesAndValues) {
  HeaderMap h;
  h.add("Host", "example.com");  // 4 + 11
  EXPECT_EQ(h.byte_size(), 15u);
  h.add(":path", "/");  // 5 + 1
  EXPECT_EQ(h.byte_size(), 21u);
  h.add("x-empty", "");  // 7 + 0
  EXPECT_EQ(h.byte_size(), 28u);
  h.set("host", "a");  // 4 + 1 replaces 4 + 11
  EXPECT_EQ(h.byte_size(), 18u);
  h.remove(":path");
  EXPECT_EQ(h.byte_size(), 12u);
  h.clear();
  EXPECT_EQ(h.byte_size(), 0u);
}

TEST(HeaderMap, ClearAndReuse) {
  HeaderMap h;
  h.reserve(16);
  h.add("a", "1");
  h.add("b", "2");
  h.clear();
  EXPECT_TRUE(h.empty());
  EXPECT_THAT(Entries(h), IsEmpty());
  h.add("C", "3");
  EXPECT_THAT(Entries(h), ElementsAre(Pair("c", "3")));
}

TEST(HeaderMap, AddFrontPutsAnEntryFirst) {
  HeaderMap h;
  h.add("b", "2");
  h.add_front(":status", "200");
  EXPECT_EQ(h.status(), "200");
  EXPECT_THAT(Entries(h), ElementsAre(Pair(":status", "200"), Pair("b", "2")));
}

TEST(HeaderMap, ValuesAreBinarySafe) {
  HeaderMap h;
  const std::string value("a\0b", 3);
  h.add("x", value);
  ASSERT_NE(h.get("x"), nullptr);
  EXPECT_EQ(*h.get("x"), value);
  EXPECT_EQ(h.byte_size(), 4u);
}

// The HTTP/2 server does set(":authority", *get("host")): the value lives in the map, and
// adding may grow it. Short values (kept inside the string object) moved with the entries and
// were read after the move (found by http2_server_fuzz).
TEST(HeaderMap, AddAndSetTakeViewsIntoTheMapItself) {
  for (size_t live = 1; live < 40; ++live) {
    HeaderMap h;
    for (size_t i = 0; i < live; ++i) h.add("k" + std::to_string(i), "v" + std::to_string(i));
    h.set(":authority", *h.get("k0"));
    h.add(*h.get("k0"), *h.get(std::string("k") + std::to_string(live - 1)));
    ASSERT_EQ(h.size(), live + 2);
    EXPECT_EQ(h.authority(), "v0");
    ASSERT_NE(h.get("v0"), nullptr);
    EXPECT_EQ(*h.get("v0"), "v" + std::to_string(live - 1));
  }
}

TEST(HeaderMap, AsciiLower) {
  std::string s = "MiXeD-Case_123 ÄZ";
  ascii_lower(s);
  EXPECT_EQ(s, "mixed-case_123 Äz");
}

}  // namespace
}  // namespace sluice
