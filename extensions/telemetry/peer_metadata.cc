#include "peer_metadata.h"

#include <cstring>

namespace telemetry {
inline namespace SLUICE_SDK_NS {
namespace {

// Protobuf wire types.
constexpr uint32_t kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5;

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
void put_tag(std::string& out, uint32_t field, uint32_t wire_type) {
  put_varint(out, (uint64_t{field} << 3) | wire_type);
}
void put_bytes(std::string& out, uint32_t field, std::string_view bytes) {
  put_tag(out, field, kLengthDelimited);
  put_varint(out, bytes.size());
  out.append(bytes);
}

std::string encode_value(const StructValue& v);

std::string encode_fields(const std::vector<StructField>& fields) {
  std::string out;
  for (const StructField& f : fields) {
    std::string entry;  // map entry: key = 1, value = 2
    put_bytes(entry, 1, f.name);
    put_bytes(entry, 2, encode_value(f.value));
    put_bytes(out, 1, entry);  // Struct.fields = 1
  }
  return out;
}

std::string encode_value(const StructValue& v) {
  std::string out;
  switch (v.kind) {
    case StructValue::Kind::Null:
      put_tag(out, 1, kVarint);
      put_varint(out, 0);
      break;
    case StructValue::Kind::Number: {
      put_tag(out, 2, kFixed64);
      uint64_t bits;
      std::memcpy(&bits, &v.number, sizeof bits);
      for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((bits >> (8 * i)) & 0xFF));
      break;
    }
    case StructValue::Kind::String:
      put_bytes(out, 3, v.text);
      break;
    case StructValue::Kind::Bool:
      put_tag(out, 4, kVarint);
      put_varint(out, v.flag ? 1 : 0);
      break;
    case StructValue::Kind::Struct:
      put_bytes(out, 5, encode_fields(v.fields));
      break;
    case StructValue::Kind::List: {
      std::string list;
      for (const StructValue& item : v.list) put_bytes(list, 1, encode_value(item));
      put_bytes(out, 6, list);
      break;
    }
  }
  return out;
}

// Reads one message's fields in turn.
class WireReader {
 public:
  explicit WireReader(std::string_view bytes) : s_(bytes) {}
  bool done() const { return pos_ == s_.size(); }

  // The next field; false at a malformed one. `payload` holds length-delimited bytes, `number`
  // a varint or fixed value.
  bool next(uint32_t* field, uint32_t* wire_type, std::string_view* payload, uint64_t* number) {
    uint64_t tag;
    if (!varint(&tag) || (tag >> 3) == 0 || (tag >> 3) > 0x1FFFFFFF) return false;
    *field = static_cast<uint32_t>(tag >> 3);
    *wire_type = static_cast<uint32_t>(tag & 7);
    switch (*wire_type) {
      case kVarint:
        return varint(number);
      case kFixed64:
        return fixed(8, number);
      case kFixed32:
        return fixed(4, number);
      case kLengthDelimited: {
        uint64_t len;
        if (!varint(&len) || len > s_.size() - pos_) return false;
        *payload = s_.substr(pos_, len);
        pos_ += len;
        return true;
      }
      default:
        return false;  // groups (3, 4) are not used by Struct, and 6, 7 do not exist
    }
  }

 private:
  bool varint(uint64_t* out) {
    *out = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= s_.size()) return false;
      const uint8_t b = static_cast<uint8_t>(s_[pos_++]);
      *out |= uint64_t{b & 0x7Fu} << shift;
      if ((b & 0x80) == 0) return true;
    }
    return false;
  }
  bool fixed(size_t n, uint64_t* out) {
    if (s_.size() - pos_ < n) return false;
    *out = 0;
    for (size_t i = 0; i < n; ++i) *out |= uint64_t{static_cast<uint8_t>(s_[pos_ + i])} << (8 * i);
    pos_ += n;
    return true;
  }

  std::string_view s_;
  size_t pos_ = 0;
};

bool decode_fields(std::string_view bytes, int depth, std::vector<StructField>* out);

