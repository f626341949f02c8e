#include "hub/http_server.h"

#include <fcntl.h>
#include <unistd.h>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "common/strings.h"
#include "http/http1_parser.h"
#include "net/connection.h"
#include "net/listen_socket.h"

namespace sluice::hub {

// --- requests and responses --------------------------------------------------------------------

std::string_view HttpRequest::header(std::string_view name) const {
  return headers.get_or_empty(name);
}

std::string_view HttpRequest::host() const {
  std::string_view h = headers.get_or_empty(":authority");
  return h.empty() ? headers.get_or_empty("host") : h;
}

std::vector<std::string> HttpRequest::params(std::string_view name) const {
  std::vector<std::string> out;
  for (std::string_view pair : split(query, '&')) {
    const size_t eq = pair.find('=');
    const std::string_view key = pair.substr(0, eq);
    if (key != name) continue;
    std::string value(eq == std::string_view::npos ? "" : pair.substr(eq + 1));
    for (char& c : value) {
      if (c == '+') c = ' ';  // form encoding
    }
    out.push_back(url_decode(value).value_or(""));
  }
  return out;
}

std::string HttpRequest::param(std::string_view name) const {
  std::vector<std::string> all = params(name);
  return all.empty() ? "" : std::move(all.front());
}

bool HttpRequest::has_param(std::string_view name) const {
  for (std::string_view pair : split(query, '&')) {
    if (pair.substr(0, pair.find('=')) == name) return true;
  }
  return false;
}

HttpResponse HttpResponse::json(int status, const nlohmann::json& body) {
  HttpResponse r;
  r.status = status;
  r.content_type = "application/json";
  // Names and messages may carry any bytes a client sent: never throw on bad UTF-8.
  r.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  return r;
}

HttpResponse HttpResponse::text(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.content_type = "text/plain; charset=utf-8";
  r.body = std::move(body);
  return r;
}

std::optional<std::string> url_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size() || !std::isxdigit(static_cast<unsigned char>(s[i + 1])) ||
        !std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      return std::nullopt;
    }
    out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
    i += 2;
  }
  return out;
}

std::string url_encode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

namespace {

class RespondNow : public Exchange {
 public:
  explicit RespondNow(HttpResponse r) : response_(std::move(r)) {}
  bool wants_body() const override { return false; }
  std::optional<HttpResponse> on_body(std::string_view) override { return std::nullopt; }
  HttpResponse on_complete() override { return std::move(response_); }

 private:
  HttpResponse response_;
};

class CollectBody : public Exchange {
 public:
  CollectBody(size_t limit, std::function<HttpResponse(std::string)> handler,
              std::function<HttpResponse(size_t)> too_large)
      : limit_(limit), handler_(std::move(handler)), too_large_(std::move(too_large)) {}
  std::optional<HttpResponse> on_body(std::string_view data) override {
    if (body_.size() + data.size() > limit_) return too_large_(limit_);
    body_.append(data);
    return std::nullopt;
  }
  HttpResponse on_complete() override { return handler_(std::move(body_)); }

 private:
  size_t limit_;
  std::string body_;
  std::function<HttpResponse(std::string)> handler_;
  std::function<HttpResponse(size_t)> too_large_;
};

constexpr size_t kFileChunk = 256 * 1024;

}  // namespace

std::unique_ptr<Exchange> respond_now(HttpResponse response) {
  return std::make_unique<RespondNow>(std::move(response));
}

std::unique_ptr<Exchange> collect_body(size_t limit,
                                       std::function<HttpResponse(std::string body)> handler,
                                       std::function<HttpResponse(size_t limit)> too_large) {
  return std::make_unique<CollectBody>(limit, std::move(handler), std::move(too_large));
}

// --- one connection -------------------------------------------------------------------------

