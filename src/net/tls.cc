#include "net/tls.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cctype>
#include <cstring>

#include "absl/strings/str_join.h"
#include "common/strings.h"

namespace sluice::net {
namespace {

using Version = config::CommonTls::Version;

int openssl_version(Version v, int fallback) {
  switch (v) {
    case Version::Auto:
      return fallback;
    case Version::Tls10:
      return TLS1_VERSION;
    case Version::Tls11:
      return TLS1_1_VERSION;
    case Version::Tls12:
      return TLS1_2_VERSION;
    case Version::Tls13:
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

// ALPN: the server picks, in the order of its configured alpn_protocols, the first protocol the
// client offers and Sluice speaks (h2, http/1.1). Without alpn_protocols it offers http/1.1 only
// (a client must then use HTTP/1.1, as with Envoy). With no overlap the handshake goes on without
// ALPN, as OpenSSL servers do by default.
int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                unsigned int inlen, void* arg) {
  const auto* wire = static_cast<const std::string*>(arg);
  const auto* ours = reinterpret_cast<const unsigned char*>(wire->data());
  for (size_t i = 0; i < wire->size(); i += 1 + ours[i]) {
    for (unsigned int j = 0; j < inlen; j += 1u + in[j]) {
      if (in[j] == ours[i] && j + 1 + in[j] <= inlen &&
          std::memcmp(in + j + 1, ours + i + 1, in[j]) == 0) {
        *out = in + j + 1;
        *outlen = in[j];
        return SSL_TLSEXT_ERR_OK;
      }
    }
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

// The SSL_CTX ex_data slot holding the CommonTls config whose SAN matchers the peer's
// certificate must meet, client or server side (asio keeps its own verify callback in the app
// data slot).
int san_config_slot() {
  static const int slot = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return slot;
}

// The SSL_CTX ex_data slot holding an upstream context's TlsClientContext (for resumption).
int client_context_slot() {
  static const int slot = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return slot;
}

// OpenSSL's new-session callback on upstream connections: 1 keeps the reference we are given.
// The connection holds its TlsClientContext while it lives, so the pointer is good.
int on_new_client_session(SSL* ssl, SSL_SESSION* session) {
  auto* context = static_cast<TlsClientContext*>(
      SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), client_context_slot()));
  if (context == nullptr) return 0;
  context->remember_session(session);
  return 1;
}

// The SSL ex_data slot holding a connection's TlsServerHandshake.
int handshake_slot() {
  static const int slot = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return slot;
}

// The first host_name of the ClientHello's server_name extension (RFC 6066 section 3), lower
// case; "" when absent or malformed (OpenSSL rejects a malformed one itself later).
std::string client_hello_sni(SSL* ssl) {
  const unsigned char* p = nullptr;
  size_t len = 0;
  if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &len) != 1 || len < 2) return "";
  size_t list = (size_t{p[0]} << 8) | p[1];
  if (list + 2 != len) return "";
  size_t at = 2;
  while (at + 3 <= len) {
    const unsigned type = p[at];
    const size_t n = (size_t{p[at + 1]} << 8) | p[at + 2];
    at += 3;
    if (at + n > len) return "";
    if (type == TLSEXT_NAMETYPE_host_name) {
      std::string name(reinterpret_cast<const char*>(p + at), n);
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      return name;
    }
    at += n;
  }
  return "";
}

// Picks the filter chain by SNI before OpenSSL negotiates anything, so the chain's versions,
// ciphers, certificate and client-certificate policy all apply.
int on_client_hello(SSL* ssl, int* alert, void*) {
  auto* hs = static_cast<TlsServerHandshake*>(SSL_get_ex_data(ssl, handshake_slot()));
  if (!hs || !hs->chains) return SSL_CLIENT_HELLO_SUCCESS;
  const int chosen = hs->chains->select(client_hello_sni(ssl));
  if (chosen < 0) {
    hs->no_match = true;
    *alert = SSL_AD_UNRECOGNIZED_NAME;
    return SSL_CLIENT_HELLO_ERROR;
  }
  hs->chain = chosen;
  const TlsServerContext& chain = *hs->chains->chains[static_cast<size_t>(chosen)].context;
  SSL_CTX* ctx = const_cast<TlsServerContext&>(chain).context().native_handle();
  if (SSL_get_SSL_CTX(ssl) == ctx) return SSL_CLIENT_HELLO_SUCCESS;
  // SSL_set_SSL_CTX moves the certificate and the session id context; the chain's other
  // settings are copied by hand.
  SSL_set_SSL_CTX(ssl, ctx);
  SSL_set_verify(ssl, SSL_CTX_get_verify_mode(ctx), SSL_CTX_get_verify_callback(ctx));
  SSL_set_min_proto_version(ssl, SSL_CTX_get_min_proto_version(ctx));
  SSL_set_max_proto_version(ssl, SSL_CTX_get_max_proto_version(ctx));
  SSL_clear_options(ssl, SSL_get_options(ssl));
  SSL_set_options(ssl, SSL_CTX_get_options(ctx));
  const auto& ciphers = chain.config().cipher_suites;
  SSL_set_cipher_list(
      ssl, ciphers.empty() ? OSSL_default_cipher_list() : absl::StrJoin(ciphers, ":").c_str());
  return SSL_CLIENT_HELLO_SUCCESS;
}

// Versions and cipher suites, shared by both sides.
Status apply_common(SSL_CTX* ctx, const config::CommonTls& config) {
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  if (SSL_CTX_set_min_proto_version(ctx, openssl_version(config.min_version, TLS1_2_VERSION)) !=
          1 ||
      SSL_CTX_set_max_proto_version(ctx, openssl_version(config.max_version, TLS1_3_VERSION)) !=
          1) {
    return Error{"invalid TLS protocol versions: " + last_openssl_error()};
  }
  if (!config.cipher_suites.empty()) {
    const std::string list = absl::StrJoin(config.cipher_suites, ":");
    if (SSL_CTX_set_cipher_list(ctx, list.c_str()) != 1) {
      return Error{"no usable cipher in cipher_suites '" + list + "': " + last_openssl_error()};
    }
  }
  return {};
}

Status use_material(asio::ssl::context& context, const config::CommonTls& config) {
  asio::error_code ec;
  for (const auto& cert : config.certificates) {
    context.use_certificate_chain(asio::buffer(cert.certificate_chain), ec);
    if (!ec) context.use_private_key(asio::buffer(cert.private_key), asio::ssl::context::pem, ec);
    if (ec) return Error{"cannot use the certificate: " + ec.message()};
  }
  if (!config.trusted_ca.empty()) {
    // Every certificate of the bundle (asio's add_certificate_authority takes the first only).
    BIO* bio =
        BIO_new_mem_buf(config.trusted_ca.data(), static_cast<int>(config.trusted_ca.size()));
    X509_STORE* store = SSL_CTX_get_cert_store(context.native_handle());
    size_t added = 0;
    while (X509* ca = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
      if (X509_STORE_add_cert(store, ca) == 1) ++added;
      X509_free(ca);
    }
    BIO_free(bio);
    ERR_clear_error();  // the read that ends the loop leaves "no start line"
    if (added == 0) return Error{"trusted_ca holds no usable certificate"};
  }
  return {};
}

// DNS SAN `san` (possibly "*.example.com") against the expected name `want`.
bool dns_san_matches(std::string_view san, std::string_view want) {
  auto iequal = [](std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
             return std::tolower(static_cast<unsigned char>(x)) ==
                    std::tolower(static_cast<unsigned char>(y));
           });
  };
  if (iequal(san, want)) return true;
  if (san.size() > 2 && san.substr(0, 2) == "*.") {
    const size_t dot = want.find('.');
    return dot != std::string_view::npos && dot > 0 && iequal(san.substr(1), want.substr(dot));
  }
  return false;
}

