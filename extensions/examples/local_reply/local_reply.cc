// local_reply: answers requests for one path itself, without reaching the upstream.
//
//   path = /hello            # exact match on :path, query string ignored
//   prefix = /static/        # or: match any :path starting with this (one of the two)
//   status = 200             # default 200
//   body = hello from sluice # default empty; the two characters \n become a newline
//   header.content-type = text/plain   # any number of extra response headers
//
// Other requests pass through untouched. The reply's details (access log) are
// "local_reply_extension".
#include <string>

#include "sluice/sdk.h"

namespace {

struct ReplyConfig {
  std::string path;
  bool prefix = false;
  uint32_t status = 200;
  std::string body;
  sluice::Pairs headers;
};

std::string unescape_newlines(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size() && s[i + 1] == 'n') {
      out.push_back('\n');
      ++i;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

bool parse_status(std::string_view s, uint32_t* out) {
  if (s.size() != 3) return false;
  uint32_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint32_t>(c - '0');
  }
  if (v < 100) return false;
  *out = v;
  return true;
}

class LocalReplyRoot : public sluice::RootContext {
 public:
  using RootContext::RootContext;

  bool on_configure(size_t) override {
    ReplyConfig config;
    bool have_path = false;
    for (auto& [key, value] : sluice::parse_key_value_lines(sluice::plugin_configuration())) {
      if (key == "path" || key == "prefix") {
        config.path = value;
        config.prefix = key == "prefix";
        have_path = !value.empty();
      } else if (key == "status") {
        if (!parse_status(value, &config.status)) {
          sluice::log_error("local_reply: bad status '{}'", value);
          return false;
        }
      } else if (key == "body") {
        config.body = unescape_newlines(value);
      } else if (key.rfind("header.", 0) == 0 && key.size() > 7) {
        config.headers.emplace_back(key.substr(7), value);
      } else {
        sluice::log_error("local_reply: unknown configuration key '{}'", key);
        return false;
      }
    }
    if (!have_path) {
      sluice::log_error("local_reply: configuration needs 'path' or 'prefix'");
      return false;
    }
    config_ = std::move(config);
    return true;
  }

  bool matches(std::string_view path) const {
    if (config_.prefix) return path.substr(0, config_.path.size()) == config_.path;
    return path.substr(0, path.find('?')) == config_.path;
  }
  const ReplyConfig& config() const { return config_; }
  sluice::Counter& replies() { return replies_; }

 private:
  ReplyConfig config_;
  sluice::Counter replies_{"local_reply.replies"};
};

class LocalReplyStream : public sluice::HttpContext {
 public:
  LocalReplyStream(uint32_t id, LocalReplyRoot* root) : HttpContext(id, root), root_(root) {}

  sluice::FilterHeadersStatus on_request_headers(uint32_t, bool) override {
    auto path = sluice::request_headers().get(":path");
    if (!path || !root_->matches(*path)) return sluice::FilterHeadersStatus::Continue;
    const ReplyConfig& c = root_->config();
    root_->replies().increment();
    sluice::send_local_response(c.status, c.body, c.headers, "local_reply_extension");
    return sluice::FilterHeadersStatus::StopIteration;
  }

 private:
  LocalReplyRoot* root_;
};

sluice::RegisterContextFactory<LocalReplyRoot, LocalReplyStream> registration("local_reply");

}  // namespace
