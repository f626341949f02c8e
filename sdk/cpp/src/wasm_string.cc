// String functions for the wasm32 build that replace wasi-libc's, where its portable C is slow
// in the hot path of an extension. wasi-libc's memcmp compares byte by byte (about 11 Wasm
// instructions a byte on V8: 1.4k instructions of a telemetry request, which compares a peer id
// and a series key), and its memcpy spends most of a short copy aligning and finishing byte by
// byte. These work a word at a time with overlapping tails (word_string.h): telemetry on V8
// spends 0.28k instructions a request in memcmp and 0.13k in memcpy. The linker takes these
// definitions before the archive's.
#include <cstddef>

#include "word_string.h"

#if !defined(__wasm__)
#error "wasm_string.cc is for the wasm32 build only"
#endif

extern "C" SLUICE_NO_BUILTIN int memcmp(const void* a, const void* b, size_t n) {
  return sluice_sdk_libc::word_memcmp(a, b, n);
}

extern "C" SLUICE_NO_BUILTIN void* memcpy(void* __restrict dst, const void* __restrict src,
                                          size_t n) {
  return sluice_sdk_libc::word_memcpy(dst, src, n);
}
