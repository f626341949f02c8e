#include "oci/credentials.h"

#include <nlohmann/json.hpp>

#include "absl/strings/escaping.h"

#include "common/files.h"
#include "common/strings.h"

namespace sluice::oci {

std::string normalise_registry_key(std::string_view key) {
  if (key.substr(0, 8) == "https://") key.remove_prefix(8);
  if (key.substr(0, 7) == "http://") key.remove_prefix(7);
  key = key.substr(0, key.find('/'));
  if (key == "index.docker.io" || key == "registry-1.docker.io") return "docker.io";
  return std::string(key);
}

Result<CredentialStore> CredentialStore::load(const std::string& path) {
  Result<std::string> text = read_file(path);
  if (!text) return Error{str_cat("cannot read the credentials file ", path, ": ", text.error())};
  return parse(*text, path);
}

Result<CredentialStore> CredentialStore::parse(std::string_view json, std::string_view origin) {
  nlohmann::json doc = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return Error{str_cat(origin, ": not a JSON object (expected Docker's config.json format)")};
  }
  CredentialStore store;
  if (auto it = doc.find("credsStore"); it != doc.end() && it->is_string()) {
    store.default_helper_ = it->get<std::string>();
  }
  if (auto it = doc.find("credHelpers"); it != doc.end() && it->is_object()) {
    for (const auto& [host, helper] : it->items()) {
      if (helper.is_string())
        store.helpers_[normalise_registry_key(host)] = helper.get<std::string>();
    }
  }
  auto auths = doc.find("auths");
  if (auths == doc.end()) return store;
  if (!auths->is_object()) return Error{str_cat(origin, ": \"auths\" must be an object")};
  for (const auto& [key, entry] : auths->items()) {
    if (!entry.is_object())
      return Error{str_cat(origin, ": auths[\"", key, "\"] must be an object")};
    Credential c;
    if (auto a = entry.find("auth");
        a != entry.end() && a->is_string() && !a->get<std::string>().empty()) {
      const std::string encoded = a->get<std::string>();
      std::string decoded;
      if (!absl::Base64Unescape(absl::string_view(encoded.data(), encoded.size()), &decoded)) {
        return Error{str_cat(origin, ": auths[\"", key, "\"].auth is not base64")};
      }
      const size_t colon = decoded.find(':');
      if (colon == std::string::npos) {
        return Error{str_cat(origin, ": auths[\"", key, "\"].auth is not base64 of user:password")};
      }
      c.username = decoded.substr(0, colon);
      c.password = decoded.substr(colon + 1);
    } else {
      if (auto u = entry.find("username"); u != entry.end() && u->is_string()) {
        c.username = u->get<std::string>();
      }
      if (auto p = entry.find("password"); p != entry.end() && p->is_string()) {
        c.password = p->get<std::string>();
      }
    }
    // An entry with neither (Docker writes {} when a helper holds the secret) gives nothing.
    if (c.username.empty() && c.password.empty()) continue;
    store.auths_[normalise_registry_key(key)] = std::move(c);
  }
  return store;
}

std::optional<Credential> CredentialStore::find(std::string_view registry) const {
  auto it = auths_.find(normalise_registry_key(registry));
  if (it == auths_.end()) return std::nullopt;
  return it->second;
}

std::string CredentialStore::helper_note(std::string_view registry) const {
  const std::string key = normalise_registry_key(registry);
  if (auths_.count(key)) return {};
  std::string helper = default_helper_;
  if (auto it = helpers_.find(key); it != helpers_.end()) helper = it->second;
  if (helper.empty()) return {};
  return str_cat("the credentials for ", key,
                 " are kept by the credential helper docker-credential-", helper,
                 ", which Sluice does not run; add them to the file's \"auths\"");
}

void CredentialStore::set(std::string registry, Credential credential) {
  auths_[normalise_registry_key(registry)] = std::move(credential);
}

bool CredentialStore::erase(std::string_view registry) {
  return auths_.erase(normalise_registry_key(registry)) > 0;
}

std::string CredentialStore::to_json() const {
  nlohmann::json auths = nlohmann::json::object();
  for (const auto& [host, c] : auths_) {
    const std::string pair = str_cat(c.username, ":", c.password);
    auths[host] = {{"auth", absl::Base64Escape(absl::string_view(pair.data(), pair.size()))}};
  }
  return nlohmann::json{{"auths", auths}}.dump(2) + "\n";
}

void CredentialStore::merge_missing(const CredentialStore& other) {
  for (const auto& [host, c] : other.auths_) auths_.emplace(host, c);
  for (const auto& [host, h] : other.helpers_) helpers_.emplace(host, h);
  if (default_helper_.empty()) default_helper_ = other.default_helper_;
}

}  // namespace sluice::oci
