// The hub's content: a folder of blobs named by their sha256 (blobs/sha256/ab/abcd...), and the
// uploads in progress beside it (uploads/<id>). An upload streams to its own file; finishing it
// checks the digest the client claims against what was written and then renames the file into
// place, so a blob is either whole and verified or absent. Image manifests are blobs too.
//
// Which repository may read which blob is metadata (hub_store.h), not this folder's business.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include <openssl/evp.h>

#include "common/result.h"

namespace sluice::hub {

// "sha256:<hex>" and nothing else (the hub stores one algorithm).
bool is_digest(std::string_view digest);

class BlobStore {
 public:
  explicit BlobStore(std::string root);
  Status init();  // creates the folders

  bool has(std::string_view digest) const;
  // Size in bytes, or -1 when absent.
  int64_t size(std::string_view digest) const;
  std::string path(std::string_view digest) const;
  Result<std::string> read(std::string_view digest, size_t max_bytes) const;
  // Stores `content` under its own digest (returned); a no-op when present.
  Result<std::string> put(std::string_view content);
  Status remove(std::string_view digest);

  // An upload being written: append in order, then commit under the digest it must have.
  class Upload {
   public:
    ~Upload();
    const std::string& id() const { return id_; }
    uint64_t size() const { return size_; }
    Status append(std::string_view data);
    // Checks the digest of everything appended, then moves it into the store. The upload is
    // gone either way (a mismatch discards it).
    Status commit(std::string_view expected_digest);
    void discard();

   private:
    friend class BlobStore;
    Upload(BlobStore& store, std::string id, int fd, uint64_t size, EVP_MD_CTX* hash);
    BlobStore& store_;
    std::string id_;
    int fd_;
    uint64_t size_;
    EVP_MD_CTX* hash_;  // sha256 of the bytes so far (re-read from the file after a restart)
  };
  // A new upload with a random id.
  Result<std::unique_ptr<Upload>> start_upload();
  // An upload started earlier (by id), to append to or commit. Fails when unknown.
  Result<std::unique_ptr<Upload>> resume_upload(std::string_view id);
  uint64_t upload_size(std::string_view id) const;  // 0 when unknown
  bool has_upload(std::string_view id) const;
  void discard_upload(std::string_view id);

 private:
  std::string upload_path(std::string_view id) const;
  std::string root_;
};

}  // namespace sluice::hub
