#include "common/random.h"

#include <openssl/rand.h>

#include <absl/strings/escaping.h>

namespace sluice {

std::string random_hex(size_t bytes) {
  std::string raw(bytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(bytes)) != 1) {
    return "";
  }
  return absl::BytesToHexString(absl::string_view(raw.data(), raw.size()));
}

}  // namespace sluice
