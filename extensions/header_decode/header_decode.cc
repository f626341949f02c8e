// header_decode: turns a base64url JSON header (a JWT's payload, or a header that is itself
// base64url JSON) into one request header per claim, x-claim-<name>, for the upstream and for
// the route match to read. Malformed input is refused with 400.
//
// The token's signature is not checked unless `hs256_key` is set: then only HS256 tokens whose
// HMAC-SHA-256 signature matches pass, `exp` and `nbf` are enforced, and anything else is 401.
// Without a key the claims are only as trustworthy as whoever set the header (a gateway that
// verified it, say).
//
// Whatever the client sent under the claim prefix is removed first, so claims cannot be forged
// by sending x-claim-* headers.
//
// Configuration (key = value lines, all optional):
//   header = authorization       the header to decode ("Bearer " is stripped when present)
//   prefix = x-claim-            the prefix of the headers written
//   claims = sub,iss,roles       only these claims (default: every top-level claim)
//   required = false             true: a request without the header gets 401
//   hs256_key = SECRET           check HS256 signatures with this key
//   max_claims = 32              at most this many headers are written
// Values: strings as they are, numbers as written, booleans as true/false, arrays of strings or
// numbers joined with ','; objects, null and other arrays are skipped. Control characters in a
// value become spaces; a claim name becomes lower-case letters, digits and '-'.
#include <algorithm>
#include <string>
#include <vector>

#include "../common/base64.h"
#include "../common/hmac_sha256.h"
#include "../common/json_object.h"
#include "sluice/sdk.h"

namespace {

using ext_common::JsonMember;

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// A header name from a claim name: lower-case letters, digits and '-'; "" if nothing is left.
std::string header_name_part(std::string_view claim) {
  std::string out;
  for (char c : lower(claim)) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    out.push_back(ok ? c : '-');
  }
  return out.find_first_not_of('-') == std::string::npos ? "" : out;
}

// A header value: no control characters (CR and LF above all), at most 4 KiB.
std::string header_value(std::string v) {
  if (v.size() > 4096) v.resize(4096);
  for (char& c : v) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  }
  return v;
}

class DecodeRoot : public sluice::RootContext {
 public:
  using RootContext::RootContext;
  bool on_configure(size_t) override {
    for (auto& [key, value] : sluice::parse_key_value_lines(sluice::plugin_configuration())) {
      if (key == "header") {
        header = lower(value);
      } else if (key == "prefix") {
        prefix = lower(value);
      } else if (key == "claims") {
        size_t start = 0;
        while (start <= value.size()) {
          const size_t comma = std::min(value.find(',', start), value.size());
          std::string name(value.substr(start, comma - start));
          name.erase(0, name.find_first_not_of(' '));
          name.erase(name.find_last_not_of(' ') + 1);
          if (!name.empty()) claims.push_back(name);
          start = comma + 1;
        }
      } else if (key == "required") {
        if (value != "true" && value != "false") {
          sluice::log_error("header_decode: required must be true or false");
          return false;
        }
        required = value == "true";
      } else if (key == "hs256_key") {
        hs256_key = value;
      } else if (key == "max_claims") {
        auto v = sluice::parse_uint64(value);
        if (!v || *v == 0 || *v > 256) {
          sluice::log_error("header_decode: max_claims must be 1 to 256");
          return false;
        }
        max_claims = static_cast<size_t>(*v);
      } else {
        sluice::log_error("header_decode: unknown configuration key '{}'", key);
        return false;
      }
    }
    if (header.empty() || prefix.empty()) {
      sluice::log_error("header_decode: header and prefix must not be empty");
      return false;
    }
    if (header.rfind(prefix, 0) == 0) {
      sluice::log_error("header_decode: the header '{}' starts with the prefix '{}'", header,
                        prefix);
      return false;
    }
    sluice::log_info("header_decode: {} -> {}*{}", header, prefix,
                     hs256_key.empty() ? " (signatures not checked)" : " (HS256 checked)");
    return true;
  }

  std::string header = "authorization", prefix = "x-claim-", hs256_key;
  std::vector<std::string> claims;
  bool required = false;
  size_t max_claims = 32;
  sluice::Counter decoded{"header_decode.decoded"};
  sluice::Counter rejected{"header_decode.rejected"};
};

class DecodeStream : public sluice::HttpContext {
 public:
  DecodeStream(uint32_t id, DecodeRoot* root) : HttpContext(id, root), root_(root) {}

