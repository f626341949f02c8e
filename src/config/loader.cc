#include "config/loader.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include <re2/re2.h>
#include <yaml-cpp/yaml.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/files.h"
#include "common/sha256.h"
#include "common/strings.h"
#include "config/field_walker.h"
#include "config/json.h"
#include "config/tls_check.h"
#include "config/type_urls.h"
#include "oci/reference.h"

namespace sluice::config {
namespace {

// Operational bootstrap fields that tune Envoy internals Sluice does not have (runtime layers,
// overload manager, stats sinks, watchdogs, cluster manager settings). Accepting them with a
// warning lets an existing Envoy config load unchanged.
constexpr std::string_view kIgnoredTopLevelFields[] = {
    "layered_runtime", "overload_manager", "stats_sinks",     "stats_flush_interval",
    "watchdog",        "watchdogs",        "cluster_manager",
};

constexpr std::string_view kUpstreamHttpOptionsName =
    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
constexpr std::string_view kUpstreamHttpOptionsType =
    "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
constexpr std::string_view kFileLogType =
    "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog";
constexpr std::string_view kFileLogName = "envoy.access_loggers.file";
constexpr std::string_view kStdoutLogType =
    "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog";
constexpr std::string_view kStdoutLogName = "envoy.access_loggers.stdout";
constexpr std::string_view kStderrLogType =
    "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StderrAccessLog";
constexpr std::string_view kStderrLogName = "envoy.access_loggers.stderr";
constexpr std::string_view kFilterConfigType =
    "type.googleapis.com/envoy.config.route.v3.FilterConfig";

template <typename T>
struct EnumName {
  std::string_view name;
  T value;
};

// Reads an enum by its proto name, ignoring case as Envoy's loader does ("strict_dns" is
// STRICT_DNS; Envoy's own examples write them so). Names in `not_yet` are valid Envoy values
// Sluice lacks. Returns false when the field is absent, `invalid` (if given) tells a bad value.
template <typename T>
bool read_enum(Fields& f, std::string_view key, T& out, std::initializer_list<EnumName<T>> names,
               std::initializer_list<std::string_view> not_yet = {}, bool* invalid = nullptr) {
  std::optional<Value> v = f.get(key);
  if (!v) return false;
  if (invalid) *invalid = true;
  std::optional<std::string> s = read_string(f.diags(), *v);
  if (!s) return false;
  for (const EnumName<T>& n : names) {
    if (equals_ignore_case(n.name, *s)) {
      out = n.value;
      if (invalid) *invalid = false;
      return true;
    }
  }
  std::vector<std::string_view> supported;
  for (const EnumName<T>& n : names) supported.push_back(n.name);
  const bool known = std::any_of(not_yet.begin(), not_yet.end(),
                                 [&](std::string_view n) { return equals_ignore_case(n, *s); });
  const std::string list = fmt::format("{}", fmt::join(supported, ", "));
  f.diags().error(*v, known ? fmt::format("\"{}\" is not supported yet (supported: {})", *s, list)
                            : fmt::format("unsupported value \"{}\" (supported: {})", *s, list));
  return false;
}

bool is_ip_literal(const std::string& s) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

bool is_wildcard_ip(const std::string& s) { return s == "0.0.0.0" || s == "::"; }

// Envoy refuses to let configs touch pseudo-headers and Host this way.
bool is_modifiable_header(std::string_view lower_name) {
  return !lower_name.empty() && lower_name[0] != ':' && lower_name != "host";
}

// Walks the document into a Bootstrap. Cross-references (route -> cluster, listener addresses)
// are recorded while walking and checked at the end, once every cluster and listener is known.
class Loader {
 public:
  explicit Loader(Diagnostics& diags) : d_(diags) {}

  void load(const Value& root, Bootstrap& out);

 private:
  struct Reference {
    std::string name;
    Value at;
  };

  void parse_node(const Value& v, Node& out);
  void parse_stats_config(const Value& v, Bootstrap& out);
  void parse_admin(const Value& v, Admin& out);
  void parse_static_resources(const Value& v, Bootstrap& out);
  bool parse_socket_address(const Value& v, SocketAddress& out, bool is_endpoint);
  void parse_listener(const Value& v, Listener& out);
  void parse_filter_chain(const Value& v, FilterChain& out);
  void parse_network_filter(const Value& v, NetworkFilter& out);
  void parse_hcm(Fields& f, HttpConnectionManager& out);
  void parse_tcp_proxy(Fields& f, TcpProxy& out);
  void parse_health_check(const Value& v, HealthCheck& out);
  void parse_outlier_detection(const Value& v, OutlierDetection& out);
  void parse_http_filter(const Value& v, HttpFilter& out);
  void parse_wasm_filter(const Value& filter, Fields* typed_config, HttpFilter& out);
  // transport_socket envoy.transport_sockets.tls: its typed_config when it has the `type_url`.
  std::optional<Value> tls_transport_socket(const Value& v, std::string_view type_url);
  void parse_downstream_tls(const Value& v, FilterChain& out);
  void parse_upstream_tls(const Value& v, Cluster& out);
  // common_tls_context. `validation` reads what validation_context holds beyond trusted_ca.
  void parse_common_tls(const Value& v, CommonTls& out,
                        const std::function<void(Fields&)>& validation);
  void parse_filter_chain_match(const Value& v, FilterChain& out);
  void parse_listener_filter(const Value& v);
  void check_filter_chains(const Value& v, Fields& f, const Listener& out);
  void parse_plugin_config(const Value& config, WasmPlugin& w);
  void parse_remote_code(const Value& remote, WasmPlugin& w);
  void parse_bootstrap_extension(const Value& v, Bootstrap& out);
  void parse_sluice(const Value& v, SluiceSettings& out);
  void parse_wasm_settings(const Value& v, WasmPluginSettings& out, bool per_plugin);
  void parse_any_bytes(const Value& v, std::string& out);
  void parse_access_log(const Value& v, AccessLog& out);
  void parse_log_format(Fields& f, AccessLog& out);
  // A DataSource's contents; `path` (when given) gets its filename, "" for inline data.
  std::optional<std::string> parse_data_source(const Value& v, std::string* path = nullptr);
  void parse_route_config(const Value& v, RouteConfiguration& out);
  // `seen_domains` spans one route configuration: a domain may appear in one virtual host only.
  using DomainIndex = std::map<std::string, Value, std::less<>>;
  void parse_virtual_host(const Value& v, VirtualHost& out, DomainIndex& seen_domains);
  void parse_domain(const Value& v, std::vector<std::string>& out, DomainIndex& seen_domains);
  void parse_route(const Value& v, Route& out);
  void parse_route_match(const Value& v, RouteMatch& out);
  std::shared_ptr<const re2::RE2> parse_regex_matcher(const Value& v);
  std::optional<StringMatcher> parse_string_matcher(const Value& v);
  void parse_header_matcher(const Value& v, HeaderMatcher& out);
  void parse_query_parameter_matcher(const Value& v, QueryParameterMatcher& out);
  void parse_route_action(const Value& v, RouteAction& out);
  void parse_weighted_clusters(const Value& v, RouteAction& out);
  void parse_retry_policy(const Value& v, RetryPolicy& out);
  void parse_direct_response(const Value& v, DirectResponseAction& out);
  void parse_redirect(const Value& v, RedirectAction& out);
  void parse_header_mutations(Fields& f, HeaderMutations& out);
  void parse_header_value_option(const Value& v, HeaderValueOption& out);
  void parse_header_names(Fields& f, std::string_view key, std::vector<std::string>& out);
  void parse_per_filter_config(Fields& f, std::vector<std::string>& disabled);
  void parse_cluster(const Value& v, Cluster& out);
  // `check_addresses`: false when the cluster's type was invalid (its own error says so; the
  // addresses cannot be judged against it).
  void parse_load_assignment(const Value& v, Cluster& out, bool check_addresses);
  void parse_upstream_http_options(const Value& v, Cluster& out);
  void parse_http1_options(const Value& v, bool& enable_trailers);
  void parse_http2_options(const Value& v, Http2ProtocolOptions& out);
  void parse_san_matchers(Fields& validation, CommonTls& tls);
  void parse_circuit_breakers(const Value& v, CircuitBreakerThresholds& out);

  void check_references(const Bootstrap& b);

