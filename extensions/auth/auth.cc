// auth: API-key or HTTP Basic authentication of each request, against keys and users in the
// configuration and/or an authorization service asked over http_call, whose verdicts are cached
// for a short while. A request without credentials gets 401 (with WWW-Authenticate); with wrong
// ones, 401 or 403 as configured. An accepted request goes upstream with x-auth-user set (and
// any x-auth-user the client sent replaced).
//
// Configuration (key = value lines):
//   mode = api_key               api_key (a header carries the key) or basic (Authorization)
//   header = x-api-key           api_key mode: the header holding the key
//   keys = k1:alice, k2:bob      api_key mode: keys and the user each stands for
//   users = alice:s3cret, bob:sha256:<hex>
//                                basic mode: passwords, plain or as SHA-256 hex
//   cluster = authsvc            ask this cluster about credentials not listed above: GET
//   path = /check                `path` with the credential header passed along; 200 accepts
//   timeout_ms = 1000            (x-auth-user from its answer names the user), anything else
//   cache_seconds = 30           rejects; verdicts are cached per VM for cache_seconds (0: off)
//   deny_status = 401            the status for wrong credentials: 401 or 403
//   realm = sluice               basic mode: the realm of the challenge
//   strip = true                 remove the credential header before the request goes upstream
// An unreachable service is 503 (nothing cached).
//
// Credentials are compared as SHA-256 digests in constant time; the cache is keyed by the
// digest, never the secret. Metrics: auth.<name>.allowed, .denied, .cache_hits.
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "../common/base64.h"
#include "../common/hmac_sha256.h"
#include "sluice/sdk.h"

namespace {

using ext_common::Digest;

std::string hex(const Digest& d) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (uint8_t b : d) {
    out += kHex[b >> 4];
    out += kHex[b & 15];
  }
  return out;
}

// The SDK's trim (spaces, tabs, CR, LF), as an owned string.
std::string trim(std::string_view s) { return std::string(sluice::trim(s)); }

