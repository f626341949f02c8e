// src/common/strings.h: the small text helpers the data path uses.
#include "common/strings.h"

#include <gtest/gtest.h>

#include <string>

namespace sluice {
namespace {

TEST(HasAsciiUpper, EveryByteAtEveryPosition) {
  // Eight bytes at a time, then a tail: each byte value at each place of strings of 1..17
  // bytes, the rest lower case.
  for (size_t len = 1; len <= 17; ++len) {
    for (size_t at = 0; at < len; ++at) {
      for (int b = 0; b < 256; ++b) {
        std::string s(len, 'q');
        s[at] = static_cast<char>(b);
        ASSERT_EQ(has_ascii_upper(s), b >= 'A' && b <= 'Z')
            << "len " << len << " at " << at << " byte " << b;
      }
    }
  }
  EXPECT_FALSE(has_ascii_upper(""));
  EXPECT_FALSE(has_ascii_upper(std::string(64, '\xFF')));  // high bytes next to each other
  EXPECT_TRUE(has_ascii_upper(std::string(63, '\xDA') + "Z"));
}

TEST(HasControlByte, EveryByteAtEveryPosition) {
  // The same walk over every byte, in six fillings: printable text, and bytes at the edges of
  // the word test's classes (HTAB, space, 0x7E below DEL, the lowest and highest high bytes).
  const auto control = [](int b) { return (b < 0x20 && b != '\t') || b == 0x7F; };
  for (char fill : {'q', '\t', '\x7E', '\x80', '\xFF', ' '}) {
    for (size_t len = 1; len <= 17; ++len) {
      for (size_t at = 0; at < len; ++at) {
        for (int b = 0; b < 256; ++b) {
          std::string s(len, fill);
          s[at] = static_cast<char>(b);
          ASSERT_EQ(has_control_byte(s), control(b))
              << "fill " << int(fill) << " len " << len << " at " << at << " byte " << b;
        }
      }
    }
  }
  EXPECT_FALSE(has_control_byte(""));
  EXPECT_FALSE(has_control_byte("Bearer eyJhbGciOi\tJIUzI1NiJ9.e30 ; obs-text \xC3\xA9"));
  EXPECT_TRUE(has_control_byte(std::string(500, 'A') + '\0'));  // a NUL after a long value
}

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

TEST(LowerCased, LowerCaseNamesAreNotCopied) {
  // The common case: the view is the name itself.
  const std::string name = "x-envoy-peer-metadata-" + std::string(200, 'q');
  const LowerCased lower(name);
  EXPECT_EQ(lower.view().data(), name.data());
  EXPECT_EQ(lower.view(), name);
  const std::string_view with_digits_and_bytes("content-type_1:\xC3\x84\x00z", 19);
  EXPECT_EQ(LowerCased(with_digits_and_bytes).view().data(), with_digits_and_bytes.data());
}

TEST(LowerCased, OnlyAsciiLettersChange) {
  const std::string_view mixed("Content-Type_1:\xC3\x84\x00Z", 19);
  const LowerCased lower(mixed);
  EXPECT_EQ(lower.view(), std::string_view("content-type_1:\xC3\x84\x00z", 19));
}

}  // namespace
}  // namespace sluice