  Diagnostics& d_;
  std::vector<Reference> cluster_refs_;
  std::vector<Reference> listener_names_;
  std::vector<Reference> cluster_names_;
  std::vector<std::pair<SocketAddress, Value>> bound_addresses_;  // listeners, then admin
  std::vector<Reference> wasm_plugin_settings_;                   // sluice.wasm.plugins keys
};

void Loader::load(const Value& root, Bootstrap& out) {
  Fields f(d_, root);
  if (std::optional<Value> v = f.get("node")) parse_node(*v, out.node);
  if (std::optional<Value> v = f.get("admin")) parse_admin(*v, out.admin);
  if (std::optional<Value> v = f.get("static_resources")) parse_static_resources(*v, out);
  f.for_each("bootstrap_extensions", [&](const Value& e) { parse_bootstrap_extension(e, out); });
  if (std::optional<Value> v = f.get("sluice")) parse_sluice(*v, out.sluice);
  if (std::optional<Value> v = f.get("stats_config")) parse_stats_config(*v, out);
  f.reject("dynamic_resources", "not supported: Sluice only loads static_resources");
  for (std::string_view key : kIgnoredTopLevelFields) f.ignore(key, "accepted but ignored");
  check_references(out);
}

// stats_config: stats_tags as Envoy's tag specifiers (regexes in RE2 syntax, which reads the
// patterns Envoy and Istio configs use: non-greedy groups, escapes; not lookarounds).
void Loader::parse_stats_config(const Value& v, Bootstrap& out) {
  Fields f(d_, v);
  f.for_each("stats_tags", [&](const Value& t) {
    Fields tf(d_, t);
    StatsTag tag;
    tf.read_string("tag_name", tag.name);
    const bool has_regex = tf.read_string("regex", tag.regex);
    const bool has_fixed = tf.read_string("fixed_value", tag.fixed_value);
    if (tag.name.empty()) d_.error(t, "tag_name is required");
    if (has_regex == has_fixed) {
      d_.error(t, "a stats tag has exactly one of regex and fixed_value");
      return;
    }
    if (has_regex) {
      RE2::Options quiet;
      quiet.set_log_errors(false);
      const RE2 re(tag.regex, quiet);
      if (!re.ok()) {
        d_.error(t, str_cat("invalid regex '", tag.regex, "': ", re.error()));
        return;
      }
      if (re.NumberOfCapturingGroups() < 1) {
        d_.error(t, str_cat("the regex '", tag.regex,
                            "' needs a capture group (the text removed from the name)"));
        return;
      }
    }
    out.stats_tags.push_back(std::move(tag));
  });
  bool use_defaults = true;
  if (f.read_bool("use_all_default_tags", use_defaults) && !use_defaults) {
    d_.warn(v,
            "use_all_default_tags: false is ignored: Sluice always applies Envoy's default "
            "tag extractors");
  }
  f.ignore("stats_matcher", "accepted but ignored (every stat is kept)");
  f.ignore("histogram_bucket_settings", "accepted but ignored (Envoy's default buckets)");
}

void Loader::parse_node(const Value& v, Node& out) {
  Fields f(d_, v);
  f.read_string("id", out.id);
  f.read_string("cluster", out.cluster);
  if (std::optional<Value> metadata = f.get("metadata")) {
    if (metadata->node.IsMap()) {
      out.metadata_json = yaml_to_json(metadata->node);
    } else {
      d_.error(*metadata, "expected a mapping");
    }
  }
  if (std::optional<Value> locality = f.get("locality")) {
    Fields l(d_, *locality);
    l.read_string("region", out.locality_region);
    l.read_string("zone", out.locality_zone);
    l.read_string("sub_zone", out.locality_sub_zone);
  }
}

void Loader::parse_admin(const Value& v, Admin& out) {
  Fields f(d_, v);
  if (std::optional<Value> address = f.get("address")) {
    SocketAddress sa;
    if (parse_socket_address(*address, sa, /*is_endpoint=*/false)) {
      out.address = sa;
      bound_addresses_.emplace_back(sa, *address);
    }
  }
  f.read_string("access_log_path", out.access_log_path);
  f.ignore("access_log", "accepted but ignored (use access_log_path)");
  f.ignore("profile_path", "accepted but ignored");
}

void Loader::parse_static_resources(const Value& v, Bootstrap& out) {
  Fields f(d_, v);
  f.for_each("listeners", [&](const Value& e) { parse_listener(e, out.listeners.emplace_back()); });
  f.for_each("clusters", [&](const Value& e) { parse_cluster(e, out.clusters.emplace_back()); });
}

// envoy.config.core.v3.Address with a socket_address (pipes and internal addresses are not
// supported). Listener and admin addresses must be IPs; endpoints may be hostnames (DNS clusters
// are checked by the caller) and need a non-zero port.
bool Loader::parse_socket_address(const Value& v, SocketAddress& out, bool is_endpoint) {
  Fields address(d_, v);
  std::optional<Value> socket = address.get("socket_address", Need::kRequired);
  if (!socket) return false;
  Fields f(d_, *socket);
  bool ok = f.read_string("address", out.address, Need::kRequired);
  if (ok && !is_endpoint && !is_ip_literal(out.address)) {
    d_.error(*f.get("address"), fmt::format("must be an IP address, got \"{}\"", out.address));
    ok = false;
  }
  uint32_t port = 0;
  if (is_endpoint) {
    ok = f.read_uint32("port_value", port, 1, 65535, Need::kRequired) && ok;
  } else if (f.has("port_value")) {
    ok = f.read_uint32("port_value", port, 0, 65535) && ok;
  }
  out.port = static_cast<uint16_t>(port);
  if (std::optional<Value> protocol = f.get("protocol")) {
    std::optional<std::string> p = read_string(d_, *protocol);
    if (p && *p != "TCP") {
      d_.error(*protocol, fmt::format("only TCP is supported, got \"{}\"", *p));
      ok = false;
    }
  }
  return ok;
}

void Loader::parse_listener(const Value& v, Listener& out) {
  Fields f(d_, v);
  if (f.read_string("name", out.name)) listener_names_.push_back({out.name, *f.get("name")});
  if (std::optional<Value> address = f.get("address", Need::kRequired)) {
    if (parse_socket_address(*address, out.address, /*is_endpoint=*/false)) {
      bound_addresses_.emplace_back(out.address, *address);
    }
  }
  f.read_uint32("per_connection_buffer_limit_bytes", out.per_connection_buffer_limit_bytes);
  enum class Direction { kUnspecified, kInbound, kOutbound };
  Direction direction = Direction::kUnspecified;  // informational in Envoy; validated, then dropped
  read_enum<Direction>(f, "traffic_direction", direction,
                       {{"UNSPECIFIED", Direction::kUnspecified},
                        {"INBOUND", Direction::kInbound},
                        {"OUTBOUND", Direction::kOutbound}});
  f.for_each("listener_filters", [&](const Value& e) { parse_listener_filter(e); });
  if (std::optional<Value> balance = f.get("connection_balance_config")) {
    Fields b(d_, *balance);
    if (std::optional<Value> exact = b.get("exact_balance")) {
      Fields empty(d_, *exact);  // an empty message: any field in it is unknown
      out.exact_balance = true;
    }
    if (std::optional<Value> extend = b.get("extend_balance")) {
      d_.error(*extend, "extension connection balancers are not supported (exact_balance is)");
    }
  }
  f.for_each(
      "filter_chains",
      [&](const Value& e) { parse_filter_chain(e, out.filter_chains.emplace_back()); },
      Need::kRequired);
  if (std::optional<Value> dc = f.get("default_filter_chain")) {
    FilterChain chain;
    parse_filter_chain(*dc, chain);
    if (!chain.server_names.empty()) {
      d_.error(*dc, "default_filter_chain takes no filter_chain_match");
    }
    out.filter_chains.push_back(std::move(chain));
  }
  check_filter_chains(v, f, out);
}

// Chains are told apart by SNI only: they must all speak TLS (or there must be one), and no two
// may claim the same server name, or both be the default.
void Loader::check_filter_chains(const Value& v, Fields& f, const Listener& out) {
  const auto& chains = out.filter_chains;
  if (chains.size() < 2) {
    if (chains.size() == 1 && !chains[0].server_names.empty() && !chains[0].tls) {
      d_.error(v, "filter_chain_match.server_names needs a TLS transport_socket on the chain");
    }
    return;
  }
  const std::string path = child_path(v.path, "filter_chains");
  const int line = f.get("filter_chains") ? f.get("filter_chains")->line : v.line;
  // TLS chains are chosen by SNI; at most one plaintext chain takes the connections whose first
  // byte is not a TLS handshake.
  std::set<std::string> seen;
  size_t defaults = 0, plaintext = 0;
  for (const auto& chain : chains) {
    if (!chain.tls) {
      if (!chain.server_names.empty()) {
        d_.error(path, line,
                 "filter_chain_match.server_names needs a TLS transport_socket on the chain");
      }
      if (++plaintext == 2) {
        d_.error(path, line,
                 "more than one filter chain without TLS: they would match the same connections");
      }
      continue;
    }
    if (chain.server_names.empty()) ++defaults;
    for (const auto& name : chain.server_names) {
      if (!seen.insert(name).second) {
        d_.error(path, line,
                 fmt::format("server name '{}' is in more than one filter chain", name));
      }
    }
  }
  if (defaults > 1) {
    d_.error(path, line,
             "more than one filter chain without filter_chain_match.server_names: they would "
             "match the same connections");
  }
}

std::optional<Value> Loader::tls_transport_socket(const Value& v, std::string_view type_url) {
  Fields f(d_, v);
  std::string name;
  f.read_string("name", name);
  if (!name.empty() && name != "envoy.transport_sockets.tls" && name != "tls") {
    d_.error(*f.get("name"), fmt::format("unsupported transport socket '{}' (Sluice has "
                                         "envoy.transport_sockets.tls)",
                                         name));
  }
  std::optional<Value> typed = f.get("typed_config", Need::kRequired);
  if (!typed) return std::nullopt;
  Fields t(d_, *typed);
  t.accept_all();  // the caller reads the fields
  std::string type;
  if (!t.read_string("@type", type, Need::kRequired)) return std::nullopt;
  if (type != type_url) {
    d_.error(*typed, fmt::format("unsupported transport socket type '{}' here (expected {})", type,
                                 type_url));
    return std::nullopt;
  }
  return typed;
}

void Loader::parse_common_tls(const Value& v, CommonTls& tls,
                              const std::function<void(Fields&)>& validation) {
  Fields c(d_, v);
  const size_t certs = c.for_each("tls_certificates", [&](const Value& e) {
    Fields cf(d_, e);
    std::optional<Value> chain = cf.get("certificate_chain", Need::kRequired);
    std::optional<Value> key = cf.get("private_key", Need::kRequired);
    cf.reject("password", "encrypted private keys are not supported");
    if (!chain || !key) return;
    TlsCertificate cert;
    std::optional<std::string> chain_pem = parse_data_source(*chain, &cert.certificate_chain_path);
    std::optional<std::string> key_pem = parse_data_source(*key, &cert.private_key_path);
    if (!chain_pem || !key_pem) return;
    if (std::string problem = check_certificate_and_key(*chain_pem, *key_pem); !problem.empty()) {
      d_.error(e, problem);
      return;
    }
    cert.certificate_chain = std::move(*chain_pem);
    cert.private_key = std::move(*key_pem);
    tls.certificates.push_back(std::move(cert));
  });
  if (certs > 1) {
    d_.error(v, "only one of tls_certificates is supported (one certificate per context)");
  }
  c.for_each("alpn_protocols", [&](const Value& e) {
    if (std::optional<std::string> p = read_string(d_, e)) tls.alpn_protocols.push_back(*p);
  });
  c.reject("tls_certificate_sds_secret_configs", "SDS is not supported: use tls_certificates");
  c.reject("validation_context_sds_secret_config", "SDS is not supported: use validation_context");
  c.reject("combined_validation_context",
           "combined_validation_context is not supported yet: "
           "use validation_context");
  if (std::optional<Value> params = c.get("tls_params")) {
    Fields p(d_, *params);
    const std::initializer_list<EnumName<CommonTls::Version>> versions = {
        {"TLS_AUTO", CommonTls::Version::Auto},
        {"TLSv1_0", CommonTls::Version::Tls10},
        {"TLSv1_1", CommonTls::Version::Tls11},
        {"TLSv1_2", CommonTls::Version::Tls12},
        {"TLSv1_3", CommonTls::Version::Tls13}};
    read_enum<CommonTls::Version>(p, "tls_minimum_protocol_version", tls.min_version, versions);
    read_enum<CommonTls::Version>(p, "tls_maximum_protocol_version", tls.max_version, versions);
    p.for_each("cipher_suites", [&](const Value& e) {
      if (std::optional<std::string> cs = read_string(d_, e)) tls.cipher_suites.push_back(*cs);
    });
    if (!tls.cipher_suites.empty()) {
      if (std::string problem = check_cipher_list(absl::StrJoin(tls.cipher_suites, ":"));
          !problem.empty()) {
        d_.error(*p.get("cipher_suites"), problem);
      }
    }
    if (tls.min_version != CommonTls::Version::Auto &&
        tls.max_version != CommonTls::Version::Auto && tls.min_version > tls.max_version) {
      d_.error(*params, "tls_minimum_protocol_version is above tls_maximum_protocol_version");
    }
    p.ignore("ecdh_curves", "ecdh_curves is accepted; OpenSSL's defaults apply");
    p.ignore("signature_algorithms", "signature_algorithms is accepted; OpenSSL's defaults apply");
  }
  if (std::optional<Value> vc = c.get("validation_context")) {
    Fields vf(d_, *vc);
    if (std::optional<Value> ca = vf.get("trusted_ca")) {
      std::string path;
      if (std::optional<std::string> pem = parse_data_source(*ca, &path)) {
        if (std::string problem = check_certificates(*pem); !problem.empty()) {
          d_.error(*ca, "trusted_ca " + problem);
        } else {
          tls.trusted_ca = std::move(*pem);
          tls.trusted_ca_path = std::move(path);
        }
      }
    }
    validation(vf);
    vf.reject("verify_certificate_hash", "certificate pinning is not supported yet");
    vf.reject("verify_certificate_spki", "certificate pinning is not supported yet");
    vf.reject("crl", "CRLs are not supported yet");
  }
}

// transport_socket: envoy.transport_sockets.tls with a DownstreamTlsContext.
void Loader::parse_downstream_tls(const Value& v, FilterChain& out) {
  std::optional<Value> typed = tls_transport_socket(v, kDownstreamTlsType);
  if (!typed) return;
  Fields t(d_, *typed);
  std::string type_url;  // checked by tls_transport_socket
  t.read_string("@type", type_url);
  DownstreamTls& tls = out.tls.emplace();
  t.read_bool("require_client_certificate", tls.require_client_certificate);
  t.ignore("session_timeout", "session_timeout is accepted; OpenSSL's default applies");
  t.ignore("disable_stateless_session_resumption",
           "disable_stateless_session_resumption is accepted; session tickets stay on");
  t.reject("session_ticket_keys", "explicit session ticket keys are not supported yet");
  t.reject("require_sni", "require_sni is not supported yet");
  t.reject("ocsp_staple_policy", "OCSP stapling is not supported");
  std::optional<Value> common = t.get("common_tls_context", Need::kRequired);
  if (!common) return;
  parse_common_tls(*common, tls, [&](Fields& vf) { parse_san_matchers(vf, tls); });
  if (tls.certificates.empty()) {
    d_.error(*common, "a DownstreamTlsContext needs common_tls_context.tls_certificates");
  }
  if ((!tls.match_dns_san.empty() || !tls.match_uri_san.empty()) && tls.trusted_ca.empty()) {
    d_.error(*common, "SAN matching needs validation_context.trusted_ca to verify against");
  }
  if (tls.require_client_certificate && tls.trusted_ca.empty()) {
    d_.error(*typed,
             "require_client_certificate needs common_tls_context.validation_context."
             "trusted_ca to verify client certificates against");
  }
}

// validation_context's SAN matchers (the peer's certificate must carry one), either side.
void Loader::parse_san_matchers(Fields& validation, CommonTls& tls) {
  // match_typed_subject_alt_names: [{san_type: DNS|URI, matcher: {exact: ...}}].
  validation.for_each("match_typed_subject_alt_names", [&](const Value& e) {
    Fields m(d_, e);
    std::string san_type;
    m.read_string("san_type", san_type, Need::kRequired);
    std::optional<Value> matcher = m.get("matcher", Need::kRequired);
    if (!matcher) return;
    Fields mf(d_, *matcher);
    std::string exact;
    if (!mf.read_string("exact", exact)) {
      mf.accept_all();
      d_.error(*matcher, "only exact SAN matchers are supported");
      return;
    }
    if (san_type == "DNS") {
      tls.match_dns_san.push_back(exact);
    } else if (san_type == "URI") {
      tls.match_uri_san.push_back(exact);
    } else if (!san_type.empty()) {
      d_.error(e, fmt::format("san_type '{}' is not supported (DNS, URI)", san_type));
    }
  });
  // The older form: match_subject_alt_names [{exact: ...}] checks DNS and URI SANs alike.
  validation.for_each("match_subject_alt_names", [&](const Value& e) {
    Fields mf(d_, e);
    std::string exact;
    if (!mf.read_string("exact", exact)) {
      mf.accept_all();
      d_.error(e, "only exact SAN matchers are supported");
      return;
    }
    tls.match_dns_san.push_back(exact);
    tls.match_uri_san.push_back(exact);
  });
}

// A cluster's transport_socket: envoy.transport_sockets.tls with an UpstreamTlsContext.
void Loader::parse_upstream_tls(const Value& v, Cluster& out) {
  std::optional<Value> typed = tls_transport_socket(v, kUpstreamTlsType);
  if (!typed) return;
  Fields t(d_, *typed);
  std::string type_url;  // checked by tls_transport_socket
  t.read_string("@type", type_url);
  UpstreamTls& tls = out.tls.emplace();
  t.read_string("sni", tls.sni);
  t.ignore("allow_renegotiation", "allow_renegotiation is accepted; renegotiation stays off");
  t.read_uint32("max_session_keys", tls.max_session_keys, 0, 1024);
  std::optional<Value> common = t.get("common_tls_context");
  if (!common) return;
  parse_common_tls(*common, tls, [&](Fields& vf) { parse_san_matchers(vf, tls); });
  if ((!tls.match_dns_san.empty() || !tls.match_uri_san.empty()) && tls.trusted_ca.empty()) {
    d_.error(*common, "SAN matching needs validation_context.trusted_ca to verify against");
  }
}

// filter_chain_match: only server_names (and transport_protocol "tls", which a TLS chain implies).
void Loader::parse_filter_chain_match(const Value& v, FilterChain& out) {
  Fields f(d_, v);
  f.for_each("server_names", [&](const Value& e) {
    std::optional<std::string> name = read_string(d_, e);
    if (!name) return;
    std::string lower = absl::AsciiStrToLower(*name);
    const bool wildcard = absl::StartsWith(lower, "*.");
    if (lower.empty() || (!wildcard && lower.find('*') != std::string::npos) ||
        (wildcard && lower.find('*', 1) != std::string::npos)) {
      d_.error(e, fmt::format("server name '{}': use an exact name or '*.suffix'", *name));
      return;
    }
    out.server_names.push_back(std::move(lower));
  });
  // Sluice tells TLS from plaintext by the first byte itself (no tls_inspector needed): the
  // protocol follows from the chain's transport socket, and a match must agree with it.
  std::string transport;
  if (f.read_string("transport_protocol", transport)) {
    if (transport != "tls" && transport != "raw_buffer") {
      d_.error(
          *f.get("transport_protocol"),
          fmt::format("transport_protocol '{}' is not supported (tls or raw_buffer)", transport));
    } else if ((transport == "tls") != out.tls.has_value()) {
      d_.error(*f.get("transport_protocol"),
               transport == "tls"
                   ? "transport_protocol 'tls' needs a TLS transport_socket on the chain (TLS "
                     "passthrough is not supported)"
                   : "transport_protocol 'raw_buffer' on a chain with a TLS transport_socket");
    }
  }
  for (const char* field : {"destination_port", "prefix_ranges", "address_suffix", "suffix_len",
                            "direct_source_prefix_ranges", "source_type", "source_prefix_ranges",
                            "source_ports", "application_protocols"}) {
    f.reject(field, fmt::format("filter_chain_match.{} is not supported (server_names is)", field));
  }
}

// listener_filters: the TLS inspector is accepted (Sluice reads SNI in the handshake itself).
void Loader::parse_listener_filter(const Value& v) {
  Fields f(d_, v);
  std::string name;
  f.read_string("name", name, Need::kRequired);
  if (std::optional<Value> typed = f.get("typed_config")) {
    Fields t(d_, *typed);
    std::string type;
    t.read_string("@type", type);
    t.accept_all();
    if (!type.empty() && type != kTlsInspectorType) {
      d_.error(*typed, fmt::format("unsupported listener filter type '{}'", type));
      return;
    }
  }
  if (!name.empty() && name != kTlsInspectorName) {
    d_.error(v, fmt::format("unsupported listener filter '{}' (Sluice accepts {})", name,
                            kTlsInspectorName));
  }
}

void Loader::parse_filter_chain(const Value& v, FilterChain& out) {
  Fields f(d_, v);
  std::string name;  // free text in Envoy; nothing uses it
  f.read_string("name", name);
  if (std::optional<Value> ts = f.get("transport_socket")) parse_downstream_tls(*ts, out);
  if (std::optional<Value> m = f.get("filter_chain_match")) parse_filter_chain_match(*m, out);
  f.read_duration("transport_socket_connect_timeout", out.transport_socket_connect_timeout);
  f.for_each("filters",
             [&](const Value& e) { parse_network_filter(e, out.filters.emplace_back()); });
  if (out.filters.empty()) d_.error(v, "a filter chain needs at least one network filter");
  for (size_t i = 0; i + 1 < out.filters.size(); ++i) {
    if (std::holds_alternative<HttpConnectionManager>(out.filters[i].config)) {
      d_.error(v, "http_connection_manager is a terminal filter and must be the last filter");
    }
    if (std::holds_alternative<TcpProxy>(out.filters[i].config)) {
      d_.error(v, "tcp_proxy is a terminal filter and must be the last filter");
    }
  }
  if (!out.filters.empty() && std::holds_alternative<WasmPlugin>(out.filters.back().config)) {
    d_.error(v,
             "a Wasm network filter must be followed by a terminal filter (tcp_proxy or "
             "http_connection_manager)");
  }
}

void Loader::parse_network_filter(const Value& v, NetworkFilter& out) {
  Fields f(d_, v);
  f.read_string("name", out.name, Need::kRequired);
  std::optional<Value> typed_config = f.get("typed_config");
  if (!typed_config) {
    if (out.name == kHcmName) {
      d_.error(child_path(v.path, "typed_config"), v.line,
               "missing required field (http_connection_manager needs stat_prefix)");
    } else {
      d_.error(v, fmt::format("unsupported network filter '{}'", out.name));
    }
    return;
  }
  Fields t(d_, *typed_config);
  if (!t.read_string("@type", out.type_url, Need::kRequired)) {
    t.accept_all();
    return;
  }
  if (out.type_url == kHcmType) {
    parse_hcm(t, out.config.emplace<HttpConnectionManager>());
  } else if (out.type_url == kTcpProxyType) {
    parse_tcp_proxy(t, out.config.emplace<TcpProxy>());
  } else if (out.type_url == kNetworkWasmType) {
    // envoy.extensions.filters.network.wasm.v3.Wasm { config: PluginConfig }
    if (std::optional<Value> config = t.get("config", Need::kRequired)) {
      parse_plugin_config(*config, out.config.emplace<WasmPlugin>());
    }
  } else {
    t.accept_all();
    d_.error(v, fmt::format("unsupported network filter '{}' ({})", out.name, out.type_url));
  }
}

void Loader::parse_tcp_proxy(Fields& f, TcpProxy& out) {
  f.read_string("stat_prefix", out.stat_prefix, Need::kRequired);
  if (f.read_string("cluster", out.cluster))
    cluster_refs_.push_back({out.cluster, *f.get("cluster")});
  if (std::optional<Value> wc = f.get("weighted_clusters")) {
    RouteAction weighted;  // the same shape as a route's weighted_clusters
    parse_weighted_clusters(*wc, weighted);
    out.weighted_clusters = std::move(weighted.weighted_clusters);
    out.total_weight = weighted.total_weight;
  }
  if (out.cluster.empty() == out.weighted_clusters.empty()) {
    d_.error(f.value(), "exactly one of cluster, weighted_clusters is required");
  }
  f.read_duration("idle_timeout", out.idle_timeout);
  f.read_uint32("max_connect_attempts", out.max_connect_attempts, 1, 100);
  f.for_each("access_log",
             [&](const Value& e) { parse_access_log(e, out.access_logs.emplace_back()); });
  f.reject("hash_policy", "hash_policy is not supported");
  f.reject("tunneling_config", "tunneling_config (CONNECT) is not supported");
  f.reject("on_demand", "on_demand is not supported");
  f.reject("metadata_match", "metadata_match is not supported");
  f.reject("max_downstream_connection_duration",
           "max_downstream_connection_duration is not supported yet");
}

void Loader::parse_hcm(Fields& f, HttpConnectionManager& out) {
  f.read_string("stat_prefix", out.stat_prefix, Need::kRequired);
  read_enum<HttpConnectionManager::Codec>(f, "codec_type", out.codec_type,
                                          {{"AUTO", HttpConnectionManager::Codec::Auto},
                                           {"HTTP1", HttpConnectionManager::Codec::Http1},
                                           {"HTTP2", HttpConnectionManager::Codec::Http2}},
                                          {"HTTP3"});
  f.reject("rds", "RDS is not supported: use route_config");
  if (std::optional<Value> rc = f.get("route_config")) {
    parse_route_config(*rc, out.route_config);
  } else if (!f.has("rds")) {
    d_.error(child_path(f.value().path, "route_config"), f.value().line, "missing required field");
  }

  std::vector<Value> filter_at;
  f.for_each("http_filters", [&](const Value& e) {
    filter_at.push_back(e);
    parse_http_filter(e, out.http_filters.emplace_back());
  });
  // Envoy requires the terminal router filter last; filters after it would never run.
  const auto is_router = [](const HttpFilter& hf) {
    return hf.type_url == kRouterType || (hf.type_url.empty() && hf.name == kRouterName);
  };
  for (size_t i = 0; i + 1 < out.http_filters.size(); ++i) {
    if (is_router(out.http_filters[i])) {
      d_.error(filter_at[i], "the router filter must be the last HTTP filter");
    }
  }
  if (out.http_filters.empty()) {
    d_.error(child_path(f.value().path, "http_filters"), f.value().line,
             fmt::format("http_filters must end with the router filter ({})", kRouterName));
  } else if (!is_router(out.http_filters.back())) {
    d_.error(filter_at.back(),
             fmt::format("the last HTTP filter must be the router filter ({})", kRouterName));
  }

  f.for_each("access_log",
             [&](const Value& e) { parse_access_log(e, out.access_logs.emplace_back()); });
  if (std::optional<Value> options = f.get("common_http_protocol_options")) {
    Fields o(d_, *options);
    o.read_duration("idle_timeout", out.idle_timeout);
  }
  f.read_duration("stream_idle_timeout", out.stream_idle_timeout);
  f.read_duration("request_timeout", out.request_timeout);
  f.read_uint32("max_request_headers_kb", out.max_request_headers_kb, 1, 8192);
  f.read_bool("use_remote_address", out.use_remote_address);
  f.read_uint32("xff_num_trusted_hops", out.xff_num_trusted_hops);
  f.read_bool("generate_request_id", out.generate_request_id);
  f.read_string("server_name", out.server_name);
  if (std::optional<Value> options = f.get("http_protocol_options")) {
    parse_http1_options(*options, out.enable_trailers);
  }
  if (std::optional<Value> options = f.get("http2_protocol_options")) {
    parse_http2_options(*options, out.http2);
  }
}

void Loader::parse_http2_options(const Value& v, Http2ProtocolOptions& out) {
  Fields o(d_, v);
  // RFC 9113 bounds: windows 65535..2^31-1, at least one stream.
  o.read_uint32("max_concurrent_streams", out.max_concurrent_streams, 1, 2147483647);
  o.read_uint32("initial_stream_window_size", out.initial_stream_window_size, 65535, 2147483647);
  o.read_uint32("initial_connection_window_size", out.initial_connection_window_size, 65535,
                2147483647);
  o.read_uint32("hpack_table_size", out.hpack_table_size);
  o.read_uint32("max_outbound_frames", out.max_outbound_frames, 1);
  o.read_uint32("max_outbound_control_frames", out.max_outbound_control_frames, 1);
  o.read_uint32("max_consecutive_inbound_frames_with_empty_payload",
                out.max_consecutive_inbound_frames_with_empty_payload);
  o.read_uint32("max_inbound_priority_frames_per_stream",
                out.max_inbound_priority_frames_per_stream);
  o.read_uint32("max_inbound_window_update_frames_per_data_frame_sent",
                out.max_inbound_window_update_frames_per_data_frame_sent, 1);
  o.reject("allow_connect", "CONNECT over HTTP/2 is not supported");
  o.reject("allow_metadata", "HTTP/2 METADATA frames are not supported");
  bool flag = false;
  // Accepted: Sluice already behaves this way (an invalid message resets only its stream).
  o.read_bool("stream_error_on_invalid_http_messaging", flag);
  if (std::optional<Value> ka = o.get("connection_keepalive")) {
    Fields k(d_, *ka);
    k.accept_all();
    d_.warn(*ka, "connection_keepalive (HTTP/2 PING keepalive) is not supported; ignored");
  }
}

void Loader::parse_http1_options(const Value& v, bool& enable_trailers) {
  Fields o(d_, v);
  o.read_bool("enable_trailers", enable_trailers);
  // Sluice always accepts HTTP/1.0 (Envoy needs this flag): accepted, nothing to do.
  bool accept_http_10 = false;
  o.read_bool("accept_http_10", accept_http_10);
}

void Loader::parse_http_filter(const Value& v, HttpFilter& out) {
  Fields f(d_, v);
  f.read_string("name", out.name, Need::kRequired);
  std::optional<Value> typed_config = f.get("typed_config");
  std::optional<Fields> t;
  if (typed_config) {
    t.emplace(d_, *typed_config);
    if (!t->read_string("@type", out.type_url, Need::kRequired)) {
      t->accept_all();
      return;
    }
  }
  // Envoy identifies a filter by its @type; `name` is free text, used only without typed_config.
  const auto is = [&](std::string_view type, std::string_view name) {
    return typed_config ? out.type_url == type : out.name == name;
  };
  if (is(kRouterType, kRouterName)) return;  // Router's own options are unknown fields here
  if (is(kWasmType, kWasmName)) {
    parse_wasm_filter(v, t ? &*t : nullptr, out);
    return;
  }
  if (t) t->accept_all();
  d_.error(v, typed_config
                  ? fmt::format("unsupported HTTP filter '{}' ({})", out.name, out.type_url)
                  : fmt::format("unsupported HTTP filter '{}'", out.name));
}

// The `sluice:` block: Sluice's own settings, kept apart so the rest of the file stays Envoy's.
void Loader::parse_sluice(const Value& v, SluiceSettings& out) {
  Fields f(d_, v);
  if (std::optional<Value> wasm = f.get("wasm")) {
    Fields w(d_, *wasm);
    if (std::optional<Value> defaults = w.get("defaults")) {
      parse_wasm_settings(*defaults, out.wasm_defaults, false);
    }
    w.read_string("code_cache_dir", out.code_cache_dir);
    if (std::optional<Value> plugins = w.get("plugins")) {
      if (!plugins->node.IsMap()) {
        d_.error(*plugins, "expected a mapping of plugin names (config.name) to their settings");
      } else {
        Fields p(d_, *plugins);
        for (auto& [name, settings] : p.entries()) {
          parse_wasm_settings(settings, out.wasm_plugins[name], true);
          wasm_plugin_settings_.push_back({name, settings});
        }
      }
    }
  }
  f.read_string("overlay_path", out.overlay_path);
  if (std::optional<Value> admin = f.get("admin")) {
    Fields a(d_, *admin);
    if (a.read_string("token_file", out.admin.token_file) && !out.admin.token_file.empty()) {
      std::string error;
      std::optional<std::string> token = read_file(out.admin.token_file, error);
      if (!token) {
        d_.error(*a.get("token_file"), error);
      } else {
        out.admin.token = std::string(absl::StripAsciiWhitespace(*token));
        if (out.admin.token.size() < 16) {
          d_.error(*a.get("token_file"),
                   fmt::format("the admin token in '{}' is {} (use at least 16 random "
                               "characters, e.g. `openssl rand -hex 32`)",
                               out.admin.token_file,
                               out.admin.token.empty() ? "empty" : "shorter than 16 characters"));
        }
      }
    }
  }
  if (std::optional<Value> oci = f.get("oci")) {
    Fields o(d_, *oci);
    o.for_each("insecure_registries", [&](const Value& e) {
      std::optional<std::string> host = read_string(d_, e);
      if (!host) return;
      // Checked as the registry part of a reference would be.
      if (Result<oci::Reference> r = oci::parse_reference(str_cat(*host, "/x")); !r) {
        d_.error(e, fmt::format("'{}' is not a registry host[:port]", *host));
        return;
      }
      out.oci.insecure_registries.push_back(*host);
    });
    o.read_string("credentials_file", out.oci.credentials_file);
  }
}

void Loader::parse_wasm_settings(const Value& v, WasmPluginSettings& out, bool per_plugin) {
  Fields f(d_, v);
  uint32_t n = 0;
  if (f.read_uint32("memory_limit_mb", n, 1, 4096)) out.memory_limit_mb = n;
  if (f.read_uint32("callback_cpu_ms", n, 0, 3600000)) out.callback_cpu_ms = n;
  if (f.read_uint32("startup_cpu_ms", n, 0, 3600000)) out.startup_cpu_ms = n;
  if (!per_plugin) return;
  const auto names = [&](std::string_view key, std::vector<std::string>& list) {
    f.for_each(key, [&](const Value& e) {
      std::optional<std::string> name = read_string(d_, e);
      if (!name) return;
      if (name->empty() || name->front() == ':') {
        d_.error(e, "expected a header name (pseudo-headers cannot be hidden)");
        return;
      }
      list.push_back(absl::AsciiStrToLower(*name));
    });
  };
  names("hide_request_headers", out.hide_request_headers);
  names("hide_response_headers", out.hide_response_headers);
  f.read_bool("hide_client_address", out.hide_client_address);
}

void Loader::parse_bootstrap_extension(const Value& v, Bootstrap& out) {
  Fields f(d_, v);
  std::string name;
  f.read_string("name", name, Need::kRequired);
  std::optional<Value> typed_config = f.get("typed_config", Need::kRequired);
  if (!typed_config) return;
  Fields t(d_, *typed_config);
  std::string type;
  if (!t.read_string("@type", type, Need::kRequired)) {
    t.accept_all();
    return;
  }
  if (type != kWasmServiceType) {
    t.accept_all();
    d_.error(*typed_config, fmt::format("unsupported bootstrap extension '{}' ({}); Sluice has {}",
                                        name, type, kWasmServiceType));
    return;
  }
  WasmService& service = out.wasm_services.emplace_back();
  service.name = name;
  t.read_bool("singleton", service.singleton);
  if (std::optional<Value> config = t.get("config", Need::kRequired)) {
    parse_plugin_config(*config, service.plugin);
  }
}

// envoy.extensions.filters.http.wasm.v3.Wasm { config: PluginConfig }. The module is read here,
// so a missing file is a config error; it is compiled (and its start checked) by the server.
void Loader::parse_wasm_filter(const Value& filter, Fields* typed_config, HttpFilter& out) {
  if (typed_config == nullptr) {
    d_.error(filter,
             "the Wasm filter needs a typed_config (envoy.extensions.filters.http.wasm.v3.Wasm)");
    return;
  }
  WasmPlugin& w = out.wasm.emplace();
  std::optional<Value> config = typed_config->get("config", Need::kRequired);
  if (!config) return;
  parse_plugin_config(*config, w);
}

// vm_config.code.remote: http_uri (uri, cluster, timeout), sha256 and retry_policy.
void Loader::parse_remote_code(const Value& remote, WasmPlugin& w) {
  Fields r(d_, remote);
  RemoteCode rc;
  if (std::optional<Value> http = r.get("http_uri", Need::kRequired)) {
    Fields h(d_, *http);
    if (h.read_string("uri", rc.uri, Need::kRequired)) {
      std::string_view u = rc.uri;
      const size_t scheme = u.find("://");
      std::string_view rest = scheme == std::string_view::npos ? u : u.substr(scheme + 3);
      const std::string_view scheme_name =
          scheme == std::string_view::npos ? "" : u.substr(0, scheme);
      if (scheme_name == "oci") {
        Result<oci::Reference> ref = oci::parse_reference(rc.uri);
        if (ref) {
          rc.oci = std::move(*ref);
        } else {
          d_.error(*h.get("uri"), ref.error());
        }
      } else if (scheme_name != "http" && scheme_name != "https") {
        d_.error(*h.get("uri"),
                 fmt::format("'{}' is not an http://, https:// or oci:// URI", rc.uri));
      } else {
        const size_t slash = rest.find('/');
        rc.authority = std::string(rest.substr(0, slash));
        rc.path = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
        if (rc.authority.empty()) d_.error(*h.get("uri"), "the URI has no host");
      }
    }
    // An image comes straight from its registry: no cluster (Envoy requires one, but Envoy
    // reads no oci:// URI either).
    const bool oci_uri = oci::is_oci_uri(rc.uri);
    if (h.read_string("cluster", rc.cluster, oci_uri ? Need::kOptional : Need::kRequired)) {
      if (oci_uri) {
        d_.error(*h.get("cluster"),
                 "an oci:// image is fetched from its registry, not through a cluster: drop "
                 "`cluster` (plain HTTP: sluice.oci.insecure_registries)");
      } else {
        cluster_refs_.push_back({rc.cluster, *h.get("cluster")});
      }
    }
    h.read_duration("timeout", rc.timeout);
  }
  // Optional for an image: its digest (or a tag, resolved at each load) names the content.
  if (r.read_string("sha256", rc.sha256, rc.oci ? Need::kOptional : Need::kRequired)) {
    rc.sha256 = absl::AsciiStrToLower(rc.sha256);
    if (!is_sha256_hex(rc.sha256)) d_.error(*r.get("sha256"), "sha256 must be 64 hex digits");
  }
  if (std::optional<Value> retry = r.get("retry_policy")) {
    Fields rp(d_, *retry);
    rp.read_uint32("num_retries", rc.num_retries, 0, 100);
    if (std::optional<Value> backoff = rp.get("retry_back_off")) {
      Fields b(d_, *backoff);
      b.read_duration("base_interval", rc.base_interval);
      b.read_duration("max_interval", rc.max_interval);
      if (rc.max_interval < rc.base_interval) rc.max_interval = rc.base_interval;
    }
  }
  w.code_origin = "remote " + rc.uri;
  w.remote = std::move(rc);
}

// envoy.extensions.wasm.v3.PluginConfig, shared by the Wasm HTTP filter and WasmService.
void Loader::parse_plugin_config(const Value& config, WasmPlugin& w) {
  Fields c(d_, config);
  c.read_string("name", w.name);
  c.read_string("root_id", w.root_id);
  if (std::optional<Value> any = c.get("configuration")) parse_any_bytes(*any, w.configuration);
  bool fail_open = false;
  if (c.read_bool("fail_open", fail_open) && fail_open) {
    w.failure_policy = WasmPlugin::FailurePolicy::FailOpen;
  }
  if (std::optional<Value> policy = c.get("failure_policy")) {
    const std::optional<std::string> p = read_string(d_, *policy);
    if (p == "FAIL_CLOSED" || p == "UNSPECIFIED") {
      w.failure_policy = WasmPlugin::FailurePolicy::FailClosed;
      w.heal = p == "UNSPECIFIED";  // FAIL_CLOSED named: the failed VM stays, as in Envoy
    } else if (p == "FAIL_OPEN") {
      w.failure_policy = WasmPlugin::FailurePolicy::FailOpen;
    } else if (p == "FAIL_RELOAD") {
      w.failure_policy = WasmPlugin::FailurePolicy::FailReload;
    } else if (p) {
      d_.error(
          *policy,
          fmt::format("unknown failure_policy '{}' (FAIL_CLOSED, FAIL_OPEN, FAIL_RELOAD)", *p));
    }
  }
  if (std::optional<Value> restriction = c.get("capability_restriction_config")) {
    Fields r(d_, *restriction);
    if (std::optional<Value> allowed = r.get("allowed_capabilities")) {
      Fields names(d_, *allowed);
      for (auto& [name, sanitization] : names.entries()) {
        // SanitizationConfig has no fields (Envoy's is a placeholder too).
        if (!sanitization.node.IsNull()) Fields(d_, sanitization);
        w.allowed_capabilities.push_back(name);  // unknown names: warned at load (wasm_filter.cc)
      }
    }
  }
  if (std::optional<Value> reload = c.get("reload_config")) {
    Fields rc(d_, *reload);
    if (std::optional<Value> backoff = rc.get("backoff")) {
      Fields b(d_, *backoff);
      if (b.read_duration("base_interval", w.reload_base_interval)) {
        if (w.reload_base_interval < Duration(1)) {
          d_.error(*b.get("base_interval"), "base_interval must be at least 1ms");
        }
      } else {
        d_.error(*backoff, "missing required field (base_interval)");
      }
      w.reload_max_interval = w.reload_base_interval * 10;
      b.read_duration("max_interval", w.reload_max_interval);
      if (w.reload_max_interval < w.reload_base_interval) {
        d_.error(*b.get("max_interval"), "max_interval must not be below base_interval");
      }
    }
  }
  c.ignore("allow_on_headers_stop_iteration",
           "allow_on_headers_stop_iteration is not supported; "
           "a paused on_request_headers holds the whole stream, as by Envoy's default");
  std::optional<Value> vm = c.get("vm_config", Need::kRequired);
  if (!vm) return;
  Fields v(d_, *vm);
  v.read_string("vm_id", w.vm_id);
  if (v.read_string("runtime", w.runtime)) {
    if (w.runtime != "envoy.wasm.runtime.v8" && w.runtime != "envoy.wasm.runtime.null") {
      d_.error(*v.get("runtime"),
               fmt::format("unsupported Wasm runtime '{}' (Sluice has envoy.wasm.runtime.v8 and "
                           "envoy.wasm.runtime.null)",
                           w.runtime));
    }
  }
  if (std::optional<Value> any = v.get("configuration")) parse_any_bytes(*any, w.vm_configuration);
  v.ignore("allow_precompiled", "allow_precompiled is ignored: modules are always compiled");
  v.ignore("nack_on_code_cache_miss",
           "nack_on_code_cache_miss is ignored: remote code is fetched before a configuration is "
           "used");
  if (std::optional<Value> envs = v.get("environment_variables")) {
    Fields e(d_, *envs);
    if (std::optional<Value> kv = e.get("key_values")) {
      Fields m(d_, *kv);
      for (auto& [key, val] : m.entries()) {
        if (auto s = read_string(d_, val)) w.env.emplace_back(key, *s);
      }
    }
    e.for_each("host_env_keys", [&](const Value& k) {
      std::optional<std::string> key = read_string(d_, k);
      if (!key) return;
      if (const char* val = std::getenv(key->c_str())) w.env.emplace_back(*key, val);
    });
  }
  std::optional<Value> code = v.get("code", Need::kRequired);
  if (!code) return;
  Fields cf(d_, *code);
  const std::vector<std::string_view> kinds = cf.present({"local", "remote"});
  if (kinds.size() != 1) {
    cf.accept_all();
    d_.error(*code, "exactly one of local, remote is required");
    return;
  }
  if (kinds[0] == "remote") {
    if (w.runtime == "envoy.wasm.runtime.null") {
      cf.accept_all();
      d_.error(*code, "remote code needs the V8 runtime (null-runtime plugins are native code)");
      return;
    }
    parse_remote_code(*cf.get("remote"), w);
    return;
  }
  std::optional<Value> local = cf.get("local");
  Fields l(d_, *local);
  const std::vector<std::string_view> sources =
      l.present({"filename", "inline_bytes", "inline_string"});
  if (sources.size() != 1) {
    l.accept_all();
    d_.error(*local, "exactly one of filename, inline_bytes, inline_string is required");
    return;
  }
  const bool null_runtime = w.runtime == "envoy.wasm.runtime.null";
  std::string text;
  if (sources[0] == "filename" && l.read_string("filename", text, Need::kRequired)) {
    w.code_origin = "file " + text;
    if (null_runtime) {
      w.code = text;  // a shared library the null runtime loads
    } else {
      w.code_file = text;
      Result<std::string> bytes = sluice::read_file(text);
      if (!bytes) {
        d_.error(*l.get("filename"),
                 fmt::format("cannot read Wasm module {}: {}", text, bytes.error()));
        return;
      }
      w.code = std::move(*bytes);
    }
  } else if (sources[0] == "inline_string" &&
             l.read_string("inline_string", text, Need::kRequired)) {
    w.code_origin = null_runtime ? "null plugin " + text : "inline_string";
    w.code = text;
  } else if (sources[0] == "inline_bytes" && l.read_string("inline_bytes", text, Need::kRequired)) {
    w.code_origin = "inline_bytes";
    std::string decoded;
    if (!absl::Base64Unescape(absl::string_view(text.data(), text.size()), &decoded)) {
      d_.error(*l.get("inline_bytes"), "inline_bytes is not valid base64");
      return;
    }
    w.code = std::move(decoded);
  }
}

// A google.protobuf.Any given to a plugin as bytes: StringValue and BytesValue unwrapped, Struct
// as JSON (what Envoy passes), a plain string as itself.
void Loader::parse_any_bytes(const Value& v, std::string& out) {
  if (v.node.IsScalar()) {
    if (auto s = read_string(d_, v)) out = *s;
    return;
  }
  Fields a(d_, v);
  std::string type;
  if (!a.read_string("@type", type, Need::kRequired)) {
    a.accept_all();
    return;
  }
  if (type == "type.googleapis.com/google.protobuf.StringValue") {
    a.read_string("value", out);
  } else if (type == "type.googleapis.com/google.protobuf.BytesValue") {
    std::string b64;
    if (a.read_string("value", b64) &&
        !absl::Base64Unescape(absl::string_view(b64.data(), b64.size()), &out)) {
      d_.error(*a.get("value"), "BytesValue.value is not valid base64");
    }
  } else if (type == "type.googleapis.com/google.protobuf.Struct") {
    std::optional<Value> value = a.get("value");
    out = value ? yaml_to_json(value->node) : "{}";
  } else {
    a.accept_all();
    d_.error(v, fmt::format("unsupported configuration type {} (StringValue, BytesValue or Struct)",
                            type));
  }
}

void Loader::parse_access_log(const Value& v, AccessLog& out) {
  Fields f(d_, v);
  std::string name;
  f.read_string("name", name);
  std::optional<Value> typed_config = f.get("typed_config");
  if (!typed_config) {
    if (name == kStdoutLogName) {
      out.path = "/dev/stdout";
    } else if (name == kStderrLogName) {
      out.path = "/dev/stderr";
    } else if (name == kFileLogName) {
      d_.error(child_path(v.path, "typed_config"), v.line, "missing required field (path)");
    } else {
      d_.error(v, fmt::format("unsupported access logger '{}'", name));
    }
    return;
  }
  Fields t(d_, *typed_config);
  std::string type;
  if (!t.read_string("@type", type, Need::kRequired)) {
    t.accept_all();
    return;
  }
  if (type == kFileLogType) {
    t.read_string("path", out.path, Need::kRequired);
    if (t.present({"format", "log_format"}).size() > 1) {
      d_.error(*typed_config, "only one of format, log_format may be set");
    }
    t.read_string("format", out.format);  // deprecated spelling of log_format.text_format
    parse_log_format(t, out);
  } else if (type == kStdoutLogType || type == kStderrLogType) {
    out.path = type == kStdoutLogType ? "/dev/stdout" : "/dev/stderr";
    parse_log_format(t, out);
  } else {
    t.accept_all();
    d_.error(v, fmt::format("unsupported access logger '{}' ({})", name, type));
  }
}

// envoy.config.core.v3.SubstitutionFormatString, text forms only.
void Loader::parse_log_format(Fields& f, AccessLog& out) {
  std::optional<Value> v = f.get("log_format");
  if (!v) return;
  Fields lf(d_, *v);
  lf.reject("json_format", "JSON access log format is not supported yet");
  if (lf.present({"text_format", "text_format_source", "json_format"}).size() > 1) {
    d_.error(*v, "only one of text_format, text_format_source, json_format may be set");
  }
  lf.read_string("text_format", out.format);
  if (std::optional<Value> source = lf.get("text_format_source")) {
    if (std::optional<std::string> text = parse_data_source(*source)) out.format = *text;
  }
}

// envoy.config.core.v3.DataSource: inline_string or filename (read now, as Envoy does).
std::optional<std::string> Loader::parse_data_source(const Value& v, std::string* path) {
  Fields f(d_, v);
  if (f.present({"inline_string", "filename"}).size() != 1) {
    d_.error(v, "exactly one of inline_string, filename is required");
  }
  std::string text;
  if (f.read_string("inline_string", text)) return text;
  std::string filename;
  if (!f.read_string("filename", filename)) return std::nullopt;
  if (path) *path = filename;
  std::string error;
  std::optional<std::string> contents = read_file(filename, error);
  if (!contents) d_.error(*f.get("filename"), error);
  return contents;
}

void Loader::parse_route_config(const Value& v, RouteConfiguration& out) {
  Fields f(d_, v);
  f.read_string("name", out.name);
  DomainIndex seen_domains;
  f.for_each("virtual_hosts", [&](const Value& e) {
    parse_virtual_host(e, out.virtual_hosts.emplace_back(), seen_domains);
  });
  parse_header_mutations(f, out.headers);
}

void Loader::parse_virtual_host(const Value& v, VirtualHost& out, DomainIndex& seen_domains) {
  Fields f(d_, v);
  f.read_string("name", out.name, Need::kRequired);
  const size_t domains = f.for_each(
      "domains", [&](const Value& e) { parse_domain(e, out.domains, seen_domains); },
      Need::kRequired);
  if (domains == 0 && f.has("domains")) d_.error(*f.get("domains"), "must not be empty");
  f.for_each("routes", [&](const Value& e) { parse_route(e, out.routes.emplace_back()); });
  parse_header_mutations(f, out.headers);
  parse_per_filter_config(f, out.disabled_filters);
}

// "*", "*.suffix" / "*-suffix", "prefix.*" / "prefix-*", "host", "host:port". As in Envoy, a
// domain may appear once per route configuration, or matching would be ambiguous.
void Loader::parse_domain(const Value& v, std::vector<std::string>& out,
                          DomainIndex& seen_domains) {
  std::optional<std::string> domain = read_string(d_, v);
  if (!domain) return;
  std::string lower = absl::AsciiStrToLower(*domain);
  const size_t stars = std::count(lower.begin(), lower.end(), '*');
  if (lower.empty()) {
    d_.error(v, "domain must not be empty");
  } else if (stars > 1 ||
             (stars == 1 && lower.size() > 1 && lower.front() != '*' && lower.back() != '*')) {
    d_.error(v, fmt::format("invalid domain \"{}\": a '*' may only be the whole domain, its first "
                            "or its last character",
                            *domain));
  }
  auto [it, inserted] = seen_domains.emplace(lower, v);
  if (!inserted) {
    d_.error(v, fmt::format("duplicate domain \"{}\" (also at {}, line {})", lower, it->second.path,
                            it->second.line));
  }
  out.push_back(std::move(lower));
}

void Loader::parse_route(const Value& v, Route& out) {
  Fields f(d_, v);
  f.read_string("name", out.name);
  if (std::optional<Value> match = f.get("match", Need::kRequired)) {
    parse_route_match(*match, out.match);
  }
  if (f.present({"route", "direct_response", "redirect"}).size() != 1) {
    d_.error(v, "exactly one of route, direct_response, redirect is required");
  }
  if (std::optional<Value> a = f.get("route")) {
    parse_route_action(*a, out.action.emplace<RouteAction>());
  }
  if (std::optional<Value> a = f.get("direct_response")) {
    parse_direct_response(*a, out.action.emplace<DirectResponseAction>());
  }
  if (std::optional<Value> a = f.get("redirect")) {
    parse_redirect(*a, out.action.emplace<RedirectAction>());
  }
  parse_header_mutations(f, out.headers);
  parse_per_filter_config(f, out.disabled_filters);
}

void Loader::parse_route_match(const Value& v, RouteMatch& out) {
  Fields f(d_, v);
  if (f.present({"prefix", "path", "safe_regex"}).size() != 1) {
    d_.error(v, "exactly one of prefix, path, safe_regex is required");
  }
  if (f.read_string("prefix", out.value)) out.kind = RouteMatch::PathKind::Prefix;
  if (f.read_string("path", out.value)) out.kind = RouteMatch::PathKind::Path;
  if (std::optional<Value> regex = f.get("safe_regex")) {
    out.kind = RouteMatch::PathKind::SafeRegex;
    out.regex = parse_regex_matcher(*regex);
  }
  f.read_bool("case_sensitive", out.case_sensitive);
  f.for_each("headers",
             [&](const Value& e) { parse_header_matcher(e, out.headers.emplace_back()); });
  f.for_each("query_parameters", [&](const Value& e) {
    parse_query_parameter_matcher(e, out.query_parameters.emplace_back());
  });
}

// envoy.type.matcher.v3.RegexMatcher; null (after an error) when the regex does not compile.
std::shared_ptr<const re2::RE2> Loader::parse_regex_matcher(const Value& v) {
  Fields f(d_, v);
  if (std::optional<Value> engine = f.get("google_re2")) {
    Fields g(d_, *engine);  // deprecated engine options; RE2 is the only engine anyway
    g.accept_all();
  }
  std::string pattern;
  if (!f.read_string("regex", pattern, Need::kRequired)) return nullptr;
  auto regex = std::make_shared<const re2::RE2>(pattern, re2::RE2::Quiet);
  if (!regex->ok()) {
    d_.error(*f.get("regex"), "invalid regex: " + regex->error());
    return nullptr;
  }
  return regex;
}

std::optional<StringMatcher> Loader::parse_string_matcher(const Value& v) {
  Fields f(d_, v);
  static constexpr EnumName<StringMatcher::Kind> kKinds[] = {
      {"exact", StringMatcher::Kind::Exact},
      {"prefix", StringMatcher::Kind::Prefix},
      {"suffix", StringMatcher::Kind::Suffix},
      {"contains", StringMatcher::Kind::Contains},
  };
  StringMatcher m;
  if (f.present({"exact", "prefix", "suffix", "contains", "safe_regex"}).size() != 1) {
    d_.error(v, "exactly one of exact, prefix, suffix, contains, safe_regex is required");
  }
  for (const auto& [key, kind] : kKinds) {
    if (!f.read_string(key, m.value)) continue;
    m.kind = kind;
    if (kind != StringMatcher::Kind::Exact && m.value.empty()) {
      d_.error(*f.get(key), "must not be empty");
    }
  }
  if (std::optional<Value> regex = f.get("safe_regex")) {
    m.kind = StringMatcher::Kind::SafeRegex;
    m.regex = parse_regex_matcher(*regex);
  }
  f.read_bool("ignore_case", m.ignore_case);
  return m;
}

void Loader::parse_header_matcher(const Value& v, HeaderMatcher& out) {
  Fields f(d_, v);
  if (f.read_string("name", out.name, Need::kRequired)) out.name = absl::AsciiStrToLower(out.name);
  static constexpr EnumName<StringMatcher::Kind> kLegacy[] = {
      {"exact_match", StringMatcher::Kind::Exact},
      {"prefix_match", StringMatcher::Kind::Prefix},
      {"suffix_match", StringMatcher::Kind::Suffix},
      {"contains_match", StringMatcher::Kind::Contains},
  };
  const size_t specifiers =
      f.present({"string_match", "present_match", "exact_match", "prefix_match", "suffix_match",
                 "contains_match", "safe_regex_match"})
          .size();
  if (specifiers > 1) d_.error(v, "at most one header match specifier may be set");
  if (std::optional<Value> sm = f.get("string_match")) out.string_match = parse_string_matcher(*sm);
  for (const auto& [key, kind] : kLegacy) {
    std::string value;
    if (f.read_string(key, value)) {
      out.string_match.emplace();
      out.string_match->kind = kind;
      out.string_match->value = std::move(value);
    }
  }
  if (std::optional<Value> regex = f.get("safe_regex_match")) {
    out.string_match.emplace();
    out.string_match->kind = StringMatcher::Kind::SafeRegex;
    out.string_match->regex = parse_regex_matcher(*regex);
  }
  f.read_bool("invert_match", out.invert_match);
  bool present = true;
  const bool has_present = f.read_bool("present_match", present);
  // As Envoy: no specifier means "present"; present_match: false means "absent".
  if (specifiers == 0 || has_present) {
    out.present_match = true;
    if (!present) out.invert_match = !out.invert_match;
  }
}

void Loader::parse_query_parameter_matcher(const Value& v, QueryParameterMatcher& out) {
  Fields f(d_, v);
  f.read_string("name", out.name, Need::kRequired);
  if (f.present({"string_match", "present_match"}).size() > 1) {
    d_.error(v, "only one of string_match, present_match may be set");
  }
  if (std::optional<Value> sm = f.get("string_match")) out.string_match = parse_string_matcher(*sm);
  // Without a string_match, Envoy matches on presence whatever present_match says.
  bool present = true;
  f.read_bool("present_match", present);
  out.present_match = !out.string_match.has_value();
}

void Loader::parse_route_action(const Value& v, RouteAction& out) {
  Fields f(d_, v);
  if (f.present({"cluster", "cluster_header", "weighted_clusters"}).size() != 1) {
    d_.error(v, "exactly one of cluster, cluster_header, weighted_clusters is required");
  }
  if (f.read_string("cluster", out.cluster))
    cluster_refs_.push_back({out.cluster, *f.get("cluster")});
  if (f.read_string("cluster_header", out.cluster_header)) {
    out.cluster_header = absl::AsciiStrToLower(out.cluster_header);
  }
  if (std::optional<Value> weighted = f.get("weighted_clusters")) {
    parse_weighted_clusters(*weighted, out);
  }
  std::string text;
  if (f.read_string("prefix_rewrite", text)) out.prefix_rewrite = text;
  if (f.read_string("host_rewrite_literal", text)) out.host_rewrite_literal = text;
  f.read_duration("timeout", out.timeout);
  Duration idle{0};
  if (f.read_duration("idle_timeout", idle)) out.idle_timeout = idle;
  if (std::optional<Value> retry = f.get("retry_policy")) {
    parse_retry_policy(*retry, out.retry_policy.emplace());
  }
}

void Loader::parse_weighted_clusters(const Value& v, RouteAction& out) {
  Fields f(d_, v);
  uint64_t sum = 0;
  f.for_each(
      "clusters",
      [&](const Value& e) {
        Fields c(d_, e);
        WeightedCluster& wc = out.weighted_clusters.emplace_back();
        if (c.read_string("name", wc.name, Need::kRequired)) {
          cluster_refs_.push_back({wc.name, *c.get("name")});
        }
        c.read_uint32("weight", wc.weight);
        sum += wc.weight;
      },
      Need::kRequired);
  if (sum > std::numeric_limits<uint32_t>::max()) {
    d_.error(v, "the sum of the weights must fit in 32 bits");
  } else if (sum == 0 && !out.weighted_clusters.empty()) {
    d_.error(v, "the sum of the weights must be greater than 0");
  }
  out.total_weight = static_cast<uint32_t>(sum);
  uint32_t total = 0;
  if (f.read_uint32("total_weight", total) && total != sum) {
    d_.error(*f.get("total_weight"),
             fmt::format("total_weight is {} but the weights sum to {}", total, sum));
  }
}

void Loader::parse_retry_policy(const Value& v, RetryPolicy& out) {
  Fields f(d_, v);
  static constexpr std::pair<std::string_view, bool RetryPolicy::*> kConditions[] = {
      {"5xx", &RetryPolicy::retry_on_5xx},
      {"gateway-error", &RetryPolicy::retry_on_gateway_error},
      {"connect-failure", &RetryPolicy::retry_on_connect_failure},
      {"reset", &RetryPolicy::retry_on_reset},
      {"retriable-status-codes", &RetryPolicy::retry_on_retriable_status_codes},
  };
  std::string retry_on;
  if (f.read_string("retry_on", retry_on)) {
    for (absl::string_view piece : absl::StrSplit(retry_on, ',', absl::SkipWhitespace())) {
      const std::string condition(absl::StripAsciiWhitespace(piece));
      const auto* it = std::find_if(std::begin(kConditions), std::end(kConditions),
                                    [&](const auto& c) { return c.first == condition; });
      if (it != std::end(kConditions)) {
        out.*(it->second) = true;
        continue;
      }
      std::vector<std::string_view> supported;
      for (const auto& c : kConditions) supported.push_back(c.first);
      d_.error(*f.get("retry_on"),
               fmt::format("unsupported retry_on condition \"{}\" (supported: {})", condition,
                           fmt::join(supported, ", ")));
    }
  }
  f.read_uint32("num_retries", out.num_retries);
  f.read_duration("per_try_timeout", out.per_try_timeout);
  f.for_each("retriable_status_codes", [&](const Value& e) {
    if (std::optional<uint64_t> code = read_uint(d_, e, 100, 599)) {
      out.retriable_status_codes.push_back(static_cast<uint32_t>(*code));
    }
  });
}

void Loader::parse_direct_response(const Value& v, DirectResponseAction& out) {
  Fields f(d_, v);
  f.read_uint32("status", out.status, 200, 599, Need::kRequired);
  if (std::optional<Value> body = f.get("body")) {
    if (std::optional<std::string> text = parse_data_source(*body)) out.body = std::move(*text);
  }
}

void Loader::parse_redirect(const Value& v, RedirectAction& out) {
  Fields f(d_, v);
  f.read_bool("https_redirect", out.https_redirect);
  f.read_string("host_redirect", out.host_redirect);
  f.read_string("path_redirect", out.path_redirect);
  read_enum<uint32_t>(f, "response_code", out.response_code,
                      {{"MOVED_PERMANENTLY", 301},
                       {"FOUND", 302},
                       {"SEE_OTHER", 303},
                       {"TEMPORARY_REDIRECT", 307},
                       {"PERMANENT_REDIRECT", 308}});
}

void Loader::parse_header_mutations(Fields& f, HeaderMutations& out) {
  f.for_each("request_headers_to_add", [&](const Value& e) {
    parse_header_value_option(e, out.request_headers_to_add.emplace_back());
  });
  f.for_each("response_headers_to_add", [&](const Value& e) {
    parse_header_value_option(e, out.response_headers_to_add.emplace_back());
  });
  parse_header_names(f, "request_headers_to_remove", out.request_headers_to_remove);
  parse_header_names(f, "response_headers_to_remove", out.response_headers_to_remove);
}

void Loader::parse_header_value_option(const Value& v, HeaderValueOption& out) {
  Fields f(d_, v);
  if (std::optional<Value> header = f.get("header", Need::kRequired)) {
    Fields h(d_, *header);
    if (h.read_string("key", out.key, Need::kRequired)) {
      out.key = absl::AsciiStrToLower(out.key);
      if (!is_modifiable_header(out.key)) {
        d_.error(*h.get("key"),
                 fmt::format("header \"{}\" may not be modified (pseudo-header or host)", out.key));
      }
    }
    if (h.read_string("value", out.value) &&
        out.value.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) {
      // It would be written to the wire as is: a header of the attacker's choosing.
      d_.error(*h.get("value"), "header value may not contain CR, LF or NUL");
    }
    if (out.key.find_first_of(std::string_view(" \t\r\n\0", 5)) != std::string::npos) {
      d_.error(*h.get("key"), "header name may not contain whitespace, CR, LF or NUL");
    }
  }
  if (f.has("append") && f.has("append_action")) {
    d_.error(v, "only one of append, append_action may be set");
  }
  f.read_bool("append", out.append);
  enum class Action { kAppend, kOverwrite, kAddIfAbsent };
  Action action;
  if (read_enum<Action>(f, "append_action", action,
                        {{"APPEND_IF_EXISTS_OR_ADD", Action::kAppend},
                         {"OVERWRITE_IF_EXISTS_OR_ADD", Action::kOverwrite},
                         {"ADD_IF_ABSENT", Action::kAddIfAbsent}})) {
    out.append = action == Action::kAppend;
    out.add_if_absent = action == Action::kAddIfAbsent;
  }
}

void Loader::parse_header_names(Fields& f, std::string_view key, std::vector<std::string>& out) {
  f.for_each(key, [&](const Value& e) {
    std::optional<std::string> name = read_string(d_, e);
    if (!name) return;
    std::string lower = absl::AsciiStrToLower(*name);
    if (!is_modifiable_header(lower)) {
      d_.error(e, fmt::format("header \"{}\" may not be removed (pseudo-header or host)", lower));
    }
    out.push_back(std::move(lower));
  });
}

// typed_per_filter_config: only envoy.config.route.v3.FilterConfig{disabled: true}, which turns a
// filter off for a virtual host or route.
void Loader::parse_per_filter_config(Fields& f, std::vector<std::string>& disabled) {
  std::optional<Value> v = f.get("typed_per_filter_config");
  if (!v) return;
  Fields per_filter(d_, *v);
  for (auto& [filter_name, config] : per_filter.entries()) {
    Fields c(d_, config);
    std::string type;
    if (!c.read_string("@type", type, Need::kRequired)) {
      c.accept_all();
      continue;
    }
    if (type != kFilterConfigType) {
      c.accept_all();
      d_.error(config,
               fmt::format("unsupported per-filter config for '{}' ({}); only {} is supported",
                           filter_name, type, kFilterConfigType));
      continue;
    }
    c.reject("config", "per-route filter configuration is not supported yet");
    bool is_optional = false;  // only matters for a filter config Sluice does not take
    c.read_bool("is_optional", is_optional);
    bool off = false;
    if (c.read_bool("disabled", off) && off) disabled.push_back(filter_name);
  }
}

void Loader::parse_cluster(const Value& v, Cluster& out) {
  Fields f(d_, v);
  if (f.read_string("name", out.name, Need::kRequired)) {
    cluster_names_.push_back({out.name, *f.get("name")});
  }
  bool type_invalid = false;
  read_enum<Cluster::Type>(f, "type", out.type,
                           {{"STATIC", Cluster::Type::Static},
                            {"STRICT_DNS", Cluster::Type::StrictDns},
                            {"LOGICAL_DNS", Cluster::Type::LogicalDns}},
                           {"EDS", "ORIGINAL_DST"}, &type_invalid);
  if (f.read_duration("connect_timeout", out.connect_timeout) && out.connect_timeout.count() == 0) {
    d_.error(*f.get("connect_timeout"), "must be greater than 0s");
  }
  read_enum<Cluster::LbPolicy>(f, "lb_policy", out.lb_policy,
                               {{"ROUND_ROBIN", Cluster::LbPolicy::RoundRobin},
                                {"LEAST_REQUEST", Cluster::LbPolicy::LeastRequest},
                                {"RANDOM", Cluster::LbPolicy::Random}});
  if (std::optional<Value> la = f.get("load_assignment")) {
    parse_load_assignment(*la, out, /*check_addresses=*/!type_invalid);
  }
  if (std::optional<Value> cb = f.get("circuit_breakers")) {
    parse_circuit_breakers(*cb, out.circuit_breakers);
  }
  f.read_uint32("per_connection_buffer_limit_bytes", out.per_connection_buffer_limit_bytes);
  if (f.read_duration("dns_refresh_rate", out.dns_refresh_rate) &&
      out.dns_refresh_rate <= Duration(1)) {
    d_.error(*f.get("dns_refresh_rate"), "must be greater than 1ms");
  }
  enum class Family { kAuto, kV4Only, kV4Preferred, kAll };
  Family family = Family::kAuto;  // Sluice resolves IPv4 and IPv6 alike; validated, then dropped
  read_enum<Family>(f, "dns_lookup_family", family,
                    {{"AUTO", Family::kAuto},
                     {"V4_ONLY", Family::kV4Only},
                     {"V4_PREFERRED", Family::kV4Preferred},
                     {"ALL", Family::kAll}});
  if (std::optional<Value> options = f.get("typed_extension_protocol_options")) {
    Fields m(d_, *options);
    for (auto& [name, value] : m.entries()) {
      if (name != kUpstreamHttpOptionsName) {
        d_.error(value, fmt::format("unsupported protocol options '{}' (supported: {})", name,
                                    kUpstreamHttpOptionsName));
        continue;
      }
      parse_upstream_http_options(value, out);
    }
  }
  if (std::optional<Value> h2 = f.get("http2_protocol_options")) {
    parse_http2_options(*h2, out.http2.emplace());
  }
  const size_t checks = f.for_each("health_checks", [&](const Value& e) {
    if (!out.health_check) parse_health_check(e, out.health_check.emplace());
  });
  if (checks > 1) {
    d_.error(*f.get("health_checks"), "only one health check per cluster is supported");
  }
  if (std::optional<Value> od = f.get("outlier_detection")) {
    parse_outlier_detection(*od, out.outlier_detection.emplace());
  }
  if (std::optional<Value> ts = f.get("transport_socket")) parse_upstream_tls(*ts, out);
}

void Loader::parse_health_check(const Value& v, HealthCheck& out) {
  Fields f(d_, v);
  if (f.read_duration("timeout", out.timeout) && out.timeout.count() <= 0) {
    d_.error(*f.get("timeout"), "must be greater than 0");
  }
  if (!f.has("timeout")) d_.error(child_path(v.path, "timeout"), v.line, "missing required field");
  if (f.read_duration("interval", out.interval) && out.interval.count() <= 0) {
    d_.error(*f.get("interval"), "must be greater than 0");
  }
  if (!f.has("interval")) {
    d_.error(child_path(v.path, "interval"), v.line, "missing required field");
  }
  f.read_uint32("unhealthy_threshold", out.unhealthy_threshold, 1);
  f.read_uint32("healthy_threshold", out.healthy_threshold, 1);
  for (const char* field :
       {"interval_jitter", "interval_jitter_percent", "initial_jitter", "no_traffic_interval",
        "no_traffic_healthy_interval", "unhealthy_interval", "unhealthy_edge_interval",
        "healthy_edge_interval", "reuse_connection", "always_log_health_check_failures"}) {
    f.ignore(field, fmt::format("{} is accepted; Sluice checks every interval", field));
  }
  f.reject("event_log_path", "health check event logs are not supported");
  f.reject("grpc_health_check", "gRPC health checks are not supported yet (use http_health_check)");
  f.reject("custom_health_check", "custom health checks are not supported");
  f.reject("transport_socket_match_criteria", "transport_socket_match_criteria is not supported");
  const auto kinds = f.present({"http_health_check", "tcp_health_check"});
  if (kinds.size() != 1 && !f.has("grpc_health_check") && !f.has("custom_health_check")) {
    d_.error(v, "exactly one of http_health_check, tcp_health_check is required");
  }
  if (std::optional<Value> http = f.get("http_health_check")) {
    out.kind = HealthCheck::Kind::Http;
    Fields h(d_, *http);
    h.read_string("path", out.path, Need::kRequired);
    h.read_string("host", out.host);
    h.for_each("expected_statuses", [&](const Value& e) {
      Fields r(d_, e);
      uint32_t start = 0, end = 0;
      r.read_uint32("start", start, 100, 599, Need::kRequired);
      r.read_uint32("end", end, 101, 600, Need::kRequired);
      if (start >= end) {
        d_.error(e, "start must be below end (the range is [start, end))");
      } else {
        out.expected_statuses.emplace_back(start, end);
      }
    });
    // Envoy's default, HTTP1, is what Sluice's health checker speaks.
    enum class HealthCheckCodec { Http1 };
    HealthCheckCodec codec = HealthCheckCodec::Http1;
    read_enum<HealthCheckCodec>(h, "codec_client_type", codec, {{"HTTP1", HealthCheckCodec::Http1}},
                                {"HTTP2", "HTTP3"});
    h.reject("send", "an HTTP health check body is not supported");
    h.reject("receive", "matching the HTTP health check response body is not supported");
    h.reject("request_headers_to_add", "request_headers_to_add is not supported yet");
    h.reject("request_headers_to_remove", "request_headers_to_remove is not supported yet");
    h.reject("retriable_statuses", "retriable_statuses is not supported");
    h.reject("method", "health checks use GET");
  }
  if (std::optional<Value> tcp = f.get("tcp_health_check")) {
    out.kind = HealthCheck::Kind::Tcp;
    Fields t(d_, *tcp);
    t.reject("send", "TCP health check payloads are not supported: the check is a connect");
    t.reject("receive", "TCP health check payloads are not supported: the check is a connect");
  }
}

void Loader::parse_outlier_detection(const Value& v, OutlierDetection& out) {
  Fields f(d_, v);
  f.read_uint32("consecutive_5xx", out.consecutive_5xx, 1);
  f.read_duration("interval", out.interval);
  if (out.interval.count() <= 0) d_.error(v, "interval must be greater than 0");
  f.read_duration("base_ejection_time", out.base_ejection_time);
  f.read_uint32("max_ejection_percent", out.max_ejection_percent, 0, 100);
  f.read_uint32("enforcing_consecutive_5xx", out.enforcing_consecutive_5xx, 0, 100);
  for (const char* field :
       {"consecutive_gateway_failure", "enforcing_consecutive_gateway_failure",
        "success_rate_minimum_hosts", "success_rate_request_volume", "success_rate_stdev_factor",
        "enforcing_success_rate", "failure_percentage_threshold", "enforcing_failure_percentage",
        "failure_percentage_minimum_hosts", "failure_percentage_request_volume",
        "split_external_local_origin_errors", "consecutive_local_origin_failure",
        "max_ejection_time", "max_ejection_time_jitter",
        "successful_active_health_check_uneject_host"}) {
    f.reject(field,
             fmt::format("outlier_detection.{} is not supported yet (consecutive_5xx is)", field));
  }
}

// envoy.extensions.upstreams.http.v3.HttpProtocolOptions: how Sluice talks HTTP to a cluster.
void Loader::parse_upstream_http_options(const Value& v, Cluster& out) {
  Fields f(d_, v);
  std::string type;
  if (f.read_string("@type", type, Need::kRequired) && type != kUpstreamHttpOptionsType) {
    d_.error(*f.get("@type"), fmt::format("expected {}", kUpstreamHttpOptionsType));
  }
  f.reject("auto_config", "HTTP/2 upstreams (auto_config) are not supported yet");
  f.reject("use_downstream_protocol_config",
           "HTTP/2 upstreams (use_downstream_protocol_config) are not supported yet");
  f.reject("http_filters", "upstream HTTP filters are not supported");
  f.reject("upstream_http_protocol_options", "upstream TLS options are not supported yet");
  if (std::optional<Value> explicit_config = f.get("explicit_http_config")) {
    Fields e(d_, *explicit_config);
    if (std::optional<Value> h2 = e.get("http2_protocol_options")) {
      parse_http2_options(*h2, out.http2.emplace());
    }
    e.reject("http3_protocol_options", "HTTP/3 upstreams are not supported");
    if (std::optional<Value> h1 = e.get("http_protocol_options")) {
      parse_http1_options(*h1, out.enable_trailers);
    }
  }
  if (std::optional<Value> common = f.get("common_http_protocol_options")) {
    Fields c(d_, *common);
    c.reject("idle_timeout", "upstream connection idle_timeout is not supported yet");
  }
}

void Loader::parse_load_assignment(const Value& v, Cluster& out, bool check_addresses) {
  Fields f(d_, v);
  std::string cluster_name;  // required by Envoy; only EDS uses it
  f.read_string("cluster_name", cluster_name, Need::kRequired);
  size_t endpoint_count = 0;
  f.for_each("endpoints", [&](const Value& locality) {
    Fields l(d_, locality);
    l.for_each("lb_endpoints", [&](const Value& lb) {
      Fields e(d_, lb);
      ++endpoint_count;
      Endpoint endpoint;
      bool ok = false;
      if (std::optional<Value> ep = e.get("endpoint", Need::kRequired)) {
        Fields epf(d_, *ep);
        if (std::optional<Value> address = epf.get("address", Need::kRequired)) {
          ok = parse_socket_address(*address, endpoint.address, /*is_endpoint=*/true);
          if (ok && check_addresses && out.type == Cluster::Type::Static &&
              !is_ip_literal(endpoint.address.address)) {
            d_.error(child_path(address->path, "socket_address.address"), address->line,
                     fmt::format("a STATIC cluster needs an IP address, got \"{}\" (use "
                                 "STRICT_DNS for hostnames)",
                                 endpoint.address.address));
            ok = false;
          }
        }
      }
      e.read_uint32("load_balancing_weight", endpoint.load_balancing_weight, 1);
      if (ok) out.endpoints.push_back(std::move(endpoint));
    });
  });
  if (out.type == Cluster::Type::LogicalDns && endpoint_count != 1) {
    d_.error(v, "a LOGICAL_DNS cluster needs exactly one endpoint");
  }
}

void Loader::parse_circuit_breakers(const Value& v, CircuitBreakerThresholds& out) {
  Fields f(d_, v);
  f.for_each("thresholds", [&](const Value& e) {
    Fields t(d_, e);
    enum class Priority { kDefault, kHigh };
    Priority priority = Priority::kDefault;
    read_enum<Priority>(t, "priority", priority,
                        {{"DEFAULT", Priority::kDefault}, {"HIGH", Priority::kHigh}});
    CircuitBreakerThresholds thresholds;
    t.read_uint32("max_connections", thresholds.max_connections);
    t.read_uint32("max_pending_requests", thresholds.max_pending_requests);
    t.read_uint32("max_requests", thresholds.max_requests);
    t.read_uint32("max_retries", thresholds.max_retries);
    if (priority == Priority::kDefault) {
      out = thresholds;
    } else {
      d_.warn(e, "HIGH priority thresholds are accepted but ignored (Sluice has no priorities)");
    }
  });
}

void Loader::check_references(const Bootstrap& b) {
  const auto check_unique = [&](const std::vector<Reference>& names, std::string_view what) {
    std::map<std::string_view, const Reference*> seen;
    for (const Reference& r : names) {
      auto [it, inserted] = seen.emplace(r.name, &r);
      if (!inserted) {
        d_.error(r.at, fmt::format("duplicate {} name '{}' (first at line {})", what, r.name,
                                   it->second->at.line));
      }
    }
  };
  check_unique(listener_names_, "listener");
  check_unique(cluster_names_, "cluster");

  for (const Reference& r : cluster_refs_) {
    if (b.find_cluster(r.name) == nullptr) {
      d_.error(r.at, fmt::format("unknown cluster '{}'", r.name));
    }
  }

  // sluice.wasm.plugins names configured plugins (config.name), like any other reference.
  if (!wasm_plugin_settings_.empty()) {
    std::set<std::string, std::less<>> plugins;
    b.for_each_wasm_plugin([&](const WasmPlugin& w) { plugins.insert(w.name); });
    for (const Reference& r : wasm_plugin_settings_) {
      if (plugins.count(r.name) == 0) {
        d_.error(r.at, fmt::format("no Wasm plugin is named '{}' (config.name)", r.name));
      }
    }
  }

  // Two sockets cannot bind the same port when the addresses are equal or one is a wildcard.
  // Port 0 asks the kernel for a free port, so it never clashes.
  for (size_t i = 0; i < bound_addresses_.size(); ++i) {
    const auto& [a, a_at] = bound_addresses_[i];
    for (size_t j = 0; j < i; ++j) {
      const auto& [other, other_at] = bound_addresses_[j];
      if (a.port != 0 && a.port == other.port &&
          (a.address == other.address || is_wildcard_ip(a.address) ||
           is_wildcard_ip(other.address))) {
        d_.error(a_at, fmt::format("address {}:{} clashes with {} (line {})", a.address, a.port,
                                   other_at.path, other_at.line));
        break;
      }
    }
  }
}

}  // namespace

std::string Diagnostic::to_string() const {
  std::string out = path;
  if (line > 0) out += fmt::format("{}(line {})", out.empty() ? "" : " ", line);
  return out.empty() ? message : out + ": " + message;
}

namespace {

// YAML aliases can make a document recursive ("&a [*a]") or exponentially large ("billion
// laughs"); every later pass recurses over the tree, so bound it first.
constexpr int kMaxDepth = 64;
constexpr size_t kMaxNodes = 200000;

bool within_limits(const YAML::Node& node, int depth, size_t& nodes) {
  if (depth > kMaxDepth || ++nodes > kMaxNodes) return false;
  if (node.IsSequence() || node.IsMap()) {
    for (const auto& child : node) {
      if (node.IsMap()) {
        if (!within_limits(child.first, depth + 1, nodes) ||
            !within_limits(child.second, depth + 1, nodes)) {
          return false;
        }
      } else if (!within_limits(child, depth + 1, nodes)) {
        return false;
      }
    }
  }
  return true;
}

}  // namespace

namespace {

// Reads the overlay sluice.overlay_path names (or the one `options` hands over) and merges it
// into `root`. A missing file is an empty overlay: nothing was deployed yet.
void merge_overlay(YAML::Node& root, const LoadOptions& options, Overlay& merged,
                   std::vector<Diagnostic>& errors) {
  const YAML::Node& const_root = root;
  if (!const_root.IsMap()) return;
  const YAML::Node sluice = const_root["sluice"];
  if (!sluice || !sluice.IsMap()) return;
  const YAML::Node path_node = sluice["overlay_path"];
  if (!path_node || !path_node.IsScalar() || path_node.Scalar().empty()) return;
  const std::string& path = path_node.Scalar();
  const int line = path_node.Mark().is_null() ? 0 : path_node.Mark().line + 1;
  std::string text;
  if (options.overlay_text) {
    text = *options.overlay_text;
  } else if (std::error_code ec; std::filesystem::exists(path, ec)) {
    Result<std::string> contents = sluice::read_file(path);
    if (!contents) {
      errors.push_back(Diagnostic{"sluice.overlay_path", line,
                                  fmt::format("cannot read the overlay of deployed plugins "
                                              "'{}': {}",
                                              path, contents.error())});
      return;
    }
    text = std::move(*contents);
  }
  Result<Overlay> overlay = parse_overlay(text);
  if (!overlay) {
    errors.push_back(
        Diagnostic{"sluice.overlay_path", line,
                   fmt::format("the overlay of deployed plugins '{}': {}", path, overlay.error())});
    return;
  }
  for (std::string& e : apply_overlay(*overlay, root)) {
    errors.push_back(Diagnostic{"sluice.overlay_path", line, fmt::format("{} ({})", e, path)});
  }
  merged = std::move(*overlay);
}

}  // namespace

LoadResult load_from_string(std::string_view text, std::string_view source_name,
                            const LoadOptions& options) {
  LoadResult result;
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    result.errors.push_back(Diagnostic{"", e.mark.is_null() ? 0 : e.mark.line + 1,
                                       fmt::format("invalid YAML in {}: {}", source_name, e.msg)});
    return result;
  }
  if (size_t nodes = 0; !within_limits(root, 0, nodes)) {
    result.errors.push_back(Diagnostic{
        "", 0,
        fmt::format("{} is nested deeper than {} levels or has more than {} nodes (recursive or "
                    "exploding YAML aliases?)",
                    source_name, kMaxDepth, kMaxNodes)});
    return result;
  }
  auto bootstrap = std::make_shared<Bootstrap>();
  merge_overlay(root, options, bootstrap->overlay, result.errors);
  if (!result.errors.empty()) return result;
  Diagnostics diags;
  if (!root.IsNull()) {  // an empty document is an empty bootstrap
    Loader(diags).load(Value{root, "", 1}, *bootstrap);
  }
  bootstrap->source_json = root.IsNull() ? "{}" : yaml_to_json(root);
  if (root.IsMap()) {
    for (const auto& section : root) {
      const std::string key = section.first.as<std::string>("");
      if (key == "static_resources" && section.second.IsMap()) {
        for (const auto& part : section.second) {
          bootstrap->section_json["static_resources." + part.first.as<std::string>("")] =
              yaml_to_json(part.second);
        }
      } else {
        bootstrap->section_json[key] = yaml_to_json(section.second);
      }
    }
  }
  result.errors = std::move(diags.errors());
  result.warnings = std::move(diags.warnings());
  // Report in document order, as a user reads the file.
  const auto by_line = [](const Diagnostic& a, const Diagnostic& b) { return a.line < b.line; };
  std::stable_sort(result.errors.begin(), result.errors.end(), by_line);
  std::stable_sort(result.warnings.begin(), result.warnings.end(), by_line);
  if (result.errors.empty()) result.bootstrap = std::move(bootstrap);
  return result;
}

std::optional<std::string> read_file(const std::string& path, std::string& error) {
  Result<std::string> contents = sluice::read_file(path);
  if (!contents) {
    error = fmt::format("cannot read file '{}': {}", path, contents.error());
    return std::nullopt;
  }
  return std::move(*contents);
}

LoadResult load_from_file(const std::string& path, const LoadOptions& options) {
  std::string error;
  std::optional<std::string> text = read_file(path, error);
  if (!text) {
    LoadResult result;
    result.errors.push_back(Diagnostic{"", 0, "cannot load config: " + error});
    return result;
  }
  return load_from_string(*text, path, options);
}

}  // namespace sluice::config
