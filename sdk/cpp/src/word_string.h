// memcmp and memcpy a word at a time, for the wasm32 build (wasm_string.cc); a header so the
// native SDK tests can check them against the C library's.
#pragma once

#include <cstddef>
#include <cstdint>

#if defined(__clang__)
// The compiler must not turn the loops below back into calls to memcmp or memcpy.
#define SLUICE_NO_BUILTIN __attribute__((no_builtin))
#else
#define SLUICE_NO_BUILTIN
#endif

namespace sluice_sdk_libc {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "the lowest byte of a loaded word must be the first in memory");

template <typename Word>
inline Word load(const unsigned char* p) {
  Word v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}

// memcmp's order of two different words loaded from memory: their first differing byte, the
// lowest one (little-endian), decides.
template <typename Word>
inline int word_order(Word x, Word y) {
  const int shift = (sizeof(Word) == 8 ? __builtin_ctzll(static_cast<uint64_t>(x ^ y))
                                       : __builtin_ctz(static_cast<uint32_t>(x ^ y))) &
                    ~7;
  return ((x >> shift) & 0xff) < ((y >> shift) & 0xff) ? -1 : 1;
}

// Same result sign as memcmp. Two words a step while they are equal (unaligned loads are allowed
// in Wasm and on x86); the bytes past the last whole word are compared as the range's last
// word, which overlaps bytes already found equal, so its first difference is a new byte.
SLUICE_NO_BUILTIN inline int word_memcmp(const void* a, const void* b, size_t n) {
  const unsigned char* l = static_cast<const unsigned char*>(a);
  const unsigned char* r = static_cast<const unsigned char*>(b);
  if (n >= 8) {
    for (; n >= 16; l += 16, r += 16, n -= 16) {
      const uint64_t x0 = load<uint64_t>(l), y0 = load<uint64_t>(r);
      const uint64_t x1 = load<uint64_t>(l + 8), y1 = load<uint64_t>(r + 8);
      if (x0 != y0) return word_order(x0, y0);
      if (x1 != y1) return word_order(x1, y1);
    }
    if (n >= 8) {
      const uint64_t x = load<uint64_t>(l), y = load<uint64_t>(r);
      if (x != y) return word_order(x, y);
      l += 8;
      r += 8;
      n -= 8;
    }
    if (n == 0) return 0;
    const uint64_t x = load<uint64_t>(l + n - 8), y = load<uint64_t>(r + n - 8);
    return x == y ? 0 : word_order(x, y);
  }
  if (n >= 4) {  // 4 to 7 bytes: the first four, then the last four (overlapping)
    uint32_t x = load<uint32_t>(l), y = load<uint32_t>(r);
    if (x != y) return word_order(x, y);
    x = load<uint32_t>(l + n - 4);
    y = load<uint32_t>(r + n - 4);
    return x == y ? 0 : word_order(x, y);
  }
  for (; n != 0; --n, ++l, ++r) {
    if (*l != *r) return *l < *r ? -1 : 1;
  }
  return 0;
}

template <typename Word>
inline void store(unsigned char* p, Word v) {
  __builtin_memcpy(p, &v, sizeof v);
}

// memcpy (the ranges must not overlap). Two words a step; what is left past them is copied as
// the range's last one or two words, overlapping bytes already copied (the same bytes again).
SLUICE_NO_BUILTIN inline void* word_memcpy(void* dst, const void* src, size_t n) {
  unsigned char* d = static_cast<unsigned char*>(dst);
  const unsigned char* s = static_cast<const unsigned char*>(src);
  if (n >= 8) {
    unsigned char* const last_word = d + n - 8;
    const uint64_t last = load<uint64_t>(s + n - 8);
    for (; n > 16; d += 16, s += 16, n -= 16) {
      store(d, load<uint64_t>(s));
      store(d + 8, load<uint64_t>(s + 8));
    }
    if (n > 8) store(d, load<uint64_t>(s));
    store(last_word, last);
  } else if (n >= 4) {
    const uint32_t first = load<uint32_t>(s), last = load<uint32_t>(s + n - 4);
    store(d, first);
    store(d + n - 4, last);
  } else {
    for (; n != 0; --n) *d++ = *s++;
  }
  return dst;
}

}  // namespace sluice_sdk_libc
