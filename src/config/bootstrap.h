// Typed, immutable configuration snapshot: the subset of Envoy's v3 bootstrap that Sluice runs.
// Produced by config::load() (loader.h); consumed read-only by the server, workers and admin.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "config/overlay.h"
#include "oci/reference.h"

namespace re2 {
class RE2;
}

namespace sluice::config {

using Duration = std::chrono::milliseconds;

struct SocketAddress {
  std::string address;  // IP literal or, for STRICT/LOGICAL_DNS clusters, a hostname
  uint16_t port = 0;
};

// envoy.type.matcher.v3.StringMatcher
struct StringMatcher {
  enum class Kind { Exact, Prefix, Suffix, Contains, SafeRegex };
  Kind kind = Kind::Exact;
  std::string value;
  bool ignore_case = false;
  std::shared_ptr<const re2::RE2> regex;  // set for SafeRegex (full match, as Envoy)

  bool matches(std::string_view input) const;
};

// envoy.config.route.v3.HeaderMatcher (string_match / present_match forms)
struct HeaderMatcher {
  std::string name;  // lower-cased
  std::optional<StringMatcher> string_match;
  bool present_match = false;  // true: header must be present (any value)
  bool invert_match = false;
};

// envoy.config.route.v3.QueryParameterMatcher
struct QueryParameterMatcher {
  std::string name;
  std::optional<StringMatcher> string_match;
  bool present_match = false;
};

struct RouteMatch {
  enum class PathKind { Prefix, Path, SafeRegex };
  PathKind kind = PathKind::Prefix;
  std::string value;                      // prefix or exact path
  std::shared_ptr<const re2::RE2> regex;  // PathKind::SafeRegex: full match on the path (no query)
  bool case_sensitive = true;
  std::vector<HeaderMatcher> headers;
  std::vector<QueryParameterMatcher> query_parameters;
};

// envoy.config.core.v3.HeaderValueOption
struct HeaderValueOption {
  std::string key;  // lower-cased
  std::string value;
  bool append =
      true;  // false: overwrite (append: false / append_action OVERWRITE_IF_EXISTS_OR_ADD)
  bool add_if_absent = false;  // append_action ADD_IF_ABSENT: add only when missing (append false)
};

struct HeaderMutations {
  std::vector<HeaderValueOption> request_headers_to_add;
  std::vector<std::string> request_headers_to_remove;  // lower-cased
  std::vector<HeaderValueOption> response_headers_to_add;
  std::vector<std::string> response_headers_to_remove;  // lower-cased
};

struct RetryPolicy {
  bool retry_on_5xx = false;
  bool retry_on_gateway_error = false;  // 502, 503, 504
  bool retry_on_connect_failure = false;
  bool retry_on_reset = false;
  bool retry_on_retriable_status_codes = false;
  std::vector<uint32_t> retriable_status_codes;
  uint32_t num_retries = 1;
  Duration per_try_timeout{0};  // 0: the route timeout applies
};

struct WeightedCluster {
  std::string name;
  uint32_t weight = 0;
};

struct RouteAction {
  std::string cluster;         // one of cluster / cluster_header / weighted_clusters is set
  std::string cluster_header;  // lower-cased header name
  std::vector<WeightedCluster> weighted_clusters;
  uint32_t total_weight = 0;  // sum of weighted_clusters weights
  std::optional<std::string> prefix_rewrite;
  std::optional<std::string> host_rewrite_literal;
  Duration timeout{15000};               // Envoy default 15 s; 0 disables
  std::optional<Duration> idle_timeout;  // per-stream idle timeout override
  std::optional<RetryPolicy> retry_policy;
};

struct DirectResponseAction {
  uint32_t status = 200;
  std::string body;
};

struct RedirectAction {
  bool https_redirect = false;
  std::string host_redirect;
  std::string path_redirect;
  uint32_t response_code = 301;  // MOVED_PERMANENTLY default, as Envoy
};

struct Route {
  std::string name;
  RouteMatch match;
  std::variant<RouteAction, DirectResponseAction, RedirectAction> action;
  HeaderMutations headers;
  // typed_per_filter_config: filter name -> disabled (envoy.config.route.v3.FilterConfig).
  std::vector<std::string> disabled_filters;
};

struct VirtualHost {
  std::string name;
  std::vector<std::string> domains;  // lower-cased; "*", "*.suffix", "prefix.*", "host:port"
  std::vector<Route> routes;
  HeaderMutations headers;
  std::vector<std::string> disabled_filters;
};

struct RouteConfiguration {
  std::string name;
  std::vector<VirtualHost> virtual_hosts;
  HeaderMutations headers;
};

struct AccessLog {
  std::string path;    // file path; "/dev/stdout" and "/dev/stderr" are honoured
  std::string format;  // text format; empty: Envoy's default format
};

// vm_config.code.remote (envoy.config.core.v3.RemoteDataSource): module bytes fetched over HTTP
// from a cluster, checked against sha256; or, for an oci:// URI, an image pulled from its
// registry (sluice.oci), where sha256 is optional.
struct RemoteCode {
  std::string uri;  // http_uri.uri, for messages (the cluster decides plain or TLS)
  std::optional<oci::Reference> oci;  // set when uri is oci://
  std::string authority;              // from the uri: the request's :authority
  std::string path;                   // from the uri: the request's :path
  std::string cluster;                // http_uri.cluster
  Duration timeout{5000};             // http_uri.timeout (per attempt)
  std::string sha256;                 // lower-case hex; empty only for an image
  uint32_t num_retries = 3;           // retry_policy.num_retries (Sluice's default; see docs)
  Duration base_interval{1000}, max_interval{10000};  // retry_policy.retry_back_off
};

// envoy.extensions.filters.http.wasm.v3.Wasm's PluginConfig, with the code already read (or, for
// remote code, to be fetched: `remote` set and `code` empty until the server resolves it).
struct WasmPlugin {
  std::string name;     // config.name
  std::string root_id;  // config.root_id
  std::string
      configuration;  // config.configuration, unwrapped (StringValue/BytesValue/Struct JSON)
  std::string vm_id;
  std::string runtime = "envoy.wasm.runtime.v8";
  std::string vm_configuration;
  std::string code;         // module bytes; for the null runtime, the plugin name or a .so path
  std::string code_origin;  // "file /path/x.wasm", "inline_bytes", "inline_string"
  std::string code_file;    // code.local.filename (watched for hot reload), or empty
  std::optional<RemoteCode> remote;
  std::vector<std::pair<std::string, std::string>> env;  // environment_variables
  // capability_restriction_config.allowed_capabilities (names); empty: everything allowed.
  std::vector<std::string> allowed_capabilities;
  enum class FailurePolicy { FailClosed, FailOpen, FailReload };
  FailurePolicy failure_policy = FailurePolicy::FailClosed;
  // Replace a failed VM after a backoff: Sluice's self-healing, for an unset policy (which
  // answers as FAIL_CLOSED meanwhile) and FAIL_OPEN; not for FAIL_CLOSED named explicitly
  // (Envoy's behaviour). FAIL_RELOAD replaces it at the next stream.
  bool heal = true;
  // reload_config.backoff (FAIL_RELOAD): how long after a failure the next VM may start,
  // doubling per consecutive failure up to the max. Envoy's defaults: 1 s, max 10 x base.
  Duration reload_base_interval{1000}, reload_max_interval{10000};
};

// An entry of http_filters[]: the router or a Wasm filter.
struct HttpFilter {
  std::string name;
  std::string type_url;  // typed_config's @type
  std::optional<WasmPlugin> wasm;
};

// http2_protocol_options (envoy.config.core.v3.Http2ProtocolOptions), the fields Sluice honours.
// Defaults are Envoy's except where noted: Envoy lets a stream take 256 MiB of window and a
// connection 2^31-1 streams; Sluice keeps a client's unread request body within a smaller
// window, so one connection cannot make it buffer gigabytes.
struct Http2ProtocolOptions {
  uint32_t max_concurrent_streams = 1024;                 // Envoy: 2147483647
  uint32_t initial_stream_window_size = 256 * 1024;       // Envoy: 268435456
  uint32_t initial_connection_window_size = 1024 * 1024;  // Envoy: 268435456
  uint32_t hpack_table_size = 4096;
  // Flood protection (Envoy's names and defaults).
  uint32_t max_outbound_frames = 10000;
  uint32_t max_outbound_control_frames = 1000;
  uint32_t max_consecutive_inbound_frames_with_empty_payload = 1;
  uint32_t max_inbound_priority_frames_per_stream = 100;
  uint32_t max_inbound_window_update_frames_per_data_frame_sent = 10;
};

struct HttpConnectionManager {
  std::string stat_prefix;
  enum class Codec { Auto, Http1, Http2 };
  Codec codec_type = Codec::Auto;
  RouteConfiguration route_config;
  std::vector<HttpFilter> http_filters;
  std::vector<AccessLog> access_logs;
  Duration idle_timeout{3600 * 1000};  // common_http_protocol_options.idle_timeout (Envoy: 1 h)
  Duration stream_idle_timeout{300 * 1000};  // Envoy: 5 min
  Duration request_timeout{0};               // 0: disabled (Envoy default)
  uint32_t max_request_headers_kb = 60;
  bool use_remote_address = false;
  uint32_t xff_num_trusted_hops = 0;
  bool generate_request_id = true;
  std::string server_name = "envoy";  // Envoy's default, kept so Envoy users see what they expect
  // http_protocol_options.enable_trailers: HTTP/1 trailers are parsed and passed on (Envoy drops
  // them by default).
  bool enable_trailers = false;
  Http2ProtocolOptions http2;
};

// envoy.filters.network.tcp_proxy (envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy).
struct TcpProxy {
  std::string stat_prefix;
  std::string cluster;  // or weighted_clusters
  std::vector<WeightedCluster> weighted_clusters;
  uint32_t total_weight = 0;
  Duration idle_timeout{3600 * 1000};  // Envoy's default, 1 h; 0 disables
  uint32_t max_connect_attempts = 1;
  std::vector<AccessLog> access_logs;  // one line per connection, when it ends
};

// A listener filter chain's entry: the terminal filter (last), or a Wasm network filter before
// it (envoy.filters.network.wasm: its PluginConfig).
struct NetworkFilter {
  std::string name;
  std::string type_url;
  std::variant<std::monostate, HttpConnectionManager, TcpProxy, WasmPlugin> config;
};

// common_tls_context of envoy.extensions.transport_sockets.tls.v3 (the subset Sluice speaks).
struct TlsCertificate {
  std::string certificate_chain;  // PEM
  std::string private_key;        // PEM
  // The files they came from ("" when inline): watched, and reloaded when they change.
  std::string certificate_chain_path, private_key_path;
};
struct CommonTls {
  std::vector<TlsCertificate> certificates;
  std::vector<std::string> alpn_protocols;  // server: selects h2/http/1.1 in this order
  enum class Version { Auto, Tls10, Tls11, Tls12, Tls13 };
  Version min_version = Version::Auto;     // Auto: TLS 1.2 (Envoy's default both ways)
  Version max_version = Version::Auto;     // Auto: TLS 1.3
  std::vector<std::string> cipher_suites;  // OpenSSL names (TLS 1.2 and below)
  std::string trusted_ca;                  // PEM; verifies the peer's certificate when set
  std::string trusted_ca_path;             // "" when inline
  // validation_context.match_typed_subject_alt_names (DNS and URI, exact; DNS SANs may be
  // wildcards): the peer's certificate must carry one of them. Empty: any certificate the CA
  // signed.
  std::vector<std::string> match_dns_san, match_uri_san;
};
// DownstreamTlsContext: a listener's filter chain.
struct DownstreamTls : CommonTls {
  bool require_client_certificate = false;
};
// UpstreamTlsContext: a cluster's connections to its hosts.
struct UpstreamTls : CommonTls {
  std::string sni;  // "" sends none
  // How many of the latest sessions the upstreams issued are kept to resume the next handshakes
  // (Envoy's default, 1); 0: every handshake is a full one.
  uint32_t max_session_keys = 1;
};

struct FilterChain {
  // filter_chain_match.server_names: the SNI values (exact, or "*.suffix") this chain answers.
  // Empty: every other connection (the default chain).
  std::vector<std::string> server_names;
  std::vector<NetworkFilter> filters;
  std::optional<DownstreamTls> tls;  // transport_socket envoy.transport_sockets.tls
  // transport_socket_connect_timeout: the TLS handshake's bound (0: Sluice's default, 10 s).
  Duration transport_socket_connect_timeout{0};
};

struct Listener {
  std::string name;
  SocketAddress address;
  uint32_t per_connection_buffer_limit_bytes = 1024 * 1024;  // Envoy default 1 MiB
  std::vector<FilterChain> filter_chains;
  // connection_balance_config.exact_balance: each new connection goes to the worker with the
  // fewest of this listener's connections. Off: the kernel spreads them (SO_REUSEPORT).
  bool exact_balance = false;
};

struct CircuitBreakerThresholds {
  uint32_t max_connections = 1024;
  uint32_t max_pending_requests = 1024;
  uint32_t max_requests = 1024;
  uint32_t max_retries = 3;
};

struct Endpoint {
  SocketAddress address;
  uint32_t load_balancing_weight = 1;
};

// health_checks[] (one): an active check of every host, from the main thread.
struct HealthCheck {
  Duration timeout{1000};
  Duration interval{10000};
  uint32_t unhealthy_threshold = 3;
  uint32_t healthy_threshold = 2;
  enum class Kind { Http, Tcp };
  Kind kind = Kind::Tcp;
  // http_health_check
  std::string path;
  std::string host;  // "" sends the cluster name, as Envoy
  std::vector<std::pair<uint32_t, uint32_t>> expected_statuses;  // [start, end); empty: 200 only
};

// outlier_detection: passive, from the responses the workers see.
struct OutlierDetection {
  uint32_t consecutive_5xx = 5;
  Duration interval{10000};  // how often ejections are checked for expiry
  Duration base_ejection_time{30000};
  uint32_t max_ejection_percent = 10;
  uint32_t enforcing_consecutive_5xx = 100;
};

struct Cluster {
  std::string name;
  enum class Type { Static, StrictDns, LogicalDns };
  Type type = Type::Static;
  Duration connect_timeout{5000};
  enum class LbPolicy { RoundRobin, LeastRequest, Random };
  LbPolicy lb_policy = LbPolicy::RoundRobin;
  std::vector<Endpoint> endpoints;
  CircuitBreakerThresholds circuit_breakers;
  uint32_t per_connection_buffer_limit_bytes = 1024 * 1024;
  Duration dns_refresh_rate{5000};
  // typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
  // .explicit_http_config.http_protocol_options.enable_trailers.
  bool enable_trailers = false;
  // HTTP/2 to the hosts: http2_protocol_options, or explicit_http_config.http2_protocol_options
  // of the HttpProtocolOptions above. Unset: HTTP/1.1.
  std::optional<Http2ProtocolOptions> http2;
  std::optional<UpstreamTls> tls;  // transport_socket envoy.transport_sockets.tls
  std::optional<HealthCheck> health_check;
  std::optional<OutlierDetection> outlier_detection;
};

struct Node {
  std::string id;
  std::string cluster;
  std::string metadata_json = "{}";  // node.metadata as JSON (a google.protobuf.Struct)
  std::string locality_region, locality_zone, locality_sub_zone;
};

struct Admin {
  std::optional<SocketAddress> address;  // absent: no admin listener
  std::string access_log_path;
};

// bootstrap_extensions[] with envoy.bootstrap.wasm (envoy.extensions.wasm.v3.WasmService): a
// plugin with no stream to filter, for background work (ticks, callouts, queues). A singleton runs
// one VM on the main thread; otherwise each worker runs one.
struct WasmService {
  std::string name;
  WasmPlugin plugin;
  bool singleton = false;
};

// Sluice's own settings (the top-level `sluice:` block; Envoy has none of them).
// A Wasm plugin's sandbox: resource limits of its VM (V8; null-runtime plugins are trusted native
// code; unset: the defaults block's value, else Sluice's default) and what it may not see.
struct WasmPluginSettings {
  std::optional<uint32_t> memory_limit_mb;  // default 64
  std::optional<uint32_t> callback_cpu_ms;  // CPU per callback; default 50 (0: unlimited)
  std::optional<uint32_t> startup_cpu_ms;   // _initialize, on_vm_start, on_configure; default 2000
  // Per plugin only: header names (lower case) hidden from it, and the client's address.
  std::vector<std::string> hide_request_headers, hide_response_headers;
  bool hide_client_address = false;
};
// sluice.oci: how module images are pulled.
struct OciSettings {
  std::vector<std::string> insecure_registries;  // host[:port] spoken to over plain HTTP
  std::string credentials_file;                  // Docker-style config.json with "auths"
};
// sluice.admin: who may change a running proxy through the admin listener.
struct AdminSettings {
  std::string token_file;
  // The file's contents, trimmed. When set, every mutating admin call (any method but GET and
  // HEAD) needs "Authorization: Bearer <token>"; when not, an admin address that is not loopback
  // refuses them all.
  std::string token;
};
struct SluiceSettings {
  OciSettings oci;
  AdminSettings admin;
  // sluice.overlay_path: the plugins deployed through POST /wasm/plugins (config/overlay.h).
  // Empty: deploying is refused, with a message naming this setting.
  std::string overlay_path;
  WasmPluginSettings wasm_defaults;
  // sluice.wasm.code_cache_dir: remote module code is also kept here, as <sha256>.wasm, so a
  // restart does not need the server it came from. Empty: in memory only.
  std::string code_cache_dir;
  std::map<std::string, WasmPluginSettings, std::less<>>
      wasm_plugins;  // by the plugin's config.name
  // The limits of the plugin `name`, every field set.
  WasmPluginSettings wasm_settings_for(std::string_view name) const;
};

// stats_config.stats_tags[]: a tag taken out of stat names by a regex (its first capture group
// is removed from the name; the value is the second group, or the first when there is one), or
// a fixed tag added to every stat.
struct StatsTag {
  std::string name;
  std::string regex;        // RE2 syntax ("" with fixed_value)
  std::string fixed_value;  // "" with regex
};

struct Bootstrap {
  Node node;
  Admin admin;
  std::vector<StatsTag> stats_tags;
  SluiceSettings sluice;
  Overlay overlay;  // what was merged from sluice.overlay_path into the listeners below
  std::vector<WasmService> wasm_services;
  std::vector<Listener> listeners;
  std::vector<Cluster> clusters;
  std::string source_json;  // the whole input as JSON, for /config_dump
  // Each top-level section as JSON ("static_resources" split into "static_resources.listeners"
  // and "static_resources.clusters"): a reload compares them to find what changed.
  std::map<std::string, std::string> section_json;

  const Cluster* find_cluster(std::string_view name) const;
  // Every Wasm plugin configured: HTTP filters, network filters, then bootstrap extensions.
  void for_each_wasm_plugin(const std::function<void(const WasmPlugin&)>& fn) const;
};

}  // namespace sluice::config
