// A client of the OCI distribution API (what Docker's registry, Harbor, GHCR, Quay, ECR and our
// hub speak), over libcurl: manifests and blobs by digest, checked on arrival, with the
// registries' auth dance (a 401 names a Bearer token service or asks for Basic credentials).
// Blocking: run it off any event loop (the proxy fetches module images on a thread of their own);
// one client per thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "oci/credentials.h"

namespace sluice::oci {

inline constexpr std::string_view kOciManifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr std::string_view kOciIndex = "application/vnd.oci.image.index.v1+json";
inline constexpr std::string_view kDockerManifest =
    "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr std::string_view kDockerManifestList =
    "application/vnd.docker.distribution.manifest.list.v2+json";

struct ClientOptions {
  bool plain_http = false;  // http:// instead of https:// (insecure_registries only)
  std::optional<Credential> credential;
  std::chrono::milliseconds timeout{30000};  // per HTTP request
  // Polled during transfers; true aborts the request in progress (an "cancelled" error).
  std::function<bool()> cancelled;
};

struct Manifest {
  std::string digest;      // "sha256:..." of `body`, as fetched
  std::string media_type;  // the document's mediaType, else the response's Content-Type
  std::string body;
};

// A WWW-Authenticate challenge: `Bearer realm="...",service="...",scope="..."` or `Basic ...`.
struct Challenge {
  std::string scheme;                         // lower case: "bearer", "basic"
  std::map<std::string, std::string> params;  // keys lower case, values unquoted
};
std::optional<Challenge> parse_challenge(std::string_view header);

class RegistryClient {
 public:
  RegistryClient(std::string registry, ClientOptions options);
  ~RegistryClient();
  RegistryClient(const RegistryClient&) = delete;
  RegistryClient& operator=(const RegistryClient&) = delete;

  // GET /v2/<repository>/manifests/<tag or digest>, accepting OCI and Docker manifests and
  // indexes. A reference by digest must hash to it.
  Result<Manifest> get_manifest(const std::string& repository, const std::string& reference);
  // GET /v2/<repository>/blobs/<digest>, at most `max_bytes`, checked against the digest.
  Result<std::string> get_blob(const std::string& repository, const std::string& digest,
                               size_t max_bytes);
  // Uploads a blob (skipped when the registry has it) in one POST + PUT.
  Status push_blob(const std::string& repository, std::string_view bytes);
  // PUT /v2/<repository>/manifests/<reference>; returns the manifest's digest.
  Result<std::string> push_manifest(const std::string& repository, const std::string& reference,
                                    std::string_view media_type, std::string_view body);
  // GET /v2/<repository>/tags/list.
  Result<std::vector<std::string>> list_tags(const std::string& repository);
  // GET /v2/_catalog (the repositories a registry lists; many hosted ones list none).
  Result<std::vector<std::string>> list_repositories();
  // GET /v2/: whether the registry speaks the API and takes our credentials.
  Status check_access();
  // A Sluice hub's search (GET /api/v1/search?q=&limit=), with our credentials as Basic auth
  // (which the hub takes): the JSON answer, or nullopt when the registry is not a hub.
  Result<std::optional<std::string>> search_hub(const std::string& query, int limit);

  const std::string& base_url() const { return base_url_; }
  // Whether the last call failed for a reason asking again will not change: the registry
  // answered 4xx (unknown manifest or blob, denied; not 408 or 429), or refused our credentials,
  // or wants an authentication we cannot give. Transport errors and 5xx are worth a retry.
  bool permanent_failure() const { return permanent_failure_; }

 private:
  struct Response {
    long status = 0;
    std::string body;
    std::map<std::string, std::string> headers;  // names lower case; the last of each kept
    std::string transport_error;                 // libcurl's, when no response came
    std::string effective_url;
  };
  enum class Method { kGet, kHead, kPost, kPut };
  struct Request {
    Method method = Method::kGet;
    std::string url;  // absolute, or a path under base_url_
    std::vector<std::string> headers;
    std::string_view body;
    size_t max_bytes = 4 * 1024 * 1024;
    std::string scope;  // "repository:<name>:pull" etc., for a Bearer token
  };

  // One exchange, following redirects; no auth logic.
  Response perform(const Request& request, const std::string& authorization);
  // perform() with the auth dance: on a 401, obtain a token (or use Basic credentials) for the
  // request's scope and try once more.
  Result<Response> send(const Request& request);
  Status authorize(const Challenge& challenge, const std::string& scope);
  // "HTTP 404 from <url>: MANIFEST_UNKNOWN: manifest unknown", from the registry's error body.
  // Also records whether the failure is permanent (permanent_failure()).
  std::string describe_failure(const Response& response, std::string_view what);

  std::string registry_;
  std::string base_url_;
  ClientOptions options_;
  void* curl_ = nullptr;                              // CURL*, reused for keep-alive
  std::map<std::string, std::string> auth_by_scope_;  // scope -> Authorization value
  bool permanent_failure_ = false;
};

}  // namespace sluice::oci
