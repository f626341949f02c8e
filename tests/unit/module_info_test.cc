#include "wasm/vm/module_info.h"

#include <fstream>
#include <initializer_list>
#include <iterator>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace sluice::wasm {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

std::string load(const std::string& name) {
  const std::string path = std::string(SLUICE_TEST_WASM_DIR) + "/" + name + ".wasm";
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  return std::string(std::istreambuf_iterator<char>(in), {});
}

ModuleInfo parse_ok(std::string_view bytes) {
  Result<ModuleInfo> r = ModuleInfo::parse(bytes);
  EXPECT_TRUE(r.ok()) << r.error();
  return r.ok() ? std::move(r).value() : ModuleInfo{};
}

std::string parse_error(std::string_view bytes) {
  Result<ModuleInfo> r = ModuleInfo::parse(bytes);
  EXPECT_FALSE(r.ok());
  return r.ok() ? std::string() : r.error();
}

// --- Hand-built modules -------------------------------------------------------------------------

std::string leb(uint64_t v) {
  std::string out;
  do {
    uint8_t b = v & 0x7F;
    v >>= 7;
    if (v) b |= 0x80;
    out.push_back(static_cast<char>(b));
  } while (v);
  return out;
}

std::string bytes(std::initializer_list<int> list) {
  std::string out;
  for (int b : list) out.push_back(static_cast<char>(b));
  return out;
}

std::string str(std::string_view s) { return leb(s.size()) + std::string(s); }

std::string section(int id, const std::string& payload) {
  return bytes({id}) + leb(payload.size()) + payload;
}

const std::string kHeader = bytes({0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00});

// Type 0: () -> (); type 1: (i32) -> i32.
std::string type_section() { return section(1, bytes({2, 0x60, 0, 0, 0x60, 1, 0x7F, 1, 0x7F})); }
std::string code_section(int bodies) {
  std::string p = leb(bodies);
  for (int i = 0; i < bodies; ++i) p += bytes({2, 0, 0x0B});
  return section(10, p);
}

// A small valid module: one import, two functions, a memory, exports and a start function.
std::string small_module() {
  return kHeader + type_section() +
         section(2, leb(1) + str("env") + str("f") + bytes({0, 1})) +  // import func type 1
         section(3, bytes({2, 0, 1})) +                                // two functions
         section(5, bytes({1, 0, 1})) +                                // memory 1
         section(7, leb(3) + str("proxy_abi_version_0_2_0") + bytes({0, 1}) + str("g") +
                        bytes({0, 2}) + str("memory") + bytes({2, 0})) +
         section(8, bytes({1})) + code_section(2);
}

// Offsets just past each section of a well-formed module (and the header): a prefix ending there
// is itself a sequence of whole sections.
std::set<size_t> section_ends(std::string_view m) {
  std::set<size_t> ends{8};
  size_t pos = 8;
  while (pos < m.size()) {
    ++pos;
    uint64_t size = 0;
    for (int shift = 0;; shift += 7) {
      const auto b = static_cast<uint8_t>(m[pos++]);
      size |= uint64_t{b & 0x7Fu} << shift;
      if (!(b & 0x80)) break;
    }
    pos += size;
    ends.insert(pos);
  }
  return ends;
}

// --- Modules compiled from tests/wasm/modinfo_*.wat
// ------------------------------------------------

TEST(ModuleInfo, DetectsAbi021AndSignatures) {
  const ModuleInfo info = parse_ok(load("modinfo_abi_0_2_1"));
  EXPECT_EQ(info.abi_version, AbiVersion::V0_2_1);
  EXPECT_EQ(abi_version_name(info.abi_version), "0.2.1");

  ASSERT_EQ(info.imports.size(), 2u);
  const ImportInfo* log = info.find_import("env", "proxy_log");
  ASSERT_NE(log, nullptr);
  EXPECT_EQ(log->kind, ExternKind::Function);
  EXPECT_EQ(log->signature.to_string(), "(i32, i32, i32) -> (i32)");
  EXPECT_EQ(info.find_import("env", "proxy_get_buffer_bytes")->signature.params.size(), 5u);
  EXPECT_EQ(info.find_import("wasi_snapshot_preview1", "proxy_log"), nullptr);
  EXPECT_EQ(info.find_import("env", "nope"), nullptr);

  const ExportInfo* alloc = info.find_export("proxy_on_memory_allocate");
  ASSERT_NE(alloc, nullptr);
  EXPECT_EQ(alloc->signature, (Signature{{ValType::I32}, {ValType::I32}}));
  EXPECT_EQ(info.find_export("proxy_on_context_create")->signature.to_string(), "(i32, i32) -> ()");
  EXPECT_EQ(info.find_export("proxy_abi_version_0_2_1")->signature, Signature{});
  EXPECT_EQ(info.find_export("memory")->kind, ExternKind::Memory);
  EXPECT_EQ(info.find_export("missing"), nullptr);

  ASSERT_TRUE(info.memory.has_value());
  EXPECT_EQ(info.memory->initial_pages, 1u);
  EXPECT_FALSE(info.memory->max_pages.has_value());
  EXPECT_FALSE(info.memory->imported);
  EXPECT_FALSE(info.memory->shared);
  EXPECT_FALSE(info.memory->memory64);
  EXPECT_FALSE(info.has_start_section);
}

