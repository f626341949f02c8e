// A hostile plugin written with the C++ SDK, the way a real extension goes wrong (the WAT modules
// in tests/wasm misbehave at the ABI level; this one through libc++ and wasi-libc). The request
// header x-hostile picks the misdeed, in on_request_headers:
//   grow     allocates 1 MiB blocks until malloc fails, then aborts as an out-of-memory
//            handler does (a trap). (Not operator new: Debian's wasm32 libc++ is built without
//            exceptions, so a failed new returns null, and the writes through it land at
//            address 0 of the linear memory, which is valid: a loop the watchdog must stop.)
//   leak     keeps 1 MiB per request for the life of the VM, until the memory limit ends it
//   loop     spins forever (the CPU watchdog stops it)
//   recurse  recurses without end (the C stack in linear memory runs out first: an
//            out-of-bounds access)
//   oob      stores far outside its linear memory (a trap)
//   abort    calls abort()
// Anything else passes, with the response header x-hostile-sdk: alive (and how many MiB it
// keeps). V8 only: natively this would be the proxy's own crash.
#include <cstdlib>
#include <string>
#include <vector>

#include "sluice/sdk.h"

namespace {

std::vector<char*> kept;  // "leak": lives as long as the VM

constexpr size_t kMiB = 1024 * 1024;

char* touched_block() {
  char* block = static_cast<char*>(std::malloc(kMiB));
  if (block == nullptr) std::abort();
  for (size_t i = 0; i < kMiB; i += 4096) block[i] = 1;  // really in the linear memory
  return block;
}

int recurse(int depth) {
  volatile char frame[256];  // a real frame each time; read after the call: no tail call
  frame[depth & 255] = static_cast<char>(depth);
  if (depth < 0) return 0;  // never: keeps the compiler from calling the recursion infinite
  return recurse(depth + 1) + frame[0];
}

class HostileStream : public sluice::HttpContext {
 public:
  using HttpContext::HttpContext;

  sluice::FilterHeadersStatus on_request_headers(uint32_t, bool) override {
    const std::string action = sluice::request_headers().get("x-hostile").value_or("");
    if (action == "grow") {
      std::vector<char*> blocks;
      for (;;) blocks.push_back(touched_block());
    }
    if (action == "leak") kept.push_back(touched_block());
    if (action == "loop") {
      volatile uint64_t spins = 0;
      for (;;) spins = spins + 1;
    }
    if (action == "recurse") recurse(0);
    if (action == "oob") *reinterpret_cast<volatile uint32_t*>(uintptr_t{0xfffffff0u}) = 1;
    if (action == "abort") std::abort();
    return sluice::FilterHeadersStatus::Continue;
  }
  sluice::FilterHeadersStatus on_response_headers(uint32_t, bool) override {
    sluice::response_headers().replace("x-hostile-sdk",
                                       "alive, keeping " + std::to_string(kept.size()) + " MiB");
    return sluice::FilterHeadersStatus::Continue;
  }
};

sluice::RegisterContextFactory<sluice::RootContext, HostileStream> registration("hostile_sdk");

}  // namespace
