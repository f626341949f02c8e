#include "server/remote_code.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/files.h"
#include "common/sha256.h"
#include "common/stats.h"
#include "common/strings.h"
#include "oci/credentials.h"
#include "oci/registry_client.h"
#include "oci/wasm_image.h"
#include "wasm/code_cache.h"

namespace sluice::server {
namespace {

constexpr size_t kMaxModuleBytes = 64 * 1024 * 1024;

// Envoy's names: wasm.remote_load_fetch_successes / _failures.
stats::Counter remote_counter(std::string_view name) {
  const std::string full = str_cat("wasm.remote_load_", name);
  return stats::Store::instance().counter(stats::MetricName{full, full, {}});
}

// The code cache on disk is an optimisation: a file it cannot write is logged, not fatal.
void save_to_disk(const std::string& path, std::string_view content) {
  if (Status s = write_file_atomically(path, content); !s) {
    spdlog::warn("wasm: the code cache: {}", s.error());
  }
}

// The disk cache (sluice.wasm.code_cache_dir): <dir>/<sha256>.wasm, trusted only if it still
// hashes to its name; and for images, <dir>/oci/<sha256 of the reference> holding the hash of
// the module the reference led to last.
std::string disk_path(const std::string& dir, const std::string& sha256) {
  return (std::filesystem::path(dir) / (sha256 + ".wasm")).string();
}
std::string disk_reference_path(const std::string& dir, const std::string& reference) {
  return (std::filesystem::path(dir) / "oci" / sha256_hex(reference)).string();
}

bool load_from_disk(const std::string& dir, const std::string& sha256) {
  Result<std::string> code = read_file(disk_path(dir, sha256));
  if (!code) return false;
  if (sha256_hex(*code) != sha256) {
    spdlog::warn("wasm: {} does not hash to its name; ignored", disk_path(dir, sha256));
    return false;
  }
  spdlog::info("wasm: {} taken from the disk cache", sha256.substr(0, 12));
  wasm::CodeCache::instance().add(sha256, std::move(*code));
  return true;
}

// The module an image reference led to when it was last pulled (memory, then disk), if its code
// is at hand.
const std::string* remembered_module(const std::string& dir, const std::string& reference) {
  auto& cache = wasm::CodeCache::instance();
  if (const std::string* sha = cache.remembered(reference); sha && cache.contains(*sha)) {
    return sha;
  }
  if (dir.empty()) return nullptr;
  Result<std::string> sha = read_file(disk_reference_path(dir, reference));
  if (!sha || sha->size() != 64 || !load_from_disk(dir, *sha)) return nullptr;
  cache.remember(reference, *sha);
  return cache.remembered(reference);
}

// Where a module is fetched from and what says it is the right one; modules are fetched once per
// distinct key.
std::string fetch_key(const config::RemoteCode& r) { return r.oci ? r.uri : r.sha256; }

void collect(const config::WasmPlugin& w, std::vector<const config::RemoteCode*>& out) {
  if (!w.remote) return;
  const bool seen = std::any_of(out.begin(), out.end(), [&](const config::RemoteCode* r) {
    return fetch_key(*r) == fetch_key(*w.remote);
  });
  if (!seen) out.push_back(&*w.remote);
}

// Envoy's negative cache: a module that could not be had is not asked for again for 10 s
// (wasm.remote_load_cache_negative_hits); a configuration naming it meanwhile fails at once with
// the same reason. Main thread only; keyed by URI and hash.
constexpr std::chrono::seconds kNegativeCaching{10};
struct NegativeEntry {
  std::chrono::steady_clock::time_point at;
  std::string error;
};
std::map<std::string, NegativeEntry>& negative_cache() {
  static std::map<std::string, NegativeEntry> entries;
  return entries;
}
std::string negative_key(const config::RemoteCode& r) { return str_cat(r.uri, " ", r.sha256); }

bool is_insecure(const config::OciSettings& settings, const std::string& registry) {
  const std::string host = registry.substr(0, registry.rfind(':'));
  return std::any_of(settings.insecure_registries.begin(), settings.insecure_registries.end(),
                     [&](const std::string& r) { return r == registry || r == host; });
}

}  // namespace

std::vector<const config::RemoteCode*> remote_code_of(const config::Bootstrap& b) {
  std::vector<const config::RemoteCode*> out;
  b.for_each_wasm_plugin([&](const config::WasmPlugin& w) { collect(w, out); });
  return out;
}

// The modules one configuration needs, one after another, each attempted until it is had or its
// retries are spent. HTTP modules go through the cluster's async client on the loop; images are
// pulled with the (blocking) registry client on a thread of their own, which reports back on the
// loop.
class RemoteCodeFetch : public http::AsyncRequestCallbacks,
                        public std::enable_shared_from_this<RemoteCodeFetch> {
 public:
  // What a pull on the image thread came to. (A member, not in the file's anonymous namespace:
  // this class has external linkage, and the lambdas that carry one are its members.)
  struct ImageOutcome {
    std::string error;            // empty on success
    bool permanent = false;       // the registry refused in a way a retry cannot change
    std::string manifest_digest;  // the image manifest the reference resolved to
    bool known = false;           // that manifest was pulled before: `code` is empty
    std::string code;
    std::string variant;
  };
  struct Module {
    config::RemoteCode spec;
    uint32_t attempts = 0;
    std::string last_error;
    bool done = false;
  };

  RemoteCodeFetch(asio::io_context& loop, http::AsyncClient& client, std::string cache_dir,
                  config::OciSettings oci, std::function<void(std::vector<std::string>)> done)
      : loop_(loop),
        client_(client),
        cache_dir_(std::move(cache_dir)),
        oci_(std::move(oci)),
        done_(std::move(done)),
        timer_(loop) {}
  ~RemoteCodeFetch() override {
    if (request_) request_->cancel();
    cancelled_->store(true);  // the image thread's transfer stops at its next progress check
    if (image_thread_.joinable()) image_thread_.join();
  }

  // `failed_recently`: errors of modules in the negative cache, reported with the others.
  void start(std::vector<config::RemoteCode> modules, std::vector<std::string> failed_recently) {
    failed_recently_ = std::move(failed_recently);
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
    if (!cache_dir_.empty()) save_to_disk(disk_path(cache_dir_, got), response.body);
    wasm::CodeCache::instance().add(m.spec.sha256, std::move(response.body));
    finish_current();
  }
  void on_async_failure(http::AsyncFailure failure) override {
    request_ = nullptr;
    retry_or_fail(std::string(http::async_failure_name(failure)));
  }

 private:
  bool had(const Module& m) const {
    if (m.spec.oci) return false;  // an image is resolved at every load (its tag may move)
    return wasm::CodeCache::instance().contains(m.spec.sha256);
  }

  void finish_current() {
    modules_[current_].done = true;
    ++current_;
    next();
  }

  void next() {
    while (current_ < modules_.size() && had(modules_[current_])) {
      modules_[current_].done = true;
      ++current_;
    }
    if (current_ == modules_.size()) {
      std::vector<std::string> errors = std::move(failed_recently_);
      for (const auto& m : modules_) {
        if (m.done) continue;
        errors.push_back(m.spec.oci
                             ? fmt::format("cannot pull the Wasm image {} ({} attempt(s)): {}",
                                           m.spec.uri, m.attempts, m.last_error)
                             : fmt::format("cannot fetch Wasm code {} from cluster '{}' "
                                           "({} attempt(s)): {}",
                                           m.spec.uri, m.spec.cluster, m.attempts, m.last_error));
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
    if (m.spec.oci) {
      attempt_image(m);
      return;
    }
    HeaderMap headers;
    headers.add(":method", "GET");
    headers.add(":path", m.spec.path);
    headers.add(":authority", m.spec.authority);
    headers.add(":scheme", "http");
    http::AsyncClient::Options options;
    options.timeout = m.spec.timeout;
    options.max_response_body = kMaxModuleBytes;
    std::string error;
    request_ = client_.send(m.spec.cluster, headers, "", HeaderMap{}, options, *this, &error);
    if (!request_) {
      // Not worth retrying (an unknown cluster): the configuration is wrong.
      m.attempts = m.spec.num_retries + 1;
      fail_soon(std::move(error));
    }
  }

  // retry_or_fail from the loop, not from inside attempt() (whose caller may still be on the
  // stack), and not at all once this fetch is dropped.
  void fail_soon(std::string error) {
    asio::post(loop_, [weak = weak_from_this(), error = std::move(error)]() mutable {
      if (auto self = weak.lock()) self->retry_or_fail(std::move(error));
    });
  }

  // Pulls the image on a thread; the outcome comes back through on_image_outcome on the loop.
  void attempt_image(Module& m) {
    const oci::Reference ref = *m.spec.oci;
    oci::ClientOptions options;
    options.plain_http = is_insecure(oci_, ref.registry);
    options.timeout = m.spec.timeout;
    options.cancelled = [flag = cancelled_] { return flag->load(); };
    if (!oci_.credentials_file.empty()) {
      Result<oci::CredentialStore> store = oci::CredentialStore::load(oci_.credentials_file);
      if (!store) {
        m.attempts = m.spec.num_retries + 1;  // a configuration problem: retrying cannot help
        fail_soon(store.error());
        return;
      }
      options.credential = store->find(ref.registry);
      if (!options.credential) {
        if (std::string note = store->helper_note(ref.registry); !note.empty()) {
          spdlog::warn("wasm: {}", note);
        }
      }
    }
    // Image manifests pulled before: their modules are at hand, only the manifest is fetched.
    std::set<std::string> known;
    for (const std::string& key : wasm::CodeCache::instance().remembered_keys()) {
      if (key.compare(0, 7, "sha256:") == 0) known.insert(key);
    }
    spdlog::info("wasm: pulling {}{}", m.spec.uri,
                 m.attempts > 1 ? fmt::format(" (attempt {})", m.attempts) : "");
    if (image_thread_.joinable()) image_thread_.join();  // the last attempt's; it has reported
    // The loop has nothing of ours to wait for meanwhile: keep it running until the outcome.
    image_pending_.emplace(loop_.get_executor());
    image_thread_ = std::thread([this, weak = weak_from_this(), ref, options = std::move(options),
                                 known = std::move(known)]() mutable {
      ImageOutcome outcome = pull(ref, std::move(options), known);
      asio::post(loop_, [weak, outcome = std::move(outcome)]() mutable {
        if (auto self = weak.lock()) self->on_image_outcome(std::move(outcome));
      });
    });
  }

  // On the image thread: touches nothing but its arguments.
  static ImageOutcome pull(const oci::Reference& ref, oci::ClientOptions options,
                           const std::set<std::string>& known) {
    ImageOutcome out;
    const bool plain_http = options.plain_http;
    oci::RegistryClient client(ref.registry, std::move(options));
    Result<oci::Manifest> manifest = oci::resolve_image_manifest(client, ref);
    if (!manifest) {
      out.error = manifest.error();
      out.permanent = client.permanent_failure();
      if (!plain_http && out.error.find("SSL") != std::string::npos) {
        out.error += fmt::format(
            " (if {} speaks plain HTTP, list it in sluice.oci.insecure_registries)", ref.registry);
      }
      return out;
    }
    out.manifest_digest = manifest->digest;
    if (known.count(manifest->digest)) {
      out.known = true;
      return out;
    }
    Result<oci::PulledModule> module =
        oci::fetch_wasm_module(client, ref, *manifest, kMaxModuleBytes);
    if (!module) {
      out.error = module.error();
      out.permanent = client.permanent_failure();
      return out;
    }
    out.code = std::move(module->code);
    out.variant = std::move(module->variant);
    return out;
  }

  void on_image_outcome(ImageOutcome outcome) {
    image_pending_.reset();
    Module& m = modules_[current_];
    auto& cache = wasm::CodeCache::instance();
    if (!outcome.error.empty()) {
      // An unknown tag or refused credentials: say so now rather than after every backoff.
      if (outcome.permanent) m.attempts = m.spec.num_retries + 1;
      retry_or_fail(std::move(outcome.error));
      return;
    }
    std::string sha;
    if (outcome.known) {
      sha = *cache.remembered(outcome.manifest_digest);
    } else {
      sha = sha256_hex(outcome.code);
    }
    if (!m.spec.sha256.empty() && sha != m.spec.sha256) {
      m.attempts = m.spec.num_retries + 1;  // the registry's content is what it is
      retry_or_fail(
          fmt::format("sha256 mismatch: the configuration says {}, the module in the "
                      "image (manifest {}) hashes to {}",
                      m.spec.sha256, outcome.manifest_digest, sha));
      return;
    }
    remote_counter("fetch_successes").inc();
    if (outcome.known) {
      spdlog::info("wasm: {} is image {} (module sha256 {}), pulled before", m.spec.uri,
                   outcome.manifest_digest, sha.substr(0, 12));
    } else {
      spdlog::info("wasm: pulled {} ({} variant, manifest {}, {} bytes, module sha256 {})",
                   m.spec.uri, outcome.variant, outcome.manifest_digest, outcome.code.size(),
                   sha.substr(0, 12));
      if (!cache_dir_.empty()) save_to_disk(disk_path(cache_dir_, sha), outcome.code);
      cache.add(sha, std::move(outcome.code));
      cache.remember(outcome.manifest_digest, sha);
    }
    cache.remember(m.spec.uri, sha);
    if (!cache_dir_.empty()) {
      save_to_disk(disk_reference_path(cache_dir_, m.spec.uri), sha);
    }
    finish_current();
  }

  void retry_or_fail(std::string error) {
    Module& m = modules_[current_];
    m.last_error = std::move(error);
    remote_counter("fetch_failures").inc();
    if (m.attempts > m.spec.num_retries) {
      // An image pulled before (in this process, or kept in the disk cache) keeps serving as it
      // was when its registry cannot be reached now.
      if (m.spec.oci && m.spec.sha256.empty()) {
        if (const std::string* sha = remembered_module(cache_dir_, m.spec.uri)) {
          spdlog::warn("wasm: cannot pull {} ({}); keeping the module it named before (sha256 {})",
                       m.spec.uri, m.last_error, sha->substr(0, 12));
          finish_current();
          return;
        }
      }
      spdlog::error("wasm: cannot fetch {}: {}", m.spec.uri, m.last_error);
      negative_cache()[negative_key(m.spec)] = NegativeEntry{
          std::chrono::steady_clock::now(),
          fmt::format("{} ({} attempt(s)): {}", m.spec.uri, m.attempts, m.last_error)};
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
  const config::OciSettings oci_;
  std::function<void(std::vector<std::string>)> done_;
  asio::steady_timer timer_;
  std::vector<Module> modules_;
  std::vector<std::string> failed_recently_;
  size_t current_ = 0;
  http::AsyncRequest* request_ = nullptr;
  std::shared_ptr<std::atomic<bool>> cancelled_ = std::make_shared<std::atomic<bool>>(false);
  std::thread image_thread_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> image_pending_;
};

std::shared_ptr<RemoteCodeFetch> fetch_remote_code(
    asio::io_context& loop, http::AsyncClient& client, const config::Bootstrap& bootstrap,
    std::function<void(std::vector<std::string> errors)> done) {
  const std::string& dir = bootstrap.sluice.code_cache_dir;
  std::vector<config::RemoteCode> missing;
  std::vector<std::string> failed_recently;
  const auto now = std::chrono::steady_clock::now();
  // To be fetched, unless it failed within the negative-caching time.
  const auto fetch = [&](const config::RemoteCode& r) {
    auto negative = negative_cache().find(negative_key(r));
    if (negative == negative_cache().end() || now - negative->second.at >= kNegativeCaching) {
      missing.push_back(r);
      return;
    }
    remote_counter("cache_negative_hits").inc();
    // An image that resolved before still has the module it named then.
    if (r.oci && r.sha256.empty() && remembered_module(dir, r.uri)) return;
    const auto ago = std::chrono::duration_cast<std::chrono::seconds>(now - negative->second.at);
    failed_recently.push_back(
        fmt::format("Wasm code {} failed {} s ago (tried again {} s after a failure)",
                    negative->second.error, ago.count(), kNegativeCaching.count()));
  };
  for (const config::RemoteCode* r : remote_code_of(bootstrap)) {
    if (r->oci) {
      // Pinned to content (an image digest, or the module's sha256) and at hand: no registry
      // needed. A tag is resolved again at every load.
      if (!r->sha256.empty() && (wasm::CodeCache::instance().contains(r->sha256) ||
                                 (!dir.empty() && load_from_disk(dir, r->sha256)))) {
        wasm::CodeCache::instance().remember(r->uri, r->sha256);
        continue;
      }
      if (!r->oci->digest.empty() && remembered_module(dir, r->uri)) continue;
      fetch(*r);
      continue;
    }
    if (wasm::CodeCache::instance().contains(r->sha256)) continue;
    if (!dir.empty() && load_from_disk(dir, r->sha256)) continue;
    fetch(*r);
  }
  auto fetcher =
      std::make_shared<RemoteCodeFetch>(loop, client, dir, bootstrap.sluice.oci, std::move(done));
  fetcher->start(std::move(missing), std::move(failed_recently));
  return fetcher;
}

}  // namespace sluice::server
