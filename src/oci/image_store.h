// The CLI's local image store (~/.sluice/store): an OCI image layout (oci-layout, index.json,
// blobs/sha256/<hex>), so other tools read it too (`skopeo copy oci:~/.sluice/store:<ref> ...`).
// Blobs are kept by digest; index.json names each image by its full reference
// (org.opencontainers.image.ref.name = host/repo:tag). Single-user: writes are atomic renames, not
// locked against another process writing at once.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace sluice::oci {

class ImageStore {
 public:
  explicit ImageStore(std::string dir) : dir_(std::move(dir)) {}
  const std::string& dir() const { return dir_; }

  // Stores a blob under its sha256.
  Status put_blob(std::string_view bytes);
  std::optional<std::string> blob(std::string_view digest) const;
  // Names the manifest (already stored as a blob) `reference`, replacing what it named before.
  Status tag(const std::string& reference, const std::string& manifest_digest,
             std::string_view media_type, size_t size);

  struct Entry {
    std::string reference;
    std::string digest;
    size_t size = 0;
  };
  std::vector<Entry> list() const;
  std::optional<Entry> find(std::string_view reference) const;

 private:
  std::string dir_;
};

}  // namespace sluice::oci
