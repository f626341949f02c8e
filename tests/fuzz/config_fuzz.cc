// libFuzzer target: config::load_from_string on arbitrary text (YAML or JSON).
//
// Checked, besides "no crash, leak or hang":
//   * ok() <=> bootstrap != null; a rejected config has errors, each with a message;
//   * an accepted config is consistent: every cluster a route names exists, cluster and listener
//     names are unique, weighted_clusters weights sum to total_weight, safe_regex matchers carry a
//     compiled regex; its route tables build and route requests;
//   * source_json (served by /config_dump) and node.metadata_json are valid JSON, and (for UTF-8
//     input) source_json loaded again as a config is accepted and converts to the same JSON.
//
// DataSource `filename` fields (and sluice.overlay_path, sluice.admin.token_file) make the loader
// read files. Inputs naming a device, FIFO or large file (/dev/zero, /dev/stdin, ...) are skipped:
// reading those hangs or exhausts memory by design.
//
// The same input is also read as an overlay of deployed plugins (config/overlay.h): what parses
// must write out and parse back to the same thing, and merge into a fixed config without harm.
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <variant>
#include <vector>

#include <re2/re2.h>
#include <yaml-cpp/yaml.h>

#include "common/header_map.h"
#include "config/bootstrap.h"
#include "config/loader.h"
#include "config/overlay.h"
#include "fuzz_check.h"
#include "http/route_table.h"

namespace {

using sluice::config::Bootstrap;
using sluice::config::LoadResult;

// --- Files the loader would read ----------------------------------------------------------------

bool safe_to_read(const std::string& path) {
  std::error_code ec;
  const std::filesystem::file_status st = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(st)) return true;  // the read fails: harmless
  if (std::filesystem::is_directory(st)) return true;   // reads nothing
  if (!std::filesystem::is_regular_file(st)) return false;
  const auto size = std::filesystem::file_size(path, ec);
  return !ec && size <= (1u << 20);
}

// False when the document has a `filename` key whose value is not safe to read. Only parses when
// the text could spell "filename" (raw, through escapes, or in UTF-16/32).
bool file_references_safe(std::string_view text) {
  if (text.find("ilename") == std::string_view::npos &&
      text.find("_path") == std::string_view::npos &&
      text.find("_file") == std::string_view::npos && text.find('\\') == std::string_view::npos &&
      text.find('\0') == std::string_view::npos) {
    return true;
  }
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception&) {
    return true;  // the loader stops at the same parse error, before reading anything
  }
  // Iterative walk; aliases can make the graph cyclic, so containers are visited once, keyed by
  // their source position.
  std::set<std::pair<size_t, int>> seen;
  std::vector<YAML::Node> stack{root};
  while (!stack.empty()) {
    YAML::Node node = stack.back();
    stack.pop_back();
    if (!node.IsMap() && !node.IsSequence()) continue;
    const YAML::Mark mark = node.Mark();
    if (!seen.insert({static_cast<size_t>(mark.pos), static_cast<int>(node.Type())}).second) {
      continue;
    }
    if (node.IsSequence()) {
      for (const YAML::Node& child : node) stack.push_back(child);
      continue;
    }
    for (const auto& kv : node) {
      const bool names_file = kv.first.IsScalar() && (kv.first.Scalar() == "filename" ||
                                                      kv.first.Scalar() == "overlay_path" ||
                                                      kv.first.Scalar() == "token_file");
      if (names_file && kv.second.IsScalar() && !safe_to_read(kv.second.Scalar())) {
        return false;
      }
      stack.push_back(kv.first);
      stack.push_back(kv.second);
    }
  }
  return true;
}

// --- A strict JSON validator (RFC 8259 grammar; string bytes >= 0x20 taken as they are) ----------

class JsonValidator {
 public:
  explicit JsonValidator(std::string_view s) : s_(s) {}

  bool valid() {
    ws();
    if (!value(0)) return false;
    ws();
    return i_ == s_.size();
  }

