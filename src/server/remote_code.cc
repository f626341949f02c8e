#include "server/remote_code.h"

#include <openssl/sha.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/stats.h"
#include "common/strings.h"
#include "wasm/code_cache.h"

namespace sluice::server {
namespace {

// Envoy's names: wasm.remote_load_fetch_successes / _failures.
stats::Counter remote_counter(std::string_view name) {
  const std::string full = str_cat("wasm.remote_load_", name);
  return stats::Store::instance().counter(stats::MetricName{full, full, {}});
}

std::string sha256_hex(std::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  std::string out;
  out.reserve(2 * SHA256_DIGEST_LENGTH);
  for (unsigned char b : digest) out += fmt::format("{:02x}", b);
  return out;
}

// The disk cache (sluice.wasm.code_cache_dir): <dir>/<sha256>.wasm, trusted only if it still
// hashes to its name.
std::string disk_path(const std::string& dir, const std::string& sha256) {
  return (std::filesystem::path(dir) / (sha256 + ".wasm")).string();
}

bool load_from_disk(const std::string& dir, const std::string& sha256) {
  std::ifstream in(disk_path(dir, sha256), std::ios::binary);
  if (!in) return false;
  std::ostringstream bytes;
  bytes << in.rdbuf();
  std::string code = bytes.str();
  if (sha256_hex(code) != sha256) {
    spdlog::warn("wasm: {} does not hash to its name; ignored", disk_path(dir, sha256));
    return false;
  }
  spdlog::info("wasm: {} taken from the disk cache", sha256.substr(0, 12));
  wasm::CodeCache::instance().add(sha256, std::move(code));
  return true;
}

void save_to_disk(const std::string& dir, const std::string& sha256, std::string_view code) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  const std::string path = disk_path(dir, sha256);
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(code.data(), static_cast<std::streamsize>(code.size()));
    if (!out) {
      spdlog::warn("wasm: cannot write the code cache {}: {}", tmp, std::strerror(errno));
      return;
    }
  }
  std::filesystem::rename(tmp, path, ec);  // atomic: a reader sees all of it or nothing
  if (ec) spdlog::warn("wasm: cannot write the code cache {}: {}", path, ec.message());
}

void collect(const config::WasmPlugin& w, std::vector<const config::RemoteCode*>& out) {
  if (!w.remote) return;
  const bool seen = std::any_of(out.begin(), out.end(), [&](const config::RemoteCode* r) {
    return r->sha256 == w.remote->sha256;
  });
  if (!seen) out.push_back(&*w.remote);
}

}  // namespace

std::vector<const config::RemoteCode*> remote_code_of(const config::Bootstrap& b) {
  std::vector<const config::RemoteCode*> out;
  b.for_each_wasm_plugin([&](const config::WasmPlugin& w) { collect(w, out); });
  return out;
}

// One module: attempts until it is had or its retries are spent.
class RemoteCodeFetch : public http::AsyncRequestCallbacks {
 public:
  struct Module {
    config::RemoteCode spec;
    uint32_t attempts = 0;
    std::string last_error;
    bool done = false;
  };

  RemoteCodeFetch(asio::io_context& loop, http::AsyncClient& client, std::string cache_dir,
                  std::function<void(std::vector<std::string>)> done)
      : loop_(loop),
        client_(client),
        cache_dir_(std::move(cache_dir)),
        done_(std::move(done)),
        timer_(loop) {}
  ~RemoteCodeFetch() override {
    if (request_) request_->cancel();
  }

  void start(std::vector<config::RemoteCode> modules) {
    for (auto& m : modules) {
      Module module;
      module.spec = std::move(m);
      modules_.push_back(std::move(module));
    }
    next();
  }