TEST(ModuleInfo, DetectsAbi020And010) {
  const ModuleInfo v020 = parse_ok(load("modinfo_abi_0_2_0"));
  EXPECT_EQ(v020.abi_version, AbiVersion::V0_2_0);
  EXPECT_EQ(abi_version_name(v020.abi_version), "0.2.0");
  ASSERT_TRUE(v020.memory.has_value());
  EXPECT_EQ(v020.memory->initial_pages, 2u);
  EXPECT_EQ(v020.memory->max_pages, 100u);

  const ModuleInfo v010 = parse_ok(load("modinfo_abi_0_1_0"));
  EXPECT_EQ(v010.abi_version, AbiVersion::V0_1_0);
  EXPECT_EQ(abi_version_name(v010.abi_version), "0.1.0");
  EXPECT_EQ(v010.memory->max_pages, 1u);
}

TEST(ModuleInfo, NoMarkerIsUnknown) {
  const ModuleInfo info = parse_ok(load("modinfo_no_abi"));
  EXPECT_EQ(info.abi_version, AbiVersion::Unknown);  // the global with a marker name is ignored
  EXPECT_EQ(abi_version_name(AbiVersion::Unknown), "unknown");
  EXPECT_EQ(info.find_export("proxy_abi_version_0_2_1")->kind, ExternKind::Global);
  EXPECT_FALSE(info.memory.has_value());
}

TEST(ModuleInfo, EveryKindAndFirstMarkerWins) {
  const ModuleInfo info = parse_ok(load("modinfo_kinds"));
  EXPECT_EQ(info.abi_version, AbiVersion::V0_1_0);  // exported before proxy_abi_version_0_2_1
  EXPECT_TRUE(info.has_start_section);

  ASSERT_EQ(info.imports.size(), 6u);
  EXPECT_EQ(info.imports[1].kind, ExternKind::Table);
  EXPECT_EQ(info.imports[2].kind, ExternKind::Global);
  EXPECT_EQ(info.imports[3].kind, ExternKind::Tag);
  EXPECT_EQ(info.imports[4].kind, ExternKind::Memory);
  // Read correctly only if every descriptor before it was.
  const ImportInfo* fd_write = info.find_import("wasi_snapshot_preview1", "fd_write");
  ASSERT_NE(fd_write, nullptr);
  EXPECT_EQ(fd_write->signature.to_string(), "(i32, i32, i32, i32) -> (i32)");

  // Function indices count the two imported functions first.
  EXPECT_EQ(info.find_export("pair")->signature.to_string(), "(f32, f64) -> (i32, i64)");
  EXPECT_EQ(info.find_export("log")->signature.to_string(), "(i32, i32, i32) -> (i32)");
  EXPECT_EQ(info.find_export("failure")->kind, ExternKind::Tag);
  EXPECT_EQ(info.find_export("own_tag")->kind, ExternKind::Tag);
  EXPECT_EQ(info.find_export("own_global")->kind, ExternKind::Global);
  EXPECT_EQ(info.find_export("own_table")->kind, ExternKind::Table);
  EXPECT_EQ(info.exports.size(), 11u);

  ASSERT_TRUE(info.memory.has_value());
  EXPECT_TRUE(info.memory->imported);
  EXPECT_EQ(info.memory->initial_pages, 2u);
  EXPECT_EQ(info.memory->max_pages, 10u);
}

