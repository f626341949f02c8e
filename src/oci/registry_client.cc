#include "oci/registry_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <mutex>

#include <nlohmann/json.hpp>

#include "absl/strings/escaping.h"
#include "common/sha256.h"
#include "common/strings.h"
#include "oci/json_fields.h"
#include "oci/reference.h"

namespace sluice::oci {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

struct Transfer {
  std::string* body;
  size_t max_bytes;
  bool too_large = false;
  std::map<std::string, std::string>* headers;
  const std::function<bool()>* cancelled;
};

size_t on_body(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t n = size * count;
  if (t->body->size() + n > t->max_bytes) {
    t->too_large = true;
    return 0;  // libcurl stops with CURLE_WRITE_ERROR
  }
  t->body->append(data, n);
  return n;
}

size_t on_header(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t n = size * count;
  std::string_view line(data, n);
  if (line.substr(0, 5) == "HTTP/") {
    t->headers->clear();  // a new response (after a redirect): keep only the last one's
    return n;
  }
  const size_t colon = line.find(':');
  if (colon != std::string_view::npos) {
    (*t->headers)[lower(trim(line.substr(0, colon)))] = std::string(trim(line.substr(colon + 1)));
  }
  return n;
}

int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* t = static_cast<Transfer*>(user);
  return (*t->cancelled && (*t->cancelled)()) ? 1 : 0;  // non-zero aborts the transfer
}

std::string basic_authorization(const Credential& c) {
  const std::string pair = str_cat(c.username, ":", c.password);
  return str_cat("Basic ", absl::Base64Escape(absl::string_view(pair.data(), pair.size())));
}

std::string url_escape(CURL* curl, std::string_view s) {
  char* escaped = curl_easy_escape(curl, s.data(), static_cast<int>(s.size()));
  std::string out = escaped ? escaped : "";
  curl_free(escaped);
  return out;
}

bool is_digest_of(std::string_view digest, std::string_view bytes) {
  return is_sha256_digest(digest) && digest.substr(7) == sha256_hex(bytes);
}

}  // namespace

std::optional<Challenge> parse_challenge(std::string_view header) {
  header = trim(header);
  const size_t space = header.find(' ');
  Challenge c;
  c.scheme = lower(header.substr(0, space));
  if (c.scheme.empty()) return std::nullopt;
  std::string_view rest = space == std::string_view::npos ? "" : header.substr(space + 1);
  while (!rest.empty()) {
    rest = trim(rest);
    const size_t eq = rest.find('=');
    if (eq == std::string_view::npos) break;
    const std::string key = lower(trim(rest.substr(0, eq)));
    rest.remove_prefix(eq + 1);
    rest = trim(rest);
    std::string value;
    if (!rest.empty() && rest.front() == '"') {
      size_t i = 1;
      for (; i < rest.size() && rest[i] != '"'; ++i) {
        if (rest[i] == '\\' && i + 1 < rest.size()) ++i;
        value.push_back(rest[i]);
      }
      rest.remove_prefix(std::min(i + 1, rest.size()));
    } else {
      const size_t comma = rest.find(',');
      value = std::string(trim(rest.substr(0, comma)));
      rest.remove_prefix(comma == std::string_view::npos ? rest.size() : comma);
    }
    c.params[key] = std::move(value);
    rest = trim(rest);
    if (!rest.empty() && rest.front() == ',') rest.remove_prefix(1);
  }
  return c;
}

