// libFuzzer target: wasm::ModuleInfo::parse and wasm::cap_memory_pages on arbitrary bytes.
//
// Checked, besides "no crash, leak, hang or huge allocation":
//   * a rejected module has an "invalid|unsupported wasm module at byte N: ..." error, N <= size;
//   * for an accepted module, every function import's and export's signature is one of the
//     function types of its type section (read here by a separate, simpler reader), other kinds
//     carry no signature, export names are unique, find_export/find_import find them, and the ABI
//     version is the one the first marker export names;
//   * cap_memory_pages fails exactly when the module has no defined first memory, a shared one, or
//     one larger than the cap (or a later memory is so); otherwise the result parses, declares max
//     <= cap with the same initial size, imports, exports and ABI, and capping it again changes
//     nothing.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "wasm/vm/module_info.h"

namespace {

using sluice::wasm::AbiVersion;
using sluice::wasm::ExternKind;
using sluice::wasm::ModuleInfo;
using sluice::wasm::Signature;
using sluice::wasm::ValType;

// The function types of a module the parser accepted, so the input is known to be well formed.
// Types with non-numeric values are left out: the parser refuses to import or export them.
class TypeReader {
 public:
  explicit TypeReader(std::string_view b) : b_(b) {}

  std::vector<Signature> read() {
    std::vector<Signature> out;
    size_t pos = 8;
    while (pos < b_.size()) {
      const uint8_t id = byte(pos);
      const uint64_t size = leb(pos);
      if (id == 1) {
        size_t p = pos;
        const uint64_t n = leb(p);
        for (uint64_t i = 0; i < n; ++i) {
          ++p;  // 0x60
          Signature sig;
          bool numeric = true;
          for (std::vector<ValType>* list : {&sig.params, &sig.results}) {
            const uint64_t len = leb(p);
            for (uint64_t k = 0; k < len; ++k) {
              const uint8_t t = byte(p);
              if (t >= 0x7C && t <= 0x7F) {
                list->push_back(static_cast<ValType>(0x7F - t));  // i32, i64, f32, f64
              } else {
                numeric = false;
              }
            }
          }
          if (numeric) out.push_back(std::move(sig));
        }
      }
      pos += size;
    }
    return out;
  }

 private:
  uint8_t byte(size_t& p) {
    FUZZ_CHECK(p < b_.size(), "accepted module ends early at %zu", p);
    return static_cast<uint8_t>(b_[p++]);
  }
  uint64_t leb(size_t& p) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      const uint8_t b = byte(p);
      v |= uint64_t{b & 0x7Fu} << shift;
      if (!(b & 0x80)) break;
    }
    return v;
  }
  std::string_view b_;
};

bool known_signature(const std::vector<Signature>& types, const Signature& sig) {
  for (const Signature& t : types) {
    if (t == sig) return true;
  }
  return false;
}

void check_error(const std::string& error, size_t size) {
  std::string_view e = error;
  const bool invalid = e.starts_with("invalid wasm module at byte ");
  FUZZ_CHECK(invalid || e.starts_with("unsupported wasm module at byte "), "error: %s",
             error.c_str());
  e.remove_prefix(invalid ? 28 : 32);
  char* end = nullptr;
  const unsigned long long at = std::strtoull(std::string(e).c_str(), &end, 10);
  FUZZ_CHECK(at <= size, "error offset %llu past the %zu-byte input: %s", at, size, error.c_str());
  FUZZ_CHECK(error.find(": ", 28) != std::string::npos && error.back() != ' ', "error: %s",
             error.c_str());
}