 private:
  bool value(int depth) {
    if (depth > 10000 || i_ >= s_.size()) return false;
    switch (s_[i_]) {
      case '{': {
        ++i_;
        ws();
        if (eat('}')) return true;
        do {
          ws();
          if (!string()) return false;
          ws();
          if (!eat(':')) return false;
          ws();
          if (!value(depth + 1)) return false;
          ws();
        } while (eat(','));
        return eat('}');
      }
      case '[': {
        ++i_;
        ws();
        if (eat(']')) return true;
        do {
          ws();
          if (!value(depth + 1)) return false;
          ws();
        } while (eat(','));
        return eat(']');
      }
      case '"':
        return string();
      case 't':
        return word("true");
      case 'f':
        return word("false");
      case 'n':
        return word("null");
      default:
        return number();
    }
  }

  bool string() {
    if (!eat('"')) return false;
    while (i_ < s_.size()) {
      const unsigned char c = static_cast<unsigned char>(s_[i_++]);
      if (c == '"') return true;
      if (c < 0x20) return false;
      if (c != '\\') continue;
      if (i_ >= s_.size()) return false;
      const char e = s_[i_++];
      if (e == 'u') {
        for (int k = 0; k < 4; ++k) {
          if (i_ >= s_.size() || !std::isxdigit(static_cast<unsigned char>(s_[i_++]))) return false;
        }
      } else if (std::string_view("\"\\/bfnrt").find(e) == std::string_view::npos) {
        return false;
      }
    }
    return false;
  }

  bool number() {
    eat('-');
    if (eat('0')) {
    } else if (!digits()) {
      return false;
    }
    if (eat('.') && !digits()) return false;
    if (eat('e') || eat('E')) {
      if (!eat('+')) eat('-');
      if (!digits()) return false;
    }
    return true;
  }

  bool digits() {
    const size_t start = i_;
    while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') ++i_;
    return i_ > start;
  }

  bool word(std::string_view w) {
    if (s_.substr(i_, w.size()) != w) return false;
    i_ += w.size();
    return true;
  }

  bool eat(char c) {
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }

  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r'))
      ++i_;
  }

  std::string_view s_;
  size_t i_ = 0;
};

bool valid_json(std::string_view s) { return JsonValidator(s).valid(); }

// yaml-cpp passes invalid UTF-8 through plain scalars but rejects it in quoted ones, so only
// well-formed text is expected to survive the trip through source_json.
bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    for (size_t k = 1; k <= n; ++k) {
      if (i + k >= s.size()) return false;
      const unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n + 1;
  }
  return true;
}

// --- Checks on an accepted config ----------------------------------------------------------------

void check_matcher(const sluice::config::StringMatcher& m) {
  if (m.kind == sluice::config::StringMatcher::Kind::SafeRegex) {
    FUZZ_CHECK(m.regex != nullptr && m.regex->ok(), "safe_regex matcher without a usable regex");
  }
  (void)m.matches("");
  (void)m.matches("/Foo/bar?x=1");
}

std::string example_authority(std::string_view domain) {
  std::string out(domain);
  for (char& c : out) {
    if (c == '*') c = 'x';
  }
  return out;
}