// Parse a request, hand it to the service, stream the body in, answer, repeat (keep-alive).
// Bytes of a next request that arrive early wait until the current one is answered.
class HttpServer::Session : public net::ConnectionCallbacks,
                            public http::Http1ParserCallbacks,
                            public std::enable_shared_from_this<Session> {
 public:
  Session(HttpServer& server, std::shared_ptr<net::Connection> conn)
      : server_(server),
        conn_(std::move(conn)),
        parser_(http::MessageType::Request, *this, server.options_.max_header_bytes),
        idle_(server.loop_) {}

  void start() {
    self_ = shared_from_this();
    server_.sessions_[this] = weak_from_this();
    conn_->set_callbacks(this);
    arm_idle();
    if (server_.options_.tls) {
      conn_->start_tls_server(server_.options_.tls, std::chrono::seconds(10),
                              [self = shared_from_this()](const asio::error_code& ec) {
                                if (ec) {
                                  self->conn_->close(false);
                                  self->done();
                                  return;
                                }
                                self->conn_->start_reading();
                              });
      return;
    }
    conn_->start_reading();
  }

  void on_read(const char* data, size_t len) override {
    arm_idle();
    if (!parser_.in_message()) started_ = std::chrono::steady_clock::now();
    input_.append(data, len);
    process();
  }
  void on_close(net::CloseReason) override { done(); }
  void on_below_write_low_watermark() override {
    arm_idle();
    if (file_fd_ >= 0) send_file_chunks();
  }

  void on_message_headers(HeaderMap& headers, bool end_stream) override {
    started_ = std::chrono::steady_clock::now();
    request_ = HttpRequest{};
    request_.method = std::string(headers.method());
    request_.target = std::string(headers.path());
    const size_t q = request_.target.find('?');
    request_.path = request_.target.substr(0, q);
    request_.query = q == std::string::npos ? "" : request_.target.substr(q + 1);
    request_.remote = conn_->remote_address();
    request_.tls = conn_->tls();
    request_.headers = std::move(headers);
    keep_alive_ = parser_.keep_alive();
    has_body_ = !end_stream;
    body_ended_ = false;
    try {
      exchange_ = server_.service_.begin(request_);
    } catch (const std::exception& e) {
      exchange_ = respond_now(internal_error(e));
    }
    if (!exchange_->wants_body()) {
      // Answered from the headers alone: whatever body follows is not read.
      if (has_body_) keep_alive_ = false;
      finish(complete());
      return;
    }
    if (has_body_ && equals_ignore_case(request_.header("expect"), "100-continue")) {
      conn_->write("HTTP/1.1 100 Continue\r\n\r\n");
    }
  }
  void on_message_body(std::string_view data) override {
    if (!exchange_ || answered_) return;
    std::optional<HttpResponse> early;
    try {
      early = exchange_->on_body(data);
    } catch (const std::exception& e) {
      early = internal_error(e);
    }
    if (early) {
      keep_alive_ = false;
      finish(std::move(*early));
    }
  }
  void on_message_complete() override {
    body_ended_ = true;
    if (!exchange_ || answered_) return;
    finish(complete());
  }

 private:
  void process() {
    size_t offset = 0;
    while (!answered_ && offset < input_.size() && conn_->open() && !conn_->closing()) {
      if (parser_.paused()) parser_.resume();
      const size_t n = parser_.execute(input_.data() + offset, input_.size() - offset);
      offset += n;
      if (parser_.failed()) {
        keep_alive_ = false;
        finish(HttpResponse::text(parser_.error_status(), parser_.error() + "\n"));
        return;
      }
      if (n == 0 && !parser_.paused()) break;
    }
    input_.erase(0, offset);
  }

  // A handler that throws (a bug) costs its request a 500, never the server.
  static HttpResponse internal_error(const std::exception& e) {
    spdlog::error("hub: request failed: {}", e.what());
    return HttpResponse::text(500, "internal error\n");
  }
  HttpResponse complete() {
    try {
      return exchange_->on_complete();
    } catch (const std::exception& e) {
      return internal_error(e);
    }
  }

  void finish(HttpResponse r) {
    answered_ = true;
    ++server_.requests_;
    const bool head = request_.method == "HEAD";
    HeaderMap h;
    h.add(":status", str_cat(r.status));
    h.add("server", server_.options_.server_name);
    if (!r.content_type.empty()) h.add("content-type", r.content_type);
    const uint64_t length = r.file.empty() ? r.body.size() : r.file_size;
    bool has_length = false;
    for (const auto& [name, value] : r.headers) {
      if (equals_ignore_case(name, "content-length")) has_length = true;
      h.add(name, value);
    }
    if (!has_length && r.status != 204 && r.status != 304) h.add("content-length", str_cat(length));
    if (!keep_alive_) h.add("connection", "close");
    std::string out;
    http::encode_response_head(h, parser_.http_minor() == 0 && parser_.http_major() == 1, out);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now() - started_)
                        .count();
    spdlog::info("hub: {} {} {} {} {}ms {}", request_.remote, request_.method, request_.target,
                 r.status, ms, length);
    if (!head && r.file.empty()) out += r.body;
    conn_->write(out);
    exchange_.reset();
    if (!head && !r.file.empty()) {
      file_fd_ = ::open(r.file.c_str(), O_RDONLY | O_CLOEXEC);
      file_left_ = r.file_size;
      if (file_fd_ < 0) {
        // The headers are out: all that is left is to cut the response short.
        spdlog::error("hub: cannot open {}: {}", r.file, std::strerror(errno));
        conn_->close(true);
        done();
        return;
      }
      send_file_chunks();
      return;
    }
    end_response();
  }

  // Fills the write buffer up to its high watermark; the rest follows as it drains.
  void send_file_chunks() {
    while (file_left_ > 0 && conn_->open() && !conn_->above_high_watermark()) {
      const size_t want = static_cast<size_t>(std::min<uint64_t>(file_left_, kFileChunk));
      ssize_t got = 0;
      conn_->write_with([&](std::string& buffer) {
        const size_t before = buffer.size();
        buffer.resize(before + want);
        got = ::read(file_fd_, buffer.data() + before, want);
        buffer.resize(before + (got > 0 ? static_cast<size_t>(got) : 0));
      });
      if (got <= 0) {
        spdlog::error("hub: a blob file ended early ({} bytes missing)", file_left_);
        ::close(file_fd_);
        file_fd_ = -1;
        conn_->close(true);
        done();
        return;
      }
      file_left_ -= static_cast<uint64_t>(got);
    }
    if (file_left_ == 0) {
      ::close(file_fd_);
      file_fd_ = -1;
      end_response();
    }
  }

  void end_response() {
    // A refused body that was not read to its end leaves the stream unparseable: close.
    if (!keep_alive_ || (has_body_ && !body_ended_)) {
      conn_->close(true);
      done();
      return;
    }
    answered_ = false;
    // Bytes of the next request that came meanwhile.
    if (!input_.empty())
      asio::post(server_.loop_, [self = shared_from_this()] { self->process(); });
  }

  void arm_idle() {
    idle_.expires_after(server_.options_.idle_timeout);
    idle_.async_wait([weak = weak_from_this()](const asio::error_code& ec) {
      auto self = weak.lock();
      if (ec || !self || !self->conn_->open()) return;
      self->conn_->close(false);
      self->done();
    });
  }

 public:
  // The server is going away: close now, unanswered requests and all.
  void shut_down() {
    conn_->close(false);
    done();
  }

 private:
  void done() {
    if (finished_) return;
    finished_ = true;
    server_.sessions_.erase(this);
    idle_.cancel();
    if (file_fd_ >= 0) {
      ::close(file_fd_);
      file_fd_ = -1;
    }
    exchange_.reset();
    conn_->set_callbacks(nullptr);
    asio::post(server_.loop_, [s = std::move(self_)] {});
  }

  HttpServer& server_;
  std::shared_ptr<net::Connection> conn_;
  http::Http1Parser parser_;
  asio::steady_timer idle_;
  std::string input_;
  HttpRequest request_;
  std::unique_ptr<Exchange> exchange_;
  bool keep_alive_ = true;
  bool has_body_ = false;
  bool body_ended_ = false;
  bool answered_ = false;  // the current request has its response: hold the next one
  bool finished_ = false;
  int file_fd_ = -1;
  uint64_t file_left_ = 0;
  std::chrono::steady_clock::time_point started_;
  std::shared_ptr<Session> self_;
};