RegistryClient::RegistryClient(std::string registry, ClientOptions options)
    : registry_(std::move(registry)), options_(std::move(options)) {
  static std::once_flag curl_ready;
  std::call_once(curl_ready, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  base_url_ = str_cat(options_.plain_http ? "http://" : "https://", api_host(registry_));
  curl_ = curl_easy_init();
}

RegistryClient::~RegistryClient() { curl_easy_cleanup(static_cast<CURL*>(curl_)); }

RegistryClient::Response RegistryClient::perform(const Request& request,
                                                 const std::string& authorization) {
  CURL* curl = static_cast<CURL*>(curl_);
  curl_easy_reset(curl);  // options go; the connection cache stays
  Response response;
  Transfer transfer{&response.body, request.max_bytes, false, &response.headers,
                    &options_.cancelled};
  const std::string url =
      request.url.substr(0, 4) == "http" ? request.url : str_cat(base_url_, request.url);
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  // A registry may send blob downloads elsewhere (object storage); never from https to http.
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 5L);
  curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, options_.plain_http ? "http,https" : "https");
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(options_.timeout.count()));
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(std::min<int64_t>(options_.timeout.count(), 10000)));
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "sluice/" SLUICE_VERSION);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &transfer);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &transfer);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &transfer);
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  switch (request.method) {
    case Method::kGet:
      break;
    case Method::kHead:
      curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
      break;
    case Method::kPost:
    case Method::kPut:
      if (request.method == Method::kPut) curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, "PUT");
      curl_easy_setopt(curl, CURLOPT_POST, 1L);
      curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request.body.data());
      curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                       static_cast<curl_off_t>(request.body.size()));
      break;
  }
  curl_slist* headers = nullptr;
  for (const auto& h : request.headers) headers = curl_slist_append(headers, h.c_str());
  if (!authorization.empty()) {
    // libcurl sends custom Authorization headers to the first host only, not after a redirect to
    // another one (CVE-2022-27776), which is what registries that redirect to storage expect.
    headers = curl_slist_append(headers, str_cat("Authorization: ", authorization).c_str());
  }
  if (request.method == Method::kPost || request.method == Method::kPut) {
    headers = curl_slist_append(headers, "Expect:");  // no 100-continue round trip
  }
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  const CURLcode rc = curl_easy_perform(curl);
  curl_slist_free_all(headers);
  if (rc != CURLE_OK) {
    if (transfer.too_large) {
      response.transport_error =
          str_cat("the answer from ", url, " is larger than ", request.max_bytes, " bytes");
    } else if (rc == CURLE_ABORTED_BY_CALLBACK) {
      response.transport_error = "cancelled";
    } else {
      response.transport_error = str_cat(url, ": ", curl_easy_strerror(rc));
    }
    return response;
  }
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response.status);
  char* effective = nullptr;
  curl_easy_getinfo(curl, CURLINFO_EFFECTIVE_URL, &effective);
  response.effective_url = effective ? effective : url;
  return response;
}

Result<RegistryClient::Response> RegistryClient::send(const Request& request) {
  permanent_failure_ = false;
  for (int attempt = 0;; ++attempt) {
    std::string authorization;
    if (auto it = auth_by_scope_.find(request.scope); it != auth_by_scope_.end()) {
      authorization = it->second;
    } else if (auto basic = auth_by_scope_.find("*"); basic != auth_by_scope_.end()) {
      authorization = basic->second;
    }
    Response response = perform(request, authorization);
    if (!response.transport_error.empty()) return Error{response.transport_error};
    if (response.status != 401 || attempt > 0) return response;
    auto header = response.headers.find("www-authenticate");
    if (header == response.headers.end()) return response;
    std::optional<Challenge> challenge = parse_challenge(header->second);
    if (!challenge) return response;
    if (Status s = authorize(*challenge, request.scope); !s) return Error{s.error()};
    permanent_failure_ = false;  // authorized: what follows decides
  }
}

