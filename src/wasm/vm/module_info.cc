#include "wasm/vm/module_info.h"

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <iterator>
#include <set>
#include <string>
#include <utility>

namespace sluice::wasm {

namespace {

constexpr size_t kHeaderSize = 8;  // magic + version
constexpr uint64_t kMaxPages32 = 65536;
constexpr uint64_t kMaxPages64 = uint64_t{1} << 48;

// Section ids in the order the binary format requires them (tag and data count sit out of numeric
// order). Custom sections (id 0) may appear anywhere.
enum SectionId : uint8_t {
  kCustom = 0,
  kType = 1,
  kImport = 2,
  kFunction = 3,
  kTable = 4,
  kMemory = 5,
  kGlobal = 6,
  kExport = 7,
  kStart = 8,
  kElement = 9,
  kCode = 10,
  kData = 11,
  kDataCount = 12,
  kTag = 13,
};

// Position of a non-custom section in the required order, or 0 for an unknown id.
int section_rank(uint8_t id) {
  static constexpr int kRank[] = {0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 12, 13, 11, 6};
  return id < std::size(kRank) ? kRank[id] : 0;
}

const char* section_name(uint8_t id) {
  static constexpr const char* kNames[] = {"custom", "type",   "import",     "function", "table",
                                           "memory", "global", "export",     "start",    "element",
                                           "code",   "data",   "data count", "tag"};
  return id < std::size(kNames) ? kNames[id] : "unknown";
}

const char* kind_name(uint8_t kind) {
  static constexpr const char* kNames[] = {"function", "table", "memory", "global", "tag"};
  return kind < std::size(kNames) ? kNames[kind] : "unknown";
}

// "1 function", "2 memories".
std::string quantity(uint64_t n, std::string_view kind) {
  std::string out = std::to_string(n) + " " + std::string(kind);
  if (n == 1) return out;
  if (kind == "memory") return out.substr(0, out.size() - 1) + "ies";
  return out + "s";
}

std::string hex_byte(uint8_t b) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02x", b);
  return buf;
}

// Strict UTF-8 (no overlong forms, surrogates or code points past U+10FFFF), as names require.
bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t extra;
    uint32_t cp = 0;
    if (c >= 0xC2 && c <= 0xDF) {
      extra = 1;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      extra = 2;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      extra = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (s.size() - i <= extra) return false;
    for (size_t k = 1; k <= extra; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[extra] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += extra + 1;
  }
  return true;
}

// A function type. Types using v128 or reference values are legal but have no Signature; the
// module is only refused if such a type is imported or exported.
struct FuncType {
  Signature sig;
  const char* unsupported = nullptr;  // the first non-numeric value type, e.g. "v128"
};

struct Limits {
  uint8_t flags = 0;
  uint64_t min = 0;
  std::optional<uint64_t> max;
};

constexpr uint8_t kLimitsHasMax = 0x01;
constexpr uint8_t kLimitsShared = 0x02;
constexpr uint8_t kLimits64 = 0x04;

// memory_limits() has checked that the initial size fits in 32 bits. A 64-bit maximum past
// 2^32-1 pages is beyond any host's limit, so it is reported as UINT32_MAX.
MemoryLimits memory_info(const Limits& l, bool imported) {
  MemoryLimits m;
  m.initial_pages = static_cast<uint32_t>(l.min);
  if (l.max) m.max_pages = static_cast<uint32_t>(std::min<uint64_t>(*l.max, UINT32_MAX));
  m.shared = (l.flags & kLimitsShared) != 0;
  m.memory64 = (l.flags & kLimits64) != 0;
  m.imported = imported;
  return m;
}

// One defined memory's bytes in the memory section, for cap_memory_pages.
struct MemoryEntry {
  size_t start = 0;
  size_t end = 0;
  Limits limits;
};

struct Section {
  uint8_t id = 0;
  size_t start = 0;    // the id byte
  size_t payload = 0;  // first byte after the size
  size_t end = 0;
};

class Parser {
 public:
  explicit Parser(std::string_view bytes) : b_(bytes), end_(bytes.size()) {}

