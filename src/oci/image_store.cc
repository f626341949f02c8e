#include "oci/image_store.h"

#include <cerrno>
#include <cstring>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "common/files.h"
#include "common/sha256.h"
#include "common/strings.h"
#include "oci/json_fields.h"

namespace sluice::oci {
namespace {

constexpr const char* kRefName = "org.opencontainers.image.ref.name";

nlohmann::json read_index(const std::string& dir) {
  Result<std::string> text = read_file((std::filesystem::path(dir) / "index.json").string());
  nlohmann::json index = text ? nlohmann::json::parse(*text, nullptr, false) : nlohmann::json();
  if (!index.is_object() || !index.contains("manifests") || !index["manifests"].is_array()) {
    index = {{"schemaVersion", 2}, {"manifests", nlohmann::json::array()}};
  }
  return index;
}

}  // namespace

Status ImageStore::put_blob(std::string_view bytes) {
  const std::filesystem::path path =
      std::filesystem::path(dir_) / "blobs" / "sha256" / sha256_hex(bytes);
  if (std::filesystem::exists(path)) return {};
  if (Status s = write_file_atomically((std::filesystem::path(dir_) / "oci-layout").string(),
                                       R"({"imageLayoutVersion":"1.0.0"})");
      !s) {
    return s;
  }
  return write_file_atomically(path.string(), bytes);
}

std::optional<std::string> ImageStore::blob(std::string_view digest) const {
  if (digest.substr(0, 7) != "sha256:" || digest.size() != 71) return std::nullopt;
  Result<std::string> bytes = read_file(
      (std::filesystem::path(dir_) / "blobs" / "sha256" / std::string(digest.substr(7))).string());
  // A blob that no longer hashes to its name is not the blob.
  if (!bytes || sha256_hex(*bytes) != digest.substr(7)) return std::nullopt;
  return std::move(*bytes);
}

Status ImageStore::tag(const std::string& reference, const std::string& manifest_digest,
                       std::string_view media_type, size_t size) {
  nlohmann::json index = read_index(dir_);
  nlohmann::json kept = nlohmann::json::array();
  for (const auto& m : index["manifests"]) {
    if (string_field(json_field(m, "annotations"), kRefName) == reference) {
      continue;
    }
    kept.push_back(m);
  }
  kept.push_back({{"mediaType", std::string(media_type)},
                  {"digest", manifest_digest},
                  {"size", size},
                  {"annotations", {{kRefName, reference}}}});
  index["manifests"] = std::move(kept);
  // The media type may come from a registry's Content-Type header: not UTF-8 is replaced, not
  // thrown on.
  return write_file_atomically((std::filesystem::path(dir_) / "index.json").string(),
                               index.dump(2, ' ', false, nlohmann::json::error_handler_t::replace));
}

std::vector<ImageStore::Entry> ImageStore::list() const {
  std::vector<Entry> out;
  const nlohmann::json index = read_index(dir_);  // (kept: the loop reads into it)
  for (const auto& m : index["manifests"]) {
    Entry e;
    e.reference = string_field(json_field(m, "annotations"), kRefName);
    e.digest = string_field(m, "digest");
    e.size = uint_field(m, "size").value_or(0);
    if (!e.reference.empty()) out.push_back(std::move(e));
  }
  return out;
}

std::optional<ImageStore::Entry> ImageStore::find(std::string_view reference) const {
  for (auto& e : list()) {
    if (e.reference == reference) return e;
  }
  return std::nullopt;
}

}  // namespace sluice::oci
