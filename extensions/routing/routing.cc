// routing: picks the upstream cluster in the program, by setting the header a route's
// `cluster_header` reads: from a list of clusters with weights (canary percentages), by a
// consistent hash of a request key (the same user always lands on the same cluster), or outright
// when a request names one of the listed clusters in an override header or cookie. It can also
// rewrite a path prefix. The proxy picks the route again after the header changes, as Envoy does.
//
// Configuration (key = value lines):
//   clusters = stable:90, canary:10   candidates and weights (required; weights 0 to 10000)
//   header = x-route-cluster          the header written (the route's cluster_header)
//   hash = header:x-user-id           what the choice hashes: header:NAME, cookie:NAME or
//                                     client_address (default); a request without it is hashed
//                                     by its client address
//   override = cookie:canary          header:NAME or cookie:NAME naming a listed cluster: it wins
//   rewrite = /v1/ -> /               replace this path prefix (the first match only)
// Metrics: routing.<name>.<cluster> counts the requests sent to each cluster.
#include <cctype>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "../common/address.h"
#include "sluice/sdk.h"

namespace {

// The SDK's trim (spaces, tabs, CR, LF), as an owned string.
std::string trim(std::string_view s) { return std::string(sluice::trim(s)); }

// FNV-1a, then a final mix: a stable, well-spread hash of the key.
uint64_t hash(std::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return h;
}

// The value of cookie `name` in a Cookie header, if present.
std::optional<std::string> cookie(const std::string& header, std::string_view name) {
  size_t start = 0;
  while (start < header.size()) {
    const size_t end = std::min(header.find(';', start), header.size());
    const std::string pair = trim(std::string_view(header).substr(start, end - start));
    const size_t eq = pair.find('=');
    if (eq != std::string::npos && pair.substr(0, eq) == name) return pair.substr(eq + 1);
    start = end + 1;
  }
  return std::nullopt;
}

// "header:NAME" / "cookie:NAME" / "client_address".
struct Source {
  enum class Kind { Header, Cookie, ClientAddress } kind = Kind::ClientAddress;
  std::string name;

  static std::optional<Source> parse(const std::string& text) {
    if (text == "client_address") return Source{};
    for (auto [prefix, kind] : {std::pair{"header:", Kind::Header}, {"cookie:", Kind::Cookie}}) {
      const std::string_view p(prefix);
      if (text.rfind(p, 0) == 0 && text.size() > p.size()) {
        std::string name = text.substr(p.size());
        if (kind == Kind::Header) {
          for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        }
        return Source{kind, name};
      }
    }
    return std::nullopt;
  }

  std::optional<std::string> read() const {
    switch (kind) {
      case Kind::Header:
        return sluice::request_headers().get(name);
      case Kind::Cookie: {
        auto header = sluice::request_headers().get("cookie");
        return header ? cookie(*header, name) : std::nullopt;
      }
      case Kind::ClientAddress:
        break;
    }
    auto address = sluice::get_property_string({"source", "address"});
    if (!address) return std::nullopt;
    // Without the port: a client's connections all count as one key.
    return ext_common::address_without_port(*address);
  }
};

struct Target {
  std::string cluster;
  uint64_t weight = 0;
  std::unique_ptr<sluice::Counter> sent;
};

class RoutingRoot : public sluice::RootContext {
 public:
  using RootContext::RootContext;

  bool on_configure(size_t) override {
    for (auto& [key, value] : sluice::parse_key_value_lines(sluice::plugin_configuration())) {
      if (key == "clusters") {
        size_t start = 0;
        while (start < value.size()) {
          const size_t comma = std::min(value.find(',', start), value.size());
          const std::string item = trim(std::string_view(value).substr(start, comma - start));
          start = comma + 1;
          if (item.empty()) continue;
          const size_t colon = item.rfind(':');
          auto weight = colon == std::string::npos ? std::optional<uint64_t>(1)
                                                   : sluice::parse_uint64(item.substr(colon + 1));
          if (!weight || *weight > 10000) return reject("a weight is 0 to 10000: '" + item + "'");
          Target t;
          t.cluster = trim(item.substr(0, colon));
          t.weight = *weight;
          if (t.cluster.empty()) return reject("a cluster name is empty");
          targets_.push_back(std::move(t));
          total_ += *weight;
        }
      } else if (key == "header") {
        header = value;
      } else if (key == "hash" || key == "override") {
        auto source = Source::parse(value);
        if (!source || (key == "override" && source->kind == Source::Kind::ClientAddress)) {
          return reject(key + " is header:NAME or cookie:NAME" +
                        (key == "hash" ? " or client_address" : ""));
        }
        if (key == "hash") {
          hash_ = *source;
        } else {
          override_ = *source;
        }
      } else if (key == "rewrite") {
        const size_t arrow = value.find("->");
        if (arrow == std::string::npos) return reject("rewrite is 'FROM -> TO'");
        rewrite_from_ = trim(value.substr(0, arrow));
        rewrite_to_ = trim(value.substr(arrow + 2));
        if (rewrite_from_.empty() || rewrite_from_.front() != '/') {
          return reject("rewrite's FROM is a path prefix starting with '/'");
        }
      } else {
        return reject("unknown configuration key '" + key + "'");
      }
    }
    if (targets_.empty()) return reject("'clusters' is required");
    if (total_ == 0) return reject("the weights add up to 0");
    const std::string name = sluice::plugin_name_or("routing");
    for (Target& t : targets_) {
      t.sent = std::make_unique<sluice::Counter>("routing." + name + "." + t.cluster);
    }
    sluice::log_info("routing: {} cluster(s) into {}", targets_.size(), header);
    return true;
  }

  // The cluster for this request.
  Target& choose() {
    if (override_) {
      if (auto named = override_->read()) {
        for (Target& t : targets_) {
          if (t.cluster == *named) return t;
        }
      }
    }
    std::optional<std::string> key = hash_.read();
    if (!key && hash_.kind != Source::Kind::ClientAddress) key = Source{}.read();
    // Consistent: the key's place in [0, total) picks the cluster whose weight covers it.
    uint64_t point = hash(key.value_or("")) % total_;
    for (Target& t : targets_) {
      if (point < t.weight) return t;
      point -= t.weight;
    }
    return targets_.back();
  }

  std::string header = "x-route-cluster";
  std::string rewrite_from_, rewrite_to_;

 private:
  bool reject(const std::string& why) {
    sluice::log_error("routing: {}", why);
    return false;
  }
  std::vector<Target> targets_;
  uint64_t total_ = 0;
  Source hash_;
  std::optional<Source> override_;
};

class RoutingStream : public sluice::HttpContext {
 public:
  RoutingStream(uint32_t id, RoutingRoot* root) : HttpContext(id, root), root_(root) {}

  sluice::FilterHeadersStatus on_request_headers(uint32_t, bool) override {
    const sluice::HeaderMap headers = sluice::request_headers();
    Target& target = root_->choose();
    headers.replace(root_->header, target.cluster);
    target.sent->increment();
    if (!root_->rewrite_from_.empty()) {
      const std::string path = headers.get(":path").value_or("");
      if (path.rfind(root_->rewrite_from_, 0) == 0) {
        headers.replace(":path", root_->rewrite_to_ + path.substr(root_->rewrite_from_.size()));
      }
    }
    return sluice::FilterHeadersStatus::Continue;
  }

 private:
  RoutingRoot* root_;
};

sluice::RegisterContextFactory<RoutingRoot, RoutingStream> registration("routing");

}  // namespace