void check_info(std::string_view bytes, const ModuleInfo& info) {
  const std::vector<Signature> types = TypeReader(bytes).read();
  for (const auto& imp : info.imports) {
    if (imp.kind == ExternKind::Function) {
      FUZZ_CHECK(known_signature(types, imp.signature), "import %s.%s: %s not in the type section",
                 imp.module.c_str(), imp.name.c_str(), imp.signature.to_string().c_str());
    } else {
      FUZZ_CHECK(imp.signature == Signature{}, "non-function import with a signature");
    }
    const auto* found = info.find_import(imp.module, imp.name);
    FUZZ_CHECK(found != nullptr && found->module == imp.module && found->name == imp.name);
  }
  AbiVersion expected = AbiVersion::Unknown;
  for (const auto& exp : info.exports) {
    if (exp.kind == ExternKind::Function) {
      FUZZ_CHECK(known_signature(types, exp.signature), "export %s: %s not in the type section",
                 exp.name.c_str(), exp.signature.to_string().c_str());
      if (expected == AbiVersion::Unknown) {
        if (exp.name == "proxy_abi_version_0_2_1") expected = AbiVersion::V0_2_1;
        if (exp.name == "proxy_abi_version_0_2_0") expected = AbiVersion::V0_2_0;
        if (exp.name == "proxy_abi_version_0_1_0") expected = AbiVersion::V0_1_0;
      }
    } else {
      FUZZ_CHECK(exp.signature == Signature{}, "non-function export with a signature");
    }
    FUZZ_CHECK(info.find_export(exp.name) == &exp, "export name '%s' not unique", exp.name.c_str());
  }
  FUZZ_CHECK(info.abi_version == expected, "ABI %s, first marker says %s",
             std::string(abi_version_name(info.abi_version)).c_str(),
             std::string(abi_version_name(expected)).c_str());
  if (info.memory) {
    const auto& m = *info.memory;
    if (m.max_pages) FUZZ_CHECK(*m.max_pages >= m.initial_pages, "max below initial");
    if (m.shared) FUZZ_CHECK(m.max_pages.has_value(), "shared memory without a maximum");
    if (!m.memory64) FUZZ_CHECK(m.initial_pages <= 65536 && m.max_pages.value_or(0) <= 65536);
    bool memory_import = false;
    for (const auto& imp : info.imports) memory_import |= imp.kind == ExternKind::Memory;
    FUZZ_CHECK(m.imported == memory_import, "the first memory's imported flag is wrong");
  }
}

// A later memory of a multi-memory module may be what cannot be capped: "its memory 3 is shared".
bool names_later_memory(const std::string& error) {
  const size_t at = error.find("its memory ");
  return at != std::string::npos && at + 11 < error.size() && error[at + 11] >= '1' &&
         error[at + 11] <= '9';
}

void check_cap(std::string_view bytes, const ModuleInfo& info, uint32_t cap) {
  sluice::Result<std::string> r = sluice::wasm::cap_memory_pages(bytes, cap);
  const auto& m = info.memory;
  const bool cappable = m && !m->imported && !m->shared && m->initial_pages <= cap;
  if (!r.ok()) {
    FUZZ_CHECK(!cappable || names_later_memory(r.error()), "cap %u refused: %s", cap,
               r.error().c_str());
    FUZZ_CHECK(r.error().starts_with("cannot cap the module's memory at "), "%s",
               r.error().c_str());
    return;
  }
  FUZZ_CHECK(cappable, "cap %u accepted a module it should refuse", cap);
  sluice::Result<ModuleInfo> again = ModuleInfo::parse(*r);
  FUZZ_CHECK(again.ok(), "capped module does not parse: %s", again.error().c_str());
  const auto& m2 = again->memory;
  FUZZ_CHECK(m2 && m2->max_pages && *m2->max_pages <= cap, "capped max %u > cap %u",
             m2 && m2->max_pages ? *m2->max_pages : 0u, cap);
  FUZZ_CHECK(m2->initial_pages == m->initial_pages && m2->memory64 == m->memory64 && !m2->shared &&
             !m2->imported);
  FUZZ_CHECK(again->abi_version == info.abi_version &&
             again->has_start_section == info.has_start_section);
  FUZZ_CHECK(again->exports.size() == info.exports.size() &&
             again->imports.size() == info.imports.size());
  for (size_t i = 0; i < info.exports.size(); ++i) {
    FUZZ_CHECK(again->exports[i].name == info.exports[i].name &&
               again->exports[i].kind == info.exports[i].kind &&
               again->exports[i].signature == info.exports[i].signature);
  }
  for (size_t i = 0; i < info.imports.size(); ++i) {
    FUZZ_CHECK(again->imports[i].name == info.imports[i].name &&
               again->imports[i].signature == info.imports[i].signature);
  }
  sluice::Result<std::string> twice = sluice::wasm::cap_memory_pages(*r, cap);
  FUZZ_CHECK(twice.ok() && *twice == *r, "capping twice changes the module");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  sluice::Result<ModuleInfo> r = ModuleInfo::parse(bytes);
  if (!r.ok()) {
    check_error(r.error(), size);
    sluice::Result<std::string> c = sluice::wasm::cap_memory_pages(bytes, 16);
    FUZZ_CHECK(!c.ok() && c.error() == r.error(), "cap on an invalid module: %s",
               c.ok() ? "accepted" : c.error().c_str());
    return 0;
  }
  check_info(bytes, *r);
  const uint32_t initial = r->memory ? r->memory->initial_pages : 0;
  for (uint32_t cap : {0u, 1u, initial, initial + 1, 65536u, UINT32_MAX}) check_cap(bytes, *r, cap);
  return 0;
}
