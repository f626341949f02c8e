#include "hub/hub.h"

#include <sys/stat.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "common/strings.h"

namespace sluice::hub {

namespace fs = std::filesystem;

Hub::Hub(HubStore& store, BlobStore& blobs, Authenticator& auth, HubOptions options)
    : store_(store), blobs_(blobs), auth_(auth), options_(std::move(options)) {}

Hub::~Hub() = default;

std::unique_ptr<Exchange> Hub::begin(HttpRequest& request) {
  const std::string& path = request.path;
  if (path == "/v2" || path.starts_with("/v2/")) return registry(request);
  if (path.starts_with("/api/v1/")) return api(request);
  if (path == "/healthz") return respond_now(HttpResponse::text(200, "ok\n"));
  if (request.method != "GET" && request.method != "HEAD") {
    return respond_now(HttpResponse::text(405, "the web UI is read-only: use GET\n"));
  }
  return respond_now(static_file(request));
}

namespace {

std::string_view content_type_of(const fs::path& file) {
  const std::string ext = file.extension().string();
  if (ext == ".html") return "text/html; charset=utf-8";
  if (ext == ".js" || ext == ".mjs") return "text/javascript; charset=utf-8";
  if (ext == ".css") return "text/css; charset=utf-8";
  if (ext == ".svg") return "image/svg+xml";
  if (ext == ".png") return "image/png";
  if (ext == ".ico") return "image/x-icon";
  if (ext == ".json") return "application/json";
  if (ext == ".woff2") return "font/woff2";
  return "application/octet-stream";
}

}  // namespace

HttpResponse Hub::static_file(const HttpRequest& request) {
  if (options_.web_dir.empty()) {
    return HttpResponse::text(
        404,
        "this hub serves no web UI (--web-dir); the registry is at /v2/, the API at "
        "/api/v1/\n");
  }
  std::optional<std::string> decoded = url_decode(request.path);
  if (!decoded || decoded->find('\0') != std::string::npos) {
    return HttpResponse::text(400, "bad path\n");
  }
  // Only plain names below the web folder: no "..", no hidden files.
  fs::path relative;
  for (std::string_view part : split(*decoded, '/')) {
    if (part.empty()) continue;
    if (part.starts_with(".")) return HttpResponse::text(404, "not found\n");
    relative /= std::string(part);
  }
  const fs::path root(options_.web_dir);
  fs::path file = root / relative;
  std::error_code ec;
  // Vite puts every built asset under assets/, its name carrying a hash of its content.
  const bool asset = relative.begin() != relative.end() && *relative.begin() == "assets";
  if (relative.empty() || !fs::is_regular_file(file, ec)) {
    // A client-side route (/extensions/ns/my.filter): the app's page; a missing asset is a 404.
    if (asset) return HttpResponse::text(404, "not found\n");
    file = root / "index.html";
  }
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) return HttpResponse::text(404, "not found\n");
  HttpResponse r;
  r.content_type = std::string(content_type_of(file));
  r.file = file.string();
  r.file_size = static_cast<uint64_t>(st.st_size);
  // Hashed assets never change; anything else (the page, the icon) is checked each time.
  r.header("cache-control", asset ? "public, max-age=31536000, immutable" : "no-cache");
  r.header("x-content-type-options", "nosniff");
  r.header("content-security-policy",
           "default-src 'self'; img-src 'self' data: https:; style-src 'self' 'unsafe-inline'; "
           "object-src 'none'; frame-ancestors 'none'");
  return r;
}

}  // namespace sluice::hub
