// libFuzzer target: Http1Parser as HttpConnection uses it, on bytes from a downstream client.
// Input layout and the invariants checked: http1_fuzz_common.h.
#include <cstddef>
#include <cstdint>

#include "http1_fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return sluice::fuzz::fuzz_http1(sluice::http::MessageType::Request, data, size);
}
