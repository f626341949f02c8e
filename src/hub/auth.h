// Who is calling the hub, and what they may do.
//
// Credentials:
//  - access tokens ("slh_<id>_<secret>"), made by `sluice hub user add` or the token API. Only
//    their sha256 is stored; each has a scope (read, push, admin) and an expiry. Sent as
//    "Authorization: Bearer <token>", or as the password of Basic auth (what `docker login`,
//    skopeo and `sluice ext login` send), with the user name beside it;
//  - registry tokens: what the registry Bearer flow (GET /v2/token) hands out for an access
//    token, or to anyone for anonymous reads: short-lived, signed with the hub's secret (HMAC),
//    naming the user and scope, so every hub on one database accepts them.
//
// Permissions are decided live from the database on each request: a namespace's owner (the user
// of that name, or an organisation's owners and maintainers) may push and delete; its readers
// may pull private repositories; anyone may pull public ones. An administrator's admin-scoped
// token may do everything.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"
#include "hub/hub_store.h"

namespace sluice::hub {

struct Identity {
  std::string user;    // "" for anonymous
  bool admin = false;  // an administrator, acting with an admin-scoped token
  Scope scope = Scope::Read;
  std::string token_id;  // the access token used, if any (not for registry tokens)

  bool anonymous() const { return user.empty(); }
  Viewer viewer() const { return Viewer{user, admin}; }
};

struct NewToken {
  std::string token;  // shown once
  TokenRecord record;
};
// A fresh access token for `user`; `ttl_seconds` from `now`.
NewToken make_access_token(const std::string& user, Scope scope, const std::string& description,
                           int64_t now, int64_t ttl_seconds);

// User and namespace names: lower-case letters, digits and single '-' inside, 2-39 characters
// (one path component of an OCI repository name, safe in URLs and files).
bool is_account_name(std::string_view name);

class Authenticator {
 public:
  Authenticator(HubStore& store, std::string secret) : store_(store), secret_(std::move(secret)) {}
  // From an Authorization header ("" → anonymous). An error means the credentials were given
  // but are wrong, expired or revoked (the reason is safe to show).
  Result<Identity> authenticate(std::string_view authorization, int64_t now);
  // A registry token for `who`, valid `ttl_seconds`.
  std::string registry_token(const Identity& who, int64_t now, int64_t ttl_seconds) const;

 private:
  Result<Identity> from_access_token(std::string_view user, std::string_view token, int64_t now);
  Result<Identity> from_registry_token(std::string_view token, int64_t now);
  std::string sign(std::string_view payload) const;
  HubStore& store_;
  std::string secret_;
};

struct Access {
  bool pull = false;
  bool push = false;    // push and delete
  bool exists = false;  // the repository has been pushed to
  bool namespace_exists = false;
  std::optional<Role> role;  // the caller's role in the repository's namespace
};
// What `who` may do with `repository` ("namespace/name...").
Result<Access> repository_access(HubStore& store, const Identity& who,
                                 const std::string& repository);
// The caller's role in namespace `ns` (Owner for their own user namespace and for admins).
Result<std::optional<Role>> namespace_role(HubStore& store, const Identity& who,
                                           const std::string& ns);

}  // namespace sluice::hub