void check_route_config(const Bootstrap& b, const sluice::config::RouteConfiguration& rc) {
  std::vector<std::string> authorities{"", "unknown.example", "a:80"};
  std::vector<std::string> paths{"/", "/x/y?z=1", "*"};
  for (const auto& vh : rc.virtual_hosts) {
    for (const std::string& d : vh.domains) authorities.push_back(example_authority(d));
    for (const auto& route : vh.routes) {
      const auto& match = route.match;
      if (match.kind == sluice::config::RouteMatch::PathKind::SafeRegex) {
        FUZZ_CHECK(match.regex != nullptr && match.regex->ok(), "path safe_regex not compiled");
      } else {
        paths.push_back(match.value);
      }
      for (const auto& hm : match.headers) {
        if (hm.string_match) check_matcher(*hm.string_match);
      }
      for (const auto& qm : match.query_parameters) {
        if (qm.string_match) check_matcher(*qm.string_match);
      }
      if (const auto* action = std::get_if<sluice::config::RouteAction>(&route.action)) {
        if (!action->cluster.empty()) {
          FUZZ_CHECK(b.find_cluster(action->cluster) != nullptr, "route to unknown cluster '%s'",
                     action->cluster.c_str());
        }
        uint64_t sum = 0;
        for (const auto& wc : action->weighted_clusters) {
          FUZZ_CHECK(b.find_cluster(wc.name) != nullptr, "weighted cluster '%s' unknown",
                     wc.name.c_str());
          sum += wc.weight;
        }
        FUZZ_CHECK(sum == action->total_weight, "weights sum to %llu, total_weight %u",
                   static_cast<unsigned long long>(sum), action->total_weight);
        FUZZ_CHECK(action->weighted_clusters.empty() || sum > 0);
      }
    }
  }
  // The server builds this table per snapshot and consults it for every request.
  sluice::http::RouteTable table(rc);
  if (authorities.size() > 32) authorities.resize(32);
  if (paths.size() > 32) paths.resize(32);
  for (const std::string& authority : authorities) {
    (void)table.find_virtual_host(authority);
    for (const std::string& path : paths) {
      sluice::HeaderMap h;
      h.add(":method", "GET");
      h.add(":scheme", "http");
      h.add(":path", path);
      h.add(":authority", authority);
      h.add("x-fuzz", "1");
      const sluice::config::VirtualHost* vh = nullptr;
      const sluice::config::Route* route = table.route(h, &vh);
      if (route != nullptr) FUZZ_CHECK(vh != nullptr, "route without its virtual host");
    }
  }
}

void check_bootstrap(const Bootstrap& b) {
  std::set<std::string> clusters;
  for (const auto& c : b.clusters) {
    FUZZ_CHECK(clusters.insert(c.name).second, "duplicate cluster '%s' accepted", c.name.c_str());
    if (c.health_check) {
      FUZZ_CHECK(c.health_check->timeout.count() > 0 && c.health_check->interval.count() > 0);
      FUZZ_CHECK(c.health_check->kind != sluice::config::HealthCheck::Kind::Http ||
                 !c.health_check->path.empty());
      for (const auto& [start, end] : c.health_check->expected_statuses) FUZZ_CHECK(start < end);
    }
    if (c.outlier_detection) {
      FUZZ_CHECK(c.outlier_detection->consecutive_5xx >= 1);
      FUZZ_CHECK(c.outlier_detection->max_ejection_percent <= 100);
    }
    FUZZ_CHECK(b.find_cluster(c.name) == &c || b.find_cluster(c.name) != nullptr);
  }
  std::set<std::string> listeners;
  for (const auto& l : b.listeners) {
    FUZZ_CHECK(listeners.insert(l.name).second, "duplicate listener '%s' accepted", l.name.c_str());
    std::set<std::string> server_names;
    size_t default_chains = 0;
    for (const auto& chain : l.filter_chains) {
      // Chains are told apart by SNI: several means all TLS, distinct names, one default at most.
      if (l.filter_chains.size() > 1)
        FUZZ_CHECK(chain.tls.has_value(), "plain chain among several");
      if (chain.server_names.empty()) ++default_chains;
      for (const auto& name : chain.server_names) {
        FUZZ_CHECK(server_names.insert(name).second, "server name '%s' in two chains",
                   name.c_str());
      }
      if (chain.tls) FUZZ_CHECK(chain.tls->certificates.size() == 1, "TLS chain without one cert");
      for (const auto& filter : chain.filters) {
        if (const auto* hcm = std::get_if<sluice::config::HttpConnectionManager>(&filter.config)) {
          check_route_config(b, hcm->route_config);
        }
        if (const auto* tcp = std::get_if<sluice::config::TcpProxy>(&filter.config)) {
          FUZZ_CHECK(tcp->cluster.empty() != tcp->weighted_clusters.empty());
          if (!tcp->cluster.empty()) FUZZ_CHECK(b.find_cluster(tcp->cluster) != nullptr);
          uint64_t sum = 0;
          for (const auto& wc : tcp->weighted_clusters) {
            FUZZ_CHECK(b.find_cluster(wc.name) != nullptr, "unknown cluster '%s'", wc.name.c_str());
            sum += wc.weight;
          }
          FUZZ_CHECK(tcp->weighted_clusters.empty() || (sum == tcp->total_weight && sum > 0));
        }
      }
    }
    FUZZ_CHECK(l.filter_chains.size() < 2 || default_chains <= 1, "two default chains accepted");
  }
  FUZZ_CHECK(valid_json(b.node.metadata_json), "node.metadata_json is not JSON: %s",
             b.node.metadata_json.c_str());
}

