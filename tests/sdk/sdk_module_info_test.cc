// The SDK's .wasm modules as the host itself reads them (sluice::wasm::ModuleInfo::parse): the
// same compatibility facts module_compat_test.sh checks with wasm-objdump, seen by our parser.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "wasm/vm/module_info.h"

namespace {

using sluice::wasm::AbiVersion;
using sluice::wasm::ExternKind;
using sluice::wasm::ModuleInfo;
using sluice::wasm::Signature;
using sluice::wasm::ValType;

Signature i32s(size_t n, bool result = true) {
  Signature s;
  s.params.assign(n, ValType::I32);
  if (result) s.results.push_back(ValType::I32);
  return s;
}

// ABI 0.2.1 host functions (shared/proxy-wasm-abi.md §2.1) by parameter count.
const std::map<std::string, Signature>& host_functions() {
  static const std::map<std::string, Signature> m = [] {
    std::map<std::string, Signature> r;
    const std::pair<const char*, size_t> specs[] = {{"proxy_log", 3},
                                                    {"proxy_get_log_level", 1},
                                                    {"proxy_get_current_time_nanoseconds", 1},
                                                    {"proxy_set_tick_period_milliseconds", 1},
                                                    {"proxy_get_status", 3},
                                                    {"proxy_get_property", 4},
                                                    {"proxy_set_property", 4},
                                                    {"proxy_get_buffer_bytes", 5},
                                                    {"proxy_get_buffer_status", 3},
                                                    {"proxy_set_buffer_bytes", 5},
                                                    {"proxy_get_header_map_pairs", 3},
                                                    {"proxy_set_header_map_pairs", 3},
                                                    {"proxy_get_header_map_size", 2},
                                                    {"proxy_get_header_map_value", 5},
                                                    {"proxy_add_header_map_value", 5},
                                                    {"proxy_replace_header_map_value", 5},
                                                    {"proxy_remove_header_map_value", 3},
                                                    {"proxy_continue_stream", 1},
                                                    {"proxy_close_stream", 1},
                                                    {"proxy_send_local_response", 8},
                                                    {"proxy_http_call", 10},
                                                    {"proxy_grpc_call", 12},
                                                    {"proxy_grpc_stream", 9},
                                                    {"proxy_grpc_send", 4},
                                                    {"proxy_grpc_cancel", 1},
                                                    {"proxy_grpc_close", 1},
                                                    {"proxy_get_shared_data", 5},
                                                    {"proxy_set_shared_data", 5},
                                                    {"proxy_register_shared_queue", 3},
                                                    {"proxy_resolve_shared_queue", 5},
                                                    {"proxy_enqueue_shared_queue", 3},
                                                    {"proxy_dequeue_shared_queue", 3},
                                                    {"proxy_define_metric", 4},
                                                    {"proxy_get_metric", 2},
                                                    {"proxy_set_effective_context", 1},
                                                    {"proxy_done", 0},
                                                    {"proxy_call_foreign_function", 6}};
    for (const auto& [name, n] : specs) r[name] = i32s(n);
    Signature metric{{ValType::I32, ValType::I64}, {ValType::I32}};
    r["proxy_increment_metric"] = metric;
    r["proxy_record_metric"] = metric;
    return r;
  }();
  return m;
}

std::vector<std::string> modules() {
  std::vector<std::string> out;
  std::stringstream list(SLUICE_SDK_MODULES);  // ','-separated, from CMake
  for (std::string path; std::getline(list, path, ',');) {
    if (!path.empty()) out.push_back(path);
  }
  return out;
}

TEST(SdkModuleInfo, EveryModuleIsAnEnvoyCompatibleReactor) {
  ASSERT_FALSE(modules().empty());
  for (const std::string& path : modules()) {
    SCOPED_TRACE(path);
    std::ifstream in(path, std::ios::binary);
    ASSERT_TRUE(in) << "missing module (build sluice_extensions_wasm)";
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto parsed = ModuleInfo::parse(bytes);
    ASSERT_TRUE(parsed) << parsed.error();
    const ModuleInfo& info = *parsed;

    EXPECT_EQ(info.abi_version, AbiVersion::V0_2_1);
    int markers = 0;
    for (const auto& e : info.exports) {
      if (e.name.rfind("proxy_abi_version_", 0) == 0) ++markers;
    }
    EXPECT_EQ(markers, 1);
    const auto* memory = info.find_export("memory");
    ASSERT_NE(memory, nullptr);
    EXPECT_EQ(memory->kind, ExternKind::Memory);
    ASSERT_TRUE(info.memory);
    EXPECT_FALSE(info.memory->imported);
    const auto* malloc_export = info.find_export("malloc");
    ASSERT_NE(malloc_export, nullptr);
    EXPECT_EQ(malloc_export->signature, i32s(1));
    const auto* init = info.find_export("_initialize");
    ASSERT_NE(init, nullptr);
    EXPECT_EQ(init->signature, Signature{});
    EXPECT_EQ(info.find_export("_start"), nullptr);
    const auto* headers = info.find_export("proxy_on_request_headers");
    ASSERT_NE(headers, nullptr);
    EXPECT_EQ(headers->signature, i32s(3));  // 0.2.x: (context, num_headers, end_of_stream)
    EXPECT_FALSE(info.has_start_section);
    // Declares that it takes kBufferTooSmall (sluice_functions.h), for leaf reads on V8.
    const auto* retries = info.find_export("sluice_retries_buffer_too_small");
    ASSERT_NE(retries, nullptr);
    EXPECT_EQ(retries->kind, ExternKind::Function);
    EXPECT_EQ(retries->signature, Signature{});

    for (const auto& imp : info.imports) {
      EXPECT_EQ(imp.kind, ExternKind::Function) << imp.module << "." << imp.name;
      if (imp.module == "env") {
        auto it = host_functions().find(imp.name);
        ASSERT_NE(it, host_functions().end()) << "not an ABI 0.2.1 host function: " << imp.name;
        EXPECT_EQ(imp.signature, it->second) << imp.name << " " << imp.signature.to_string();
      } else {
        // WASI is checked in detail by module_compat_test.sh; here only the module names.
        EXPECT_TRUE(imp.module == "wasi_snapshot_preview1" || imp.module == "wasi_unstable")
            << imp.module << "." << imp.name;
      }
    }
  }
}

}  // namespace
