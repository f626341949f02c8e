// Proxy-Wasm properties (proxy_get_property / proxy_set_property): Envoy's attribute paths, with
// segments separated by NUL bytes ("request\0path"). Values are serialized as Envoy does: strings
// raw, integers as 8 bytes little-endian, booleans as 1 byte, maps as pairs.
#pragma once

#include <string>
#include <string_view>

#include "wasm/context.h"

namespace sluice::wasm {

WasmResult get_property(Context& ctx, std::string_view path, std::string& out);
// Sluice's batched read (sluice_functions::kGetProperties): `request` as that function's args,
// the result appended to `out`.
WasmResult get_properties(Context& ctx, std::string_view request, std::string& out);
// Stores a value other properties do not cover (Envoy's filter state "wasm.<path>"); readable by
// get_property under the same path for the rest of the stream.
WasmResult set_property(Context& ctx, std::string_view path, std::string_view value);

}  // namespace sluice::wasm