  bool run();
  Error take_error() { return std::move(*error_); }

  ModuleInfo info;
  std::optional<Section> memory_section;
  std::vector<MemoryEntry> defined_memories;
  bool first_memory_imported = false;

 private:
  // --- Primitive readers: each fails (returning false) with the offset of what it tried to read.
  bool fail(size_t at, std::string what, const char* prefix = "invalid") {
    if (!error_) {
      error_ = Error{std::string(prefix) + " wasm module at byte " + std::to_string(at) + ": " +
                     std::move(what)};
    }
    return false;
  }
  bool truncated(const char* what) {
    return fail(pos_, std::string("unexpected end of ") + context() + " reading " + what);
  }
  std::string context() const {
    if (!section_) return "the module";
    return std::string("the ") + section_name(section_->id) + " section";
  }
  size_t remaining() const { return end_ - pos_; }

  bool u8(uint8_t* out, const char* what) {
    if (pos_ >= end_) return truncated(what);
    *out = static_cast<uint8_t>(b_[pos_++]);
    return true;
  }

  // Unsigned LEB128 of at most `bits` bits: ceil(bits/7) bytes, the last one's unused bits zero.
  bool leb(uint64_t* out, unsigned bits, const char* what) {
    const size_t start = pos_;
    const unsigned max_bytes = (bits + 6) / 7;
    uint64_t value = 0;
    for (unsigned i = 0;; ++i) {
      if (pos_ >= end_) return truncated(what);
      const auto byte = static_cast<uint8_t>(b_[pos_++]);
      const unsigned shift = 7 * i;
      if (i + 1 == max_bytes) {
        if (byte & 0x80) {
          return fail(start, std::string(what) + ": LEB128 integer longer than " +
                                 std::to_string(max_bytes) + " bytes");
        }
        const unsigned used = bits - shift;  // bits this byte may still carry
        if ((byte >> used) != 0) {
          return fail(start, std::string(what) + ": integer too large for " + std::to_string(bits) +
                                 " bits");
        }
      }
      value |= static_cast<uint64_t>(byte & 0x7F) << shift;
      if (!(byte & 0x80)) break;
    }
    *out = value;
    return true;
  }
  bool u32(uint32_t* out, const char* what) {
    uint64_t v = 0;
    if (!leb(&v, 32, what)) return false;
    *out = static_cast<uint32_t>(v);
    return true;
  }

  // A vector count. Each element takes at least `min_size` bytes, so a count the section cannot
  // hold is refused before anything is reserved for it.
  bool count(uint32_t* out, size_t min_size, const char* what) {
    const size_t at = pos_;
    if (!u32(out, what)) return false;
    if (static_cast<uint64_t>(*out) * min_size > remaining()) {
      return fail(at, std::string(what) + " " + std::to_string(*out) + " is more than the " +
                          std::to_string(remaining()) + " bytes left in " + context() +
                          " can hold");
    }
    return true;
  }

  bool name(std::string* out, const char* what) {
    uint32_t len = 0;
    const size_t at = pos_;
    if (!u32(&len, what)) return false;
    if (len > remaining()) {
      return fail(at, std::string(what) + " of " + std::to_string(len) +
                          " bytes runs past the end of " + context() + " (" +
                          std::to_string(remaining()) + " bytes left)");
    }
    const std::string_view s = b_.substr(pos_, len);
    if (!valid_utf8(s)) return fail(pos_, std::string(what) + " is not valid UTF-8");
    out->assign(s);
    pos_ += len;
    return true;
  }

  // --- Module structure.
  bool val_type(ValType* out, const char** unsupported, const char* what);
  bool limits(Limits* out, bool memory, const char* what);
  bool memory_limits(Limits* out, const char* what);
  bool table_type();
  bool type_index(uint32_t* out, const char* what);
  bool func_index(uint32_t* out, const char* what);
  bool signature_of(uint32_t type, size_t at, const std::string& what, Signature* out);