  // http::AsyncRequestCallbacks
  void on_async_success(http::AsyncResponse& response) override {
    request_ = nullptr;
    Module& m = modules_[current_];
    const std::string_view status = response.headers.status();
    if (status != "200") {
      retry_or_fail(fmt::format("HTTP {}", status));
      return;
    }
    const std::string got = sha256_hex(response.body);
    if (got != m.spec.sha256) {
      retry_or_fail(
          fmt::format("sha256 mismatch: the configuration says {}, the {} bytes "
                      "fetched hash to {}",
                      m.spec.sha256, response.body.size(), got));
      return;
    }
    remote_counter("fetch_successes").inc();
    spdlog::info("wasm: fetched {} ({} bytes, sha256 {})", m.spec.uri, response.body.size(),
                 got.substr(0, 12));
    if (!cache_dir_.empty()) save_to_disk(cache_dir_, m.spec.sha256, response.body);
    wasm::CodeCache::instance().add(m.spec.sha256, std::move(response.body));
    m.done = true;
    ++current_;
    next();
  }
  void on_async_failure(http::AsyncFailure failure) override {
    request_ = nullptr;
    retry_or_fail(std::string(http::async_failure_name(failure)));
  }

 private:
  void next() {
    while (current_ < modules_.size() &&
           wasm::CodeCache::instance().contains(modules_[current_].spec.sha256)) {
      modules_[current_].done = true;
      ++current_;
    }
    if (current_ == modules_.size()) {
      std::vector<std::string> errors;
      for (const auto& m : modules_) {
        if (!m.done) {
          errors.push_back(
              fmt::format("cannot fetch Wasm code {} from cluster '{}' ({} "
                          "attempt(s)): {}",
                          m.spec.uri, m.spec.cluster, m.attempts, m.last_error));
        }
      }
      // `done` may drop this object: call it last, from a copy.
      auto done = std::move(done_);
      done(std::move(errors));
      return;
    }
    attempt();
  }

  void attempt() {
    Module& m = modules_[current_];
    ++m.attempts;
    HeaderMap headers;
    headers.add(":method", "GET");
    headers.add(":path", m.spec.path);
    headers.add(":authority", m.spec.authority);
    headers.add(":scheme", "http");
    http::AsyncClient::Options options;
    options.timeout = m.spec.timeout;
    options.max_response_body = 64 * 1024 * 1024;
    std::string error;
    request_ = client_.send(m.spec.cluster, headers, "", HeaderMap{}, options, *this, &error);
    if (!request_) {
      // Not worth retrying (an unknown cluster): the configuration is wrong.
      m.attempts = m.spec.num_retries + 1;
      asio::post(loop_, [this, error] { retry_or_fail(error); });
    }
  }

  void retry_or_fail(std::string error) {
    Module& m = modules_[current_];
    m.last_error = std::move(error);
    remote_counter("fetch_failures").inc();
    if (m.attempts > m.spec.num_retries) {
      spdlog::error("wasm: cannot fetch {}: {}", m.spec.uri, m.last_error);
      ++current_;
      next();
      return;
    }
    // Exponential backoff from base_interval, capped at max_interval.
    auto delay = m.spec.base_interval * (1LL << std::min<uint32_t>(m.attempts - 1, 20));
    delay = std::min<config::Duration>(delay, m.spec.max_interval);
    spdlog::warn("wasm: fetching {} failed ({}); attempt {} of {} in {} ms", m.spec.uri,
                 m.last_error, m.attempts + 1, m.spec.num_retries + 1, delay.count());
    timer_.expires_after(delay);
    timer_.async_wait([this](const asio::error_code& ec) {
      if (!ec) attempt();
    });
  }

  asio::io_context& loop_;
  http::AsyncClient& client_;
  const std::string cache_dir_;
  std::function<void(std::vector<std::string>)> done_;
  asio::steady_timer timer_;
  std::vector<Module> modules_;
  size_t current_ = 0;
  http::AsyncRequest* request_ = nullptr;
};

std::shared_ptr<RemoteCodeFetch> fetch_remote_code(
    asio::io_context& loop, http::AsyncClient& client, const config::Bootstrap& bootstrap,
    std::function<void(std::vector<std::string> errors)> done) {
  const std::string& dir = bootstrap.sluice.code_cache_dir;
  std::vector<config::RemoteCode> missing;
  for (const config::RemoteCode* r : remote_code_of(bootstrap)) {
    if (wasm::CodeCache::instance().contains(r->sha256)) continue;
    if (!dir.empty() && load_from_disk(dir, r->sha256)) continue;
    missing.push_back(*r);
  }
  auto fetch = std::make_shared<RemoteCodeFetch>(loop, client, dir, std::move(done));
  fetch->start(std::move(missing));
  return fetch;
}

}  // namespace sluice::server
