// The OCI distribution API (/v2/) of the hub: see hub.h.
#include <re2/re2.h>

#include <chrono>
#include <ctime>

#include <absl/strings/escaping.h>
#include <absl/strings/numbers.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "common/sha256.h"
#include "common/strings.h"
#include "hub/hub.h"
#include "oci/json_fields.h"
#include "oci/registry_client.h"
#include "oci/wasm_image.h"
#include "wasm/module_check.h"
#include "wasm/vm/wasm_vm.h"

namespace sluice::hub {

using nlohmann::json;
using oci::string_field;

namespace {

// Repository names as the distribution spec defines them, and the routes under a name.
constexpr char kNamePattern[] =
    "[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*";
const RE2& route_pattern() {
  static const RE2 re(str_cat("^/v2/(", kNamePattern,
                              ")/(blobs/uploads/?|blobs/uploads/([^/]+)|blobs/([^/]+)|"
                              "manifests/([^/]+)|tags/list)$"));
  return re;
}
// Anything shaped like a registry route, to tell a bad name (400) from an unknown path (404).
const RE2& loose_route_pattern() {
  static const RE2 re("^/v2/.+/(blobs|manifests|tags)/.*$");
  return re;
}
const RE2& tag_pattern() {
  static const RE2 re("^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$");
  return re;
}

std::string rfc3339(int64_t t) {
  char buf[32];
  const std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

AuditEntry audit_entry(const HttpRequest& request, const Identity& who, std::string action,
                       std::string repository, std::string reference, std::string digest) {
  AuditEntry e;
  e.time = unix_now();
  e.actor = who.anonymous() ? "anonymous" : who.user;
  e.action = std::move(action);
  e.repository = std::move(repository);
  e.reference = std::move(reference);
  e.digest = std::move(digest);
  e.remote = request.remote;
  return e;
}

std::string upload_location(const std::string& name, const std::string& id) {
  return str_cat("/v2/", name, "/blobs/uploads/", id);
}

HttpResponse upload_status(int status, const std::string& name, const std::string& id,
                           uint64_t size) {
  HttpResponse r;
  r.status = status;
  r.header("location", upload_location(name, id));
  r.header("range", str_cat("0-", size == 0 ? 0 : size - 1));
  r.header("docker-upload-uuid", id);
  return r;
}

HttpResponse blob_created(const std::string& name, const std::string& digest) {
  HttpResponse r;
  r.status = 201;
  r.header("location", str_cat("/v2/", name, "/blobs/", digest));
  r.header("docker-content-digest", digest);
  return r;
}

json string_array(const std::vector<std::string>& v) {
  json a = json::array();
  for (const auto& s : v) a.push_back(s);
  return a;
}

}  // namespace

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

HttpResponse registry_error(int status, std::string_view code, std::string_view message) {
  return HttpResponse::json(
      status, json{{"errors", json::array({json{{"code", code}, {"message", message}}})}});
}

// --- routing and authorization ----------------------------------------------------------------

std::string Hub::realm(const HttpRequest& request) const {
  if (!options_.public_url.empty()) return str_cat(options_.public_url, "/v2/token");
  const std::string_view host = request.host();
  return str_cat(request.tls ? "https://" : "http://", host.empty() ? "localhost" : host,
                 "/v2/token");
}

HttpResponse Hub::challenge(const HttpRequest& request, const std::string& scope,
                            const std::string& message) {
  HttpResponse r = registry_error(401, "UNAUTHORIZED", message);
  std::string value =
      str_cat("Bearer realm=\"", realm(request), "\",service=\"", options_.service, "\"");
  if (!scope.empty()) str_append(&value, ",scope=\"", scope, "\"");
  r.header("www-authenticate", value);
  return r;
}

std::unique_ptr<Exchange> Hub::registry(HttpRequest& request) {
  const std::string& path = request.path;
  if (path == "/v2/token") return token_endpoint(request);

  Result<Identity> who = auth_.authenticate(request.header("authorization"), unix_now());
  if (!who) return respond_now(challenge(request, "", who.error()));

  if (path == "/v2/" || path == "/v2") {
    // Clients probe here for the auth scheme: anonymous callers get the challenge.
    if (who->anonymous()) {
      return respond_now(challenge(request, "", "authentication required"));
    }
    HttpResponse r = HttpResponse::json(200, json::object());
    r.header("docker-distribution-api-version", "registry/2.0");
    return respond_now(std::move(r));
  }
  if (path == "/v2/_catalog") {
    if (request.method != "GET" && request.method != "HEAD") {
      return respond_now(registry_error(405, "UNSUPPORTED", "use GET"));
    }
    return respond_now(catalog(request, *who));
  }

  std::string name, route, upload_id, blob_digest, reference;
  if (!RE2::FullMatch(path, route_pattern(), &name, &route, &upload_id, &blob_digest, &reference)) {
    if (RE2::FullMatch(path, loose_route_pattern(), nullptr)) {
      return respond_now(registry_error(
          400, "NAME_INVALID",
          "invalid repository name: lower-case letters, digits and separators (. _ - /), "
          "as namespace/name"));
    }
    return respond_now(registry_error(404, "NOT_FOUND", str_cat("no such endpoint: ", path)));
  }
  if (name.find('/') == std::string::npos) {
    return respond_now(registry_error(
        400, "NAME_INVALID",
        str_cat("a hub repository is namespace/name (a user or organisation, then the "
                "extension): ",
                name)));
  }
  const std::string& method = request.method;
  const bool read = method == "GET" || method == "HEAD";
  Result<Access> access = repository_access(store_, *who, name);
  if (!access) {
    spdlog::error("hub: {}", access.error());
    return respond_now(registry_error(500, "UNKNOWN", "the hub's database failed"));
  }
  if (read) {
    if (!access->pull) {
      if (who->anonymous()) {
        return respond_now(
            challenge(request, str_cat("repository:", name, ":pull"), "authentication required"));
      }
      return respond_now(
          registry_error(404, "NAME_UNKNOWN", str_cat("repository ", name, " not found")));
    }
  } else if (!access->push) {
    if (who->anonymous()) {
      return respond_now(challenge(request, str_cat("repository:", name, ":pull,push"),
                                   "authentication required"));
    }
    const std::string ns = name.substr(0, name.find('/'));
    std::string why;
    if (!access->namespace_exists) {
      why = str_cat("there is no user or organisation ", ns, " to push under");
    } else if (!access->role || *access->role < Role::Maintainer) {
      why = str_cat(who->user, " may not push to ", ns,
                    " (an owner or maintainer of the namespace may)");
    } else {
      why = str_cat("the token's scope is ", scope_name(who->scope),
                    ": pushing and deleting need a push or admin token");
    }
    return respond_now(registry_error(403, "DENIED", why));
  }

  if (route.starts_with("blobs/uploads")) {
    if (upload_id.empty()) {
      if (method != "POST") return respond_now(registry_error(405, "UNSUPPORTED", "use POST"));
      return start_upload(request, *who, name);
    }
    return upload(request, *who, name, upload_id);
  }
  if (!blob_digest.empty()) {
    if (!is_digest(blob_digest)) {
      return respond_now(
          registry_error(400, "DIGEST_INVALID", str_cat("not a sha256 digest: ", blob_digest)));
    }
    if (read) return respond_now(get_blob(request, name, blob_digest));
    if (method == "DELETE") return respond_now(delete_blob(request, *who, name, blob_digest));
    return respond_now(registry_error(405, "UNSUPPORTED", "use GET, HEAD or DELETE"));
  }
  if (!reference.empty()) {
    if (!is_digest(reference) && !RE2::FullMatch(reference, tag_pattern())) {
      return respond_now(
          registry_error(400, reference.starts_with("sha256:") ? "DIGEST_INVALID" : "TAG_INVALID",
                         str_cat("not a tag or a sha256 digest: ", reference)));
    }
    if (read) return respond_now(get_manifest(request, name, reference));
    if (method == "DELETE") return respond_now(delete_manifest(request, *who, name, reference));
    if (method == "PUT") {
      const Identity caller = *who;
      const HttpRequest* req = &request;
      return collect_body(
          options_.max_manifest_bytes,
          [this, caller, req, name, reference](std::string body) {
            return put_manifest(*req, caller, name, reference, std::move(body));
          },
          [](size_t limit) {
            return registry_error(413, "MANIFEST_INVALID",
                                  str_cat("manifests are limited to ", limit, " bytes"));
          });
    }
    return respond_now(registry_error(405, "UNSUPPORTED", "use GET, HEAD, PUT or DELETE"));
  }
  if (!read) return respond_now(registry_error(405, "UNSUPPORTED", "use GET"));
  return respond_now(tags(request, name));
}

// --- the token endpoint (the registry Bearer flow) --------------------------------------------

std::unique_ptr<Exchange> Hub::token_endpoint(HttpRequest& request) {
  const int64_t now = unix_now();
  auto issue = [this, now](const Identity& who) {
    const std::string token = auth_.registry_token(who, now, options_.registry_token_ttl);
    return HttpResponse::json(200, json{{"token", token},
                                        {"access_token", token},
                                        {"expires_in", options_.registry_token_ttl},
                                        {"issued_at", rfc3339(now)}});
  };
  if (request.method == "GET") {
    Result<Identity> who = auth_.authenticate(request.header("authorization"), now);
    if (!who) return respond_now(registry_error(401, "UNAUTHORIZED", who.error()));
    return respond_now(issue(*who));
  }
  if (request.method == "POST") {
    // OAuth2's password grant (form-encoded), as Docker clients send it.
    return collect_body(
        64 * 1024,
        [this, now, issue](std::string body) {
          HttpRequest form;
          form.query = body;
          const std::string grant = form.param("grant_type");
          if (grant != "password") {
            return registry_error(400, "UNSUPPORTED",
                                  "only grant_type=password is supported (or GET with Basic)");
          }
          const std::string basic = str_cat(
              "Basic ",
              absl::Base64Escape(str_cat(form.param("username"), ":", form.param("password"))));
          Result<Identity> who = auth_.authenticate(basic, now);
          if (!who) return registry_error(401, "UNAUTHORIZED", who.error());
          return issue(*who);
        },
        [](size_t) { return registry_error(413, "UNSUPPORTED", "the form is too large"); });
  }
  return respond_now(registry_error(405, "UNSUPPORTED", "use GET or POST"));
}

// --- catalog and tags ---------------------------------------------------------------------------

namespace {
int64_t page_size(const HttpRequest& request) {
  const std::string n = request.param("n");
  if (n.empty()) return 100;
  try {
    return std::clamp<int64_t>(std::stoll(n), 0, 1000);
  } catch (...) {
    return 100;
  }
}
}  // namespace

HttpResponse Hub::catalog(const HttpRequest& request, const Identity& who) {
  const int64_t n = page_size(request);
  Result<std::vector<std::string>> names = store_.catalog(who.viewer(), request.param("last"), n);
  if (!names) return registry_error(500, "UNKNOWN", names.error());
  HttpResponse r = HttpResponse::json(200, json{{"repositories", string_array(*names)}});
  if (n > 0 && static_cast<int64_t>(names->size()) == n) {
    r.header("link", str_cat("</v2/_catalog?n=", n, "&last=", url_encode(names->back()),
                             ">; rel=\"next\""));
  }
  return r;
}

HttpResponse Hub::tags(const HttpRequest& request, const std::string& name) {
  const int64_t n = page_size(request);
  Result<std::vector<TagRecord>> list = store_.tags(name, request.param("last"), n);
  if (!list) return registry_error(500, "UNKNOWN", list.error());
  json names = json::array();
  for (const TagRecord& t : *list) names.push_back(t.tag);
  HttpResponse r = HttpResponse::json(200, json{{"name", name}, {"tags", names}});
  if (n > 0 && static_cast<int64_t>(list->size()) == n) {
    r.header("link", str_cat("</v2/", name, "/tags/list?n=", n,
                             "&last=", url_encode(list->back().tag), ">; rel=\"next\""));
  }
  return r;
}

// --- blobs and uploads ------------------------------------------------------------------------

std::unique_ptr<BlobStore::Upload> Hub::take_upload(const std::string& id, std::string* error) {
  std::lock_guard lock(uploads_mutex_);
  if (busy_uploads_.count(id)) {
    *error = "another request is writing to this upload";
    return nullptr;
  }
  std::unique_ptr<BlobStore::Upload> upload;
  if (auto it = uploads_.find(id); it != uploads_.end()) {
    upload = std::move(it->second);
    uploads_.erase(it);
  } else {
    // Started before a restart: its hash is rebuilt from the file.
    Result<std::unique_ptr<BlobStore::Upload>> resumed = blobs_.resume_upload(id);
    if (!resumed) {
      *error = resumed.error();
      return nullptr;
    }
    upload = std::move(*resumed);
  }
  busy_uploads_.insert(id);
  return upload;
}

void Hub::return_upload(std::unique_ptr<BlobStore::Upload> upload) {
  std::lock_guard lock(uploads_mutex_);
  busy_uploads_.erase(upload->id());
  uploads_[upload->id()] = std::move(upload);
}

// Streams a request body into an upload, then answers as the request asks: 202 (a chunk) or,
// with ?digest=, commits the blob (201). An upload that goes over the size limit, or whose
// digest does not match, is discarded whole.
class Hub::UploadExchange : public Exchange {
 public:
  UploadExchange(Hub& hub, std::unique_ptr<BlobStore::Upload> upload, std::string name,
                 std::string commit_digest)
      : hub_(hub),
        upload_(std::move(upload)),
        name_(std::move(name)),
        commit_digest_(std::move(commit_digest)) {}
  ~UploadExchange() override {
    // A connection that broke mid-chunk: the upload keeps what it got (whole writes only).
    if (upload_) hub_.return_upload(std::move(upload_));
  }
  std::optional<HttpResponse> on_body(std::string_view data) override {
    if (upload_->size() + data.size() > hub_.options_.max_blob_bytes) {
      discard();
      return registry_error(413, "SIZE_INVALID",
                            str_cat("blobs are limited to ", hub_.options_.max_blob_bytes,
                                    " bytes on this hub (--max-blob-size); the upload is dropped"));
    }
    if (Status s = upload_->append(data); !s) {
      spdlog::error("hub: {}", s.error());
      discard();
      return registry_error(500, "UNKNOWN", "the hub could not store the upload");
    }
    return std::nullopt;
  }
  HttpResponse on_complete() override {
    if (commit_digest_.empty()) {
      const std::string id = upload_->id();
      const uint64_t size = upload_->size();
      hub_.return_upload(std::move(upload_));
      return upload_status(202, name_, id, size);
    }
    const std::string id = upload_->id();
    Status s = upload_->commit(commit_digest_);
    forget();
    (void)hub_.store_.remove_upload(id);
    if (!s) return registry_error(400, "DIGEST_INVALID", s.error());
    if (Status l = hub_.store_.link_blob(name_, commit_digest_); !l) {
      return registry_error(500, "UNKNOWN", l.error());
    }
    return blob_created(name_, commit_digest_);
  }

