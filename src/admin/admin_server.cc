#include "admin/admin_server.h"

#include <re2/re2.h>
#include <spdlog/spdlog.h>
#include "common/strings.h"

#include "common/stats.h"
#include "http/http1_parser.h"
#include "net/connection.h"

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
    "  /reload: POST; reload the configuration (and Wasm modules) from their files\n"
    "  /quitquitquit: POST; exit the server\n";

}  // namespace

// One admin connection: parse a request, answer, repeat (keep-alive).
class AdminServer::Session : public net::ConnectionCallbacks,
                             public http::Http1ParserCallbacks,
                             public std::enable_shared_from_this<Session> {
 public:
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
    size_t offset = 0;
    while (offset < input_.size() && conn_->open() && !conn_->closing()) {
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
  void on_close(net::CloseReason) override { done(); }
  void on_message_headers(HeaderMap& headers, bool) override {
    method_ = headers.method();
    path_ = headers.path();
    keep_alive_ = parser_.keep_alive();
  }
  void on_message_body(std::string_view) override {}
  void on_message_complete() override { respond(server_.handle(method_, path_), keep_alive_); }

 private:
  void respond(const AdminResponse& r, bool keep_alive) {
    HeaderMap h;
    h.add(":status", str_cat(r.status));
    h.add("content-type", r.content_type);
    h.add("content-length", str_cat(r.body.size()));
    h.add("cache-control", "no-cache, max-age=0");
    h.add("x-content-type-options", "nosniff");
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
  std::string method_, path_;
  bool keep_alive_ = true;
  std::shared_ptr<Session> self_;
};

AdminServer::AdminServer(asio::io_context& loop, AdminBackend& backend)
    : loop_(loop), backend_(backend), acceptor_(loop) {}

AdminServer::~AdminServer() { close(); }

std::string AdminServer::listen(const asio::ip::tcp::endpoint& endpoint) {
  asio::error_code ec;
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return ec.message();
  accept();
  return "";
}

uint16_t AdminServer::port() const {
  asio::error_code ec;
  return acceptor_.local_endpoint(ec).port();
}

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

AdminResponse AdminServer::handle(std::string_view method, std::string_view target) {
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
