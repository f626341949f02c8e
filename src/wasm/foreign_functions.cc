#include "wasm/foreign_functions.h"

#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <unordered_map>

#include "common/strings.h"

namespace sluice::wasm {

namespace {

// A zlib stream of a few KiB can inflate to gigabytes: stop well before that.
constexpr size_t kMaxUncompressedBytes = 64u << 20;

WasmResult zlib_compress(std::string_view args, std::string* out) {
  uLongf size = compressBound(static_cast<uLong>(args.size()));
  out->resize(size);
  const int r =
      compress(reinterpret_cast<Bytef*>(out->data()), &size,
               reinterpret_cast<const Bytef*>(args.data()), static_cast<uLong>(args.size()));
  if (r != Z_OK) return WasmResult::InternalFailure;  // only Z_MEM_ERROR is possible here
  out->resize(size);
  return WasmResult::Ok;
}

WasmResult zlib_uncompress(std::string_view args, std::string* out) {
  if (args.size() > UINT32_MAX) return WasmResult::SerializationFailure;  // zlib counts in 32 bits
  z_stream z{};
  if (inflateInit(&z) != Z_OK) return WasmResult::InternalFailure;
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(args.data()));
  z.avail_in = static_cast<uInt>(args.size());
  out->clear();
  int r = Z_OK;
  // Inflate in pieces into the growing output, so its size need not be known up front.
  while (r == Z_OK) {
    const size_t have = out->size();
    const size_t piece = std::max<size_t>(args.size() * 2, 16384);
    if (have + piece > kMaxUncompressedBytes + 1) {
      if (have > kMaxUncompressedBytes) break;
      out->resize(kMaxUncompressedBytes + 1);
    } else {
      out->resize(have + piece);
    }
    z.next_out = reinterpret_cast<Bytef*>(out->data() + have);
    z.avail_out = static_cast<uInt>(out->size() - have);
    r = inflate(&z, Z_NO_FLUSH);
    out->resize(out->size() - z.avail_out);
    if (r == Z_BUF_ERROR && z.avail_in == 0) break;  // truncated input: no progress possible
  }
  inflateEnd(&z);
  if (r != Z_STREAM_END || z.avail_in != 0 || out->size() > kMaxUncompressedBytes) {
    out->clear();
    return WasmResult::SerializationFailure;
  }
  return WasmResult::Ok;
}

std::unordered_map<std::string, ForeignFunction, StringHash, std::equal_to<>>& registry() {
  static auto* r =
      new std::unordered_map<std::string, ForeignFunction, StringHash, std::equal_to<>>{
          {"compress", &zlib_compress},
          {"uncompress", &zlib_uncompress},
      };
  return *r;
}

}  // namespace

ForeignFunction find_foreign_function(std::string_view name) {
  auto& r = registry();
  auto it = r.find(name);
  return it == r.end() ? nullptr : it->second;
}

void register_foreign_function(std::string_view name, ForeignFunction fn) {
  registry()[std::string(name)] = fn;
}

}  // namespace sluice::wasm
