#include "hub/auth.h"

#include <openssl/crypto.h>
#include <openssl/hmac.h>

#include <absl/strings/escaping.h>
#include <nlohmann/json.hpp>

#include "common/random.h"
#include "common/sha256.h"
#include "common/strings.h"

namespace sluice::hub {
namespace {

constexpr std::string_view kTokenPrefix = "slh_";

bool equal_constant_time(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace

NewToken make_access_token(const std::string& user, Scope scope, const std::string& description,
                           int64_t now, int64_t ttl_seconds) {
  NewToken t;
  t.record.id = random_hex(8);
  t.token = str_cat(kTokenPrefix, t.record.id, "_", random_hex(20));
  t.record.user = user;
  t.record.hash = sha256_hex(t.token);
  t.record.scope = scope;
  t.record.description = description;
  t.record.created = now;
  t.record.expires = now + ttl_seconds;
  return t;
}

bool is_account_name(std::string_view name) {
  if (name.size() < 2 || name.size() > 39) return false;
  if (name.front() == '-' || name.back() == '-') return false;
  char prev = 0;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
    if (!ok || (c == '-' && prev == '-')) return false;
    prev = c;
  }
  return true;
}

Result<Identity> Authenticator::authenticate(std::string_view authorization, int64_t now) {
  authorization = trim(authorization);
  if (authorization.empty()) return Identity{};
  if (starts_with_ignore_case(authorization, "basic ")) {
    std::string decoded;
    const std::string_view encoded = trim(authorization.substr(6));
    if (!absl::Base64Unescape(absl::string_view(encoded.data(), encoded.size()), &decoded)) {
      return Error{"the Basic credentials are not base64"};
    }
    const size_t colon = decoded.find(':');
    if (colon == std::string::npos) return Error{"the Basic credentials are not user:token"};
    return from_access_token(std::string_view(decoded).substr(0, colon),
                             std::string_view(decoded).substr(colon + 1), now);
  }
  if (starts_with_ignore_case(authorization, "bearer ")) {
    const std::string_view token = trim(authorization.substr(7));
    if (token.starts_with(kTokenPrefix)) return from_access_token("", token, now);
    return from_registry_token(token, now);
  }
  return Error{"unsupported authorization scheme (use Basic or Bearer)"};
}

Result<Identity> Authenticator::from_access_token(std::string_view user, std::string_view token,
                                                  int64_t now) {
  // slh_<16 hex id>_<40 hex secret>
  if (!token.starts_with(kTokenPrefix) || token.size() != 4 + 16 + 1 + 40 || token[20] != '_') {
    return Error{"invalid token (hub tokens look like slh_...)"};
  }
  const std::string id(token.substr(4, 16));
  Result<std::optional<TokenRecord>> record = store_.token(id);
  if (!record) return Error{record.error()};
  // One message for an unknown and a wrong token: neither tells a guesser anything.
  if (!record->has_value() || !equal_constant_time((*record)->hash, sha256_hex(token))) {
    return Error{"invalid or revoked token"};
  }
  const TokenRecord& t = **record;
  if (!user.empty() && user != t.user) return Error{"invalid or revoked token"};
  if (t.expires <= now) return Error{"the token has expired"};
  Result<std::optional<User>> account = store_.user(t.user);
  if (!account) return Error{account.error()};
  if (!account->has_value()) return Error{"the token's user no longer exists"};
  // Last use, at most once a minute per token (a push is dozens of requests).
  if (now - t.last_used >= 60) (void)store_.touch_token(t.id, now);
  Identity who;
  who.user = t.user;
  who.scope = t.scope;
  who.admin = (*account)->admin && t.scope == Scope::Admin;
  who.token_id = t.id;
  return who;
}

std::string Authenticator::sign(std::string_view payload) const {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret_.data(), static_cast<int>(secret_.size()),
       reinterpret_cast<const unsigned char*>(payload.data()), payload.size(), mac, &len);
  return absl::WebSafeBase64Escape(
      absl::string_view(reinterpret_cast<const char*>(mac), static_cast<size_t>(len)));
}

std::string Authenticator::registry_token(const Identity& who, int64_t now,
                                          int64_t ttl_seconds) const {
  const nlohmann::json claims = {{"sub", who.user},
                                 {"scope", scope_name(who.scope)},
                                 {"admin", who.admin},
                                 {"iat", now},
                                 {"exp", now + ttl_seconds}};
  const std::string payload = absl::WebSafeBase64Escape(claims.dump());
  return str_cat(payload, ".", sign(payload));
}

Result<Identity> Authenticator::from_registry_token(std::string_view token, int64_t now) {
  const size_t dot = token.find('.');
  if (dot == std::string_view::npos) return Error{"invalid token"};
  const std::string_view payload = token.substr(0, dot);
  if (!equal_constant_time(token.substr(dot + 1), sign(payload))) return Error{"invalid token"};
  std::string json;
  if (!absl::WebSafeBase64Unescape(absl::string_view(payload.data(), payload.size()), &json))
    return Error{"invalid token"};
  const nlohmann::json claims = nlohmann::json::parse(json, nullptr, false);
  if (!claims.is_object()) return Error{"invalid token"};
  if (claims.value("exp", int64_t{0}) <= now) return Error{"the token has expired"};
  Identity who;
  who.user = claims.value("sub", "");
  who.scope = parse_scope(claims.value("scope", "read")).value_or(Scope::Read);
  if (!who.user.empty()) {
    // A user removed since the token was signed loses access at once.
    Result<std::optional<User>> account = store_.user(who.user);
    if (!account) return Error{account.error()};
    if (!account->has_value()) return Error{"the token's user no longer exists"};
    who.admin = claims.value("admin", false) && (*account)->admin;
  }
  return who;
}

Result<std::optional<Role>> namespace_role(HubStore& store, const Identity& who,
                                           const std::string& ns) {
  if (who.admin) return std::optional<Role>(Role::Owner);
  if (who.anonymous()) return std::optional<Role>();
  if (ns == who.user) return std::optional<Role>(Role::Owner);
  return store.member_role(ns, who.user);
}

Result<Access> repository_access(HubStore& store, const Identity& who,
                                 const std::string& repository) {
  Access a;
  const std::string ns = repository.substr(0, repository.find('/'));
  Result<std::string> kind = store.namespace_kind(ns);
  if (!kind) return Error{kind.error()};
  a.namespace_exists = !kind->empty();
  Result<std::optional<RepositoryRecord>> repo = store.repository(repository);
  if (!repo) return Error{repo.error()};
  a.exists = repo->has_value();
  if (a.namespace_exists) {
    Result<std::optional<Role>> role = namespace_role(store, who, ns);
    if (!role) return Error{role.error()};
    a.role = *role;
  }
  a.push = a.namespace_exists && a.role && *a.role >= Role::Maintainer && who.scope >= Scope::Push;
  // Before its first manifest a repository is its pushers' alone (clients check which blobs
  // are there before uploading).
  a.pull = a.exists ? (!(*repo)->is_private || a.role.has_value()) : a.push;
  return a;
}

}  // namespace sluice::hub
