#include "net/tls.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <cstring>

#include "common/strings.h"

namespace sluice::net {
namespace {

int openssl_version(config::DownstreamTls::Version v, int fallback) {
  switch (v) {
    case config::DownstreamTls::Version::Auto:
      return fallback;
    case config::DownstreamTls::Version::Tls10:
      return TLS1_VERSION;
    case config::DownstreamTls::Version::Tls11:
      return TLS1_1_VERSION;
    case config::DownstreamTls::Version::Tls12:
      return TLS1_2_VERSION;
    case config::DownstreamTls::Version::Tls13:
      return TLS1_3_VERSION;
  }
  return fallback;
}

std::string last_openssl_error() {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  char buf[256];
  ERR_error_string_n(e, buf, sizeof(buf));
  return buf;
}

// ALPN: Sluice speaks HTTP/1.1 (HTTP/2 comes later), so that is the only protocol it selects,
// whatever the configuration lists; with no overlap the handshake goes on without ALPN, as
// OpenSSL servers do by default.
int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                unsigned int inlen, void*) {
  static const unsigned char kHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, kHttp11, sizeof(kHttp11), in, inlen) ==
      OPENSSL_NPN_NEGOTIATED) {
    *out = selected;
    return SSL_TLSEXT_ERR_OK;
  }
  return SSL_TLSEXT_ERR_NOACK;
}

std::string name_of(X509_NAME* name) {
  if (!name) return "";
  BIO* bio = BIO_new(BIO_s_mem());
  X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(n));
  BIO_free(bio);
  return out;
}

void first_sans(X509* cert, std::string* uri, std::string* dns) {
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (!names) return;
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* n = sk_GENERAL_NAME_value(names, i);
    std::string* target = n->type == GEN_URI ? uri : n->type == GEN_DNS ? dns : nullptr;
    if (!target || !target->empty()) continue;
    const ASN1_STRING* s = n->type == GEN_URI ? n->d.uniformResourceIdentifier : n->d.dNSName;
    target->assign(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                   static_cast<size_t>(ASN1_STRING_length(s)));
  }
  GENERAL_NAMES_free(names);
}

}  // namespace

Result<std::shared_ptr<TlsServerContext>> TlsServerContext::create(
    const config::DownstreamTls& config) {
  std::shared_ptr<TlsServerContext> t(new TlsServerContext());
  SSL_CTX* ctx = t->context_.native_handle();
  SSL_CTX_set_options(
      ctx, SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION);
  if (SSL_CTX_set_min_proto_version(ctx, openssl_version(config.min_version, TLS1_2_VERSION)) !=
          1 ||
      SSL_CTX_set_max_proto_version(ctx, openssl_version(config.max_version, TLS1_3_VERSION)) !=
          1) {
    return Error{"invalid TLS protocol versions: " + last_openssl_error()};
  }
  if (!config.cipher_suites.empty()) {
    std::string list;
    for (const auto& c : config.cipher_suites) list += (list.empty() ? "" : ":") + c;
    if (SSL_CTX_set_cipher_list(ctx, list.c_str()) != 1) {
      return Error{"no usable cipher in cipher_suites '" + list + "': " + last_openssl_error()};
    }
  }
  asio::error_code ec;
  for (const auto& cert : config.certificates) {
    t->context_.use_certificate_chain(asio::buffer(cert.certificate_chain), ec);
    if (!ec)
      t->context_.use_private_key(asio::buffer(cert.private_key), asio::ssl::context::pem, ec);
    if (ec) return Error{"cannot use the certificate: " + ec.message()};
  }
  if (!config.trusted_ca.empty()) {
    t->context_.add_certificate_authority(asio::buffer(config.trusted_ca), ec);
    if (ec) return Error{"cannot use trusted_ca: " + ec.message()};
    // Without require_client_certificate a client may go without one (Envoy's behaviour); one it
    // presents must verify.
    int mode = SSL_VERIFY_PEER;
    if (config.require_client_certificate) mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(ctx, mode, nullptr);
  }
  // Session resumption: a server-side session cache, and tickets (OpenSSL's default).
  static const unsigned char kSessionContext[] = "sluice";
  SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof(kSessionContext) - 1);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
  SSL_CTX_set_alpn_select_cb(ctx, select_alpn, nullptr);
  return t;
}

TlsInfo tls_info_of(SSL* ssl) {
  TlsInfo info;
  if (!ssl) return info;
  info.version = SSL_get_version(ssl);
  const unsigned char* alpn = nullptr;
  unsigned int alpn_len = 0;
  SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
  if (alpn) info.alpn.assign(reinterpret_cast<const char*>(alpn), alpn_len);
  if (const char* sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name)) info.sni = sni;
  if (X509* local = SSL_get_certificate(ssl))
    info.local_subject = name_of(X509_get_subject_name(local));
  X509* peer = SSL_get1_peer_certificate(ssl);
  if (peer) {
    info.peer_certificate = SSL_get_verify_result(ssl) == X509_V_OK;
    info.peer_subject = name_of(X509_get_subject_name(peer));
    first_sans(peer, &info.peer_uri_san, &info.peer_dns_san);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (X509_digest(peer, EVP_sha256(), md, &n) == 1) {
      static const char kHex[] = "0123456789abcdef";
      for (unsigned int i = 0; i < n; ++i) {
        info.peer_sha256.push_back(kHex[md[i] >> 4]);
        info.peer_sha256.push_back(kHex[md[i] & 15]);
      }
    }
    X509_free(peer);
  }
  return info;
}

}  // namespace sluice::net
