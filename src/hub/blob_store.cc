#include "hub/blob_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include <absl/strings/escaping.h>

#include "common/files.h"
#include "common/random.h"
#include "common/sha256.h"
#include "common/strings.h"

namespace fs = std::filesystem;

namespace sluice::hub {
namespace {

// Upload ids are 32 hex digits: anything else never reaches the file system.
bool is_upload_id(std::string_view id) {
  if (id.size() != 32) return false;
  for (char c : id) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

std::string errno_text() { return std::strerror(errno); }

}  // namespace

bool is_digest(std::string_view digest) {
  return digest.starts_with("sha256:") && is_sha256_hex(digest.substr(7));
}

BlobStore::BlobStore(std::string root) : root_(std::move(root)) {}

Status BlobStore::init() {
  std::error_code ec;
  for (const char* sub : {"blobs/sha256", "uploads"}) {
    fs::create_directories(fs::path(root_) / sub, ec);
    if (ec) return Error{str_cat("cannot create ", root_, "/", sub, ": ", ec.message())};
  }
  return {};
}

std::string BlobStore::path(std::string_view digest) const {
  const std::string_view hex = digest.substr(7);
  return str_cat(root_, "/blobs/sha256/", hex.substr(0, 2), "/", hex);
}

std::string BlobStore::upload_path(std::string_view id) const {
  return str_cat(root_, "/uploads/", id);
}

bool BlobStore::has(std::string_view digest) const { return size(digest) >= 0; }

int64_t BlobStore::size(std::string_view digest) const {
  if (!is_digest(digest)) return -1;
  struct stat st {};
  if (::stat(path(digest).c_str(), &st) != 0) return -1;
  return st.st_size;
}

Result<std::string> BlobStore::read(std::string_view digest, size_t max_bytes) const {
  const int64_t n = size(digest);
  if (n < 0) return Error{str_cat("blob ", digest, " is not stored")};
  if (static_cast<uint64_t>(n) > max_bytes) {
    return Error{str_cat("blob ", digest, " is ", n, " bytes, more than ", max_bytes)};
  }
  Result<std::string> content = read_file(path(digest));
  if (!content) return Error{str_cat("cannot read blob ", digest, ": ", content.error())};
  return content;
}

Result<std::string> BlobStore::put(std::string_view content) {
  const std::string digest = str_cat("sha256:", sha256_hex(content));
  if (has(digest)) return digest;
  if (Status s = write_file_atomically(path(digest), content); !s) return Error{s.error()};
  return digest;
}

Status BlobStore::remove(std::string_view digest) {
  if (!is_digest(digest)) return Error{str_cat("not a digest: ", digest)};
  if (::unlink(path(digest).c_str()) != 0 && errno != ENOENT) {
    return Error{str_cat("cannot delete blob ", digest, ": ", errno_text())};
  }
  return {};
}

// --- uploads ------------------------------------------------------------------------------

BlobStore::Upload::Upload(BlobStore& store, std::string id, int fd, uint64_t size, EVP_MD_CTX* hash)
    : store_(store), id_(std::move(id)), fd_(fd), size_(size), hash_(hash) {}

BlobStore::Upload::~Upload() {
  if (fd_ >= 0) ::close(fd_);
  EVP_MD_CTX_free(hash_);
}

Status BlobStore::Upload::append(std::string_view data) {
  if (fd_ < 0) return Error{"the upload is finished"};
  const char* p = data.data();
  size_t left = data.size();
  while (left > 0) {
    const ssize_t n = ::write(fd_, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error{str_cat("cannot write upload ", id_, ": ", errno_text())};
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  EVP_DigestUpdate(hash_, data.data(), data.size());
  size_ += data.size();
  return {};
}

Status BlobStore::Upload::commit(std::string_view expected_digest) {
  if (fd_ < 0) return Error{"the upload is finished"};
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  EVP_DigestFinal_ex(hash_, md, &md_len);
  const std::string actual =
      str_cat("sha256:",
              absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(md), md_len)));
  const std::string from = store_.upload_path(id_);
  ::close(fd_);
  fd_ = -1;
  if (actual != expected_digest) {
    ::unlink(from.c_str());
    return Error{str_cat("the uploaded content's digest is ", actual, ", not ", expected_digest)};
  }
  const std::string to = store_.path(actual);
  std::error_code ec;
  fs::create_directories(fs::path(to).parent_path(), ec);
  if (ec || ::rename(from.c_str(), to.c_str()) != 0) {
    const std::string why = ec ? ec.message() : errno_text();
    ::unlink(from.c_str());
    return Error{str_cat("cannot store blob ", actual, ": ", why)};
  }
  return {};
}

void BlobStore::Upload::discard() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  ::unlink(store_.upload_path(id_).c_str());
}

Result<std::unique_ptr<BlobStore::Upload>> BlobStore::start_upload() {
  const std::string id = random_hex(16);
  if (id.empty()) return Error{"no randomness for an upload id"};
  const std::string file = upload_path(id);
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return Error{str_cat("cannot create ", file, ": ", errno_text())};
  EVP_MD_CTX* hash = EVP_MD_CTX_new();
  EVP_DigestInit_ex(hash, EVP_sha256(), nullptr);
  return std::unique_ptr<Upload>(new Upload(*this, id, fd, 0, hash));
}

Result<std::unique_ptr<BlobStore::Upload>> BlobStore::resume_upload(std::string_view id) {
  if (!is_upload_id(id)) return Error{"no such upload"};
  const std::string file = upload_path(id);
  const int fd = ::open(file.c_str(), O_RDWR | O_APPEND | O_CLOEXEC);
  if (fd < 0) return Error{"no such upload"};
  // The hash state is not on disk: read back what was written so far.
  EVP_MD_CTX* hash = EVP_MD_CTX_new();
  EVP_DigestInit_ex(hash, EVP_sha256(), nullptr);
  uint64_t size = 0;
  char buffer[64 * 1024];
  for (;;) {
    const ssize_t n = ::pread(fd, buffer, sizeof buffer, static_cast<off_t>(size));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    EVP_DigestUpdate(hash, buffer, static_cast<size_t>(n));
    size += static_cast<uint64_t>(n);
  }
  return std::unique_ptr<Upload>(new Upload(*this, std::string(id), fd, size, hash));
}

uint64_t BlobStore::upload_size(std::string_view id) const {
  if (!is_upload_id(id)) return 0;
  struct stat st {};
  if (::stat(upload_path(id).c_str(), &st) != 0) return 0;
  return static_cast<uint64_t>(st.st_size);
}

bool BlobStore::has_upload(std::string_view id) const {
  return is_upload_id(id) && ::access(upload_path(id).c_str(), F_OK) == 0;
}

void BlobStore::discard_upload(std::string_view id) {
  if (is_upload_id(id)) ::unlink(upload_path(id).c_str());
}

}  // namespace sluice::hub
