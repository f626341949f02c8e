// Helpers shared by the extensions (extensions/common/), compiled natively.
#include <gtest/gtest.h>

#include "../../extensions/common/address.h"

namespace ext_common {
namespace {

TEST(ExtensionAddress, WithoutPort) {
  EXPECT_EQ(address_without_port("10.0.0.1:5555"), "10.0.0.1");
  EXPECT_EQ(address_without_port("[::1]:5555"), "::1");
  EXPECT_EQ(address_without_port("[2001:db8::7]:443"), "2001:db8::7");
  // Routing and rate limiting key by this: two connections of one IPv6 client are one key.
  EXPECT_EQ(address_without_port("[::1]:40000"), address_without_port("[::1]:40001"));
  EXPECT_EQ(address_without_port("10.0.0.1"), "10.0.0.1");
  EXPECT_EQ(address_without_port("::1"), "::1");    // a bare IPv6 address has no port
  EXPECT_EQ(address_without_port("[::1"), "[::1");  // malformed: left as it is
  EXPECT_EQ(address_without_port(""), "");
}

}  // namespace
}  // namespace ext_common
