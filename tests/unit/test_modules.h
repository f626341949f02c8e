// The test Wasm modules (tests/wasm/*.wat, compiled into SLUICE_TEST_WASM_DIR by the build).
#pragma once

#include <string>
#include <string_view>

#include <gtest/gtest.h>

#include "common/files.h"

namespace sluice::testing {

// The bytes of SLUICE_TEST_WASM_DIR/<name>.wasm; a missing file fails the calling test.
inline std::string read_test_module(std::string_view name) {
  const std::string path = std::string(SLUICE_TEST_WASM_DIR) + "/" + std::string(name) + ".wasm";
  Result<std::string> bytes = read_file(path);
  EXPECT_TRUE(bytes.ok()) << bytes.error();
  return bytes.ok() ? std::move(bytes).value() : std::string();
}

}  // namespace sluice::testing