// The peer's certificate (an upstream's, or a client's on a listener) must carry one of the
// configured SANs: checked on the leaf, after OpenSSL verified the chain.
int verify_peer_san(int preverified, X509_STORE_CTX* store) {
  if (!preverified || X509_STORE_CTX_get_error_depth(store) != 0) return preverified;
  auto* ssl =
      static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  const auto* config = ssl ? static_cast<const config::CommonTls*>(
                                 SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), san_config_slot()))
                           : nullptr;
  if (!config) return 1;
  const auto& cfg = *config;
  if (cfg.match_dns_san.empty() && cfg.match_uri_san.empty()) return 1;
  X509* cert = X509_STORE_CTX_get_current_cert(store);
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  bool ok = false;
  for (int i = 0; names && !ok && i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* n = sk_GENERAL_NAME_value(names, i);
    if (n->type != GEN_DNS && n->type != GEN_URI) continue;
    const ASN1_STRING* s = n->type == GEN_URI ? n->d.uniformResourceIdentifier : n->d.dNSName;
    const std::string_view value(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                 static_cast<size_t>(ASN1_STRING_length(s)));
    if (n->type == GEN_DNS) {
      for (const auto& want : cfg.match_dns_san) ok = ok || dns_san_matches(value, want);
    } else {
      for (const auto& want : cfg.match_uri_san) ok = ok || value == want;
    }
  }
  GENERAL_NAMES_free(names);
  if (!ok) X509_STORE_CTX_set_error(store, X509_V_ERR_HOSTNAME_MISMATCH);
  return ok ? 1 : 0;
}

}  // namespace

