// What a Wasm binary declares, read without compiling it: its imports and exports with their
// function types, its memory, its start function and which Proxy-Wasm ABI it was built for. The
// host uses it to pick the ABI version, check every import against the host functions it offers
// (with a clear error naming the import), and cap a module's memory before compiling it.
//
// The parser reads only the sections it needs (type, import, function, memory, export, start) and
// skips the others by their declared sizes; any malformed input is an error with the byte offset.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "wasm/vm/wasm_vm.h"  // Signature, ValType

namespace sluice::wasm {

enum class AbiVersion { Unknown, V0_1_0, V0_2_0, V0_2_1 };
std::string_view abi_version_name(AbiVersion v);  // "0.2.1", ...

enum class ExternKind : uint8_t { Function = 0, Table = 1, Memory = 2, Global = 3, Tag = 4 };

struct ImportInfo {
  std::string module;
  std::string name;
  ExternKind kind = ExternKind::Function;
  Signature signature;  // functions only
};

struct ExportInfo {
  std::string name;
  ExternKind kind = ExternKind::Function;
  Signature signature;  // functions only
};

struct MemoryLimits {
  uint32_t initial_pages = 0;
  std::optional<uint32_t> max_pages;
  bool shared = false;
  bool memory64 = false;
  bool imported = false;
};

struct ModuleInfo {
  std::vector<ImportInfo> imports;
  std::vector<ExportInfo> exports;
  std::optional<MemoryLimits> memory;  // the first memory, defined or imported
  bool has_start_section = false;
  // From the first function export named proxy_abi_version_X_Y_Z (Unknown when absent).
  AbiVersion abi_version = AbiVersion::Unknown;

  const ExportInfo* find_export(std::string_view name) const;
  const ImportInfo* find_import(std::string_view module, std::string_view name) const;

  // Parses a module binary. Errors name the problem and the byte offset.
  static Result<ModuleInfo> parse(std::string_view bytes);
};

// A copy of `bytes` whose memory declares at most `max_pages` pages (adding a maximum when absent),
// so a module cannot grow past its plugin's memory limit. Fails when the initial size is already
// larger, the memory is shared, or the module has no memory section to rewrite (an imported
// memory is capped by the host that creates it).
Result<std::string> cap_memory_pages(std::string_view bytes, uint32_t max_pages);

}  // namespace sluice::wasm