  bool type_section();
  bool import_section();
  bool function_section();
  bool memory_section_body();
  bool export_section();
  bool start_section();
  bool count_only(uint32_t* out, size_t min_size);

  std::string_view b_;
  size_t pos_ = 0;
  size_t end_;  // of the current section (or of the module between sections)
  std::optional<Section> section_;
  std::optional<Error> error_;

  std::vector<FuncType> types_;
  std::vector<uint32_t> func_types_;  // type index of every function, imported ones first
  std::vector<size_t> import_offsets_;
  uint32_t imported_funcs_ = 0, tables_ = 0, memories_ = 0, globals_ = 0, tags_ = 0;
  std::optional<uint32_t> declared_funcs_;  // function section count
  std::optional<uint32_t> code_bodies_;     // code section count
  std::optional<size_t> code_at_;
};

bool Parser::val_type(ValType* out, const char** unsupported, const char* what) {
  const size_t at = pos_;
  uint8_t byte = 0;
  if (!u8(&byte, what)) return false;
  switch (byte) {
    case 0x7F:
      *out = ValType::I32;
      return true;
    case 0x7E:
      *out = ValType::I64;
      return true;
    case 0x7D:
      *out = ValType::F32;
      return true;
    case 0x7C:
      *out = ValType::F64;
      return true;
    case 0x7B:
      *unsupported = "v128";
      break;
    case 0x70:
      *unsupported = "funcref";
      break;
    case 0x6F:
      *unsupported = "externref";
      break;
    default:
      return fail(at, std::string(what) + ": unknown value type " + hex_byte(byte));
  }
  *out = ValType::I32;  // placeholder; the type is marked unsupported
  return true;
}

// Limits: a flags byte (bit 0: has a maximum, bit 1: shared, bit 2: 64-bit), then LEB128 sizes.
bool Parser::limits(Limits* out, bool memory, const char* what) {
  const size_t at = pos_;
  if (!u8(&out->flags, what)) return false;
  const uint8_t allowed =
      memory ? (kLimitsHasMax | kLimitsShared | kLimits64) : (kLimitsHasMax | kLimits64);
  if (out->flags & ~allowed) {
    return fail(at, std::string(what) + ": unknown limits flags " + hex_byte(out->flags));
  }
  const unsigned bits = (out->flags & kLimits64) ? 64 : 32;
  uint64_t v = 0;
  if (!leb(&v, bits, "an initial size")) return false;
  out->min = v;
  if (out->flags & kLimitsHasMax) {
    const size_t max_at = pos_;
    if (!leb(&v, bits, "a maximum size")) return false;
    if (v < out->min) {
      return fail(max_at, std::string(what) + ": maximum " + std::to_string(v) +
                              " is below the initial size " + std::to_string(out->min));
    }
    out->max = v;
  } else if (out->flags & kLimitsShared) {
    return fail(at, std::string(what) + ": a shared memory must declare a maximum");
  }
  return true;
}

bool Parser::memory_limits(Limits* out, const char* what) {
  const size_t at = pos_;
  if (!limits(out, true, what)) return false;
  const uint64_t cap = (out->flags & kLimits64) ? kMaxPages64 : kMaxPages32;
  if (out->min > cap || (out->max && *out->max > cap)) {
    return fail(at, std::string(what) + ": more than " + std::to_string(cap) + " pages");
  }
  if (out->min > UINT32_MAX) {
    return fail(at,
                std::string(what) + ": initial size of " + std::to_string(out->min) +
                    " pages is more than Sluice supports",
                "unsupported");
  }
  return true;
}

bool Parser::table_type() {
  const size_t at = pos_;
  uint8_t ref = 0;
  if (!u8(&ref, "a table element type")) return false;
  if (ref != 0x70 && ref != 0x6F) {
    return fail(at, "unknown table element type " + hex_byte(ref) +
                        " (expected funcref 0x70 or externref 0x6f)");
  }
  Limits l;
  return limits(&l, false, "table limits");
}

bool Parser::type_index(uint32_t* out, const char* what) {
  const size_t at = pos_;
  if (!u32(out, what)) return false;
  if (*out >= types_.size()) {
    return fail(at, std::string(what) + " " + std::to_string(*out) + " is out of range (" +
                        quantity(types_.size(), "type") + ")");
  }
  return true;
}

bool Parser::func_index(uint32_t* out, const char* what) {
  const size_t at = pos_;
  if (!u32(out, what)) return false;
  if (*out >= func_types_.size()) {
    return fail(at, std::string(what) + " " + std::to_string(*out) + " is out of range (" +
                        quantity(func_types_.size(), "function") + ")");
  }
  return true;
}

bool Parser::signature_of(uint32_t type, size_t at, const std::string& what, Signature* out) {
  const FuncType& t = types_[type];
  if (t.unsupported) {
    return fail(at, what + " uses type " + t.unsupported + ", which the host cannot pass",
                "unsupported");
  }
  *out = t.sig;
  return true;
}

bool Parser::type_section() {
  uint32_t n = 0;
  if (!count(&n, 3, "type count")) return false;  // 0x60 + two empty vectors
  types_.reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    const size_t at = pos_;
    uint8_t form = 0;
    if (!u8(&form, "a type form")) return false;
    if (form != 0x60) {
      return fail(at, "type " + std::to_string(i) + ": unsupported type form " + hex_byte(form) +
                          " (only function types, 0x60, are supported)");
    }
    FuncType t;
    for (auto* list : {&t.sig.params, &t.sig.results}) {
      uint32_t len = 0;
      if (!count(&len, 1, list == &t.sig.params ? "parameter count" : "result count")) {
        return false;
      }
      list->reserve(len);
      for (uint32_t k = 0; k < len; ++k) {
        ValType v = ValType::I32;
        if (!val_type(&v, &t.unsupported, "a value type")) return false;
        list->push_back(v);
      }
    }
    types_.push_back(std::move(t));
  }
  return true;
}