 private:
  void discard() {
    const std::string id = upload_->id();
    upload_->discard();
    forget();
    (void)hub_.store_.remove_upload(id);
  }
  void forget() {
    std::lock_guard lock(hub_.uploads_mutex_);
    hub_.busy_uploads_.erase(upload_->id());
    upload_.reset();
  }
  Hub& hub_;
  std::unique_ptr<BlobStore::Upload> upload_;
  std::string name_;
  std::string commit_digest_;
};

std::unique_ptr<Exchange> Hub::start_upload(HttpRequest& request, const Identity& who,
                                            const std::string& name) {
  const std::string mount = request.param("mount");
  const std::string from = request.param("from");
  if (!mount.empty() && is_digest(mount) && !from.empty()) {
    // Cross-repository mount: the blob is already here, if the caller may read it there.
    Result<Access> source = repository_access(store_, who, from);
    Result<bool> linked = store_.blob_linked(from, mount);
    if (source && source->pull && linked && *linked && blobs_.has(mount)) {
      if (Status s = store_.link_blob(name, mount); !s) {
        return respond_now(registry_error(500, "UNKNOWN", s.error()));
      }
      return respond_now(blob_created(name, mount));
    }
  }
  const std::string digest = request.param("digest");
  if (request.has_param("digest") && !is_digest(digest)) {
    return respond_now(
        registry_error(400, "DIGEST_INVALID", str_cat("not a sha256 digest: ", digest)));
  }
  Result<std::unique_ptr<BlobStore::Upload>> upload = blobs_.start_upload();
  if (!upload) return respond_now(registry_error(500, "UNKNOWN", upload.error()));
  if (Status s = store_.add_upload((*upload)->id(), name, who.user, unix_now()); !s) {
    (*upload)->discard();
    return respond_now(registry_error(500, "UNKNOWN", s.error()));
  }
  {
    std::lock_guard lock(uploads_mutex_);
    busy_uploads_.insert((*upload)->id());
  }
  // POST with ?digest= and the body: a monolithic upload.
  return std::make_unique<UploadExchange>(*this, std::move(*upload), name, digest);
}

std::unique_ptr<Exchange> Hub::upload(HttpRequest& request, const Identity& who,
                                      const std::string& name, const std::string& id) {
  (void)who;
  Result<std::string> owner = store_.upload_repository(id);
  if (!owner) return respond_now(registry_error(500, "UNKNOWN", owner.error()));
  if (*owner != name || !blobs_.has_upload(id)) {
    return respond_now(
        registry_error(404, "BLOB_UPLOAD_UNKNOWN", str_cat("no upload ", id, " in ", name)));
  }
  const std::string& method = request.method;
  if (method == "GET" || method == "HEAD") {
    HttpResponse r = upload_status(204, name, id, blobs_.upload_size(id));
    return respond_now(std::move(r));
  }
  if (method == "DELETE") {
    std::string error;
    std::unique_ptr<BlobStore::Upload> upload = take_upload(id, &error);
    if (!upload) return respond_now(registry_error(416, "BLOB_UPLOAD_INVALID", error));
    upload->discard();
    {
      std::lock_guard lock(uploads_mutex_);
      busy_uploads_.erase(id);
    }
    (void)store_.remove_upload(id);
    HttpResponse r;
    r.status = 204;
    return respond_now(std::move(r));
  }
  if (method != "PATCH" && method != "PUT") {
    return respond_now(registry_error(405, "UNSUPPORTED", "use PATCH, PUT, GET or DELETE"));
  }
  std::string digest;
  if (method == "PUT") {
    digest = request.param("digest");
    if (!is_digest(digest)) {
      return respond_now(registry_error(400, "DIGEST_INVALID",
                                        "PUT finishes an upload: it needs ?digest=sha256:..."));
    }
  }
  std::string error;
  std::unique_ptr<BlobStore::Upload> upload = take_upload(id, &error);
  if (!upload) return respond_now(registry_error(416, "BLOB_UPLOAD_INVALID", error));
  // A chunk must start where the upload is (Content-Range: start-end).
  const std::string_view range = request.header("content-range");
  if (!range.empty()) {
    const std::string_view start = range.substr(0, range.find('-'));
    uint64_t first = 0;
    if (!absl::SimpleAtoi(absl::string_view(start.data(), start.size()), &first) ||
        first != upload->size()) {
      const uint64_t size = upload->size();
      return_upload(std::move(upload));
      HttpResponse r = registry_error(
          416, "BLOB_UPLOAD_INVALID",
          str_cat("the chunk starts at ", start, " but the upload has ", size, " bytes"));
      r.header("location", upload_location(name, id));
      r.header("range", str_cat("0-", size == 0 ? 0 : size - 1));
      return respond_now(std::move(r));
    }
  }
  return std::make_unique<UploadExchange>(*this, std::move(upload), name, digest);
}

HttpResponse Hub::get_blob(const HttpRequest& request, const std::string& name,
                           const std::string& digest) {
  (void)request;
  Result<bool> linked = store_.blob_linked(name, digest);
  if (!linked) return registry_error(500, "UNKNOWN", linked.error());
  const int64_t size = blobs_.size(digest);
  if (!*linked || size < 0) {
    return registry_error(404, "BLOB_UNKNOWN", str_cat("blob ", digest, " is not in ", name));
  }
  HttpResponse r;
  r.content_type = "application/octet-stream";
  r.file = blobs_.path(digest);
  r.file_size = static_cast<uint64_t>(size);
  r.header("docker-content-digest", digest);
  r.header("etag", str_cat("\"", digest, "\""));
  r.header("cache-control", "max-age=31536000");
  return r;
}

HttpResponse Hub::delete_blob(const HttpRequest& request, const Identity& who,
                              const std::string& name, const std::string& digest) {
  (void)request;
  (void)who;
  Result<bool> linked = store_.blob_linked(name, digest);
  if (!linked) return registry_error(500, "UNKNOWN", linked.error());
  if (!*linked) {
    return registry_error(404, "BLOB_UNKNOWN", str_cat("blob ", digest, " is not in ", name));
  }
  Result<std::optional<ManifestRecord>> manifest = store_.manifest(name, digest);
  if (!manifest) return registry_error(500, "UNKNOWN", manifest.error());
  if (manifest->has_value()) {
    return registry_error(400, "UNSUPPORTED",
                          "that is a manifest: DELETE /v2/<name>/manifests/<digest>");
  }
  // A blob a manifest still names stays: deleting it would break that image.
  Result<std::optional<std::string>> user = store_.manifest_using_blob(name, digest);
  if (!user) return registry_error(500, "UNKNOWN", user.error());
  if (user->has_value()) {
    return registry_error(
        409, "DENIED", str_cat("manifest ", **user, " uses this blob: delete the manifest first"));
  }
  if (Status s = store_.unlink_blob(name, digest); !s) {
    return registry_error(500, "UNKNOWN", s.error());
  }
  HttpResponse r;
  r.status = 202;
  return r;
}

// --- manifests --------------------------------------------------------------------------------

HttpResponse Hub::get_manifest(const HttpRequest& request, const std::string& name,
                               const std::string& reference) {
  std::string digest = reference;
  if (!is_digest(reference)) {
    Result<std::optional<std::string>> tagged = store_.tag_digest(name, reference);
    if (!tagged) return registry_error(500, "UNKNOWN", tagged.error());
    if (!tagged->has_value()) {
      return registry_error(404, "MANIFEST_UNKNOWN", str_cat("no tag ", reference, " in ", name));
    }
    digest = **tagged;
  }
  Result<std::optional<ManifestRecord>> m = store_.manifest(name, digest);
  if (!m) return registry_error(500, "UNKNOWN", m.error());
  const int64_t size = blobs_.size(digest);
  if (!m->has_value() || size < 0) {
    return registry_error(404, "MANIFEST_UNKNOWN", str_cat("no manifest ", digest, " in ", name));
  }
  if (request.method == "GET") (void)store_.count_download(name);
  HttpResponse r;
  r.content_type = (*m)->media_type;
  r.file = blobs_.path(digest);
  r.file_size = static_cast<uint64_t>(size);
  r.header("docker-content-digest", digest);
  r.header("etag", str_cat("\"", digest, "\""));
  return r;
}

HttpResponse Hub::put_manifest(const HttpRequest& request, const Identity& who,
                               const std::string& name, const std::string& reference,
                               std::string body) {
  const std::string digest = str_cat("sha256:", sha256_hex(body));
  if (is_digest(reference) && reference != digest) {
    return registry_error(400, "DIGEST_INVALID",
                          str_cat("the manifest's digest is ", digest, ", not ", reference));
  }
  const json doc = json::parse(body, nullptr, false);
  if (!doc.is_object()) return registry_error(400, "MANIFEST_INVALID", "the manifest is not JSON");
  std::string media_type(trim(request.header("content-type")));
  if (media_type.empty()) media_type = string_field(doc, "mediaType");
  if (media_type.empty()) media_type = std::string(oci::kOciManifest);
  if (media_type == oci::kOciIndex || media_type == oci::kDockerManifestList) {
    return registry_error(400, "MANIFEST_INVALID",
                          "image indexes are not accepted here: push the Wasm image's own "
                          "manifest");
  }
  if (media_type != oci::kOciManifest && media_type != oci::kDockerManifest) {
    return registry_error(
        400, "MANIFEST_INVALID",
        str_cat("unsupported manifest media type ", media_type, " (use ", oci::kOciManifest, ")"));
  }
  if (oci::uint_field(doc, "schemaVersion") != 2u) {
    return registry_error(400, "MANIFEST_INVALID", "schemaVersion must be 2");
  }
  // Every blob it names: here, in this repository, with the size it declares.
  std::vector<std::pair<std::string, const json*>> descriptors;
  descriptors.emplace_back("config", &oci::json_field(doc, "config"));
  const json& layers = oci::json_field(doc, "layers");
  if (!layers.is_array() || layers.empty()) {
    return registry_error(400, "MANIFEST_INVALID", "the manifest has no layers");
  }
  for (size_t i = 0; i < layers.size(); ++i) {
    descriptors.emplace_back(str_cat("layers[", i, "]"), &layers[i]);
  }
  std::vector<std::string> blob_digests;
  for (const auto& [where, d] : descriptors) {
    const std::string blob = string_field(*d, "digest");
    if (!is_digest(blob)) {
      return registry_error(400, "MANIFEST_INVALID",
                            str_cat(where, ".digest is not a sha256 digest"));
    }
    Result<bool> linked = store_.blob_linked(name, blob);
    if (!linked) return registry_error(500, "UNKNOWN", linked.error());
    const int64_t size = blobs_.size(blob);
    if (!*linked || size < 0) {
      HttpResponse r =
          registry_error(400, "MANIFEST_BLOB_UNKNOWN",
                         str_cat(where, " names blob ", blob, ", which was not pushed to ", name));
      return r;
    }
    if (oci::uint_field(*d, "size") != static_cast<uint64_t>(size)) {
      return registry_error(
          400, "SIZE_INVALID",
          str_cat(where, ".size does not match blob ", blob, " (", size, " bytes)"));
    }
    blob_digests.push_back(blob);
  }
  // The module: present, valid, Proxy-Wasm.
  Result<oci::WasmLayer> layer = oci::find_wasm_layer(body);
  if (!layer) {
    return registry_error(400, "MANIFEST_INVALID",
                          str_cat("not a Wasm extension image: ", layer.error()));
  }
  Result<std::string> layer_blob = blobs_.read(layer->digest, options_.max_blob_bytes);
  if (!layer_blob) return registry_error(500, "UNKNOWN", layer_blob.error());
  std::string code;
  if (layer->tar) {
    Result<std::string> extracted = oci::extract_plugin_wasm(*layer_blob, options_.max_blob_bytes);
    if (!extracted) {
      return registry_error(400, "MANIFEST_INVALID",
                            str_cat("the image's tar layer: ", extracted.error()));
    }
    code = std::move(*extracted);
  } else {
    code = std::move(*layer_blob);
  }
  Result<wasm::ModuleCheck> check = wasm::check_module(code);
  if (!check) {
    return registry_error(400, "MANIFEST_INVALID",
                          str_cat("the Wasm layer ", layer->digest, " is ", check.error()));
  }
  if (check->abi_version == wasm::AbiVersion::Unknown) {
    return registry_error(400, "MANIFEST_INVALID",
                          str_cat("the Wasm layer ", layer->digest,
                                  " has no proxy_abi_version_* export: not a Proxy-Wasm module"));
  }
  // The static check reads the module's declarations only; compiling it (nothing runs) validates
  // every function body too, as a proxy loading it would.
  Result<wasm::WasmRuntime*> v8 = wasm::find_runtime("envoy.wasm.runtime.v8");
  if (!v8) {  // `hub serve` checked at start-up; a push is never accepted unchecked
    return registry_error(500, "UNKNOWN",
                          str_cat("the hub cannot compile the module: ", v8.error()));
  }
  if (Result<std::shared_ptr<wasm::CompiledModule>> compiled = (*v8)->compile(code); !compiled) {
    return registry_error(
        400, "MANIFEST_INVALID",
        str_cat("the Wasm layer ", layer->digest, " does not compile: ", compiled.error()));
  }

  // What the image says of itself: the Wasm config (root ids) and the annotations.
  ManifestRecord m;
  m.repository = name;
  m.digest = digest;
  m.media_type = media_type;
  m.size = static_cast<int64_t>(body.size());
  m.created = unix_now();
  m.pushed_by = who.user;
  m.abi_versions = json::array({std::string(wasm::abi_version_name(check->abi_version))}).dump();
  m.host_functions = string_array(check->host_functions).dump();
  m.wasi_functions = string_array(check->wasi_functions).dump();
  m.missing_imports = string_array(check->missing).dump();
  m.wasm_digest = str_cat("sha256:", sha256_hex(code));
  m.wasm_size = static_cast<int64_t>(code.size());
  m.variant = layer->variant;
  m.blobs = blob_digests;
  const std::string config_digest = string_field(oci::json_field(doc, "config"), "digest");
  if (string_field(oci::json_field(doc, "config"), "mediaType") == oci::kWasmConfig) {
    Result<std::string> config = blobs_.read(config_digest, 1024 * 1024);
    if (config) {
      const json c = json::parse(*config, nullptr, false);
      const json& ids = oci::json_field(c, "rootIds");
      if (ids.is_array()) {
        json clean = json::array();
        for (const json& id : ids) {
          if (id.is_string()) clean.push_back(id);
        }
        m.root_ids = clean.dump();
      }
    }
  }
  const json& annotations = oci::json_field(doc, "annotations");
  if (annotations.is_object()) m.annotations = annotations.dump();
  RepositoryRecord meta;
  meta.name = name;
  meta.namespace_ = name.substr(0, name.find('/'));
  meta.description = string_field(annotations, "org.opencontainers.image.description");
  meta.license = string_field(annotations, "org.opencontainers.image.licenses");
  meta.source = string_field(annotations, "org.opencontainers.image.source");
  meta.readme = string_field(annotations, "io.sluice.extension.readme");
  meta.language = string_field(annotations, "io.sluice.extension.language");

  const std::string tag = is_digest(reference) ? "" : reference;
  // The manifest's bytes first (content-addressed: harmless if the metadata then fails).
  Result<std::string> stored = blobs_.put(body);
  if (!stored) return registry_error(500, "UNKNOWN", stored.error());
  AuditEntry audit = audit_entry(request, who, "push", name, tag.empty() ? digest : tag, digest);
  if (Status s = store_.put_manifest(m, tag, meta, audit); !s) {
    spdlog::error("hub: storing manifest {} of {}: {}", digest, name, s.error());
    return registry_error(500, "UNKNOWN", "the hub could not record the manifest");
  }
  spdlog::info("hub: {} pushed {}{} ({})", who.user, name, tag.empty() ? "@" + digest : ":" + tag,
               digest);
  HttpResponse r;
  r.status = 201;
  r.header("location", str_cat("/v2/", name, "/manifests/", digest));
  r.header("docker-content-digest", digest);
  return r;
}

HttpResponse Hub::delete_manifest(const HttpRequest& request, const Identity& who,
                                  const std::string& name, const std::string& reference) {
  Result<bool> deleted =
      is_digest(reference)
          ? store_.delete_manifest(name, reference,
                                   audit_entry(request, who, "delete", name, reference, reference))
          : store_.delete_tag(name, reference,
                              audit_entry(request, who, "untag", name, reference, ""));
  if (!deleted) return registry_error(500, "UNKNOWN", deleted.error());
  if (!*deleted) {
    return registry_error(404, "MANIFEST_UNKNOWN", str_cat("no ", reference, " in ", name));
  }
  HttpResponse r;
  r.status = 202;
  return r;
}

void Hub::drop_stale_uploads(int64_t now) {
  Result<std::vector<std::string>> stale = store_.uploads_before(now - options_.upload_ttl);
  if (!stale) {
    spdlog::warn("hub: listing stale uploads: {}", stale.error());
    return;
  }
  for (const std::string& id : *stale) {
    {
      std::lock_guard lock(uploads_mutex_);
      if (busy_uploads_.count(id)) continue;
      uploads_.erase(id);
    }
    blobs_.discard_upload(id);
    (void)store_.remove_upload(id);
  }
  if (!stale->empty()) spdlog::info("hub: dropped {} unfinished upload(s)", stale->size());
}

}  // namespace sluice::hub
