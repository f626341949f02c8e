#include "admin/admin_server.h"

#include <openssl/crypto.h>
#include <re2/re2.h>
#include <spdlog/spdlog.h>
#include "common/strings.h"

#include "common/stats.h"
#include "http/http1_parser.h"
#include "net/connection.h"
#include "net/listen_socket.h"

namespace sluice::admin {
namespace {

std::string_view query_param(std::string_view query, std::string_view name) {
  for (std::string_view kv : split(query, '&')) {
    const size_t eq = kv.find('=');
    if (kv.substr(0, eq) == name) return eq == std::string_view::npos ? "" : kv.substr(eq + 1);
  }
  return {};
}

bool has_param(std::string_view query, std::string_view name) {
  for (std::string_view kv : split(query, '&')) {
    if (kv.substr(0, kv.find('=')) == name) return true;
  }
  return false;
}

std::string json_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += fmt::format("\\u{:04x}", static_cast<unsigned char>(c));
    } else {
      out.push_back(c);
    }
  }
  return out;
}

constexpr const char* kHelp =
    "admin commands are:\n"
    "  /: this list\n"
    "  /ready: LIVE when the server is ready to serve\n"
    "  /server_info: version, state, uptime, options (JSON)\n"
    "  /stats: all stats (?filter=REGEX, ?format=json|prometheus, ?usedonly)\n"
    "  /stats/prometheus: stats in Prometheus text format\n"
    "  /config_dump: the running configuration (JSON)\n"
    "  /clusters: upstream clusters and hosts (?format=json)\n"
    "  /listeners: listeners (?format=json)\n"
    "  /logging: POST ?level=trace|debug|info|warning|error|critical|off\n"
    "  /healthcheck/fail, /healthcheck/ok: POST; fail or pass readiness\n"
    "  /wasm: Wasm plugins: limits, VMs per worker, last failure (JSON)\n"
    "  /wasm/plugins: GET the deployed plugins; POST one (JSON) to deploy it; DELETE\n"
    "    /wasm/plugins/NAME to undeploy it (kept in sluice.overlay_path)\n"
    "  /reload: POST; reload the configuration (and Wasm modules) from their files\n"
    "  /quitquitquit: POST; exit the server\n";

}  // namespace

// One admin connection: parse a request, answer, repeat (keep-alive). A pipelined request waits
// until the one before it is answered, which for a deploy may be after a reload.
class AdminServer::Session : public net::ConnectionCallbacks,
                             public http::Http1ParserCallbacks,
                             public std::enable_shared_from_this<Session> {
 public:
  // Deploy requests are small JSON documents.
  static constexpr size_t kMaxBody = 1024 * 1024;

  Session(AdminServer& server, std::shared_ptr<net::Connection> conn)
      : server_(server),
        conn_(std::move(conn)),
        parser_(http::MessageType::Request, *this, 64 * 1024) {}
  void start() {
    self_ = shared_from_this();
    conn_->set_callbacks(this);
    conn_->start_reading();
  }
  void on_read(const char* data, size_t len) override {
    input_.append(data, len);
    process();
  }
  void on_close(net::CloseReason) override { done(); }
  void on_message_headers(HeaderMap& headers, bool) override {
    method_ = headers.method();
    path_ = headers.path();
    authorization_ = std::string(headers.get_or_empty("authorization"));
    body_.clear();
    body_too_large_ = false;
    keep_alive_ = parser_.keep_alive();
  }
  void on_message_body(std::string_view data) override {
    if (body_.size() + data.size() > kMaxBody) {
      body_too_large_ = true;
      body_.clear();
    } else if (!body_too_large_) {
      body_.append(data);
    }
  }
  void on_message_complete() override {
    if (body_too_large_) {
      respond(AdminResponse{413, "text/plain", str_cat("request body over ", kMaxBody, " bytes\n")},
              false);
      return;
    }
    awaiting_ = true;
    dispatching_ = true;
    server_.handle(AdminRequest{method_, path_, std::move(authorization_), std::move(body_)},
                   [self = shared_from_this(), keep_alive = keep_alive_](AdminResponse r) {
                     self->finish(std::move(r), keep_alive);
                   });
    dispatching_ = false;
  }

 private:
  void process() {
    size_t offset = 0;
    while (!awaiting_ && offset < input_.size() && conn_->open() && !conn_->closing()) {
      if (parser_.paused()) parser_.resume();
      const size_t n = parser_.execute(input_.data() + offset, input_.size() - offset);
      offset += n;
      if (parser_.failed()) {
        respond(AdminResponse{parser_.error_status(), "text/plain", parser_.error() + "\n"}, false);
        return;
      }
      if (n == 0 && !parser_.paused()) break;
    }
    input_.erase(0, offset);
  }
  // The answer to the current request: now (inside on_message_complete) or later.
  void finish(AdminResponse r, bool keep_alive) {
    awaiting_ = false;
    if (!conn_->open() || conn_->closing()) return;
    respond(r, keep_alive);
    if (!dispatching_ && keep_alive) process();  // requests that arrived meanwhile
  }
  void respond(const AdminResponse& r, bool keep_alive) {
    HeaderMap h;
    h.add(":status", str_cat(r.status));
    h.add("content-type", r.content_type);
    h.add("content-length", str_cat(r.body.size()));
    h.add("cache-control", "no-cache, max-age=0");
    h.add("x-content-type-options", "nosniff");
    for (const auto& [name, value] : r.headers) h.add(name, value);
    if (!keep_alive) h.add("connection", "close");
    std::string out;
    http::encode_response_head(h, false, out);
    out += r.body;
    conn_->write(out);
    if (!keep_alive) {
      conn_->close(true);
      done();
    }
  }
  void done() {
    conn_->set_callbacks(nullptr);
    asio::post(server_.loop_, [s = std::move(self_)] {});
  }

  AdminServer& server_;
  std::shared_ptr<net::Connection> conn_;
  http::Http1Parser parser_;
  std::string input_;
  std::string method_, path_, authorization_, body_;
  bool body_too_large_ = false;
  bool keep_alive_ = true;
  bool awaiting_ = false;     // a request is being answered: hold the next one
  bool dispatching_ = false;  // inside server_.handle()
  std::shared_ptr<Session> self_;
};