bool decode_value(std::string_view bytes, int depth, StructValue* out) {
  if (depth <= 0) return false;
  WireReader r(bytes);
  while (!r.done()) {
    uint32_t field, type;
    std::string_view payload;
    uint64_t number = 0;
    if (!r.next(&field, &type, &payload, &number)) return false;
    if (field == 1 && type == kVarint) {
      *out = StructValue{};
    } else if (field == 2 && type == kFixed64) {
      out->kind = StructValue::Kind::Number;
      std::memcpy(&out->number, &number, sizeof number);
    } else if (field == 3 && type == kLengthDelimited) {
      out->kind = StructValue::Kind::String;
      out->text = std::string(payload);
    } else if (field == 4 && type == kVarint) {
      out->kind = StructValue::Kind::Bool;
      out->flag = number != 0;
    } else if (field == 5 && type == kLengthDelimited) {
      out->kind = StructValue::Kind::Struct;
      out->fields.clear();
      if (!decode_fields(payload, depth - 1, &out->fields)) return false;
    } else if (field == 6 && type == kLengthDelimited) {
      out->kind = StructValue::Kind::List;
      out->list.clear();
      WireReader items(payload);
      while (!items.done()) {
        uint32_t f, t;
        std::string_view item;
        uint64_t n;
        if (!items.next(&f, &t, &item, &n)) return false;
        if (f != 1 || t != kLengthDelimited) continue;
        StructValue v;
        if (!decode_value(item, depth - 1, &v)) return false;
        out->list.push_back(std::move(v));
      }
    }
    // Anything else: an unknown field, skipped.
  }
  return true;
}

bool decode_fields(std::string_view bytes, int depth, std::vector<StructField>* out) {
  if (depth <= 0) return false;
  WireReader r(bytes);
  while (!r.done()) {
    uint32_t field, type;
    std::string_view entry;
    uint64_t number;
    if (!r.next(&field, &type, &entry, &number)) return false;
    if (field != 1 || type != kLengthDelimited) continue;
    StructField f;
    WireReader e(entry);
    while (!e.done()) {
      uint32_t ef, et;
      std::string_view payload;
      uint64_t n;
      if (!e.next(&ef, &et, &payload, &n)) return false;
      if (ef == 1 && et == kLengthDelimited) {
        f.name = std::string(payload);
      } else if (ef == 2 && et == kLengthDelimited) {
        if (!decode_value(payload, depth, &f.value)) return false;
      }
    }
    out->push_back(std::move(f));
  }
  return true;
}

const StructValue* find(const std::vector<StructField>& fields, std::string_view name) {
  for (const StructField& f : fields) {
    if (f.name == name) return &f.value;
  }
  return nullptr;
}

std::string string_field(const std::vector<StructField>& fields, std::string_view name) {
  const StructValue* v = find(fields, name);
  return v && v->kind == StructValue::Kind::String ? v->text : std::string();
}

}  // namespace

std::string encode_struct(const std::vector<StructField>& fields) { return encode_fields(fields); }

std::optional<std::vector<StructField>> decode_struct(std::string_view bytes, int max_depth) {
  std::vector<StructField> out;
  if (!decode_fields(bytes, max_depth, &out)) return std::nullopt;
  return out;
}

WorkloadInfo workload_from_struct(const std::vector<StructField>& fields) {
  WorkloadInfo w;
  w.name = string_field(fields, "NAME");
  w.namespace_ = string_field(fields, "NAMESPACE");
  w.workload = string_field(fields, "WORKLOAD_NAME");
  w.cluster = string_field(fields, "CLUSTER_ID");
  std::string canonical_name, canonical_revision;
  if (const StructValue* labels = find(fields, "LABELS");
      labels && labels->kind == StructValue::Kind::Struct) {
    auto label = [&](std::string_view name) { return string_field(labels->fields, name); };
    w.app = label("app");
    if (w.app.empty()) w.app = label("app.kubernetes.io/name");
    w.version = label("version");
    if (w.version.empty()) w.version = label("app.kubernetes.io/version");
    canonical_name = label("service.istio.io/canonical-name");
    canonical_revision = label("service.istio.io/canonical-revision");
  }
  w.canonical_service = !canonical_name.empty() ? canonical_name
                        : !w.app.empty()        ? w.app
                                                : w.workload;
  w.canonical_revision = !canonical_revision.empty() ? canonical_revision
                         : !w.version.empty()        ? w.version
                         : !w.workload.empty()       ? std::string("latest")
                                                     : std::string();
  return w;
}

}  // namespace SLUICE_SDK_NS
}  // namespace telemetry
