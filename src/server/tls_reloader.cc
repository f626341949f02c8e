#include "server/tls_reloader.h"

#include <sys/stat.h>

#include <spdlog/spdlog.h>

#include "config/loader.h"
#include "config/tls_check.h"

namespace sluice::server {
namespace {

// What changes when a file is rewritten or replaced: device, inode, size and mtime (ns).
std::string file_signature(const std::vector<std::string>& files) {
  std::string out;
  for (const auto& f : files) {
    struct stat st {};
    if (::stat(f.c_str(), &st) != 0) {
      out += "missing;";
      continue;
    }
    out += std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino) + ":" +
           std::to_string(st.st_size) + ":" + std::to_string(st.st_mtim.tv_sec) + "." +
           std::to_string(st.st_mtim.tv_nsec) + ";";
  }
  return out;
}

bool read_whole(const std::string& path, std::string& out, std::string& error) {
  std::optional<std::string> contents = config::read_file(path, error);
  if (contents) out = std::move(*contents);
  return contents.has_value();
}

// The files behind `tls` (inline material has none).
std::vector<std::string> files_of(const config::CommonTls& tls) {
  std::vector<std::string> files;
  for (const auto& cert : tls.certificates) {
    if (!cert.certificate_chain_path.empty()) files.push_back(cert.certificate_chain_path);
    if (!cert.private_key_path.empty()) files.push_back(cert.private_key_path);
  }
  if (!tls.trusted_ca_path.empty()) files.push_back(tls.trusted_ca_path);
  return files;
}

// Re-reads the files behind `tls`; "" or what is wrong.
std::string refresh(config::CommonTls& tls) {
  std::string error;
  for (auto& cert : tls.certificates) {
    if (!cert.certificate_chain_path.empty() &&
        !read_whole(cert.certificate_chain_path, cert.certificate_chain, error)) {
      return error;
    }
    if (!cert.private_key_path.empty() &&
        !read_whole(cert.private_key_path, cert.private_key, error)) {
      return error;
    }
    if (std::string problem =
            config::check_certificate_and_key(cert.certificate_chain, cert.private_key);
        !problem.empty()) {
      return problem + " (" + cert.certificate_chain_path + ", " + cert.private_key_path + ")";
    }
  }
  if (!tls.trusted_ca_path.empty()) {
    if (!read_whole(tls.trusted_ca_path, tls.trusted_ca, error)) return error;
    if (std::string problem = config::check_certificates(tls.trusted_ca); !problem.empty()) {
      return "trusted_ca " + problem + " (" + tls.trusted_ca_path + ")";
    }
  }
  return "";
}

}  // namespace

TlsReloader::TlsReloader(asio::io_context& loop, std::chrono::milliseconds interval,
                         Publish publish)
    : timer_(loop), interval_(interval), publish_(std::move(publish)) {}

void TlsReloader::watch(const config::Listener& listener, const std::string& address) {
  Watched w;
  w.name = listener.name;
  for (const auto& chain : listener.filter_chains) {
    // A plaintext chain keeps its place (chain indices are config order) with nothing to watch.
    config::FilterChain copy;
    copy.server_names = chain.server_names;
    copy.tls = chain.tls;
    if (chain.tls) {
      for (auto& f : files_of(*chain.tls)) w.files.push_back(std::move(f));
    }
    w.chains.push_back(std::move(copy));
  }
  if (w.files.empty()) return;
  w.signature = file_signature(w.files);
  auto& store = stats::Store::instance();
  w.reloaded = store.counter(stats::listener_stat(address, "ssl.certificate_reload"));
  w.failed = store.counter(stats::listener_stat(address, "ssl.certificate_reload_failed"));
  listeners_.push_back(std::move(w));
}

void TlsReloader::watch_cluster(upstream::ClusterInfo& cluster) {
  if (!cluster.config().tls) return;
  WatchedCluster w{&cluster, *cluster.config().tls, files_of(*cluster.config().tls), "", {}, {}};
  if (w.files.empty()) return;
  w.signature = file_signature(w.files);
  auto& store = stats::Store::instance();
  w.reloaded = store.counter(stats::cluster_stat(cluster.name(), "ssl.certificate_reload"));
  w.failed = store.counter(stats::cluster_stat(cluster.name(), "ssl.certificate_reload_failed"));
  clusters_.push_back(std::move(w));
}

void TlsReloader::start() {
  if (!listeners_.empty() || !clusters_.empty()) schedule();
}

void TlsReloader::stop() { timer_.cancel(); }

void TlsReloader::schedule() {
  timer_.expires_after(interval_);
  timer_.async_wait([this](const asio::error_code& ec) {
    if (ec) return;
    poll();
    schedule();
  });
}

void TlsReloader::poll() {
  for (auto& w : listeners_) {
    std::string signature = file_signature(w.files);
    if (signature == w.signature) continue;
    w.signature = std::move(signature);
    reload(w);
  }
  for (auto& w : clusters_) {
    std::string signature = file_signature(w.files);
    if (signature == w.signature) continue;
    w.signature = std::move(signature);
    reload(w);
  }
}

void TlsReloader::reload(WatchedCluster& w) {
  const std::string& name = w.cluster->name();
  std::string problem = refresh(w.tls);
  if (problem.empty()) {
    auto context = net::TlsClientContext::create(w.tls, w.cluster->config().http2.has_value());
    if (context) {
      w.cluster->set_tls(std::move(*context));
      w.reloaded.inc();
      spdlog::info("cluster '{}': TLS certificates reloaded", name);
      return;
    }
    problem = context.error();
  }
  w.failed.inc();
  spdlog::error(
      "cluster '{}': TLS files changed but do not load, keeping the current "
      "certificates: {}",
      name, problem);
}

void TlsReloader::reload(Watched& w) {
  std::string problem;
  for (auto& chain : w.chains) {
    if (!chain.tls) continue;  // a listener's plaintext chain
    if (problem = refresh(*chain.tls); !problem.empty()) break;
  }
  if (problem.empty()) {
    auto chains = net::TlsFilterChains::build(w.chains);
    if (chains) {
      w.reloaded.inc();
      spdlog::info("listener '{}': TLS certificates reloaded", w.name);
      publish_(w.name, std::move(*chains));
      return;
    }
    problem = chains.error();
  }
  w.failed.inc();
  spdlog::error(
      "listener '{}': TLS files changed but do not load, keeping the current "
      "certificates: {}",
      w.name, problem);
}

}  // namespace sluice::server
