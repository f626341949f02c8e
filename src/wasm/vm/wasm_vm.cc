#include "wasm/vm/wasm_vm.h"

#include <mutex>
#include <string>

#include <fmt/format.h>

#include "wasm/vm/runtimes.h"

namespace sluice::wasm {

bool WasmVm::get_word(uint64_t ptr, uint64_t* out) {
  const uint32_t n = word_size();
  const char* p = memory_at(ptr, n);
  if (!p) return false;
  if (n == 4) {
    uint32_t v;
    std::memcpy(&v, p, 4);  // wasm is little-endian, as are the hosts Sluice runs on
    *out = v;
  } else {
    std::memcpy(out, p, 8);
  }
  return true;
}

bool WasmVm::set_word(uint64_t ptr, uint64_t value) {
  const uint32_t n = word_size();
  if (n == 4 && value > UINT32_MAX) return false;
  char* p = memory_at(ptr, n);
  if (!p) return false;
  store_word(p, n, value);
  return true;
}

bool WasmVm::set_u32(uint64_t ptr, uint32_t value) {
  char* p = memory_at(ptr, 4);
  if (!p) return false;
  std::memcpy(p, &value, 4);
  return true;
}

bool WasmVm::set_u64(uint64_t ptr, uint64_t value) {
  char* p = memory_at(ptr, 8);
  if (!p) return false;
  std::memcpy(p, &value, 8);
  return true;
}

bool WasmVm::read(uint64_t ptr, uint64_t size, std::string_view* out) {
  const char* p = memory_at(ptr, size);
  if (!p) return false;
  *out = std::string_view(p, size);
  return true;
}

bool WasmVm::write(uint64_t ptr, std::string_view data) {
  char* p = memory_at(ptr, data.size());
  if (!p) return false;
  if (!data.empty()) std::memcpy(p, data.data(), data.size());
  return true;
}

namespace {
struct RuntimeRegistry {
  std::mutex mu;
  std::unique_ptr<WasmRuntime> v8, null;
  std::string v8_error;  // why V8 could not be loaded; kept, so every caller gets the same answer
};
RuntimeRegistry& runtime_registry() {
  // Lives for the process: VMs may outlive static destructors.
  static RuntimeRegistry* r = new RuntimeRegistry;
  return *r;
}
}  // namespace

Result<WasmRuntime*> find_runtime(std::string_view name) {
  RuntimeRegistry& r = runtime_registry();
  std::lock_guard lock(r.mu);
  if (name == kV8RuntimeName) {
    if (!r.v8 && r.v8_error.empty()) {
      Result<std::unique_ptr<WasmRuntime>> made = make_v8_runtime();
      if (made) {
        r.v8 = std::move(made).value();
      } else {
        r.v8_error = made.error();
      }
    }
    if (!r.v8)
      return Error{fmt::format("the Wasm runtime {} is unavailable: {}", name, r.v8_error)};
    return r.v8.get();
  }
  if (name == kNullRuntimeName) {
    if (!r.null) r.null = make_null_runtime();
    return r.null.get();
  }
  std::string known;
  for (std::string_view n : runtime_names()) known += (known.empty() ? "" : ", ") + std::string(n);
  return Error{fmt::format("unknown Wasm runtime '{}' (known: {})", name, known)};
}

std::vector<std::string_view> runtime_names() { return {kV8RuntimeName, kNullRuntimeName}; }

}  // namespace sluice::wasm