AdminServer::AdminServer(asio::io_context& loop, AdminBackend& backend)
    : loop_(loop), backend_(backend), acceptor_(loop) {}

AdminServer::~AdminServer() { close(); }

std::string AdminServer::listen(const asio::ip::tcp::endpoint& endpoint) {
  if (std::string error = net::open_listen_socket(acceptor_, endpoint); !error.empty()) {
    return error;
  }
  loopback_ = endpoint.address().is_loopback();
  accept();
  return "";
}

uint16_t AdminServer::port() const { return net::bound_port(acceptor_); }

void AdminServer::close() {
  asio::error_code ec;
  acceptor_.close(ec);
}

void AdminServer::accept() {
  acceptor_.async_accept([this](const asio::error_code& ec, asio::ip::tcp::socket socket) {
    if (ec == asio::error::operation_aborted) return;
    if (!ec) {
      auto conn = std::make_shared<net::Connection>(std::move(socket), 1024 * 1024);
      std::make_shared<Session>(*this, std::move(conn))->start();
    }
    accept();
  });
}

std::optional<AdminResponse> AdminServer::authorize(std::string_view method,
                                                    std::string_view authorization) const {
  if (method == "GET" || method == "HEAD") return std::nullopt;
  const std::string token = backend_.admin_token();
  if (token.empty()) {
    if (loopback_) return std::nullopt;
    return AdminResponse{403, "text/plain",
                         "the admin address is not loopback, so calls that change the server "
                         "need a token: set sluice.admin.token_file and send \"Authorization: "
                         "Bearer <token>\"\n"};
  }
  constexpr std::string_view kScheme = "bearer ";
  const bool bearer =
      authorization.size() > kScheme.size() && starts_with_ignore_case(authorization, kScheme);
  const std::string_view given = bearer ? authorization.substr(kScheme.size()) : "";
  // Constant time: the comparison must not tell an attacker how much of a guess was right.
  if (given.size() == token.size() &&
      CRYPTO_memcmp(given.data(), token.data(), token.size()) == 0) {
    return std::nullopt;
  }
  AdminResponse denied{401, "text/plain",
                       authorization.empty()
                           ? "this call needs the admin token: \"Authorization: Bearer <token>\" "
                             "(sluice.admin.token_file)\n"
                           : "wrong admin token\n"};
  denied.headers.emplace_back("www-authenticate", "Bearer realm=\"sluice-admin\"");
  return denied;
}

void AdminServer::handle(const AdminRequest& request, std::function<void(AdminResponse)> done) {
  const std::string_view target = request.target;
  const std::string_view path = target.substr(0, target.find('?'));
  constexpr std::string_view kPlugins = "/wasm/plugins";
  if (request.method != "GET" && request.method != "HEAD" &&
      (path == kPlugins || path.starts_with("/wasm/plugins/"))) {
    if (auto denied = authorize(request.method, request.authorization)) {
      done(std::move(*denied));
      return;
    }
    if (path == kPlugins && request.method == "POST") {
      backend_.deploy_plugin(request.body, std::move(done));
      return;
    }
    const std::string_view name =
        path.size() > kPlugins.size() ? path.substr(kPlugins.size() + 1) : "";
    if (!name.empty() && request.method == "DELETE") {
      backend_.undeploy_plugin(std::string(name), std::move(done));
      return;
    }
    AdminResponse r{405, "text/plain",
                    "use GET or POST /wasm/plugins, or DELETE /wasm/plugins/NAME\n"};
    r.headers.emplace_back("allow", name.empty() ? "GET, POST" : "DELETE");
    done(std::move(r));
    return;
  }
  done(handle(request.method, request.target, request.authorization));
}

