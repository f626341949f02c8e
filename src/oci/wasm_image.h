// Wasm modules shipped as OCI images, in the two variants Istio and Envoy tooling use:
//  - "oci": a layer of media type application/vnd.module.wasm.content.layer.v1+wasm (config
//    application/vnd.module.wasm.config.v1+json) that is the module itself; the CNCF Wasm
//    artifact layout (layer application/wasm) is read the same way;
//  - "compat": an ordinary container image whose last layer, a tar (gzip or not), holds
//    plugin.wasm at its root.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "oci/reference.h"
#include "oci/registry_client.h"

namespace sluice::oci {

inline constexpr std::string_view kWasmLayer = "application/vnd.module.wasm.content.layer.v1+wasm";
inline constexpr std::string_view kWasmConfig = "application/vnd.module.wasm.config.v1+json";
inline constexpr std::string_view kWasmArtifactLayer = "application/wasm";

struct WasmLayer {
  std::string digest;
  std::string media_type;
  bool tar = false;     // compat: extract plugin.wasm
  std::string variant;  // "oci" or "compat"
};

// Which layer of an image manifest (OCI or Docker schema 2) holds the module.
Result<WasmLayer> find_wasm_layer(std::string_view manifest_json);
// From an image index (or Docker manifest list), the manifest to use: the one for a wasm/wasi
// platform if any, else the only one.
Result<std::string> pick_from_index(std::string_view index_json);
// plugin.wasm from a tar layer (gzip or plain), at most `max_bytes`.
Result<std::string> extract_plugin_wasm(std::string_view layer, size_t max_bytes);

struct PulledModule {
  std::string code;             // the module's bytes (checked to start with "\0asm")
  std::string manifest_digest;  // the image manifest the module came from
  std::string variant;          // "oci" or "compat"
};

// The image manifest `ref` names, through an image index if it names one.
Result<Manifest> resolve_image_manifest(RegistryClient& client, const Reference& ref);
// The module of an image whose manifest is `manifest`: its layer fetched (and extracted).
Result<PulledModule> fetch_wasm_module(RegistryClient& client, const Reference& ref,
                                       const Manifest& manifest, size_t max_bytes);
// An image of the "oci" variant for `module` (what `sluice ext push` writes): its config blob
// (application/vnd.module.wasm.config.v1+json: type, abiVersions, rootIds, as WebAssembly Hub's
// images) and its manifest (application/vnd.oci.image.manifest.v1+json).
struct BuiltImage {
  std::string config;
  std::string manifest;
};
// `annotations` go on the manifest (org.opencontainers.image.description, ...: what a hub
// indexes and shows).
BuiltImage build_wasm_image(std::string_view module, std::string_view abi_version,
                            const std::vector<std::string>& root_ids,
                            const std::map<std::string, std::string>& annotations = {});

// Both: resolve, then fetch.
Result<PulledModule> pull_wasm_module(RegistryClient& client, const Reference& ref,
                                      size_t max_bytes);

}  // namespace sluice::oci