  sluice::FilterHeadersStatus on_request_headers(uint32_t, bool) override {
    const sluice::HeaderMap headers = sluice::request_headers();
    // Claims come from the token only, never from the client directly.
    for (const auto& [name, value] : headers.pairs()) {
      if (name.rfind(root_->prefix, 0) == 0) headers.remove(name);
    }
    std::optional<std::string> raw = headers.get(root_->header);
    if (!raw) {
      if (root_->required) return refuse(401, "missing " + root_->header + " header");
      return sluice::FilterHeadersStatus::Continue;
    }
    std::string_view value = *raw;
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    if (value.size() > 7 && lower(value.substr(0, 7)) == "bearer ") value.remove_prefix(7);

    std::string_view payload = value;
    const size_t dot = value.find('.');
    const bool jwt = dot != std::string_view::npos;
    if (jwt) {
      const size_t second = value.find('.', dot + 1);
      if (second == std::string_view::npos ||
          value.find('.', second + 1) != std::string_view::npos) {
        return refuse(400, "malformed " + root_->header + ": a token has three parts");
      }
      payload = value.substr(dot + 1, second - dot - 1);
      if (!root_->hs256_key.empty()) {
        if (auto why = check_signature(value.substr(0, dot), value.substr(0, second),
                                       value.substr(second + 1))) {
          return refuse(401, *why);
        }
      }
    } else if (!root_->hs256_key.empty()) {
      return refuse(401, root_->header + " is not a signed token");
    }
    std::optional<std::string> json = ext_common::base64_decode(payload);
    if (!json) return refuse(400, "malformed " + root_->header + ": not base64url");
    std::string error;
    auto members = ext_common::parse_json_object(*json, &error);
    if (!members)
      return refuse(400, "malformed " + root_->header + ": not a JSON object (" + error + ")");
    if (!root_->hs256_key.empty()) {
      if (auto why = check_times(*members)) return refuse(401, *why);
    }
    size_t written = 0;
    for (const JsonMember& m : *members) {
      if (written >= root_->max_claims) break;
      if (!root_->claims.empty() &&
          std::find(root_->claims.begin(), root_->claims.end(), m.name) == root_->claims.end()) {
        continue;
      }
      std::optional<std::string> text = claim_text(m);
      const std::string name = header_name_part(m.name);
      if (!text || name.empty()) continue;
      headers.replace(root_->prefix + name, header_value(std::move(*text)));
      ++written;
    }
    root_->decoded.increment();
    return sluice::FilterHeadersStatus::Continue;
  }

 private:
  static std::optional<std::string> claim_text(const JsonMember& m) {
    switch (m.kind) {
      case JsonMember::Kind::String:
      case JsonMember::Kind::Number:
      case JsonMember::Kind::Bool:
        return m.value;
      case JsonMember::Kind::Array: {
        auto items = ext_common::scalar_array(m.value);
        if (!items) return std::nullopt;
        std::string joined;
        for (size_t i = 0; i < items->size(); ++i) joined += (i ? "," : "") + (*items)[i];
        return joined;
      }
      default:
        return std::nullopt;
    }
  }

  // Why the token's signature does not hold, or nullopt when it does.
  std::optional<std::string> check_signature(std::string_view header_part,
                                             std::string_view signed_part,
                                             std::string_view signature_part) {
    std::optional<std::string> header_json = ext_common::base64_decode(header_part);
    std::string error;
    auto header = header_json ? ext_common::parse_json_object(*header_json, &error) : std::nullopt;
    if (!header) return "malformed token header";
    bool hs256 = false;
    for (const JsonMember& m : *header) {
      if (m.name == "alg") hs256 = m.kind == JsonMember::Kind::String && m.value == "HS256";
    }
    if (!hs256) return std::string("the token is not signed with HS256");
    std::optional<std::string> signature = ext_common::base64_decode(signature_part);
    if (!signature || !ext_common::equal_digests(
                          ext_common::hmac_sha256(root_->hs256_key, signed_part), *signature)) {
      return std::string("invalid token signature");
    }
    return std::nullopt;
  }

  static std::optional<std::string> check_times(const std::vector<JsonMember>& claims) {
    const int64_t now = static_cast<int64_t>(sluice::current_time_nanoseconds() / 1000000000);
    for (const JsonMember& m : claims) {
      if ((m.name != "exp" && m.name != "nbf") || m.kind != JsonMember::Kind::Number) continue;
      const int64_t t = std::strtoll(m.value.c_str(), nullptr, 10);
      if (m.name == "exp" && now >= t) return std::string("the token has expired");
      if (m.name == "nbf" && now < t) return std::string("the token is not valid yet");
    }
    return std::nullopt;
  }

  sluice::FilterHeadersStatus refuse(uint32_t status, const std::string& why) {
    root_->rejected.increment();
    sluice::send_local_response(
        status, why + "\n",
        status == 401 ? sluice::Pairs{{"www-authenticate", "Bearer"}} : sluice::Pairs{});
    return sluice::FilterHeadersStatus::StopIteration;
  }

  DecodeRoot* root_;
};

sluice::RegisterContextFactory<DecodeRoot, DecodeStream> registration("header_decode");

}  // namespace
