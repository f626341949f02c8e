// http_auth: asks an authorization service about each request before letting it through (the
// shape of the AssemblyScript SDK's auth example, and of Envoy's ext_authz over plain HTTP).
//
// On request headers it pauses the request and calls `cluster` with GET `path`, passing the
// request's method, path and Authorization header along. Then:
//   - 200: the request continues upstream, with the service's x-auth-user header copied onto it;
//   - any other status: the client gets 403 with the service's body;
//   - no answer (reset, timeout, no host): the client gets 503 "auth service unavailable".
// Requests whose path starts with `skip_prefix` (if set) are not checked.
//
// Configuration (key = value lines): cluster (required), path (default /check), authority
// (default auth), timeout_ms (default 1000), skip_prefix (optional).
#include <string>

#include "sluice/sdk.h"

namespace {

class AuthRoot : public sluice::RootContext {
 public:
  using RootContext::RootContext;
  bool on_configure(size_t) override {
    for (auto& [key, value] : sluice::parse_key_value_lines(sluice::plugin_configuration())) {
      if (key == "cluster") {
        cluster = value;
      } else if (key == "path") {
        path = value;
      } else if (key == "authority") {
        authority = value;
      } else if (key == "timeout_ms") {
        auto v = sluice::parse_uint64(value);
        if (!v || *v > 600000) {
          sluice::log_error("http_auth: timeout_ms must be a number of milliseconds up to 600000");
          return false;
        }
        timeout_ms = static_cast<uint32_t>(*v);
      } else if (key == "skip_prefix") {
        skip_prefix = value;
      } else {
        sluice::log_error("http_auth: unknown configuration key '{}'", key);
        return false;
      }
    }
    if (cluster.empty()) {
      sluice::log_error("http_auth: 'cluster' is required");
      return false;
    }
    return true;
  }
  std::string cluster, path = "/check", authority = "auth", skip_prefix;
  uint32_t timeout_ms = 1000;
};

class AuthStream : public sluice::HttpContext {
 public:
  AuthStream(uint32_t id, AuthRoot* root) : HttpContext(id, root), root_(root) {}

  sluice::FilterHeadersStatus on_request_headers(uint32_t, bool) override {
    const std::string path = sluice::request_headers().get(":path").value_or("/");
    if (!root_->skip_prefix.empty() && path.rfind(root_->skip_prefix, 0) == 0) {
      return sluice::FilterHeadersStatus::Continue;
    }
    sluice::Pairs headers = {
        {":method", "GET"},
        {":path", root_->path},
        {":authority", root_->authority},
        {"x-original-method", sluice::request_headers().get(":method").value_or("")},
        {"x-original-path", path}};
    if (auto auth = sluice::request_headers().get("authorization")) {
      headers.emplace_back("authorization", *auth);
    }
    const sluice::Status s = http_call(root_->cluster, headers, "", {}, root_->timeout_ms,
                                       [](const sluice::HttpCallResponse& r) { decide(r); });
    if (s != sluice::Status::Ok) {
      sluice::send_local_response(503, "auth service unavailable\n");
      return sluice::FilterHeadersStatus::StopIteration;
    }
    return sluice::FilterHeadersStatus::StopIteration;  // until the service answers
  }

 private:
  // Runs with this stream as the effective context (the SDK switches to it).
  static void decide(const sluice::HttpCallResponse& r) {
    if (r.failed()) {
      sluice::send_local_response(503, "auth service unavailable\n");
      return;
    }
    if (r.status() != 200u) {
      sluice::send_local_response(403, r.body());
      return;
    }
    if (auto user = sluice::http_call_response_headers().get("x-auth-user")) {
      sluice::request_headers().replace("x-auth-user", *user);
    }
    sluice::continue_request();
  }

  AuthRoot* root_;
};

sluice::RegisterContextFactory<AuthRoot, AuthStream> registration("http_auth");

}  // namespace
