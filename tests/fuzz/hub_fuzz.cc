// libFuzzer target: the hub's request handling, with everything a client controls: the method,
// the path (repository names, references, upload ids, query strings) and the body (manifests,
// blob bytes, JSON API documents). Input: "METHOD PATH[?QUERY]\n" then the body. The caller is an
// administrator, so requests get past authentication to the parsers and checks behind it.
//
// Invariants: nothing throws out of the hub (HttpServer would turn it into a 500: here it
// aborts), every status is a real one, and a manifest the hub accepts names only blobs it has.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "fuzz_check.h"
#include "hub/auth.h"
#include "hub/blob_store.h"
#include "hub/database.h"
#include "hub/hub.h"
#include "hub/hub_store.h"

using namespace sluice::hub;

namespace {

struct Fixture {
  Fixture() {
    char dir_template[] = "/tmp/sluice-hub-fuzz.XXXXXX";
    dir = mkdtemp(dir_template);
    db = std::move(open_sqlite(":memory:").value());
    store = std::make_unique<HubStore>(*db);
    (void)store->migrate();
    blobs = std::make_unique<BlobStore>(dir);
    (void)blobs->init();
    auth = std::make_unique<Authenticator>(*store, "fuzz secret");
    (void)store->add_user("alice", true, 1);
    (void)store->add_org("acme", "alice", 1);
    NewToken t = make_access_token("alice", Scope::Admin, "fuzz", 1, int64_t{1} << 40);
    (void)store->add_token(t.record);
    authorization = "Bearer " + t.token;
    HubOptions options;
    options.max_blob_bytes = 64 * 1024;
    hub = std::make_unique<Hub>(*store, *blobs, *auth, options);
  }
  ~Fixture() { std::filesystem::remove_all(dir); }
  std::string dir;
  std::unique_ptr<Database> db;
  std::unique_ptr<HubStore> store;
  std::unique_ptr<BlobStore> blobs;
  std::unique_ptr<Authenticator> auth;
  std::unique_ptr<Hub> hub;
  std::string authorization;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture f;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t newline = input.find('\n');
  if (newline == std::string_view::npos) return 0;
  const std::string_view line = input.substr(0, newline);
  const std::string_view body = input.substr(newline + 1);
  const size_t space = line.find(' ');
  if (space == std::string_view::npos) return 0;

  HttpRequest request;
  request.method = std::string(line.substr(0, space));
  request.target = std::string(line.substr(space + 1));
  const size_t q = request.target.find('?');
  request.path = request.target.substr(0, q);
  request.query = q == std::string::npos ? "" : request.target.substr(q + 1);
  request.headers.add(":authority", "hub.test");
  request.headers.add("authorization", f.authorization);
  if (request.method == "PUT" && request.path.find("/manifests/") != std::string::npos) {
    request.headers.add("content-type", "application/vnd.oci.image.manifest.v1+json");
  }
  request.remote = "fuzz";

  std::unique_ptr<Exchange> exchange = f.hub->begin(request);
  std::optional<HttpResponse> response;
  if (exchange->wants_body()) {
    // In two pieces, as a network would deliver it.
    const size_t half = body.size() / 2;
    response = exchange->on_body(body.substr(0, half));
    if (!response) response = exchange->on_body(body.substr(half));
  }
  if (!response) response = exchange->on_complete();
  exchange.reset();
  FUZZ_CHECK(response->status >= 200 && response->status <= 599, "status %d", response->status);

  if (response->status == 201 && request.method == "PUT" &&
      request.path.find("/manifests/") != std::string::npos) {
    // Accepted: every blob it names is stored.
    const nlohmann::json doc = nlohmann::json::parse(body, nullptr, false);
    FUZZ_CHECK(doc.is_object(), "accepted a manifest that is not a JSON object");
    for (const auto& layer : doc["layers"]) {
      const std::string digest = layer.value("digest", "");
      FUZZ_CHECK(f.blobs->has(digest), "accepted a manifest naming missing blob %s",
                 digest.c_str());
    }
  }
  return 0;
}