Status RegistryClient::authorize(const Challenge& challenge, const std::string& scope) {
  // Every refusal below is the registry's or our configuration's: a retry gets the same (the
  // token service's transport errors and 5xx excepted). send() clears it on success.
  permanent_failure_ = true;
  if (challenge.scheme == "basic") {
    if (!options_.credential) {
      return Error{str_cat(registry_,
                           " asks for a user name and password, and none is configured "
                           "for it")};
    }
    auth_by_scope_["*"] = basic_authorization(*options_.credential);
    return {};
  }
  if (challenge.scheme != "bearer") {
    return Error{str_cat(registry_, " asks for '", challenge.scheme,
                         "' authentication, which Sluice does not speak (Basic or Bearer)")};
  }
  auto realm = challenge.params.find("realm");
  if (realm == challenge.params.end() || realm->second.empty()) {
    return Error{str_cat(registry_, " asks for a Bearer token but names no token service (realm)")};
  }
  // The token service: GET realm?service=...&scope=..., with Basic credentials when we have them
  // (anonymous otherwise: public repositories on most registries).
  CURL* curl = static_cast<CURL*>(curl_);
  std::string url = realm->second;
  url += url.find('?') == std::string::npos ? '?' : '&';
  bool first = true;
  auto add = [&](std::string_view key, std::string_view value) {
    if (value.empty()) return;
    if (!first) url += '&';
    first = false;
    str_append(&url, key, "=", url_escape(curl, value));
  };
  if (auto service = challenge.params.find("service"); service != challenge.params.end()) {
    add("service", service->second);
  }
  const auto asked = challenge.params.find("scope");
  add("scope", asked != challenge.params.end() && !asked->second.empty() ? asked->second : scope);
  Request token_request;
  token_request.url = url;
  token_request.max_bytes = 1024 * 1024;
  Response r =
      perform(token_request,
              options_.credential ? basic_authorization(*options_.credential) : std::string());
  if (!r.transport_error.empty()) {
    permanent_failure_ = false;
    return Error{str_cat("the token service of ", registry_, ": ", r.transport_error)};
  }
  if (r.status == 401 || r.status == 403) {
    return Error{str_cat("the token service of ", registry_, " refused ",
                         options_.credential
                             ? str_cat("the credentials of '", options_.credential->username, "'")
                             : std::string("an anonymous request (no credentials are configured "
                                           "for this registry)"),
                         " (HTTP ", r.status, ")")};
  }
  if (r.status != 200) {
    return Error{describe_failure(r, str_cat("the token service of ", registry_))};
  }
  nlohmann::json doc = nlohmann::json::parse(r.body, nullptr, false);
  std::string token;
  if (doc.is_object()) {
    for (const char* key : {"token", "access_token"}) {
      if (auto it = doc.find(key);
          it != doc.end() && it->is_string() && !it->get<std::string>().empty()) {
        token = it->get<std::string>();
        break;
      }
    }
  }
  if (token.empty()) {
    return Error{str_cat("the token service of ", registry_, " answered without a token")};
  }
  auth_by_scope_[scope] = str_cat("Bearer ", token);
  return {};
}

std::string RegistryClient::describe_failure(const Response& r, std::string_view what) {
  permanent_failure_ = r.status >= 400 && r.status < 500 && r.status != 408 && r.status != 429;
  std::string out = str_cat(what, ": HTTP ", r.status);
  if (r.status == 401) {
    str_append(&out, " (unauthorized",
               options_.credential
                   ? str_cat(" as '", options_.credential->username, "'")
                   : std::string(": no credentials are configured for ") + registry_,
               ")");
  }
  // Registries explain themselves as {"errors":[{"code":..,"message":..}]}.
  nlohmann::json doc = nlohmann::json::parse(r.body, nullptr, false);
  if (doc.is_object() && doc.contains("errors") && doc["errors"].is_array()) {
    for (const auto& e : doc["errors"]) {
      if (!e.is_object()) continue;
      str_append(&out, "; ", string_field(e, "code"), ": ", string_field(e, "message"));
    }
  }
  return out;
}