bool Parser::import_section() {
  uint32_t n = 0;
  if (!count(&n, 4, "import count")) return false;  // two names, a kind, an index
  info.imports.reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    const size_t at = pos_;
    ImportInfo imp;
    if (!name(&imp.module, "an import module name") || !name(&imp.name, "an import name")) {
      return false;
    }
    const size_t kind_at = pos_;
    uint8_t kind = 0;
    if (!u8(&kind, "an import kind")) return false;
    const std::string what =
        std::string(kind_name(kind)) + " import " + imp.module + "." + imp.name;
    switch (kind) {
      case 0: {
        uint32_t type = 0;
        if (!type_index(&type, "function import type index")) return false;
        if (!signature_of(type, at, what, &imp.signature)) return false;
        func_types_.push_back(type);
        ++imported_funcs_;
        break;
      }
      case 1:
        if (!table_type()) return false;
        ++tables_;
        break;
      case 2: {
        Limits l;
        if (!memory_limits(&l, "memory import limits")) return false;
        if (memories_++ == 0) {
          first_memory_imported = true;
          info.memory = memory_info(l, true);
        }
        break;
      }
      case 3: {
        ValType v = ValType::I32;
        const char* unsupported = nullptr;
        if (!val_type(&v, &unsupported, "a global type")) return false;
        const size_t mut_at = pos_;
        uint8_t mut = 0;
        if (!u8(&mut, "a global mutability")) return false;
        if (mut > 1) return fail(mut_at, "global mutability " + hex_byte(mut) + " is not 0 or 1");
        ++globals_;
        break;
      }
      case 4: {
        const size_t attr_at = pos_;
        uint8_t attr = 0;
        if (!u8(&attr, "a tag attribute")) return false;
        if (attr != 0) return fail(attr_at, "tag attribute " + hex_byte(attr) + " is not 0");
        uint32_t type = 0;
        if (!type_index(&type, "tag type index")) return false;
        ++tags_;
        break;
      }
      default:
        return fail(kind_at, "import " + imp.module + "." + imp.name + ": unknown import kind " +
                                 hex_byte(kind));
    }
    imp.kind = static_cast<ExternKind>(kind);
    info.imports.push_back(std::move(imp));
  }
  return true;
}

