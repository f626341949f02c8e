#include "wasm/abi/pairs.h"

#include <cstdint>
#include <cstring>

namespace sluice::wasm {

namespace {
constexpr size_t kMaxBytes = 1 << 20;
constexpr size_t kMaxCount = 1024;

void put_u32(std::string& out, uint32_t v) { out.append(reinterpret_cast<const char*>(&v), 4); }
uint32_t get_u32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
}  // namespace

void encode_pairs(const Pairs& pairs, std::string& out) {
  size_t total = 4;
  for (const auto& [k, v] : pairs) total += 8 + k.size() + v.size() + 2;
  out.clear();
  out.reserve(total);
  put_u32(out, static_cast<uint32_t>(pairs.size()));
  for (const auto& [k, v] : pairs) {
    put_u32(out, static_cast<uint32_t>(k.size()));
    put_u32(out, static_cast<uint32_t>(v.size()));
  }
  for (const auto& [k, v] : pairs) {
    out.append(k);
    out.push_back('\0');
    out.append(v);
    out.push_back('\0');
  }
}

std::optional<Pairs> decode_pairs(std::string_view blob) {
  Pairs out;
  if (blob.empty() || (blob.size() == 1 && blob[0] == '\0')) return out;
  if (blob.size() < 4 || blob.size() > kMaxBytes) return std::nullopt;
  const uint32_t n = get_u32(blob.data());
  if (n > kMaxCount) return std::nullopt;
  const size_t header = 4 + static_cast<size_t>(n) * 8;
  if (header > blob.size()) return std::nullopt;
  out.reserve(n);
  size_t pos = header;
  for (uint32_t i = 0; i < n; ++i) {
    const size_t klen = get_u32(blob.data() + 4 + i * 8);
    const size_t vlen = get_u32(blob.data() + 8 + i * 8);
    if (klen > blob.size() || vlen > blob.size() || pos + klen + vlen + 2 > blob.size()) {
      return std::nullopt;
    }
    std::string_view key = blob.substr(pos, klen);
    pos += klen;
    if (blob[pos++] != '\0') return std::nullopt;
    std::string_view value = blob.substr(pos, vlen);
    pos += vlen;
    if (blob[pos++] != '\0') return std::nullopt;
    out.emplace_back(key, value);
  }
  if (pos != blob.size()) return std::nullopt;
  return out;
}

}  // namespace sluice::wasm