bool server_name_matches(std::string_view pattern, std::string_view sni) {
  if (pattern.size() > 2 && pattern.substr(0, 2) == "*.") {
    const std::string_view suffix = pattern.substr(1);  // ".example.com"
    return sni.size() > suffix.size() && sni.substr(sni.size() - suffix.size()) == suffix;
  }
  return pattern == sni;
}

int TlsFilterChains::select(std::string_view sni) const {
  int best = -1, fallback = -1;
  size_t best_len = 0;
  for (size_t i = 0; i < chains.size(); ++i) {
    if (chains[i].plaintext) continue;
    if (chains[i].server_names.empty()) {
      if (fallback < 0) fallback = static_cast<int>(i);
      continue;
    }
    if (sni.empty()) continue;
    for (const auto& pattern : chains[i].server_names) {
      if (!server_name_matches(pattern, sni)) continue;
      // An exact name beats every wildcard; a longer suffix beats a shorter one.
      const size_t score = pattern[0] == '*' ? pattern.size() : std::string::npos;
      if (best < 0 || score > best_len) {
        best = static_cast<int>(i);
        best_len = score;
      }
    }
  }
  return best >= 0 ? best : fallback;
}

Result<std::shared_ptr<const TlsFilterChains>> TlsFilterChains::build(
    const std::vector<config::FilterChain>& filter_chains) {
  auto out = std::make_shared<TlsFilterChains>();
  for (size_t i = 0; i < filter_chains.size(); ++i) {
    const auto& fc = filter_chains[i];
    if (!fc.tls) {
      out->chains.push_back(Chain{{}, nullptr, /*plaintext=*/true});
      continue;
    }
    auto context = TlsServerContext::create(*fc.tls, i);
    if (!context) {
      return Error{filter_chains.size() > 1
                       ? "filter chain " + std::to_string(i) + ": " + context.error()
                       : context.error()};
    }
    out->chains.push_back(Chain{fc.server_names, std::move(*context)});
  }
  if (std::none_of(out->chains.begin(), out->chains.end(),
                   [](const Chain& c) { return !c.plaintext; })) {
    return Error{"no filter chain has TLS"};
  }
  return std::shared_ptr<const TlsFilterChains>(std::move(out));
}

void attach_server_handshake(SSL* ssl, TlsServerHandshake* handshake) {
  SSL_set_ex_data(ssl, handshake_slot(), handshake);
}