bool Parser::function_section() {
  uint32_t n = 0;
  if (!count(&n, 1, "function count")) return false;
  func_types_.reserve(func_types_.size() + n);
  for (uint32_t i = 0; i < n; ++i) {
    uint32_t type = 0;
    if (!type_index(&type, "function type index")) return false;
    func_types_.push_back(type);
  }
  declared_funcs_ = n;
  return true;
}

bool Parser::memory_section_body() {
  uint32_t n = 0;
  if (!count(&n, 2, "memory count")) return false;
  defined_memories.reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    MemoryEntry e;
    e.start = pos_;
    if (!memory_limits(&e.limits, "memory limits")) return false;
    e.end = pos_;
    if (memories_++ == 0) {
      info.memory = memory_info(e.limits, false);
    }
    defined_memories.push_back(e);
  }
  return true;
}

bool Parser::export_section() {
  uint32_t n = 0;
  if (!count(&n, 3, "export count")) return false;  // a name, a kind, an index
  info.exports.reserve(n);  // never reallocates below, so `names` may point into it
  std::set<std::string_view> names;
  for (uint32_t i = 0; i < n; ++i) {
    const size_t at = pos_;
    ExportInfo exp;
    if (!name(&exp.name, "an export name")) return false;
    const size_t kind_at = pos_;
    uint8_t kind = 0;
    if (!u8(&kind, "an export kind")) return false;
    const size_t index_at = pos_;
    uint32_t index = 0;
    if (!u32(&index, "an export index")) return false;
    uint32_t limit = 0;
    switch (kind) {
      case 0:
        limit = static_cast<uint32_t>(func_types_.size());
        break;
      case 1:
        limit = tables_;
        break;
      case 2:
        limit = memories_;
        break;
      case 3:
        limit = globals_;
        break;
      case 4:
        limit = tags_;
        break;
      default:
        return fail(kind_at, "export '" + exp.name + "': unknown export kind " + hex_byte(kind));
    }
    const std::string what = std::string(kind_name(kind)) + " export '" + exp.name + "'";
    if (index >= limit) {
      return fail(index_at, what + ": index " + std::to_string(index) + " is out of range (" +
                                quantity(limit, kind_name(kind)) + ")");
    }
    if (kind == 0 && !signature_of(func_types_[index], at, what, &exp.signature)) return false;
    exp.kind = static_cast<ExternKind>(kind);
    info.exports.push_back(std::move(exp));
    if (!names.insert(info.exports.back().name).second) {
      return fail(at, "duplicate export name '" + info.exports.back().name + "'");
    }
  }
  return true;
}

bool Parser::start_section() {
  const size_t at = pos_;
  uint32_t index = 0;
  if (!func_index(&index, "start function index")) return false;
  const FuncType& t = types_[func_types_[index]];
  if (t.unsupported || !t.sig.params.empty() || !t.sig.results.empty()) {
    return fail(at, "start function " + std::to_string(index) +
                        " must take no parameters and return nothing");
  }
  info.has_start_section = true;
  return true;
}

// Sections the host does not need: only their entry count, to check indices into them. The rest
// of the section is skipped by its size.
bool Parser::count_only(uint32_t* out, size_t min_size) {
  return count(out, min_size, (std::string(section_name(section_->id)) + " count").c_str());
}