AdminResponse AdminServer::handle(std::string_view method, std::string_view target,
                                  std::string_view authorization) {
  if (auto denied = authorize(method, authorization)) return *denied;
  const size_t q = target.find('?');
  const std::string_view path = target.substr(0, q);
  const std::string_view query = q == std::string_view::npos ? "" : target.substr(q + 1);
  const bool json = query_param(query, "format") == "json";
  auto require_post = [&](std::string_view p) -> std::optional<AdminResponse> {
    if (method == "POST") return std::nullopt;
    return AdminResponse{405, "text/plain", str_cat("This endpoint (", p, ") requires POST\n")};
  };

  if (path == "/" || path == "/help") return {200, "text/plain", kHelp};
  if (path == "/ready") {
    if (backend_.health_check_failed()) return {503, "text/plain", "DRAINING\n"};
    return {200, "text/plain", "LIVE\n"};
  }
  if (path == "/server_info") return {200, "application/json", backend_.server_info_json()};
  if (path == "/config_dump") return {200, "application/json", backend_.config_dump_json()};
  if (path == "/clusters") {
    return {200, json ? "application/json" : "text/plain", backend_.clusters_text(json)};
  }
  if (path == "/listeners") {
    return {200, json ? "application/json" : "text/plain", backend_.listeners_text(json)};
  }
  if (path == "/stats" || path == "/stats/prometheus") {
    backend_.refresh_server_stats();
    auto metrics = stats::Store::instance().snapshot();
    if (has_param(query, "usedonly")) {
      std::erase_if(metrics, [](const stats::MetricSnapshot& m) {
        return m.counter == 0 && m.gauge == 0 && m.histogram.count == 0;
      });
    }
    if (has_param(query, "filter")) {
      const RE2 re(std::string(query_param(query, "filter")));
      if (!re.ok()) return {400, "text/plain", str_cat("invalid filter regex: ", re.error(), "\n")};
      std::erase_if(metrics, [&](const stats::MetricSnapshot& m) {
        return !RE2::PartialMatch(stats::visible_name(m.name->dotted), re);
      });
    }
    if (path == "/stats/prometheus" || query_param(query, "format") == "prometheus") {
      return {200, "text/plain; version=0.0.4; charset=UTF-8", stats::render_prometheus(metrics)};
    }
    if (json) {
      std::string out = "{\"stats\":[";
      bool first = true;
      for (const auto& m : metrics) {
        if (m.type == stats::MetricType::Histogram) continue;
        str_append(&out, first ? "" : ",", "{\"name\":\"",
                   json_escape(stats::visible_name(m.name->dotted)), "\",\"value\":",
                   m.type == stats::MetricType::Counter ? str_cat(m.counter) : str_cat(m.gauge),
                   "}");
        first = false;
      }
      out += "]}\n";
      return {200, "application/json", out};
    }
    return {200, "text/plain", stats::render_text(metrics)};
  }
  if (path == "/logging") {
    if (method == "POST" && has_param(query, "level")) {
      std::string level(query_param(query, "level"));
      if (level == "warn") level = "warning";
      const auto lvl = spdlog::level::from_str(level);
      if (lvl == spdlog::level::off && level != "off") {
        return {400, "text/plain", str_cat("unknown log level '", level, "'\n")};
      }
      spdlog::set_level(lvl);
      spdlog::info("admin: log level set to {}", level);
    }
    return {200, "text/plain",
            str_cat("active loggers:\n  sluice: ",
                    spdlog::level::to_string_view(spdlog::get_level()).data(), "\n")};
  }
  if (path == "/healthcheck/fail" || path == "/healthcheck/ok") {
    if (auto r = require_post(path)) return *r;
    backend_.set_health_check_failed(path == "/healthcheck/fail");
    return {200, "text/plain", "OK\n"};
  }
  if (path == "/wasm") return {200, "application/json", backend_.wasm_json()};
  if (path == "/wasm/plugins") {
    return {200, "application/json", backend_.deployed_plugins_json()};
  }
  if (path == "/reload") {
    if (auto r = require_post(path)) return *r;
    int status = 400;
    std::string body = backend_.reload_config(&status);
    return {status, "application/json", std::move(body)};
  }
  if (path == "/quitquitquit") {
    if (auto r = require_post(path)) return *r;
    backend_.quit();
    return {200, "text/plain", "OK\n"};
  }
  return {404, "text/plain", str_cat("invalid path: ", path, "\n", kHelp)};
}

}  // namespace sluice::admin