TEST(ModuleInfo, MemoryFlags) {
  const ModuleInfo shared = parse_ok(load("modinfo_shared"));
  EXPECT_TRUE(shared.memory->shared);
  EXPECT_EQ(shared.memory->max_pages, 16u);

  const ModuleInfo m64 = parse_ok(load("modinfo_memory64"));
  EXPECT_TRUE(m64.memory->memory64);
  EXPECT_EQ(m64.memory->initial_pages, 3u);
  EXPECT_FALSE(m64.memory->max_pages.has_value());

  const ModuleInfo multi = parse_ok(load("modinfo_multi_memory"));
  EXPECT_EQ(multi.memory->initial_pages, 1u);  // the first memory
  EXPECT_FALSE(parse_ok(load("modinfo_no_memory")).memory.has_value());
}

TEST(ModuleInfo, NonNumericTypes) {
  // Only an imported or exported use is refused: internal v128 code is fine.
  EXPECT_EQ(parse_ok(load("modinfo_simd_internal")).abi_version, AbiVersion::V0_2_1);
  const std::string err = parse_error(load("modinfo_simd_export"));
  EXPECT_THAT(err, StartsWith("unsupported wasm module at byte "));
  EXPECT_THAT(err, HasSubstr("function export 'splat' uses type v128"));
}

TEST(ModuleInfo, SmallHandBuiltModule) {
  const ModuleInfo info = parse_ok(small_module());
  EXPECT_EQ(info.abi_version, AbiVersion::V0_2_0);
  EXPECT_EQ(info.find_import("env", "f")->signature.to_string(), "(i32) -> (i32)");
  EXPECT_EQ(info.find_export("g")->signature.to_string(), "(i32) -> (i32)");  // function 2: type 1
  EXPECT_TRUE(info.has_start_section);
  EXPECT_EQ(info.memory->initial_pages, 1u);
  // An empty module is valid.
  EXPECT_TRUE(ModuleInfo::parse(kHeader).ok());
}

TEST(ModuleInfo, CustomSectionsSkippedAnywhere) {
  const std::string custom = section(0, str("name") + bytes({1, 2, 3, 0xFF}));
  const std::string m = kHeader + custom + type_section() + custom + section(3, bytes({1, 0})) +
                        custom + code_section(1) + custom;
  EXPECT_TRUE(ModuleInfo::parse(m).ok());
  // Its name must fit in the section and be UTF-8.
  EXPECT_THAT(parse_error(kHeader + section(0, leb(9) + "abc")), HasSubstr("runs past the end"));
  EXPECT_THAT(parse_error(kHeader + section(0, str("\xC0\x80"))), HasSubstr("not valid UTF-8"));
}

// --- Malformed input
// ------------------------------------------------------------------------------

TEST(ModuleInfoErrors, EveryTruncationFails) {
  std::vector<std::string> modules{small_module()};
  for (const char* name : {"modinfo_abi_0_2_1", "modinfo_kinds", "modinfo_memory64",
                           "modinfo_multi_memory", "modinfo_simd_internal"}) {
    modules.push_back(load(name));
  }
  for (const std::string& m : modules) {
    ASSERT_TRUE(ModuleInfo::parse(m).ok());
    const std::set<size_t> ends = section_ends(m);
    for (size_t len = 0; len < m.size(); ++len) {
      Result<ModuleInfo> r = ModuleInfo::parse(std::string_view(m).substr(0, len));
      if (r.ok()) {
        // Only a cut between whole sections can still be a module (before any code is declared).
        EXPECT_TRUE(ends.count(len)) << "prefix of " << len << " bytes parsed";
      } else {
        EXPECT_THAT(r.error(), StartsWith("invalid wasm module at byte ")) << r.error();
      }
    }
  }
}

TEST(ModuleInfoErrors, CutInsideAFunctionDeclarationFails) {
  // Once the function section is in, a missing code section is an error, not a shorter module.
  const std::string m = small_module();
  const size_t code = m.size() - code_section(2).size();
  EXPECT_THAT(parse_error(std::string_view(m).substr(0, code)),
              HasSubstr("declares 2 functions but the code section has 0 bodies"));
}

