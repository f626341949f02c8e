// The test Wasm modules (tests/wasm/*.wat, compiled into SLUICE_TEST_WASM_DIR by the build).
#pragma once

#include <fstream>
#include <sstream>
#include <string>
#include <string_view>

#include <gtest/gtest.h>

namespace sluice::testing {

// The bytes of SLUICE_TEST_WASM_DIR/<name>.wasm; a missing file fails the calling test.
inline std::string read_test_module(std::string_view name) {
  const std::string path = std::string(SLUICE_TEST_WASM_DIR) + "/" + std::string(name) + ".wasm";
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in) << "cannot open " << path;
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

}  // namespace sluice::testing