void check_diagnostics(const std::vector<sluice::config::Diagnostic>& diags) {
  for (const auto& d : diags) {
    FUZZ_CHECK(!d.message.empty(), "diagnostic without a message at '%s'", d.path.c_str());
    FUZZ_CHECK(d.line >= 0);
    FUZZ_CHECK(!d.to_string().empty());
  }
}

// The input as an overlay file and as a POST /wasm/plugins body.
void check_overlay(std::string_view text) {
  (void)sluice::config::parse_deployed_plugin(text);
  sluice::Result<sluice::config::Overlay> overlay = sluice::config::parse_overlay(text);
  if (!overlay) {
    FUZZ_CHECK(!overlay.error().empty());
    return;
  }
  const std::string written = sluice::config::overlay_json(*overlay);
  sluice::Result<sluice::config::Overlay> again = sluice::config::parse_overlay(written);
  FUZZ_CHECK(again.ok(), "the overlay file written does not parse: %s", written.c_str());
  FUZZ_CHECK(sluice::config::overlay_json(*again) == written, "the overlay changes when re-read");
  static const char* kConfig = R"(static_resources:
  listeners:
  - name: a
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          http_filters: [{name: f}, {name: envoy.filters.http.router}]
  - name: b
    filter_chains: [{filters: [{name: tcp}]}]
)";
  YAML::Node root = YAML::Load(kConfig);
  const std::vector<std::string> errors = sluice::config::apply_overlay(*overlay, root);
  for (const auto& e : errors) FUZZ_CHECK(!e.empty());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  check_overlay(text);
  if (!file_references_safe(text)) return 0;

  const LoadResult r = sluice::config::load_from_string(text, "fuzz");
  check_diagnostics(r.errors);
  check_diagnostics(r.warnings);
  if (!r.ok()) {
    FUZZ_CHECK(!r.errors.empty());
    FUZZ_CHECK(r.bootstrap == nullptr, "rejected config with a bootstrap");
    return 0;
  }
  FUZZ_CHECK(r.bootstrap != nullptr, "accepted config without a bootstrap");
  const Bootstrap& b = *r.bootstrap;
  check_bootstrap(b);

  // /config_dump serves source_json; it must be JSON, and a config in its own right.
  FUZZ_CHECK(valid_json(b.source_json), "source_json is not JSON: %s", b.source_json.c_str());
  if (!valid_utf8(text)) return 0;
  const LoadResult again = sluice::config::load_from_string(b.source_json, "source_json");
  if (!again.ok()) {
    std::fprintf(stderr, "source_json: %s\nfirst error: %s\n", b.source_json.c_str(),
                 again.errors[0].to_string().c_str());
  }
  FUZZ_CHECK(again.ok(), "the config's own source_json is rejected");
  FUZZ_CHECK(again.bootstrap->source_json == b.source_json,
             "source_json changes when loaded again:\n  %s\n  %s", b.source_json.c_str(),
             again.bootstrap->source_json.c_str());
  return 0;
}