TEST(ModuleInfoErrors, Header) {
  EXPECT_EQ(parse_error(""),
            "invalid wasm module at byte 0: the module is 0 bytes long, shorter than the 8-byte "
            "header");
  EXPECT_THAT(parse_error("\0asm"), HasSubstr("shorter than the 8-byte header"));
  EXPECT_EQ(parse_error(bytes({0x7F, 'E', 'L', 'F', 1, 0, 0, 0})),
            "invalid wasm module at byte 0: bad magic number (not a wasm binary)");
  EXPECT_EQ(parse_error(bytes({0, 'a', 's', 'm', 2, 0, 0, 0})),
            "invalid wasm module at byte 4: unsupported binary version 2; only version 1 is "
            "supported");
  EXPECT_THAT(parse_error(bytes({0, 'a', 's', 'm', 0x0d, 0, 1, 0})), HasSubstr("a component"));
}

TEST(ModuleInfoErrors, Leb128) {
  // Type count in 6 bytes: longer than any u32 encoding.
  EXPECT_EQ(parse_error(kHeader + section(1, bytes({0x80, 0x80, 0x80, 0x80, 0x80, 0x00}))),
            "invalid wasm module at byte 10: type count: LEB128 integer longer than 5 bytes");
  // 5 bytes whose last one sets bits past 32.
  EXPECT_THAT(parse_error(kHeader + section(1, bytes({0xFF, 0xFF, 0xFF, 0xFF, 0x1F}))),
              HasSubstr("type count: integer too large for 32 bits"));
  // A padded but in-range encoding is fine (the spec allows up to 5 bytes).
  EXPECT_TRUE(ModuleInfo::parse(kHeader + section(1, bytes({0x80, 0x80, 0x80, 0x80, 0x00}))).ok());
  // A section size that stops mid-LEB.
  EXPECT_THAT(parse_error(kHeader + bytes({1, 0x80})),
              HasSubstr("unexpected end of the module reading a section size"));
  // A 64-bit memory's sizes may use 10 bytes, but not more.
  EXPECT_TRUE(ModuleInfo::parse(kHeader + section(5, bytes({1, 0x04, 0x81, 0x80, 0x80, 0x80, 0x80,
                                                            0x80, 0x80, 0x80, 0x80, 0x00})))
                  .ok());
  EXPECT_THAT(parse_error(kHeader + section(5, bytes({1, 0x04, 0x81, 0x80, 0x80, 0x80, 0x80, 0x80,
                                                      0x80, 0x80, 0x80, 0x80, 0x00}))),
              HasSubstr("LEB128 integer longer than 10 bytes"));
}

TEST(ModuleInfoErrors, HugeCountsAreBoundedBySectionSize) {
  for (int id : {1, 2, 3, 5, 7, 4, 6, 13, 10}) {
    const std::string err =
        parse_error(kHeader + section(id, bytes({0xFF, 0xFF, 0xFF, 0xFF, 0x0F})));
    EXPECT_THAT(err, HasSubstr("count 4294967295 is more than the 0 bytes left in the")) << id;
  }
  // A type's parameter count likewise.
  EXPECT_THAT(parse_error(kHeader + section(1, bytes({1, 0x60, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0}))),
              HasSubstr("parameter count 4294967295 is more than the 1 bytes left"));
  // A name length.
  EXPECT_THAT(
      parse_error(kHeader + section(7, bytes({1, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0, 0}))),
      HasSubstr("an export name of 4294967295 bytes runs past the end of the export section"));
}

TEST(ModuleInfoErrors, SectionOverrunsAndLeftovers) {
  EXPECT_EQ(parse_error(kHeader + bytes({1, 10, 0})),
            "invalid wasm module at byte 9: type section of 10 bytes runs past the end of the "
            "module (1 bytes left)");
  // The section's own contents may not read past its size, even if the module goes on.
  EXPECT_THAT(parse_error(kHeader + section(2, bytes({1, 3, 'e', 'n', 'v'})) + bytes({1, 'f', 0})),
              HasSubstr("unexpected end of the import section reading an import name"));
  EXPECT_THAT(parse_error(kHeader + section(1, bytes({0, 0xAA}))),
              HasSubstr("type section has 1 bytes left over"));
}

