// Random identifiers and secrets from OpenSSL's CSPRNG: upload ids, token ids and secrets, the
// hub's signing key.
#pragma once

#include <cstddef>
#include <string>

namespace sluice {

// `bytes` random bytes as lower-case hex (2 * bytes characters); "" if the CSPRNG fails.
std::string random_hex(size_t bytes);

}  // namespace sluice