std::string lower(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

// "a:x, b:y" -> {a: x, b: y} (values may hold ':' themselves).
std::optional<std::map<std::string, std::string>> parse_pairs(std::string_view text) {
  std::map<std::string, std::string> out;
  size_t start = 0;
  while (start < text.size()) {
    const size_t comma = std::min(text.find(',', start), text.size());
    const std::string item = trim(text.substr(start, comma - start));
    start = comma + 1;
    if (item.empty()) continue;
    const size_t colon = item.find(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == item.size()) return std::nullopt;
    out[item.substr(0, colon)] = item.substr(colon + 1);
  }
  return out;
}

class AuthRoot : public sluice::RootContext {
 public:
  using RootContext::RootContext;

  bool on_configure(size_t) override {
    for (auto& [key, value] : sluice::parse_key_value_lines(sluice::plugin_configuration())) {
      if (key == "mode") {
        if (value != "api_key" && value != "basic") return reject("mode is api_key or basic");
        basic = value == "basic";
      } else if (key == "header") {
        header = lower(value);
      } else if (key == "keys" || key == "users") {
        auto pairs = parse_pairs(value);
        if (!pairs) return reject(key + " is a list of name:value, separated by commas");
        (key == "keys" ? keys_text : users_text) = *pairs;
      } else if (key == "cluster") {
        cluster = value;
      } else if (key == "path") {
        path = value;
      } else if (key == "realm") {
        realm = value;
      } else if (key == "strip") {
        if (value != "true" && value != "false") return reject("strip is true or false");
        strip = value == "true";
      } else if (key == "timeout_ms" || key == "cache_seconds" || key == "deny_status") {
        auto n = sluice::parse_uint64(value);
        if (!n) return reject(key + " needs a number");
        if (key == "timeout_ms") timeout_ms = static_cast<uint32_t>(std::min<uint64_t>(*n, 600000));
        if (key == "cache_seconds") cache_ms = std::min<uint64_t>(*n, 86400) * 1000;
        if (key == "deny_status") {
          if (*n != 401 && *n != 403) return reject("deny_status is 401 or 403");
          deny_status = static_cast<uint32_t>(*n);
        }
      } else {
        return reject("unknown configuration key '" + key + "'");
      }
    }
    if (basic) header = "authorization";
    // Listed secrets are kept as digests: a request's credential is hashed and compared.
    for (const auto& [key, user] : keys_text) known_[hex(ext_common::sha256(key))] = user;
    for (const auto& [user, password] : users_text) {
      const std::string digest = password.rfind("sha256:", 0) == 0
                                     ? lower(password.substr(7))
                                     : hex(ext_common::sha256(password));
      if (digest.size() != 64) return reject("a sha256: password is 64 hex digits");
      known_[hex(ext_common::sha256(user + ":" + digest))] = user;
    }
    if (known_.empty() && cluster.empty()) return reject("give keys/users, a cluster, or both");
    const std::string name = sluice::plugin_name_or("auth");
    allowed = std::make_unique<sluice::Counter>("auth." + name + ".allowed");
    denied = std::make_unique<sluice::Counter>("auth." + name + ".denied");
    cache_hits = std::make_unique<sluice::Counter>("auth." + name + ".cache_hits");
    sluice::log_info("auth: {} mode, {} listed, {}", basic ? "basic" : "api_key", known_.size(),
                     cluster.empty() ? "no service" : "service " + cluster + path);
    return true;
  }

  // The user a credential digest stands for, from the list.
  std::optional<std::string> listed(const std::string& digest) const {
    auto it = known_.find(digest);
    return it == known_.end() ? std::nullopt : std::optional<std::string>(it->second);
  }

  // A cached service verdict: the user ("" for rejected), or nullopt when not cached.
  std::optional<std::string> cached(const std::string& digest) {
    auto it = cache_.find(digest);
    if (it == cache_.end()) return std::nullopt;
    if (it->second.expires_ms <= now_ms()) {
      cache_.erase(it);
      return std::nullopt;
    }
    cache_hits->increment();
    return it->second.user;
  }
  void remember(const std::string& digest, const std::string& user) {
    if (cache_ms == 0) return;
    if (cache_.size() >= 4096) cache_.clear();  // bounded: start over rather than grow
    cache_[digest] = {user, now_ms() + cache_ms};
  }

  bool basic = false, strip = false;
  std::string header = "x-api-key", cluster, path = "/check", realm = "sluice";
  uint32_t timeout_ms = 1000, deny_status = 401;
  uint64_t cache_ms = 30000;
  std::unique_ptr<sluice::Counter> allowed, denied, cache_hits;

 private:
  bool reject(const std::string& why) {
    sluice::log_error("auth: {}", why);
    return false;
  }
  static uint64_t now_ms() { return sluice::current_time_nanoseconds() / 1000000; }
  struct Verdict {
    std::string user;
    uint64_t expires_ms = 0;
  };
  std::map<std::string, std::string> keys_text, users_text;
  std::map<std::string, std::string> known_;  // credential digest -> user
  std::map<std::string, Verdict> cache_;
};

class AuthStream : public sluice::HttpContext {
 public:
  AuthStream(uint32_t id, AuthRoot* root) : HttpContext(id, root), root_(root) {}

  sluice::FilterHeadersStatus on_request_headers(uint32_t, bool) override {
    const sluice::HeaderMap headers = sluice::request_headers();
    headers.remove("x-auth-user");  // only this filter names the user
    credential_ = headers.get(root_->header);
    if (!credential_) return challenge("credentials required");
    std::string digest;
    if (root_->basic) {
      const std::string value = trim(*credential_);
      if (lower(value.substr(0, 6)) != "basic ") return challenge("Basic credentials required");
      std::optional<std::string> pair =
          ext_common::base64_decode(trim(std::string_view(value).substr(6)));
      const size_t colon = pair ? pair->find(':') : std::string::npos;
      if (colon == std::string::npos) return deny("malformed Basic credentials");
      digest = hex(ext_common::sha256(pair->substr(0, colon) + ":" +
                                      hex(ext_common::sha256(pair->substr(colon + 1)))));
    } else {
      digest = hex(ext_common::sha256(*credential_));
    }
    if (std::optional<std::string> user = root_->listed(digest)) return accept(*user);
    if (root_->cluster.empty()) return deny("invalid credentials");
    if (std::optional<std::string> user = root_->cached(digest)) {
      return user->empty() ? deny("invalid credentials") : accept(*user);
    }
    digest_ = digest;
    sluice::Pairs call = {{":method", "GET"},
                          {":path", root_->path},
                          {":authority", root_->cluster},
                          {root_->header, *credential_}};
    if (http_call(root_->cluster, call, "", {}, root_->timeout_ms,
                  [this](const sluice::HttpCallResponse& r) { decide(r); }) != sluice::Status::Ok) {
      sluice::send_local_response(503, "authorization service unavailable\n");
      return sluice::FilterHeadersStatus::StopIteration;
    }
    return sluice::FilterHeadersStatus::StopIteration;  // until the service answers
  }

 private:
  void decide(const sluice::HttpCallResponse& r) {
    if (r.failed()) {
      sluice::send_local_response(503, "authorization service unavailable\n");
      return;
    }
    if (r.status() != 200u) {
      root_->remember(digest_, "");
      deny("invalid credentials");
      return;
    }
    const std::string user = sluice::http_call_response_headers().get("x-auth-user").value_or("-");
    root_->remember(digest_, user);
    accept(user);
    sluice::continue_request();
  }

  sluice::FilterHeadersStatus accept(const std::string& user) {
    root_->allowed->increment();
    sluice::request_headers().replace("x-auth-user", user);
    if (root_->strip) sluice::request_headers().remove(root_->header);
    return sluice::FilterHeadersStatus::Continue;
  }

  sluice::FilterHeadersStatus challenge(const std::string& why) {
    root_->denied->increment();
    const std::string scheme = root_->basic ? "Basic realm=\"" + root_->realm + "\""
                                            : "ApiKey header=\"" + root_->header + "\"";
    sluice::send_local_response(401, why + "\n", {{"www-authenticate", scheme}});
    return sluice::FilterHeadersStatus::StopIteration;
  }

  sluice::FilterHeadersStatus deny(const std::string& why) {
    if (root_->deny_status == 401) return challenge(why);
    root_->denied->increment();
    sluice::send_local_response(403, why + "\n");
    return sluice::FilterHeadersStatus::StopIteration;
  }

  AuthRoot* root_;
  std::optional<std::string> credential_;
  std::string digest_;
};

sluice::RegisterContextFactory<AuthRoot, AuthStream> registration("auth");

}  // namespace
