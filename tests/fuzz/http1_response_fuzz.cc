// libFuzzer target: Http1Parser as UpstreamRequest uses it, on bytes from an upstream server,
// including HEAD responses (chosen by the first input byte) and close-delimited bodies (finish()).
// Input layout and the invariants checked: http1_fuzz_common.h.
#include <cstddef>
#include <cstdint>

#include "http1_fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return sluice::fuzz::fuzz_http1(sluice::http::MessageType::Response, data, size);
}