TEST(ModuleInfoErrors, SectionOrder) {
  EXPECT_EQ(parse_error(kHeader + type_section() + type_section()),
            "invalid wasm module at byte 19: duplicate type section");
  EXPECT_THAT(parse_error(kHeader + section(3, bytes({0})) + type_section()),
              HasSubstr("type section after the function section (out of order)"));
  // Tag (13) comes between memory (5) and global (6); data count (12) before code (10).
  EXPECT_TRUE(ModuleInfo::parse(kHeader + section(5, bytes({0})) + section(13, bytes({0})) +
                                section(6, bytes({0})) + section(12, bytes({0})) +
                                section(10, bytes({0})))
                  .ok());
  EXPECT_THAT(parse_error(kHeader + section(6, bytes({0})) + section(13, bytes({0}))),
              HasSubstr("tag section after the global section"));
  EXPECT_THAT(parse_error(kHeader + section(14, "")), HasSubstr("unknown section id 14"));
}

TEST(ModuleInfoErrors, IndicesOutOfRange) {
  EXPECT_EQ(parse_error(kHeader + type_section() + section(3, bytes({1, 2}))),
            "invalid wasm module at byte 22: function type index 2 is out of range (2 types)");
  EXPECT_THAT(parse_error(kHeader + section(2, leb(1) + str("env") + str("f") + bytes({0, 0}))),
              HasSubstr("function import type index 0 is out of range (0 types)"));
  EXPECT_THAT(parse_error(kHeader + section(2, leb(1) + str("env") + str("t") + bytes({4, 0, 5}))),
              HasSubstr("tag type index 5 is out of range"));
  EXPECT_THAT(parse_error(kHeader + type_section() + section(3, bytes({1, 0})) +
                          section(7, leb(1) + str("f") + bytes({0, 1})) + code_section(1)),
              HasSubstr("function export 'f': index 1 is out of range (1 function)"));
  EXPECT_THAT(parse_error(kHeader + section(7, leb(1) + str("m") + bytes({2, 0}))),
              HasSubstr("memory export 'm': index 0 is out of range (0 memories)"));
  EXPECT_THAT(parse_error(kHeader + section(6, bytes({1, 0x7F, 0, 0x41, 0, 0x0B})) +
                          section(7, leb(1) + str("g") + bytes({3, 1}))),
              HasSubstr("global export 'g': index 1 is out of range (1 global)"));
  EXPECT_THAT(parse_error(kHeader + type_section() + section(3, bytes({1, 0})) +
                          section(8, bytes({3})) + code_section(1)),
              HasSubstr("start function index 3 is out of range (1 function)"));
  EXPECT_THAT(parse_error(kHeader + type_section() + section(3, bytes({1, 1})) +
                          section(8, bytes({0})) + code_section(1)),
              HasSubstr("start function 0 must take no parameters and return nothing"));
}

TEST(ModuleInfoErrors, BadEncodings) {
  EXPECT_THAT(parse_error(kHeader + section(1, bytes({1, 0x5F, 0, 0}))),
              HasSubstr("type 0: unsupported type form 0x5f"));
  EXPECT_THAT(parse_error(kHeader + section(1, bytes({1, 0x60, 1, 0x40, 0}))),
              HasSubstr("unknown value type 0x40"));
  EXPECT_THAT(parse_error(kHeader + section(2, leb(1) + str("env") + str("x") + bytes({5, 0}))),
              HasSubstr("import env.x: unknown import kind 0x05"));
  EXPECT_THAT(
      parse_error(kHeader + section(2, leb(1) + str("env") + str("t") + bytes({1, 0x7F, 0, 1}))),
      HasSubstr("unknown table element type 0x7f"));
  EXPECT_THAT(
      parse_error(kHeader + section(2, leb(1) + str("env") + str("g") + bytes({3, 0x7F, 2}))),
      HasSubstr("global mutability 0x02 is not 0 or 1"));
  EXPECT_THAT(parse_error(kHeader + section(7, leb(1) + str("x") + bytes({9, 0}))),
              HasSubstr("export 'x': unknown export kind 0x09"));
  EXPECT_THAT(parse_error(kHeader + type_section() + section(3, bytes({1, 0})) +
                          section(7, leb(2) + str("f") + bytes({0, 0}) + str("f") + bytes({0, 0})) +
                          code_section(1)),
              HasSubstr("duplicate export name 'f'"));
  EXPECT_THAT(
      parse_error(kHeader + type_section() + section(3, bytes({2, 0, 0})) + code_section(1)),
      HasSubstr("declares 2 functions but the code section has 1 bodies"));
  EXPECT_THAT(parse_error(kHeader + code_section(1)),
              HasSubstr("declares 0 functions but the code section has 1 bodies"));
}

