// libFuzzer target: what the telemetry extension reads from outside (extensions/telemetry/),
// built natively from the extension's source. The first byte picks the reader:
//   'e' (or anything else): a CEL-subset expression. A parsed one evaluates without crashing
//       against a resolver that answers every path (a string, an integer or nothing, from the
//       path's length), and parses again from its own text to the same paths.
//   's': peer metadata, the protobuf Struct a peer sends (untrusted: any client can send it).
//       What decodes re-encodes and decodes to the same fields; workload labels come out of it.
//   'c': the plugin configuration (Istio's stats plugin JSON). An accepted one has metrics whose
//       labels and dimensions name existing labels.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "../../extensions/telemetry/config.h"
#include "../../extensions/telemetry/expression.h"
#include "../../extensions/telemetry/peer_metadata.h"
#include "fuzz_check.h"

namespace {

using namespace telemetry;

bool same_fields(const std::vector<StructField>& a, const std::vector<StructField>& b);

bool same_value(const StructValue& a, const StructValue& b) {
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case StructValue::Kind::Null:
      return true;
    case StructValue::Kind::Number:
      // Bit patterns: NaN payloads must survive too.
      return std::string_view(reinterpret_cast<const char*>(&a.number), 8) ==
             std::string_view(reinterpret_cast<const char*>(&b.number), 8);
    case StructValue::Kind::String:
      return a.text == b.text;
    case StructValue::Kind::Bool:
      return a.flag == b.flag;
    case StructValue::Kind::Struct:
      return same_fields(a.fields, b.fields);
    case StructValue::Kind::List:
      if (a.list.size() != b.list.size()) return false;
      for (size_t i = 0; i < a.list.size(); ++i) {
        if (!same_value(a.list[i], b.list[i])) return false;
      }
      return true;
  }
  return false;
}

bool same_fields(const std::vector<StructField>& a, const std::vector<StructField>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].name != b[i].name || !same_value(a[i].value, b[i].value)) return false;
  }
  return true;
}

void fuzz_expression(std::string_view text) {
  std::string error;
  auto e = Expression::parse(text, &error);
  if (!e) {
    FUZZ_CHECK(!error.empty(), "a refused expression needs an error");
    return;
  }
  auto resolve = [](const std::vector<std::string>& path) {
    switch (path.size() % 3) {
      case 0:
        return Value{};
      case 1:
        return Value::string(path.back());
      default:
        return Value::integer(static_cast<int64_t>(path.back().size()));
    }
  };
  (void)e->evaluate(resolve).to_label();
  auto again = Expression::parse(e->text(), &error);
  FUZZ_CHECK(again && again->paths() == e->paths(), "the same text parses the same way");
}

void fuzz_struct(std::string_view bytes) {
  auto fields = decode_struct(bytes);
  if (!fields) return;
  (void)workload_from_struct(*fields);
  const std::string encoded = encode_struct(*fields);
  auto back = decode_struct(encoded);
  FUZZ_CHECK(back, "a decoded Struct re-encodes to something decodable");
  FUZZ_CHECK(same_fields(*fields, *back), "re-encoding keeps every field");
  FUZZ_CHECK(encode_struct(*back) == encoded, "encoding is deterministic");
}

void fuzz_config(std::string_view json) {
  std::string error;
  auto c = parse_config(json, &error);
  if (!c) {
    FUZZ_CHECK(!error.empty(), "a refused configuration needs an error");
    return;
  }
  for (const MetricConfig& m : c->metrics) {
    for (size_t label : m.labels) FUZZ_CHECK(label < c->label_names.size(), "label index");
    for (const auto& d : m.dimensions) {
      FUZZ_CHECK(d.first < c->label_names.size(), "dimension index");
    }
    FUZZ_CHECK(m.value != MetricValue::Expression || m.value_expression, "definition value");
  }
  FUZZ_CHECK(c->max_series_per_metric > 0, "a cap of at least one");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0]) {
    case 's':
      fuzz_struct(input);
      break;
    case 'c':
      fuzz_config(input);
      break;
    default:
      fuzz_expression(input);
      break;
  }
  return 0;
}
