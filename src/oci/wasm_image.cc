#include "oci/wasm_image.h"

#include <archive.h>
#include <archive_entry.h>

#include <memory>

#include <nlohmann/json.hpp>

#include "common/sha256.h"
#include "common/strings.h"
#include "oci/json_fields.h"

namespace sluice::oci {
namespace {

bool is_tar_layer(std::string_view media_type) {
  return media_type == "application/vnd.oci.image.layer.v1.tar+gzip" ||
         media_type == "application/vnd.oci.image.layer.v1.tar" ||
         media_type == "application/vnd.docker.image.rootfs.diff.tar.gzip" ||
         media_type == "application/vnd.docker.image.rootfs.diff.tar";
}

bool is_index(std::string_view media_type) {
  return media_type == kOciIndex || media_type == kDockerManifestList;
}

// libarchive's message for the last error; it may have none (a null pointer).
std::string archive_error(archive* a) {
  const char* message = archive_error_string(a);
  return message ? message : "unreadable data";
}

}  // namespace

Result<WasmLayer> find_wasm_layer(std::string_view manifest_json) {
  nlohmann::json doc = nlohmann::json::parse(manifest_json, nullptr, false);
  if (!doc.is_object()) return Error{"the image manifest is not a JSON object"};
  if (uint_field(doc, "schemaVersion") != 2u) {
    return Error{"the image manifest is not schema version 2 (Docker's schema 1 is not read)"};
  }
  auto layers = doc.find("layers");
  if (layers == doc.end() || !layers->is_array() || layers->empty()) {
    return Error{"the image manifest has no layers"};
  }
  std::vector<WasmLayer> wasm_layers;
  std::string seen;
  for (const auto& layer : *layers) {
    const std::string digest = string_field(layer, "digest");
    if (!is_sha256_digest(digest)) {
      return Error{"the image manifest has a layer without a sha256 digest"};
    }
    const std::string type = string_field(layer, "mediaType");
    str_append(&seen, seen.empty() ? "" : ", ", type.empty() ? "(none)" : type);
    if (type == kWasmLayer || type == kWasmArtifactLayer) {
      wasm_layers.push_back({digest, type, false, "oci"});
    }
  }
  if (wasm_layers.size() > 1) {
    return Error{
        str_cat("the image has ", wasm_layers.size(), " Wasm layers; a module image holds one")};
  }
  if (wasm_layers.size() == 1) return wasm_layers.front();
  const auto& last = layers->back();
  const std::string type = string_field(last, "mediaType");
  if (is_tar_layer(type)) return WasmLayer{string_field(last, "digest"), type, true, "compat"};
  return Error{str_cat("the image holds no Wasm module: no layer of type ", kWasmLayer,
                       ", and its last layer is not a tar holding plugin.wasm (layer types: ", seen,
                       ")")};
}

Result<std::string> pick_from_index(std::string_view index_json) {
  nlohmann::json doc = nlohmann::json::parse(index_json, nullptr, false);
  if (!doc.is_object()) return Error{"the image index is not a JSON object"};
  auto manifests = doc.find("manifests");
  if (manifests == doc.end() || !manifests->is_array() || manifests->empty()) {
    return Error{"the image index lists no manifests"};
  }
  std::vector<std::string> candidates;
  for (const auto& m : *manifests) {
    const std::string digest = string_field(m, "digest");
    if (!is_sha256_digest(digest)) continue;
    const nlohmann::json& platform = json_field(m, "platform");
    const std::string os = string_field(platform, "os");
    const std::string arch = string_field(platform, "architecture");
    if (arch == "wasm" || arch == "wasm32" || os == "wasi" || os == "wasip1") return digest;
    candidates.push_back(digest);
  }
  if (candidates.size() == 1) return candidates.front();
  return Error{str_cat("the image index lists ", candidates.size(),
                       " manifests and none for a wasm/wasi platform; name one by digest")};
}

Result<std::string> extract_plugin_wasm(std::string_view layer, size_t max_bytes) {
  std::unique_ptr<archive, int (*)(archive*)> a(archive_read_new(), archive_read_free);
  archive_read_support_filter_gzip(a.get());
  archive_read_support_filter_none(a.get());
  archive_read_support_format_tar(a.get());
  if (archive_read_open_memory(a.get(), layer.data(), layer.size()) != ARCHIVE_OK) {
    return Error{str_cat("the image's last layer is not a tar archive: ", archive_error(a.get()))};
  }
  archive_entry* entry = nullptr;
  std::string names;
  int listed = 0;
  for (;;) {
    const int rc = archive_read_next_header(a.get(), &entry);
    if (rc == ARCHIVE_EOF) break;
    if (rc < ARCHIVE_WARN) {
      return Error{str_cat("the image's last layer is not a readable tar archive: ",
                           archive_error(a.get()))};
    }
    std::string_view name = archive_entry_pathname(entry) ? archive_entry_pathname(entry) : "";
    while (name.substr(0, 2) == "./") name.remove_prefix(2);
    while (!name.empty() && name.front() == '/') name.remove_prefix(1);
    if (name != "plugin.wasm" || archive_entry_filetype(entry) != AE_IFREG) {
      if (++listed <= 5) str_append(&names, names.empty() ? "" : ", ", name);
      continue;
    }
    if (archive_entry_size_is_set(entry) &&
        static_cast<uint64_t>(archive_entry_size(entry)) > max_bytes) {
      return Error{str_cat("plugin.wasm in the image is ", archive_entry_size(entry),
                           " bytes, more than the ", max_bytes, " allowed")};
    }
    std::string code;
    char buffer[64 * 1024];
    for (;;) {
      const la_ssize_t n = archive_read_data(a.get(), buffer, sizeof buffer);
      if (n < 0) {
        return Error{str_cat("reading plugin.wasm from the image: ", archive_error(a.get()))};
      }
      if (n == 0) break;
      if (code.size() + static_cast<size_t>(n) > max_bytes) {
        return Error{
            str_cat("plugin.wasm in the image is more than the ", max_bytes, " bytes allowed")};
      }
      code.append(buffer, static_cast<size_t>(n));
    }
    // A cut-off stream can end the data early without an error: hold it to the header's size.
    if (archive_entry_size_is_set(entry) &&
        code.size() != static_cast<uint64_t>(archive_entry_size(entry))) {
      return Error{str_cat("plugin.wasm in the image is cut short: ", code.size(), " of ",
                           archive_entry_size(entry), " bytes")};
    }
    return code;
  }
  return Error{str_cat("the image's last layer has no plugin.wasm at its root",
                       names.empty()
                           ? std::string(" (it is empty)")
                           : str_cat(" (it holds ", names, listed > 5 ? ", ..." : "", ")"))};
}

Result<Manifest> resolve_image_manifest(RegistryClient& client, const Reference& ref) {
  Result<Manifest> manifest = client.get_manifest(ref.repository, ref.manifest_ref());
  if (!manifest || !is_index(manifest->media_type)) return manifest;
  Result<std::string> chosen = pick_from_index(manifest->body);
  if (!chosen) return Error{str_cat(ref.to_string(), ": ", chosen.error())};
  manifest = client.get_manifest(ref.repository, *chosen);
  if (manifest && is_index(manifest->media_type)) {
    return Error{str_cat(ref.to_string(), ": an image index inside an image index")};
  }
  return manifest;
}

Result<PulledModule> fetch_wasm_module(RegistryClient& client, const Reference& ref,
                                       const Manifest& manifest, size_t max_bytes) {
  Result<WasmLayer> layer = find_wasm_layer(manifest.body);
  if (!layer) return Error{str_cat(ref.to_string(), ": ", layer.error())};
  // A compressed layer holds at most the module and a little tar framing.
  Result<std::string> blob = client.get_blob(ref.repository, layer->digest,
                                             layer->tar ? max_bytes + 1024 * 1024 : max_bytes);
  if (!blob) return Error{blob.error()};
  PulledModule out;
  out.manifest_digest = manifest.digest;
  out.variant = layer->variant;
  if (layer->tar) {
    Result<std::string> code = extract_plugin_wasm(*blob, max_bytes);
    if (!code) return Error{str_cat(ref.to_string(), ": ", code.error())};
    out.code = std::move(*code);
  } else {
    out.code = std::move(*blob);
  }
  if (out.code.size() < 8 || out.code.compare(0, 4, std::string_view("\0asm", 4)) != 0) {
    return Error{str_cat(ref.to_string(), ": the module layer (", layer->digest.substr(0, 19),
                         ") is not a WebAssembly binary")};
  }
  return out;
}

BuiltImage build_wasm_image(std::string_view module, std::string_view abi_version,
                            const std::vector<std::string>& root_ids,
                            const std::map<std::string, std::string>& annotations) {
  BuiltImage out;
  nlohmann::json config = {{"type", "envoy_proxy_wasm"},
                           {"abiVersions", nlohmann::json::array()},
                           {"rootIds", root_ids}};
  if (!abi_version.empty()) config["abiVersions"].push_back(std::string(abi_version));
  // Root ids come from the command line: bytes that are not UTF-8 are replaced, not thrown on.
  out.config = config.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  nlohmann::json manifest = {
      {"schemaVersion", 2},
      {"mediaType", std::string(kOciManifest)},
      {"config",
       {{"mediaType", std::string(kWasmConfig)},
        {"digest", str_cat("sha256:", sha256_hex(out.config))},
        {"size", out.config.size()}}},
      {"layers",
       {{{"mediaType", std::string(kWasmLayer)},
         {"digest", str_cat("sha256:", sha256_hex(module))},
         {"size", module.size()},
         {"annotations", {{"org.opencontainers.image.title", "plugin.wasm"}}}}}}};
  if (!annotations.empty()) manifest["annotations"] = annotations;
  // A README may hold any bytes: replaced where not UTF-8, never thrown on.
  out.manifest = manifest.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return out;
}

Result<PulledModule> pull_wasm_module(RegistryClient& client, const Reference& ref,
                                      size_t max_bytes) {
  Result<Manifest> manifest = resolve_image_manifest(client, ref);
  if (!manifest) return Error{manifest.error()};
  return fetch_wasm_module(client, ref, *manifest, max_bytes);
}

}  // namespace sluice::oci