TEST(ModuleInfoErrors, Names) {
  for (const char* bad :
       {"\xFF", "a\x80", "\xC0\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80", "\xE2\x82"}) {
    EXPECT_THAT(
        parse_error(kHeader + section(2, leb(1) + str(bad) + str("f") + bytes({3, 0x7F, 0}))),
        HasSubstr("an import module name is not valid UTF-8"))
        << bad;
    EXPECT_THAT(parse_error(kHeader + section(7, leb(1) + str(bad) + bytes({0, 0}))),
                HasSubstr("an export name is not valid UTF-8"));
  }
  // Multi-byte UTF-8 is fine.
  const ModuleInfo info =
      parse_ok(kHeader + section(2, leb(1) + str("\xC3\xA9nv") + str("\xF0\x9F\x98\x80") +
                                        bytes({3, 0x7F, 0})));
  EXPECT_NE(info.find_import("\xC3\xA9nv", "\xF0\x9F\x98\x80"), nullptr);
}

TEST(ModuleInfoErrors, MemoryLimits) {
  EXPECT_THAT(parse_error(kHeader + section(5, bytes({1, 0x02, 1}))),
              HasSubstr("a shared memory must declare a maximum"));
  EXPECT_THAT(parse_error(kHeader + section(5, bytes({1, 0x01, 5, 4}))),
              HasSubstr("maximum 4 is below the initial size 5"));
  EXPECT_THAT(parse_error(kHeader + section(5, bytes({1}) + bytes({0}) + leb(65537))),
              HasSubstr("more than 65536 pages"));
  EXPECT_THAT(parse_error(kHeader + section(5, bytes({1, 0x08, 1}))),
              HasSubstr("unknown limits flags 0x08"));
  // A 64-bit memory may declare more pages than a u32 holds; its maximum is reported saturated.
  const ModuleInfo big =
      parse_ok(kHeader + section(5, bytes({1, 0x05, 1}) + leb(uint64_t{1} << 40)));
  EXPECT_EQ(big.memory->max_pages, UINT32_MAX);
  EXPECT_THAT(parse_error(kHeader + section(5, bytes({1, 0x04}) + leb(uint64_t{1} << 33))),
              StartsWith("unsupported wasm module"));
}

// --- cap_memory_pages
// -----------------------------------------------------------------------------

ModuleInfo capped(std::string_view bytes, uint32_t cap) {
  Result<std::string> r = cap_memory_pages(bytes, cap);
  EXPECT_TRUE(r.ok()) << r.error();
  return r.ok() ? parse_ok(*r) : ModuleInfo{};
}

TEST(CapMemoryPages, AddsAMaximum) {
  const std::string m = load("modinfo_abi_0_2_1");
  Result<std::string> r = cap_memory_pages(m, 256);
  ASSERT_TRUE(r.ok()) << r.error();
  const ModuleInfo info = parse_ok(*r);
  EXPECT_EQ(info.memory->initial_pages, 1u);
  EXPECT_EQ(info.memory->max_pages, 256u);
  // Everything else is as it was.
  const ModuleInfo before = parse_ok(m);
  EXPECT_EQ(info.abi_version, before.abi_version);
  ASSERT_EQ(info.exports.size(), before.exports.size());
  for (size_t i = 0; i < info.exports.size(); ++i) {
    EXPECT_EQ(info.exports[i].name, before.exports[i].name);
    EXPECT_EQ(info.exports[i].signature, before.exports[i].signature);
  }
  // Only the memory section changed: flags 0 -> 1, max 256 as two LEB bytes, size 3 -> 5.
  const size_t at = m.find(bytes({5, 3, 1, 0, 1}));
  ASSERT_NE(at, std::string::npos);
  EXPECT_EQ(r->substr(0, at), m.substr(0, at));
  EXPECT_EQ(r->substr(at, 7), bytes({5, 5, 1, 1, 1, 0x80, 0x02}));
  EXPECT_EQ(r->substr(at + 7), m.substr(at + 5));
}

TEST(CapMemoryPages, LowersOrKeepsAMaximum) {
  const std::string m = load("modinfo_abi_0_2_0");  // 2..100 pages
  EXPECT_EQ(capped(m, 10).memory->max_pages, 10u);
  EXPECT_EQ(capped(m, 2).memory->max_pages, 2u);
  Result<std::string> same = cap_memory_pages(m, 100);
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(*same, m);
  EXPECT_EQ(cap_memory_pages(m, 65536).value(), m);
}