Result<Manifest> RegistryClient::get_manifest(const std::string& repository,
                                              const std::string& reference) {
  Request req;
  req.url = str_cat("/v2/", repository, "/manifests/", reference);
  req.scope = str_cat("repository:", repository, ":pull");
  req.headers.push_back(str_cat("Accept: ", kOciManifest, ", ", kOciIndex, ", ", kDockerManifest,
                                ", ", kDockerManifestList));
  const std::string what = str_cat("the manifest ", registry_, "/", repository,
                                   reference.substr(0, 7) == "sha256:" ? "@" : ":", reference);
  Result<Response> r = send(req);
  if (!r) return Error{str_cat(what, ": ", r.error())};
  if (r->status != 200) return Error{describe_failure(*r, what)};
  Manifest m;
  m.digest = str_cat("sha256:", sha256_hex(r->body));
  if (reference.substr(0, 7) == "sha256:" && m.digest != reference) {
    return Error{str_cat(what, ": the registry sent a manifest that hashes to ", m.digest)};
  }
  nlohmann::json doc = nlohmann::json::parse(r->body, nullptr, false);
  if (!doc.is_object()) return Error{str_cat(what, ": not a JSON object")};
  m.media_type = string_field(doc, "mediaType");
  if (m.media_type.empty()) {
    auto ct = r->headers.find("content-type");
    if (ct != r->headers.end()) m.media_type = ct->second.substr(0, ct->second.find(';'));
  }
  m.body = std::move(r->body);
  return m;
}

Result<std::string> RegistryClient::get_blob(const std::string& repository,
                                             const std::string& digest, size_t max_bytes) {
  Request req;
  req.url = str_cat("/v2/", repository, "/blobs/", digest);
  req.scope = str_cat("repository:", repository, ":pull");
  req.max_bytes = max_bytes;
  const std::string what = str_cat("the blob ", registry_, "/", repository, "@", digest);
  Result<Response> r = send(req);
  if (!r) return Error{str_cat(what, ": ", r.error())};
  if (r->status != 200) return Error{describe_failure(*r, what)};
  if (!is_digest_of(digest, r->body)) {
    return Error{str_cat(what, ": the ", r->body.size(), " bytes received hash to sha256:",
                         sha256_hex(r->body), " (corrupt or tampered with)")};
  }
  return std::move(r->body);
}

Status RegistryClient::push_blob(const std::string& repository, std::string_view bytes) {
  const std::string digest = str_cat("sha256:", sha256_hex(bytes));
  const std::string what =
      str_cat("uploading ", digest.substr(0, 19), " to ", registry_, "/", repository);
  Request head;
  head.method = Method::kHead;
  head.url = str_cat("/v2/", repository, "/blobs/", digest);
  head.scope = str_cat("repository:", repository, ":pull,push");
  Result<Response> exists = send(head);
  if (!exists) return Error{str_cat(what, ": ", exists.error())};
  if (exists->status == 200) return {};
  Request start;
  start.method = Method::kPost;
  start.url = str_cat("/v2/", repository, "/blobs/uploads/");
  start.scope = head.scope;
  Result<Response> started = send(start);
  if (!started) return Error{str_cat(what, ": ", started.error())};
  if (started->status != 202) return Error{describe_failure(*started, what)};
  auto location = started->headers.find("location");
  if (location == started->headers.end()) {
    return Error{str_cat(what, ": the registry gave no upload location")};
  }
  std::string url = location->second;
  if (url.substr(0, 4) != "http") url = str_cat(base_url_, url);  // relative to the registry
  url += url.find('?') == std::string::npos ? '?' : '&';
  url += str_cat("digest=", url_escape(static_cast<CURL*>(curl_), digest));
  Request put;
  put.method = Method::kPut;
  put.url = url;
  put.scope = head.scope;
  put.body = bytes;
  put.headers.push_back("Content-Type: application/octet-stream");
  Result<Response> done = send(put);
  if (!done) return Error{str_cat(what, ": ", done.error())};
  if (done->status != 201) return Error{describe_failure(*done, what)};
  return {};
}

