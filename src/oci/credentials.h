// Registry credentials from Docker-style config files ({"auths": {"host": {"auth": base64 of
// "user:password"}}} or "username"/"password" fields): Docker's ~/.docker/config.json, Podman's
// auth.json, and the file `sluice.oci.credentials_file` names. Credential helpers (credsStore,
// credHelpers) are programs Sluice does not run; a host they alone cover reports that.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace sluice::oci {

struct Credential {
  std::string username;
  std::string password;
};

class CredentialStore {
 public:
  // Reads a config file; an unreadable file or bad JSON is an error (with the path).
  static Result<CredentialStore> load(const std::string& path);
  static Result<CredentialStore> parse(std::string_view json, std::string_view origin);

  // The credential for a registry host[:port]; keys may be written as URLs
  // ("https://host/v1/"), as Docker writes Docker Hub's.
  std::optional<Credential> find(std::string_view registry) const;
  // Why `find` has nothing for a host another tool could authenticate (a credential helper), or
  // empty.
  std::string helper_note(std::string_view registry) const;

  void set(std::string registry, Credential credential);
  bool erase(std::string_view registry);  // false when it had none
  bool empty() const { return auths_.empty(); }
  // {"auths": {...}} in Docker's format (auth = base64 of user:password).
  std::string to_json() const;
  // Entries of `other` not in this store are added (this store's win).
  void merge_missing(const CredentialStore& other);

 private:
  std::map<std::string, Credential, std::less<>> auths_;     // by normalised host[:port]
  std::map<std::string, std::string, std::less<>> helpers_;  // host -> helper program
  std::string default_helper_;                               // credsStore
};

// "https://host:port/v1/" -> "host:port"; Docker Hub's names -> "docker.io".
std::string normalise_registry_key(std::string_view key);

}  // namespace sluice::oci
