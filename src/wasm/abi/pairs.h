// Proxy-Wasm's serialization of header maps ("pairs"): u32 count, count x (u32 key length,
// u32 value length), then each key and value followed by a NUL.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::wasm {

using Pairs = std::vector<std::pair<std::string_view, std::string_view>>;

void encode_pairs(const Pairs& pairs, std::string& out);
// nullopt unless the blob is exactly well formed (at most 1 MiB and 1024 pairs, as cpp-host).
// An empty blob (size 0, a single NUL, or count 0) is an empty list. Views point into `blob`.
std::optional<Pairs> decode_pairs(std::string_view blob);

}  // namespace sluice::wasm
