#include "config/tls_check.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <memory>

namespace sluice::config {
namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};

std::unique_ptr<BIO, BioFree> memory_bio(std::string_view pem) {
  return std::unique_ptr<BIO, BioFree>(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

std::string openssl_error() {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof(buf));
  return std::string(": ") + buf;
}

}  // namespace

std::string check_certificate_and_key(std::string_view chain_pem, std::string_view key_pem) {
  auto cert_bio = memory_bio(chain_pem);
  std::unique_ptr<X509, X509Free> cert(
      PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr));
  if (!cert) return "certificate_chain holds no PEM certificate" + openssl_error();
  auto key_bio = memory_bio(key_pem);
  std::unique_ptr<EVP_PKEY, PkeyFree> key(
      PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  if (!key) return "private_key holds no PEM private key (or it is encrypted)" + openssl_error();
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    return "private_key does not belong to the first certificate of certificate_chain";
  }
  return "";
}

std::string check_certificates(std::string_view pem) {
  auto bio = memory_bio(pem);
  std::unique_ptr<X509, X509Free> cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) return "holds no PEM certificate" + openssl_error();
  return "";
}

std::string check_cipher_list(const std::string& list) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_method());
  if (!ctx) return "cannot create a TLS context" + openssl_error();
  const bool ok = SSL_CTX_set_cipher_list(ctx, list.c_str()) == 1;
  SSL_CTX_free(ctx);
  if (!ok) return "no cipher OpenSSL knows in '" + list + "'" + openssl_error();
  return "";
}

}  // namespace sluice::config
