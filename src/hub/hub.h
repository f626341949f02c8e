// The hub server's request handling: the OCI distribution API under /v2/ (what every registry
// client speaks: blobs, chunked uploads, manifests, tags, catalog, the Bearer token flow), the
// hub's own JSON API under /api/v1/ (search, extension pages, accounts, tokens, organisations,
// audit log) and the web UI's static files everywhere else.
//
// A pushed manifest is checked before anything of it is kept: every blob it names must be in the
// repository with its declared size, it must hold a Wasm module (either image variant), and the
// module must be valid WebAssembly with a Proxy-Wasm ABI marker. What the module needs (ABI,
// host and WASI functions) and the image's annotations (description, README, license...) are
// indexed for search.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>

#include <nlohmann/json_fwd.hpp>

#include "hub/auth.h"
#include "hub/blob_store.h"
#include "hub/http_server.h"
#include "hub/hub_store.h"

namespace sluice::hub {

struct HubOptions {
  // Where clients reach the hub, for the token realm and the snippets ("" → from the Host
  // header of each request).
  std::string public_url;
  uint64_t max_blob_bytes = 64ull * 1024 * 1024;  // a blob (a Wasm module) bigger is refused
  uint64_t max_manifest_bytes = 4 * 1024 * 1024;
  std::string web_dir;  // the web UI's built files ("" → none)
  int64_t registry_token_ttl = 300;
  int64_t default_token_ttl = 90 * 24 * 3600;
  int64_t upload_ttl = 24 * 3600;  // uploads left unfinished this long are dropped
  std::string service = "sluice-hub";
};

class Hub : public HttpService {
 public:
  Hub(HubStore& store, BlobStore& blobs, Authenticator& auth, HubOptions options);
  ~Hub() override;

  std::unique_ptr<Exchange> begin(HttpRequest& request) override;
  // Drops uploads started more than options.upload_ttl ago.
  void drop_stale_uploads(int64_t now);

  // For the upload exchanges (registry_api.cc).
  class UploadExchange;

 private:
  // --- /v2/ (registry_api.cc) ---
  std::unique_ptr<Exchange> registry(HttpRequest& request);
  std::unique_ptr<Exchange> token_endpoint(HttpRequest& request);
  HttpResponse catalog(const HttpRequest& request, const Identity& who);
  std::unique_ptr<Exchange> start_upload(HttpRequest& request, const Identity& who,
                                         const std::string& name);
  std::unique_ptr<Exchange> upload(HttpRequest& request, const Identity& who,
                                   const std::string& name, const std::string& id);
  HttpResponse get_blob(const HttpRequest& request, const std::string& name,
                        const std::string& digest);
  HttpResponse delete_blob(const HttpRequest& request, const Identity& who, const std::string& name,
                           const std::string& digest);
  HttpResponse get_manifest(const HttpRequest& request, const std::string& name,
                            const std::string& reference);
  HttpResponse put_manifest(const HttpRequest& request, const Identity& who,
                            const std::string& name, const std::string& reference,
                            std::string body);
  HttpResponse delete_manifest(const HttpRequest& request, const Identity& who,
                               const std::string& name, const std::string& reference);
  HttpResponse tags(const HttpRequest& request, const std::string& name);
  HttpResponse challenge(const HttpRequest& request, const std::string& scope,
                         const std::string& message);
  std::string realm(const HttpRequest& request) const;

  // --- /api/v1/ (web_api.cc) ---
  std::unique_ptr<Exchange> api(HttpRequest& request);
  HttpResponse api_search(const HttpRequest& request, const Identity& who);
  HttpResponse api_extension(const HttpRequest& request, const Identity& who,
                             const std::string& name);
  HttpResponse api_update_extension(const Identity& who, const std::string& name,
                                    const std::string& body);
  HttpResponse api_me(const Identity& who);
  HttpResponse api_tokens(const HttpRequest& request, const Identity& who, const std::string& body);
  HttpResponse api_users(const HttpRequest& request, const Identity& who, const std::string& body);
  HttpResponse api_orgs(const HttpRequest& request, const Identity& who, const std::string& rest,
                        const std::string& body);
  HttpResponse api_audit(const HttpRequest& request, const Identity& who);

  // --- static files ---
  HttpResponse static_file(const HttpRequest& request);

  // Uploads in progress, with their hash state; one request at a time per upload.
  std::unique_ptr<BlobStore::Upload> take_upload(const std::string& id, std::string* error);
  void return_upload(std::unique_ptr<BlobStore::Upload> upload);

  HubStore& store_;
  BlobStore& blobs_;
  Authenticator& auth_;
  HubOptions options_;
  std::mutex uploads_mutex_;
  std::unordered_map<std::string, std::unique_ptr<BlobStore::Upload>> uploads_;
  std::set<std::string> busy_uploads_;
};

// An OCI distribution error body: {"errors":[{"code","message","detail"}]}.
HttpResponse registry_error(int status, std::string_view code, std::string_view message);
// A JSON API error: {"error": message}.
HttpResponse api_error(int status, std::string_view message);
int64_t unix_now();

}  // namespace sluice::hub
