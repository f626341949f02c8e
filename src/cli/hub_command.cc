#include "cli/hub_command.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>
#include <asio.hpp>

#include "common/files.h"
#include "common/strings.h"
#include "config/bootstrap.h"
#include "hub/auth.h"
#include "hub/blob_store.h"
#include "hub/database.h"
#include "hub/http_server.h"
#include "hub/hub.h"
#include "hub/hub_store.h"
#include "net/tls.h"
#include "wasm/vm/wasm_vm.h"

namespace fs = std::filesystem;

namespace sluice::cli {
namespace {

struct StorageOptions {
  std::string data_dir;
  std::string postgres;
};

std::string default_data_dir() {
  const char* home = std::getenv("HOME");
  return str_cat(home && *home ? home : ".", "/.sluice/hub");
}

int hub_failed(const std::string& message) {
  fprintf(stderr, "sluice hub: %s\n", message.c_str());
  return 1;
}

// The metadata database: PostgreSQL when given, else SQLite in the data folder.
Result<std::unique_ptr<hub::Database>> open_database(const StorageOptions& storage) {
  if (!storage.postgres.empty()) return hub::open_postgres(storage.postgres);
  std::error_code ec;
  fs::create_directories(storage.data_dir, ec);
  if (ec) return Error{str_cat("cannot create ", storage.data_dir, ": ", ec.message())};
  return hub::open_sqlite(str_cat(storage.data_dir, "/hub.db"));
}

void add_storage_options(CLI::App* c, StorageOptions& storage) {
  c->add_option("--data-dir", storage.data_dir,
                "Blobs (and the SQLite database) live here (default: ~/.sluice/hub)");
  c->add_option("--postgres", storage.postgres,
                "Keep metadata in PostgreSQL (a libpq URL) instead of SQLite");
}

Result<asio::ip::tcp::endpoint> parse_listen(const std::string& text) {
  const size_t colon = text.rfind(':');
  if (colon == std::string::npos) return Error{"--listen is ADDRESS:PORT"};
  std::string host = text.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  asio::error_code ec;
  const asio::ip::address address = asio::ip::make_address(host.empty() ? "0.0.0.0" : host, ec);
  if (ec) return Error{str_cat("--listen: not an IP address: ", host)};
  int port = 0;
  try {
    port = std::stoi(text.substr(colon + 1));
  } catch (...) {
    port = -1;
  }
  if (port < 0 || port > 65535) return Error{"--listen: the port must be 0-65535"};
  return asio::ip::tcp::endpoint(address, static_cast<uint16_t>(port));
}

// Where the web UI's built files are by default: $SLUICE_HUB_WEB_DIR, else the copy the build
// this binary came from made (when it is there).
std::string default_web_dir() {
  if (const char* dir = std::getenv("SLUICE_HUB_WEB_DIR")) return dir;
  const fs::path built(SLUICE_HUB_WEB_DIR_DEFAULT);
  std::error_code ec;
  return fs::exists(built / "index.html", ec) ? built.string() : "";
}

int serve(const StorageOptions& storage, const std::string& listen, hub::HubOptions options,
          const std::string& tls_cert, const std::string& tls_key) {
  Result<asio::ip::tcp::endpoint> endpoint = parse_listen(listen);
  if (!endpoint) return hub_failed(endpoint.error());
  if (tls_cert.empty() != tls_key.empty())
    return hub_failed("--tls-cert and --tls-key go together");
  // Every push is compiled by V8 before it is accepted: a hub that cannot load V8 says so now,
  // not at its first push.
  if (Result<wasm::WasmRuntime*> v8 = wasm::find_runtime("envoy.wasm.runtime.v8"); !v8) {
    return hub_failed(v8.error());
  }
  Result<std::unique_ptr<hub::Database>> db = open_database(storage);
  if (!db) return hub_failed(db.error());
  hub::HubStore store(**db);
  if (Status s = store.migrate(); !s) return hub_failed(str_cat("the database: ", s.error()));
  Result<std::string> secret = store.signing_secret();
  if (!secret) return hub_failed(secret.error());
  hub::BlobStore blobs(storage.data_dir);
  if (Status s = blobs.init(); !s) return hub_failed(s.error());
  hub::Authenticator auth(store, *secret);

  hub::HttpServerOptions http;
  if (!tls_cert.empty()) {
    config::FilterChain chain;
    config::DownstreamTls tls;
    config::TlsCertificate cert;
    Result<std::string> pem = read_file(tls_cert);
    if (!pem) return hub_failed(str_cat("--tls-cert ", tls_cert, ": ", pem.error()));
    Result<std::string> key = read_file(tls_key);
    if (!key) return hub_failed(str_cat("--tls-key ", tls_key, ": ", key.error()));
    cert.certificate_chain = *pem;
    cert.private_key = *key;
    tls.certificates.push_back(cert);
    tls.alpn_protocols = {"http/1.1"};
    chain.tls = tls;
    Result<std::shared_ptr<const net::TlsFilterChains>> chains =
        net::TlsFilterChains::build({chain});
    if (!chains) return hub_failed(str_cat("TLS: ", chains.error()));
    http.tls = *chains;
  }
  const bool has_users = [&] {
    Result<std::vector<hub::User>> users = store.users();
    return users && !users->empty();
  }();

  asio::io_context loop;
  hub::Hub service(store, blobs, auth, options);
  service.drop_stale_uploads(hub::unix_now());
  hub::HttpServer server(loop, service, http);
  if (std::string error = server.listen(*endpoint); !error.empty()) {
    return hub_failed(str_cat("cannot listen on ", listen, ": ", error));
  }
  const std::string scheme = http.tls ? "https" : "http";
  const std::string where =
      options.public_url.empty()
          ? str_cat(scheme, "://", endpoint->address().to_string(), ":", server.port())
          : options.public_url;
  spdlog::info("hub: serving {} (registry {}/v2/, API {}/api/v1/, web UI {})", where, where, where,
               options.web_dir.empty() ? "not served (no --web-dir)" : options.web_dir);
  spdlog::info("hub: metadata in {}, blobs in {}",
               storage.postgres.empty() ? str_cat(storage.data_dir, "/hub.db") : "PostgreSQL",
               storage.data_dir);
  if (!has_users) {
    spdlog::warn(
        "hub: no users yet: make the first administrator with `sluice hub user add NAME "
        "--admin{}`",
        storage.postgres.empty() ? str_cat(" --data-dir ", storage.data_dir) : " --postgres URL");
  }
  // Machine-readable for scripts and tests: the port actually bound.
  printf("listening on %s:%u\n", endpoint->address().to_string().c_str(), server.port());
  fflush(stdout);

  asio::signal_set signals(loop, SIGINT, SIGTERM);
  signals.async_wait([&](const asio::error_code& ec, int sig) {
    if (ec) return;
    spdlog::info("hub: signal {}: stopping", sig);
    server.close();
    loop.stop();
  });
  asio::steady_timer sweep(loop);
  std::function<void()> arm_sweep = [&] {
    sweep.expires_after(std::chrono::hours(1));
    sweep.async_wait([&](const asio::error_code& ec) {
      if (ec) return;
      service.drop_stale_uploads(hub::unix_now());
      arm_sweep();
    });
  };
  arm_sweep();
  loop.run();
  return 0;
}

int user_add(const StorageOptions& storage, const std::string& name, bool admin, int days) {
  if (!hub::is_account_name(name)) {
    return hub_failed(
        str_cat("user names are 2 to 39 lower-case letters, digits and single hyphens "
                "inside: ",
                name));
  }
  Result<std::unique_ptr<hub::Database>> db = open_database(storage);
  if (!db) return hub_failed(db.error());
  hub::HubStore store(**db);
  if (Status s = store.migrate(); !s) return hub_failed(str_cat("the database: ", s.error()));
  const int64_t now = hub::unix_now();
  hub::NewToken token =
      hub::make_access_token(name, admin ? hub::Scope::Admin : hub::Scope::Push,
                             "made by sluice hub user add", now, int64_t{days} * 24 * 3600);
  Status s = store.db().transaction([&]() -> Status {
    if (Status a = store.add_user(name, admin, now); !a) return a;
    if (Status t = store.add_token(token.record); !t) return t;
    return store.add_audit(
        hub::AuditEntry{0, now, "cli", "user.add", "", name, "", "local", admin ? "admin" : ""});
  });
  if (!s) return hub_failed(s.error());
  fprintf(stderr, "user %s added%s; its %s token (shown once, expires in %d days):\n", name.c_str(),
          admin ? " as an administrator" : "",
          std::string(hub::scope_name(token.record.scope)).c_str(), days);
  printf("%s\n", token.token.c_str());
  return 0;
}

int user_list(const StorageOptions& storage) {
  Result<std::unique_ptr<hub::Database>> db = open_database(storage);
  if (!db) return hub_failed(db.error());
  hub::HubStore store(**db);
  if (Status s = store.migrate(); !s) return hub_failed(str_cat("the database: ", s.error()));
  Result<std::vector<hub::User>> users = store.users();
  if (!users) return hub_failed(users.error());
  for (const hub::User& u : *users) printf("%s%s\n", u.name.c_str(), u.admin ? " (admin)" : "");
  return 0;
}

}  // namespace

int run_hub(int argc, char** argv) {
  CLI::App app{
      "sluice hub: a registry for Proxy-Wasm extensions (OCI distribution API, "
      "accounts, search, web UI)"};
  app.name("sluice hub");
  app.require_subcommand(1);
  StorageOptions storage;
  std::string log_level = "info";

  CLI::App* serve_cmd = app.add_subcommand("serve", "Run the hub server");
  std::string listen = "127.0.0.1:5080", tls_cert, tls_key;
  hub::HubOptions options;
  options.web_dir = default_web_dir();
  uint64_t max_blob_mb = options.max_blob_bytes / (1024 * 1024);
  serve_cmd->add_option("--listen", listen, "ADDRESS:PORT to serve on (default 127.0.0.1:5080)");
  add_storage_options(serve_cmd, storage);
  serve_cmd->add_option("--tls-cert", tls_cert, "Serve HTTPS with this certificate chain (PEM)");
  serve_cmd->add_option("--tls-key", tls_key, "... and this private key (PEM)");
  serve_cmd->add_option("--public-url", options.public_url,
                        "How clients reach the hub, e.g. https://hub.example.com (default: the "
                        "Host each request names)");
  serve_cmd->add_option("--web-dir", options.web_dir, "The web UI's built files");
  serve_cmd->add_option("--max-blob-size", max_blob_mb, "Largest blob accepted, in MiB (64)")
      ->check(CLI::Range(1, 4096));
  serve_cmd->add_option("-l,--log-level", log_level, "trace, debug, info, warning, error, off");

  CLI::App* user_cmd = app.add_subcommand("user", "Manage users (offline, on the hub's storage)");
  user_cmd->require_subcommand(1);
  CLI::App* add_cmd = user_cmd->add_subcommand("add", "Add a user and print its first token");
  std::string name;
  bool admin = false;
  int days = 90;
  add_cmd->add_option("NAME", name, "The user name")->required();
  add_cmd->add_flag("--admin", admin, "An administrator (its token has the admin scope)");
  add_cmd->add_option("--expires-days", days, "The token's lifetime in days (90)")
      ->check(CLI::Range(1, 3660));
  add_storage_options(add_cmd, storage);
  CLI::App* list_cmd = user_cmd->add_subcommand("list", "List the users");
  add_storage_options(list_cmd, storage);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (storage.data_dir.empty()) storage.data_dir = default_data_dir();
  spdlog::set_level(spdlog::level::from_str(log_level == "warning" ? "warn" : log_level));
  if (*serve_cmd) {
    options.max_blob_bytes = max_blob_mb * 1024 * 1024;
    while (!options.public_url.empty() && options.public_url.back() == '/') {
      options.public_url.pop_back();
    }
    return serve(storage, listen, options, tls_cert, tls_key);
  }
  if (*add_cmd) {
    spdlog::set_level(spdlog::level::warn);
    return user_add(storage, name, admin, days);
  }
  if (*list_cmd) return user_list(storage);
  return 2;
}

}  // namespace sluice::cli