HttpServer::HttpServer(asio::io_context& loop, HttpService& service, HttpServerOptions options)
    : loop_(loop), service_(service), options_(std::move(options)), acceptor_(loop) {}

HttpServer::~HttpServer() {
  close();
  // Sessions hold themselves alive while their connection is open: end them, so none outlives
  // the server it points to.
  std::vector<std::weak_ptr<Session>> open;
  for (auto& [raw, weak] : sessions_) open.push_back(weak);
  for (auto& weak : open) {
    if (auto session = weak.lock()) session->shut_down();
  }
}

std::string HttpServer::listen(const asio::ip::tcp::endpoint& endpoint) {
  if (std::string error = net::open_listen_socket(acceptor_, endpoint); !error.empty()) {
    return error;
  }
  accept();
  return "";
}

uint16_t HttpServer::port() const { return net::bound_port(acceptor_); }

void HttpServer::close() {
  asio::error_code ec;
  acceptor_.close(ec);
}

void HttpServer::accept() {
  acceptor_.async_accept([this](const asio::error_code& ec, asio::ip::tcp::socket socket) {
    if (ec == asio::error::operation_aborted) return;
    if (!ec) {
      // 1 MiB of pending response before reading more of a file: the back-pressure bound.
      auto conn = std::make_shared<net::Connection>(std::move(socket), 1024 * 1024);
      std::make_shared<Session>(*this, std::move(conn))->start();
    }
    accept();
  });
}

}  // namespace sluice::hub
