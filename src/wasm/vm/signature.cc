// Signature::to_string, on its own: the V8 runtime's shared object (libsluice-v8.so) builds this
// file into itself, with module_info.cc, so it needs nothing from the executable.
#include <string>
#include <string_view>
#include <vector>

#include "wasm/vm/wasm_vm.h"

namespace sluice::wasm {

namespace {
std::string_view type_name(ValType t) {
  switch (t) {
    case ValType::I32:
      return "i32";
    case ValType::I64:
      return "i64";
    case ValType::F32:
      return "f32";
    case ValType::F64:
      return "f64";
  }
  return "?";
}

void append_list(std::string& out, const std::vector<ValType>& types) {
  out += '(';
  for (size_t i = 0; i < types.size(); ++i) {
    if (i) out += ", ";
    out += type_name(types[i]);
  }
  out += ')';
}
}  // namespace

std::string Signature::to_string() const {
  std::string out;
  append_list(out, params);
  out += " -> ";
  append_list(out, results);
  return out;
}

}  // namespace sluice::wasm