bool Parser::run() {
  if (b_.size() < kHeaderSize) {
    return fail(b_.size(), "the module is " + std::to_string(b_.size()) +
                               " bytes long, shorter than the 8-byte header");
  }
  if (b_.substr(0, 4) != std::string_view("\0asm", 4)) {
    return fail(0, "bad magic number (not a wasm binary)");
  }
  const auto* v = reinterpret_cast<const unsigned char*>(b_.data() + 4);
  const uint32_t version = v[0] | (v[1] << 8) | (v[2] << 16) | (static_cast<uint32_t>(v[3]) << 24);
  if (version != 1) {
    return fail(4, "unsupported binary version " + std::to_string(version) +
                       (version == 0x1000d ? " (a component, not a core module)" : "") +
                       "; only version 1 is supported");
  }
  pos_ = kHeaderSize;
  int last_rank = 0;
  uint8_t last_id = 0;
  while (pos_ < b_.size()) {
    end_ = b_.size();
    Section s;
    s.start = pos_;
    if (!u8(&s.id, "a section id")) return false;
    const int rank = section_rank(s.id);
    if (s.id != kCustom) {
      if (rank == 0) return fail(s.start, "unknown section id " + std::to_string(s.id));
      if (rank == last_rank) {
        return fail(s.start, std::string("duplicate ") + section_name(s.id) + " section");
      }
      if (rank < last_rank) {
        return fail(s.start, std::string(section_name(s.id)) + " section after the " +
                                 section_name(last_id) + " section (out of order)");
      }
      last_rank = rank;
      last_id = s.id;
    }
    const size_t size_at = pos_;
    uint32_t size = 0;
    if (!u32(&size, "a section size")) return false;
    if (size > remaining()) {
      return fail(size_at, std::string(section_name(s.id)) + " section of " + std::to_string(size) +
                               " bytes runs past the end of the module (" +
                               std::to_string(remaining()) + " bytes left)");
    }
    s.payload = pos_;
    s.end = pos_ + size;
    end_ = s.end;
    section_ = s;

    bool ok = true;
    uint32_t n = 0;
    switch (s.id) {
      case kCustom: {
        std::string custom_name;
        ok = name(&custom_name, "a custom section name");
        pos_ = s.end;  // the contents are the producer's business
        break;
      }
      case kType:
        ok = type_section();
        break;
      case kImport:
        ok = import_section();
        break;
      case kFunction:
        ok = function_section();
        break;
      case kTable:
        ok = count_only(&n, 3);
        if (ok) tables_ += n;
        pos_ = s.end;
        break;
      case kMemory:
        memory_section = s;
        ok = memory_section_body();
        break;
      case kTag:
        ok = count_only(&n, 2);
        if (ok) tags_ += n;
        pos_ = s.end;
        break;
      case kGlobal:
        ok = count_only(&n, 3);
        if (ok) globals_ += n;
        pos_ = s.end;
        break;
      case kExport:
        ok = export_section();
        break;
      case kStart:
        ok = start_section();
        break;
      case kCode:
        code_at_ = s.start;
        ok = count_only(&n, 3);
        code_bodies_ = n;
        pos_ = s.end;
        break;
      default:
        pos_ = s.end;
        break;  // element, data, data count
    }
    if (!ok) return false;
    if (pos_ != s.end) {
      return fail(pos_, std::string(section_name(s.id)) + " section has " +
                            std::to_string(s.end - pos_) + " bytes left over after its contents");
    }
    section_.reset();
  }
  const uint32_t funcs = declared_funcs_.value_or(0), bodies = code_bodies_.value_or(0);
  if (funcs != bodies) {
    return fail(code_at_.value_or(b_.size()),
                "the function section declares " + std::to_string(funcs) +
                    " functions but the code section has " + std::to_string(bodies) + " bodies");
  }

  // The first function export with a known marker name decides, in export order.
  for (const ExportInfo& e : info.exports) {
    if (e.kind != ExternKind::Function) continue;
    if (e.name == "proxy_abi_version_0_2_1") {
      info.abi_version = AbiVersion::V0_2_1;
    } else if (e.name == "proxy_abi_version_0_2_0") {
      info.abi_version = AbiVersion::V0_2_0;
    } else if (e.name == "proxy_abi_version_0_1_0") {
      info.abi_version = AbiVersion::V0_1_0;
    } else {
      continue;
    }
    break;
  }
  return true;
}