Result<std::string> RegistryClient::push_manifest(const std::string& repository,
                                                  const std::string& reference,
                                                  std::string_view media_type,
                                                  std::string_view body) {
  Request put;
  put.method = Method::kPut;
  put.url = str_cat("/v2/", repository, "/manifests/", reference);
  put.scope = str_cat("repository:", repository, ":pull,push");
  put.body = body;
  put.headers.push_back(str_cat("Content-Type: ", media_type));
  const std::string what =
      str_cat("pushing the manifest ", registry_, "/", repository, ":", reference);
  Result<Response> r = send(put);
  if (!r) return Error{str_cat(what, ": ", r.error())};
  if (r->status != 201) return Error{describe_failure(*r, what)};
  return str_cat("sha256:", sha256_hex(body));
}

Result<std::vector<std::string>> RegistryClient::list_tags(const std::string& repository) {
  Request req;
  req.url = str_cat("/v2/", repository, "/tags/list");
  req.scope = str_cat("repository:", repository, ":pull");
  const std::string what = str_cat("the tags of ", registry_, "/", repository);
  Result<Response> r = send(req);
  if (!r) return Error{str_cat(what, ": ", r.error())};
  if (r->status != 200) return Error{describe_failure(*r, what)};
  nlohmann::json doc = nlohmann::json::parse(r->body, nullptr, false);
  std::vector<std::string> tags;
  if (doc.is_object() && doc.contains("tags") && doc["tags"].is_array()) {
    for (const auto& t : doc["tags"]) {
      if (t.is_string()) tags.push_back(t.get<std::string>());
    }
  }
  return tags;
}

Result<std::optional<std::string>> RegistryClient::search_hub(const std::string& query, int limit) {
  Request req;
  req.url =
      str_cat("/api/v1/search?limit=", limit, "&q=", url_escape(static_cast<CURL*>(curl_), query));
  // Not the registry's token dance: the hub's API takes the user and token as they are.
  Response r = perform(req, options_.credential ? basic_authorization(*options_.credential) : "");
  const std::string what = str_cat("the search of ", registry_);
  if (!r.transport_error.empty()) return Error{str_cat(what, ": ", r.transport_error)};
  const bool json = r.headers["content-type"].rfind("application/json", 0) == 0;
  if (r.status == 404 && !json) return std::optional<std::string>();  // not a hub
  if (r.status != 200 || !json) return Error{describe_failure(r, what)};
  return std::optional<std::string>(std::move(r.body));
}

Result<std::vector<std::string>> RegistryClient::list_repositories() {
  std::vector<std::string> names;
  const std::string what = str_cat("the repositories of ", registry_);
  // Pages of at most 100 (what registries accept), following Link: <...>; rel="next".
  std::string url = "/v2/_catalog?n=100";
  for (int page = 0; page < 1000 && !url.empty(); ++page) {
    Request req;
    req.url = url;
    req.scope = "registry:catalog:*";
    Result<Response> r = send(req);
    if (!r) return Error{str_cat(what, ": ", r.error())};
    if (r->status != 200) return Error{describe_failure(*r, what)};
    nlohmann::json doc = nlohmann::json::parse(r->body, nullptr, false);
    if (doc.is_object() && doc.contains("repositories") && doc["repositories"].is_array()) {
      for (const auto& n : doc["repositories"]) {
        if (n.is_string()) names.push_back(n.get<std::string>());
      }
    }
    url.clear();
    if (auto link = r->headers.find("link"); link != r->headers.end()) {
      const size_t open = link->second.find('<');
      const size_t close = link->second.find('>');
      if (open != std::string::npos && close != std::string::npos && close > open &&
          link->second.find("rel=\"next\"") != std::string::npos) {
        url = link->second.substr(open + 1, close - open - 1);
      }
    }
  }
  return names;
}

Status RegistryClient::check_access() {
  Request req;
  req.url = "/v2/";
  Result<Response> r = send(req);
  if (!r) return Error{str_cat(registry_, ": ", r.error())};
  if (r->status != 200) return Error{describe_failure(*r, registry_)};
  return {};
}

}  // namespace sluice::oci
