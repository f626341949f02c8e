// Checks TLS material at configuration load, so `--mode validate` and start-up report a bad
// certificate or key with its path instead of a failed handshake later.
#pragma once

#include <string>
#include <string_view>

namespace sluice::config {

// "" when `chain_pem` holds at least one certificate, `key_pem` a private key, and the key
// belongs to the first certificate; otherwise what is wrong.
std::string check_certificate_and_key(std::string_view chain_pem, std::string_view key_pem);
// "" when `pem` holds at least one certificate (a CA bundle).
std::string check_certificates(std::string_view pem);
// "" when OpenSSL knows at least one cipher of the ':'-separated `list` (TLS 1.2 and below).
std::string check_cipher_list(const std::string& list);

}  // namespace sluice::config
