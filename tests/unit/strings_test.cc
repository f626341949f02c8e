// src/common/strings.h: the small text helpers the data path uses.
#include "common/strings.h"

#include <gtest/gtest.h>

#include <string>

namespace sluice {
namespace {

TEST(LowerCased, ShortNamesLowerCasedInPlace) {
  const LowerCased lower("X-Envoy-Peer-Metadata-Id");
  EXPECT_EQ(lower.view(), "x-envoy-peer-metadata-id");
  const LowerCased empty("");
  EXPECT_EQ(empty.view(), "");
}

TEST(LowerCased, LongNamesToo) {
  // Longer than the inline buffer: the same answer, from the heap.
  const std::string name = "X-" + std::string(300, 'A') + "-Z";
  const LowerCased lower(name);
  EXPECT_EQ(lower.view(), "x-" + std::string(300, 'a') + "-z");
  const std::string edge(96, 'Q');  // exactly the inline size
  EXPECT_EQ(LowerCased(edge).view(), std::string(96, 'q'));
  const std::string over(97, 'Q');
  EXPECT_EQ(LowerCased(over).view(), std::string(97, 'q'));
}

TEST(LowerCased, OnlyAsciiLettersChange) {
  const std::string_view mixed("Content-Type_1:\xC3\x84\x00Z", 19);
  const LowerCased lower(mixed);
  EXPECT_EQ(lower.view(), std::string_view("content-type_1:\xC3\x84\x00z", 19));
}

}  // namespace
}  // namespace sluice