TEST(CapMemoryPages, CapBeyondTheMemoryTypeLimit) {
  // A 32-bit memory holds at most 65536 pages: a larger cap adds that maximum instead.
  EXPECT_EQ(capped(load("modinfo_abi_0_2_1"), UINT32_MAX).memory->max_pages, 65536u);
  EXPECT_EQ(capped(load("modinfo_multi_memory"), 70000).memory->max_pages, 65536u);
  const std::string m = load("modinfo_abi_0_2_0");
  EXPECT_EQ(cap_memory_pages(m, UINT32_MAX).value(), m);
  // A 64-bit memory may go up to 2^48 pages, so any u32 cap is used as is.
  EXPECT_EQ(capped(load("modinfo_memory64"), UINT32_MAX).memory->max_pages, UINT32_MAX);
}

TEST(CapMemoryPages, Refusals) {
  Result<std::string> r = cap_memory_pages(load("modinfo_abi_0_2_0"), 1);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), "cannot cap the module's memory at 1 pages: its memory starts with 2 pages");
  r = cap_memory_pages(load("modinfo_shared"), 8);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error(), HasSubstr("is shared"));
  r = cap_memory_pages(load("modinfo_kinds"), 8);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error(), HasSubstr("it imports its memory (the host caps imported memories)"));
  r = cap_memory_pages(load("modinfo_no_memory"), 8);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error(), HasSubstr("it defines no memory"));
  r = cap_memory_pages(kHeader + section(5, bytes({0})), 8);  // an empty memory section
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error(), HasSubstr("it defines no memory"));
  r = cap_memory_pages("junk", 8);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error(), StartsWith("invalid wasm module at byte"));
}

TEST(CapMemoryPages, Memory64AndMultiMemory) {
  const ModuleInfo m64 = capped(load("modinfo_memory64"), 1000);
  EXPECT_TRUE(m64.memory->memory64);
  EXPECT_EQ(m64.memory->initial_pages, 3u);
  EXPECT_EQ(m64.memory->max_pages, 1000u);

  Result<std::string> r = cap_memory_pages(load("modinfo_multi_memory"), 500);
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(parse_ok(*r).memory->max_pages, 500u);
  // The second memory (2..1000) is capped too: its bytes are 0x01 0x02 0xf4 0x03 (500).
  EXPECT_NE(r->find(bytes({0x01, 0x02, 0xF4, 0x03})), std::string::npos);
}

TEST(CapMemoryPages, KeepsPaddedEncodingsAndSurroundingBytes) {
  // The memory count as a padded 5-byte LEB128 is copied as is; custom sections around it too.
  const std::string custom = section(0, str("x") + "payload");
  const std::string m =
      kHeader + custom + section(5, bytes({0x81, 0x80, 0x80, 0x80, 0x00, 0x00, 0x05})) + custom;
  Result<std::string> r = cap_memory_pages(m, 65536);
  ASSERT_TRUE(r.ok()) << r.error();
  const ModuleInfo info = parse_ok(*r);
  EXPECT_EQ(info.memory->initial_pages, 5u);
  EXPECT_EQ(info.memory->max_pages, 65536u);
  EXPECT_EQ(*r,
            kHeader + custom +
                section(5, bytes({0x81, 0x80, 0x80, 0x80, 0x00, 0x01, 0x05, 0x80, 0x80, 0x04})) +
                custom);
}

TEST(CapMemoryPages, SectionSizeGrowsPastOneLebByte) {
  // 63 memories of 2 bytes: a 127-byte section. With a maximum each takes 3 bytes, so the
  // section's size needs a second LEB128 byte.
  std::string payload = leb(63);
  for (int i = 0; i < 63; ++i) payload += bytes({0, 1});
  const std::string tail = section(0, str("after") + std::string(200, 'z'));
  const std::string m = kHeader + section(5, payload) + tail;
  ASSERT_EQ(m[9], 127);
  Result<std::string> r = cap_memory_pages(m, 3);
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->substr(8, 3), bytes({5, 0xBE, 0x01}));  // 190 bytes
  EXPECT_EQ(parse_ok(*r).memory->max_pages, 3u);
  EXPECT_EQ(r->substr(r->size() - tail.size()), tail);
}

}  // namespace
}  // namespace sluice::wasm