void put_leb(std::string& out, uint64_t v) {
  do {
    uint8_t byte = v & 0x7F;
    v >>= 7;
    if (v) byte |= 0x80;
    out.push_back(static_cast<char>(byte));
  } while (v);
}

}  // namespace

std::string_view abi_version_name(AbiVersion v) {
  switch (v) {
    case AbiVersion::V0_1_0:
      return "0.1.0";
    case AbiVersion::V0_2_0:
      return "0.2.0";
    case AbiVersion::V0_2_1:
      return "0.2.1";
    case AbiVersion::Unknown:
      break;
  }
  return "unknown";
}

const ExportInfo* ModuleInfo::find_export(std::string_view name) const {
  for (const ExportInfo& e : exports) {
    if (e.name == name) return &e;
  }
  return nullptr;
}

const ImportInfo* ModuleInfo::find_import(std::string_view module, std::string_view name) const {
  for (const ImportInfo& i : imports) {
    if (i.module == module && i.name == name) return &i;
  }
  return nullptr;
}

Result<ModuleInfo> ModuleInfo::parse(std::string_view bytes) {
  Parser p(bytes);
  if (!p.run()) return p.take_error();
  return std::move(p.info);
}

Result<std::string> cap_memory_pages(std::string_view bytes, uint32_t max_pages) {
  Parser p(bytes);
  if (!p.run()) return p.take_error();
  const std::string prefix =
      "cannot cap the module's memory at " + std::to_string(max_pages) + " pages: ";
  if (p.first_memory_imported) {
    return Error{prefix + "it imports its memory (the host caps imported memories)"};
  }
  if (!p.memory_section || p.defined_memories.empty()) {
    return Error{prefix + "it defines no memory"};
  }
  // Every defined memory is capped, so a multi-memory module cannot grow past the limit through
  // its second memory either.
  // A cap past what the memory type allows would make the module invalid: clamp it to that.
  const auto cap_for = [&](const Limits& l) {
    return std::min<uint64_t>(max_pages, (l.flags & kLimits64) ? kMaxPages64 : kMaxPages32);
  };
  bool changed = false;
  for (size_t i = 0; i < p.defined_memories.size(); ++i) {
    const Limits& l = p.defined_memories[i].limits;
    const std::string which = i == 0 ? "its memory" : "its memory " + std::to_string(i);
    if (l.flags & kLimitsShared) return Error{prefix + which + " is shared"};
    if (l.min > max_pages) {
      return Error{prefix + which + " starts with " + std::to_string(l.min) + " pages"};
    }
    if (!l.max || *l.max > cap_for(l)) changed = true;
  }
  if (!changed) return std::string(bytes);

  const Section& s = *p.memory_section;
  std::string payload(bytes.substr(s.payload, p.defined_memories[0].start - s.payload));  // count
  for (const MemoryEntry& e : p.defined_memories) {
    const Limits& l = e.limits;
    if (l.max && *l.max <= cap_for(l)) {
      payload.append(bytes.substr(e.start, e.end - e.start));
      continue;
    }
    payload.push_back(static_cast<char>(l.flags | kLimitsHasMax));
    put_leb(payload, l.min);
    put_leb(payload, cap_for(l));
  }
  payload.append(
      bytes.substr(p.defined_memories.back().end, s.end - p.defined_memories.back().end));

  std::string out(bytes.substr(0, s.start));
  out.push_back(static_cast<char>(kMemory));
  put_leb(out, payload.size());
  out += payload;
  out.append(bytes.substr(s.end));
  return out;
}

}  // namespace sluice::wasm
