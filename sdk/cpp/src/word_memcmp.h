// memcmp eight bytes at a time, for the wasm32 build's memcmp (wasm_string.cc); a header so the
// native SDK tests can check it against the C library's.
#pragma once

#include <cstddef>
#include <cstdint>

#if defined(__clang__)
// The compiler must not turn the loops below back into a call to memcmp.
#define SLUICE_NO_BUILTIN __attribute__((no_builtin))
#else
#define SLUICE_NO_BUILTIN
#endif

namespace sluice_sdk_libc {

// Same result sign as memcmp. Whole words while they are equal (unaligned loads are allowed in
// Wasm and on x86); the first word that differs is left to the byte loop, which finds the byte
// that decides the order.
SLUICE_NO_BUILTIN inline int word_memcmp(const void* a, const void* b, size_t n) {
  const unsigned char* l = static_cast<const unsigned char*>(a);
  const unsigned char* r = static_cast<const unsigned char*>(b);
  while (n >= 8) {
    uint64_t x, y;
    __builtin_memcpy(&x, l, 8);
    __builtin_memcpy(&y, r, 8);
    if (x != y) break;
    l += 8;
    r += 8;
    n -= 8;
  }
  for (; n != 0; --n, ++l, ++r) {
    if (*l != *r) return *l < *r ? -1 : 1;
  }
  return 0;
}

}  // namespace sluice_sdk_libc