Result<std::shared_ptr<TlsServerContext>> TlsServerContext::create(
    const config::DownstreamTls& config, size_t chain_index) {
  std::shared_ptr<TlsServerContext> t(new TlsServerContext(config));
  SSL_CTX* ctx = t->context_.native_handle();
  if (Status st = apply_common(ctx, config); !st) return Error{st.error()};
  SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
  if (Status st = use_material(t->context_, config); !st) return Error{st.error()};
  if (!config.trusted_ca.empty()) {
    // Without require_client_certificate a client may go without one (Envoy's behaviour); one it
    // presents must verify.
    int mode = SSL_VERIFY_PEER;
    if (config.require_client_certificate) mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_ex_data(ctx, san_config_slot(), &t->config_);
    SSL_CTX_set_verify(ctx, mode, verify_peer_san);
  }
  // Session resumption: a server-side session cache and tickets (OpenSSL's default), each
  // chain with its own session id context.
  const std::string session_context = "sluice/" + std::to_string(chain_index);
  SSL_CTX_set_session_id_context(ctx,
                                 reinterpret_cast<const unsigned char*>(session_context.data()),
                                 static_cast<unsigned int>(session_context.size()));
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
  for (const std::string& p : config.alpn_protocols) {
    if (p == "h2" || p == "http/1.1") {
      t->alpn_wire_.push_back(static_cast<char>(p.size()));
      t->alpn_wire_.append(p);
    }
  }
  if (config.alpn_protocols.empty()) t->alpn_wire_ = std::string("\x08http/1.1", 9);
  SSL_CTX_set_alpn_select_cb(ctx, select_alpn, &t->alpn_wire_);
  SSL_CTX_set_client_hello_cb(ctx, on_client_hello, nullptr);
  return t;
}

Result<std::shared_ptr<TlsClientContext>> TlsClientContext::create(
    const config::UpstreamTls& config, bool http2) {
  std::shared_ptr<TlsClientContext> t(new TlsClientContext(config));
  SSL_CTX* ctx = t->context_.native_handle();
  if (Status st = apply_common(ctx, config); !st) return Error{st.error()};
  if (Status st = use_material(t->context_, config); !st) return Error{st.error()};
  // As Envoy: without a trusted CA the upstream's certificate is not verified.
  if (!config.trusted_ca.empty()) {
    SSL_CTX_set_ex_data(ctx, san_config_slot(), &t->config_);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, verify_peer_san);
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  }
  // Resumption: OpenSSL hands each session the upstream issues (TLS 1.2 tickets or ids, TLS 1.3
  // tickets after the handshake) to on_new_client_session; prepare() offers the latest.
  if (config.max_session_keys > 0) {
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_set_ex_data(ctx, client_context_slot(), t.get());
    SSL_CTX_sess_set_new_cb(ctx, on_new_client_session);
  } else {
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  }
  // ALPN offers the one protocol the cluster's codec speaks.
  if (http2) {
    static const unsigned char kH2[] = {2, 'h', '2'};
    SSL_CTX_set_alpn_protos(ctx, kH2, sizeof(kH2));
  } else if (!config.alpn_protocols.empty()) {
    static const unsigned char kHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    SSL_CTX_set_alpn_protos(ctx, kHttp11, sizeof(kHttp11));
  }
  return t;
}

TlsClientContext::~TlsClientContext() {
  for (SSL_SESSION* session : sessions_) SSL_SESSION_free(session);
}

void TlsClientContext::prepare(SSL* ssl) {
  if (!config_.sni.empty()) SSL_set_tlsext_host_name(ssl, config_.sni.c_str());
  if (config_.max_session_keys == 0) return;
  std::lock_guard<std::mutex> lock(sessions_mutex_);
  if (sessions_.empty()) return;
  // Each connection gets its own copy: OpenSSL marks a connection's session unresumable when the
  // connection ends in an error (an upstream closing without close_notify, say), and a shared
  // object would take the stored one with it.
  SSL_SESSION* copy = SSL_SESSION_dup(sessions_.front());
  if (copy == nullptr) return;
  SSL_set_session(ssl, copy);  // takes its own reference
  SSL_SESSION_free(copy);
}

void TlsClientContext::remember_session(SSL_SESSION* session) {
  // A copy, for the reason prepare() gives.
  SSL_SESSION* copy = SSL_SESSION_dup(session);
  SSL_SESSION_free(session);
  if (copy == nullptr) return;
  std::lock_guard<std::mutex> lock(sessions_mutex_);
  sessions_.push_front(copy);
  while (sessions_.size() > config_.max_session_keys) {
    SSL_SESSION_free(sessions_.back());
    sessions_.pop_back();
  }
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
  info.session_reused = SSL_session_reused(ssl) == 1;
  if (X509* local = SSL_get_certificate(ssl)) {
    info.local_subject = name_of(X509_get_subject_name(local));
    std::string ignored_dns;
    first_sans(local, &info.local_uri_san, &ignored_dns);
  }
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
