#include <filesystem>
#include <string>

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <re2/re2.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "config/bootstrap.h"
#include "config/duration.h"
#include "config/loader.h"

namespace sluice::config {
namespace {

using std::chrono::milliseconds;

// tests/unit/ (from the build, not __FILE__: ccache may make that relative).
const std::filesystem::path kSourceDir =
    std::filesystem::path(SLUICE_SOURCE_DIR) / "tests" / "unit";

std::string TestData(const std::string& name) {
  return (kSourceDir / "testdata" / "config" / name).string();
}

std::string Describe(const std::vector<Diagnostic>& diags) {
  std::vector<std::string> lines;
  for (const Diagnostic& d : diags) lines.push_back(d.to_string());
  return absl::StrJoin(lines, "\n");
}

// Passes when `diags` holds an entry at `path` and `line` whose message contains `message`.
testing::AssertionResult Has(const std::vector<Diagnostic>& diags, std::string_view path, int line,
                             std::string_view message) {
  for (const Diagnostic& d : diags) {
    if (d.path == path && d.line == line && d.message.find(message) != std::string::npos) {
      return testing::AssertionSuccess();
    }
  }
  return testing::AssertionFailure()
         << "no \"" << path << " (line " << line << "): ..." << message << "\" among:\n"
         << Describe(diags);
}

// A listener whose HCM uses `routes` (YAML flow list) and `http_filters`, plus clusters a and b.
// Lines: the route list is on line 8, http_filters on line 9, clusters start at line 10.
std::string WithRoutes(
    const std::string& routes,
    const std::string& http_filters =
        "[{name: r, typed_config: {\"@type\": "
        "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]") {
  return absl::StrCat(R"(static_resources:
  listeners:
  - address: {socket_address: {address: 0.0.0.0, port_value: 8080}}
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          {"@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager, stat_prefix: x, route_config: {virtual_hosts: [{name: vh, domains: ["*"], routes: )",
                      routes, R"(}]},
           http_filters: )",
                      http_filters, R"(}
  clusters:
  - {name: a, load_assignment: {cluster_name: a}}
  - {name: b, load_assignment: {cluster_name: b}}
)");
}

// Path of the first virtual host in WithRoutes().
constexpr char kVh[] =
    "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config."
    "virtual_hosts[0]";
constexpr char kHcm[] = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config";

TEST(ConfigLoader, FullConfigLoadsTypedValues) {
  LoadResult r = load_from_file(TestData("full.yaml"));
  ASSERT_TRUE(r.ok()) << Describe(r.errors);
  EXPECT_TRUE(r.warnings.empty()) << Describe(r.warnings);
  const Bootstrap& b = *r.bootstrap;

  EXPECT_EQ(b.node.id, "front-proxy-1");
  EXPECT_EQ(b.node.cluster, "front-proxy");
  EXPECT_EQ(b.node.metadata_json,
            R"({"team":"edge","replicas":3,"canary":false,"tags":["a","b"]})");
  EXPECT_EQ(b.node.locality_region, "eu-west-1");
  EXPECT_EQ(b.node.locality_zone, "eu-west-1a");
  EXPECT_EQ(b.node.locality_sub_zone, "");

  ASSERT_TRUE(b.admin.address.has_value());
  EXPECT_EQ(b.admin.address->address, "127.0.0.1");
  EXPECT_EQ(b.admin.address->port, 9901);
  EXPECT_EQ(b.admin.access_log_path, "/dev/null");

  ASSERT_EQ(b.listeners.size(), 1u);
  const Listener& l = b.listeners[0];
  EXPECT_EQ(l.name, "ingress");
  EXPECT_EQ(l.address.address, "0.0.0.0");
  EXPECT_EQ(l.address.port, 10000);
  EXPECT_EQ(l.per_connection_buffer_limit_bytes, 32768u);
  ASSERT_EQ(l.filter_chains.size(), 1u);
  ASSERT_EQ(l.filter_chains[0].filters.size(), 1u);
  const NetworkFilter& nf = l.filter_chains[0].filters[0];
  EXPECT_EQ(nf.name, "envoy.filters.network.http_connection_manager");
  ASSERT_TRUE(std::holds_alternative<HttpConnectionManager>(nf.config));
  const auto& hcm = std::get<HttpConnectionManager>(nf.config);
  EXPECT_EQ(hcm.stat_prefix, "ingress_http");
  EXPECT_EQ(hcm.codec_type, HttpConnectionManager::Codec::Http1);
  EXPECT_TRUE(hcm.use_remote_address);
  EXPECT_EQ(hcm.xff_num_trusted_hops, 1u);
  EXPECT_FALSE(hcm.generate_request_id);
  EXPECT_EQ(hcm.server_name, "sluice-test");
  EXPECT_EQ(hcm.max_request_headers_kb, 96u);
  EXPECT_EQ(hcm.stream_idle_timeout, milliseconds(30000));
  EXPECT_EQ(hcm.request_timeout, milliseconds(250));
  EXPECT_EQ(hcm.idle_timeout, milliseconds(1500));
  ASSERT_EQ(hcm.http_filters.size(), 1u);
  EXPECT_EQ(hcm.http_filters[0].name, "envoy.filters.http.router");
  EXPECT_EQ(hcm.http_filters[0].type_url,
            "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router");
  ASSERT_EQ(hcm.access_logs.size(), 2u);
  EXPECT_EQ(hcm.access_logs[0].path, "/var/log/sluice/access.log");
  EXPECT_EQ(hcm.access_logs[0].format, "[%START_TIME%] %REQ(:METHOD)% %RESPONSE_CODE%\n");
  EXPECT_EQ(hcm.access_logs[1].path, "/dev/stdout");
  EXPECT_EQ(hcm.access_logs[1].format, "");

  const RouteConfiguration& rc = hcm.route_config;
  EXPECT_EQ(rc.name, "local_route");
  ASSERT_EQ(rc.headers.response_headers_to_add.size(), 1u);
  EXPECT_EQ(rc.headers.response_headers_to_add[0].key, "x-served-by");
  EXPECT_EQ(rc.headers.response_headers_to_add[0].value, "sluice");
  EXPECT_FALSE(rc.headers.response_headers_to_add[0].append);
  ASSERT_EQ(rc.virtual_hosts.size(), 2u);

  const VirtualHost& backend = rc.virtual_hosts[0];
  EXPECT_EQ(backend.name, "backend");
  EXPECT_THAT(backend.domains, testing::ElementsAre("*"));
  ASSERT_EQ(backend.routes.size(), 4u);

  const Route& svc1 = backend.routes[0];
  EXPECT_EQ(svc1.name, "svc1");
  EXPECT_EQ(svc1.match.kind, RouteMatch::PathKind::Prefix);
  EXPECT_EQ(svc1.match.value, "/service/1");
  EXPECT_TRUE(svc1.match.case_sensitive);
  const auto& a1 = std::get<RouteAction>(svc1.action);
  EXPECT_EQ(a1.cluster, "service1");
  EXPECT_EQ(a1.timeout, milliseconds(5000));
  EXPECT_EQ(a1.prefix_rewrite, "/");
  EXPECT_FALSE(a1.idle_timeout.has_value());
  ASSERT_TRUE(a1.retry_policy.has_value());
  EXPECT_TRUE(a1.retry_policy->retry_on_5xx);
  EXPECT_TRUE(a1.retry_policy->retry_on_connect_failure);
  EXPECT_FALSE(a1.retry_policy->retry_on_reset);
  EXPECT_EQ(a1.retry_policy->num_retries, 3u);
  EXPECT_EQ(a1.retry_policy->per_try_timeout, milliseconds(500));

  const Route& svc2 = backend.routes[1];
  EXPECT_EQ(svc2.match.kind, RouteMatch::PathKind::Path);
  EXPECT_EQ(svc2.match.value, "/service/2");
  EXPECT_FALSE(svc2.match.case_sensitive);
  const auto& a2 = std::get<RouteAction>(svc2.action);
  EXPECT_EQ(a2.cluster, "service2");
  EXPECT_EQ(a2.idle_timeout, milliseconds(10000));
  EXPECT_EQ(a2.host_rewrite_literal, "svc2.internal");
  EXPECT_EQ(a2.timeout, milliseconds(15000));  // Envoy's default

  const Route& api = backend.routes[2];
  EXPECT_EQ(api.match.kind, RouteMatch::PathKind::SafeRegex);
  ASSERT_NE(api.match.regex, nullptr);
  EXPECT_TRUE(RE2::FullMatch("/api/v2/users", *api.match.regex));
  ASSERT_EQ(api.match.headers.size(), 3u);
  EXPECT_EQ(api.match.headers[0].name, "x-canary");
  ASSERT_TRUE(api.match.headers[0].string_match.has_value());
  EXPECT_TRUE(api.match.headers[0].string_match->matches("YES"));
  EXPECT_FALSE(api.match.headers[0].present_match);
  EXPECT_EQ(api.match.headers[1].name, "x-debug");
  EXPECT_TRUE(api.match.headers[1].present_match);
  EXPECT_FALSE(api.match.headers[1].string_match.has_value());
  EXPECT_EQ(api.match.headers[2].string_match->kind, StringMatcher::Kind::Prefix);
  EXPECT_EQ(api.match.headers[2].string_match->value, "abc");
  EXPECT_TRUE(api.match.headers[2].invert_match);
  ASSERT_EQ(api.match.query_parameters.size(), 1u);
  EXPECT_EQ(api.match.query_parameters[0].name, "debug");
  EXPECT_EQ(api.match.query_parameters[0].string_match->kind, StringMatcher::Kind::Prefix);
  const auto& a3 = std::get<RouteAction>(api.action);
  ASSERT_EQ(a3.weighted_clusters.size(), 2u);
  EXPECT_EQ(a3.weighted_clusters[0].name, "service1");
  EXPECT_EQ(a3.weighted_clusters[0].weight, 80u);
  EXPECT_EQ(a3.weighted_clusters[1].weight, 20u);
  EXPECT_EQ(a3.total_weight, 100u);

  const Route& health = backend.routes[3];
  const auto& dr = std::get<DirectResponseAction>(health.action);
  EXPECT_EQ(dr.status, 200u);
  EXPECT_EQ(dr.body, "OK");
  EXPECT_THAT(health.headers.request_headers_to_remove, testing::ElementsAre("x-internal"));
  ASSERT_EQ(health.headers.request_headers_to_add.size(), 2u);
  EXPECT_FALSE(health.headers.request_headers_to_add[0].append);
  EXPECT_FALSE(health.headers.request_headers_to_add[0].add_if_absent);
  EXPECT_FALSE(health.headers.request_headers_to_add[1].append);
  EXPECT_TRUE(health.headers.request_headers_to_add[1].add_if_absent);

  const VirtualHost& www = rc.virtual_hosts[1];
  EXPECT_THAT(www.domains, testing::ElementsAre("www.example.com", "*.example.org", "api.*",
                                                "example.net:8080"));
  EXPECT_THAT(www.disabled_filters, testing::ElementsAre("example.filter"));
  const auto& redirect = std::get<RedirectAction>(www.routes[0].action);
  EXPECT_TRUE(redirect.https_redirect);
  EXPECT_EQ(redirect.response_code, 308u);

  ASSERT_EQ(b.clusters.size(), 2u);
  const Cluster& c1 = b.clusters[0];
  EXPECT_EQ(c1.name, "service1");
  EXPECT_EQ(c1.type, Cluster::Type::Static);
  EXPECT_EQ(c1.connect_timeout, milliseconds(250));
  EXPECT_EQ(c1.lb_policy, Cluster::LbPolicy::LeastRequest);
  EXPECT_EQ(c1.per_connection_buffer_limit_bytes, 65536u);
  EXPECT_EQ(c1.circuit_breakers.max_connections, 100u);
  EXPECT_EQ(c1.circuit_breakers.max_pending_requests, 200u);
  EXPECT_EQ(c1.circuit_breakers.max_requests, 300u);
  EXPECT_EQ(c1.circuit_breakers.max_retries, 4u);
  ASSERT_EQ(c1.endpoints.size(), 2u);
  EXPECT_EQ(c1.endpoints[0].address.address, "10.0.0.1");
  EXPECT_EQ(c1.endpoints[0].address.port, 8000);
  EXPECT_EQ(c1.endpoints[0].load_balancing_weight, 1u);
  EXPECT_EQ(c1.endpoints[1].address.address, "::1");
  EXPECT_EQ(c1.endpoints[1].load_balancing_weight, 3u);

  const Cluster& c2 = b.clusters[1];
  EXPECT_EQ(c2.type, Cluster::Type::StrictDns);
  EXPECT_EQ(c2.connect_timeout, milliseconds(2500));
  EXPECT_EQ(c2.dns_refresh_rate, milliseconds(10000));
  EXPECT_EQ(c2.lb_policy, Cluster::LbPolicy::RoundRobin);
  EXPECT_EQ(c2.circuit_breakers.max_connections, 1024u);
  ASSERT_EQ(c2.endpoints.size(), 1u);
  EXPECT_EQ(c2.endpoints[0].address.address, "service2.internal");

  EXPECT_EQ(b.find_cluster("service2"), &b.clusters[1]);
  EXPECT_EQ(b.find_cluster("nope"), nullptr);
  EXPECT_TRUE(absl::StartsWith(b.source_json, R"({"node":{"id":"front-proxy-1",)"));
}

TEST(ConfigLoader, EnvoyFrontProxyExampleLoads) {
  LoadResult r = load_from_file((kSourceDir / "../../examples/envoy-front-proxy.yaml").string());
  ASSERT_TRUE(r.ok()) << Describe(r.errors);
  EXPECT_TRUE(Has(r.warnings, "layered_runtime", 69, "accepted but ignored"));
  const Bootstrap& b = *r.bootstrap;
  ASSERT_EQ(b.listeners.size(), 1u);
  EXPECT_EQ(b.listeners[0].address.port, 8080);
  const auto& hcm =
      std::get<HttpConnectionManager>(b.listeners[0].filter_chains[0].filters[0].config);
  ASSERT_EQ(hcm.route_config.virtual_hosts.size(), 1u);
  const VirtualHost& vh = hcm.route_config.virtual_hosts[0];
  EXPECT_EQ(vh.name, "backend");
  ASSERT_EQ(vh.routes.size(), 2u);
  EXPECT_EQ(std::get<RouteAction>(vh.routes[1].action).cluster, "service2");
  ASSERT_EQ(b.clusters.size(), 2u);
  for (const Cluster& c : b.clusters) {
    EXPECT_EQ(c.type, Cluster::Type::StrictDns);
    ASSERT_EQ(c.endpoints.size(), 1u);
    EXPECT_EQ(c.endpoints[0].address.address, c.name);
    EXPECT_EQ(c.endpoints[0].address.port, 8000);
  }
  EXPECT_EQ(b.admin.address->port, 8001);
}

TEST(ConfigLoader, MinimalRouteConfigHelperIsValid) {
  LoadResult r = load_from_string(WithRoutes("[{match: {prefix: /}, route: {cluster: a}}]"));
  EXPECT_TRUE(r.ok()) << Describe(r.errors);
}

// Listener connection_balance_config: exact_balance (an empty message) only.
TEST(ConfigLoader, ConnectionBalanceConfig) {
  const std::string base = WithRoutes("[{match: {prefix: /}, route: {cluster: a}}]");
  const std::string address_line =
      "  - address: {socket_address: {address: 0.0.0.0, port_value: 8080}}\n";
  ASSERT_NE(base.find(address_line), std::string::npos);
  const auto with = [&](const std::string& balance) {
    std::string yaml = base;
    yaml.insert(yaml.find(address_line) + address_line.size(),
                "    connection_balance_config: " + balance + "\n");
    return load_from_string(yaml);
  };
  LoadResult r = load_from_string(base);
  ASSERT_TRUE(r.ok()) << Describe(r.errors);
  EXPECT_FALSE(r.bootstrap->listeners[0].exact_balance);

  r = with("{exact_balance: {}}");
  ASSERT_TRUE(r.ok()) << Describe(r.errors);
  EXPECT_TRUE(r.bootstrap->listeners[0].exact_balance);

  r = with("{exact_balance: {fair: true}}");
  EXPECT_TRUE(Has(r.errors,
                  "static_resources.listeners[0].connection_balance_config.exact_balance.fair", 4,
                  "unknown field"))
      << Describe(r.errors);
  r = with("{extend_balance: {name: envoy.network.connection_balance.dlb}}");
  EXPECT_TRUE(Has(r.errors,
                  "static_resources.listeners[0].connection_balance_config.extend_balance", 4,
                  "not supported"))
      << Describe(r.errors);
  r = with("{round_robin: {}}");
  EXPECT_TRUE(Has(r.errors, "static_resources.listeners[0].connection_balance_config.round_robin",
                  4, "unknown field"))
      << Describe(r.errors);
}

TEST(ConfigLoader, UnknownFieldsAtAnyDepth) {
  LoadResult r = load_from_string(R"(static_resources:
  clusters:
  - name: a
  - name: b
    foo: 1
    load_assignment:
      cluster_name: b
      endpoints:
      - lb_endpoints:
        - endpoint:
            address: {socket_address: {address: 1.2.3.4, port_value: 80, bar: x}}
bogus: true
)");
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.bootstrap, nullptr);
  EXPECT_TRUE(Has(r.errors, "static_resources.clusters[1].foo", 5, "unknown field"));
  EXPECT_TRUE(Has(r.errors,
                  "static_resources.clusters[1].load_assignment.endpoints[0].lb_endpoints[0]."
                  "endpoint.address.socket_address.bar",
                  11, "unknown field"));
  EXPECT_TRUE(Has(r.errors, "bogus", 12, "unknown field"));
  EXPECT_EQ(r.errors.size(), 3u) << Describe(r.errors);
  EXPECT_EQ(r.errors[0].to_string(), "static_resources.clusters[1].foo (line 5): unknown field");
}

TEST(ConfigLoader, WrongTypes) {
  LoadResult r = load_from_string(R"(admin:
  address: {socket_address: {address: 127.0.0.1, port_value: eighty}}
static_resources:
  listeners:
  - name: [a, b]
    address: {socket_address: {address: 0.0.0.0, port_value: 70000}}
    filter_chains: {}
  clusters:
  - name: c
    connect_timeout: abc
    per_connection_buffer_limit_bytes: -1
    circuit_breakers: {thresholds: [{max_connections: 1.5}]}
)");
  EXPECT_TRUE(Has(r.errors, "admin.address.socket_address.port_value", 2,
                  "expected an unsigned integer, got \"eighty\""));
  EXPECT_TRUE(
      Has(r.errors, "static_resources.listeners[0].name", 5, "expected a string, got a list"));
  EXPECT_TRUE(Has(r.errors, "static_resources.listeners[0].address.socket_address.port_value", 6,
                  "must be between 0 and 65535, got 70000"));
  EXPECT_TRUE(Has(r.errors, "static_resources.listeners[0].filter_chains", 7, "expected a list"));
  EXPECT_TRUE(Has(r.errors, "static_resources.clusters[0].connect_timeout", 10,
                  "expected a duration like \"5s\", got \"abc\""));
  EXPECT_TRUE(Has(r.errors, "static_resources.clusters[0].per_connection_buffer_limit_bytes", 11,
                  "expected an unsigned integer"));
  EXPECT_TRUE(Has(r.errors,
                  "static_resources.clusters[0].circuit_breakers.thresholds[0].max_connections", 12,
                  "expected an unsigned integer, got \"1.5\""));
}

TEST(ConfigLoader, WrongBoolAndMappingTypes) {
  LoadResult r =
      load_from_string(WithRoutes("[{match: {prefix: /, case_sensitive: yes}, route: x}]"));
  EXPECT_TRUE(Has(r.errors, absl::StrCat(kVh, ".routes[0].match.case_sensitive"), 8,
                  "expected true or false, got \"yes\""));
  EXPECT_TRUE(
      Has(r.errors, absl::StrCat(kVh, ".routes[0].route"), 8, "expected a mapping, got \"x\""));
}

TEST(ConfigLoader, MissingRequiredFields) {
  LoadResult r = load_from_string(R"(static_resources:
  listeners:
  - name: l
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          route_config:
            virtual_hosts:
            - name: vh
              routes:
              - route: {cluster: c}
              - match: {prefix: /}
          http_filters: [{name: envoy.filters.http.router}]
  clusters:
  - type: STATIC
)");
  const std::string hcm = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config";
  EXPECT_TRUE(Has(r.errors, "static_resources.listeners[0].address", 3, "missing required field"));
  EXPECT_TRUE(Has(r.errors, hcm + ".stat_prefix", 7, "missing required field"));
  const std::string vh = hcm + ".route_config.virtual_hosts[0]";
  EXPECT_TRUE(Has(r.errors, vh + ".domains", 11, "missing required field"));
  EXPECT_TRUE(Has(r.errors, vh + ".routes[0].match", 13, "missing required field"));
  EXPECT_TRUE(Has(r.errors, vh + ".routes[1]", 14,
                  "exactly one of route, direct_response, redirect is required"));
  EXPECT_TRUE(Has(r.errors, vh + ".routes[0].route.cluster", 13, "unknown cluster 'c'"));
  EXPECT_TRUE(Has(r.errors, "static_resources.clusters[0].name", 17, "missing required field"));
  EXPECT_EQ(r.errors.size(), 7u) << Describe(r.errors);
}

TEST(ConfigLoader, ExactlyOneOfChecks) {
  LoadResult r = load_from_string(
      WithRoutes("[{match: {prefix: /, path: /x}, route: {cluster: a, cluster_header: x-c}},"
                 " {match: {headers: [{name: h, exact_match: a, present_match: true}]},"
                 " direct_response: {status: 200}, redirect: {}}]"));
  EXPECT_TRUE(Has(r.errors, absl::StrCat(kVh, ".routes[0].match"), 8,
                  "exactly one of prefix, path, safe_regex is required"));
  EXPECT_TRUE(Has(r.errors, absl::StrCat(kVh, ".routes[0].route"), 8,
                  "exactly one of cluster, cluster_header, weighted_clusters is required"));
  EXPECT_TRUE(Has(r.errors, absl::StrCat(kVh, ".routes[1].match"), 8,
                  "exactly one of prefix, path, safe_regex is required"));
  EXPECT_TRUE(Has(r.errors, absl::StrCat(kVh, ".routes[1].match.headers[0]"), 8,
                  "at most one header match specifier"));
  EXPECT_TRUE(Has(r.errors, absl::StrCat(kVh, ".routes[1]"), 8,
                  "exactly one of route, direct_response, redirect is required"));
}

TEST(ConfigLoader, BadDuration) {
  LoadResult r = load_from_string(
      WithRoutes("[{match: {prefix: /}, route: {cluster: a, timeout: 5, idle_timeout: -1s,"
                 " retry_policy: {per_try_timeout: {seconds: 1, nanos: 1000000000}}}}]"));
  EXPECT_TRUE(Has(r.errors, absl::StrCat(kVh, ".routes[0].route.timeout"), 8,
                  "expected a duration like \"5s\", got \"5\""));
  EXPECT_TRUE(Has(r.errors, absl::StrCat(kVh, ".routes[0].route.idle_timeout"), 8, "got \"-1s\""));
  EXPECT_TRUE(Has(r.errors,
                  absl::StrCat(kVh, ".routes[0].route.retry_policy.per_try_timeout.nanos"), 8,
                  "must be between 0 and 999999999"));
}

TEST(ConfigLoader, BadRegex) {
  LoadResult r = load_from_string(R"(static_resources:
  listeners:
  - address: {socket_address: {address: 0.0.0.0, port_value: 8080}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: x
          http_filters: [{name: envoy.filters.http.router}]
          route_config:
            virtual_hosts:
            - name: vh
              domains: ["*"]
              routes:
              - match:
                  safe_regex:
                    regex: "/(abc"
                  headers:
                  - name: x
                    string_match: {safe_regex: {regex: "a**"}}
                direct_response: {status: 404}
)");
  const std::string route =
      "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config."
      "virtual_hosts[0].routes[0]";
  EXPECT_TRUE(Has(r.errors, route + ".match.safe_regex.regex", 18, "invalid regex: missing )"));
  EXPECT_TRUE(Has(r.errors, route + ".match.headers[0].string_match.safe_regex.regex", 21,
                  "invalid regex: bad repetition operator"));
  EXPECT_EQ(r.errors.size(), 2u) << Describe(r.errors);
}

// Envoy parses enum names case-insensitively, and its own examples write "strict_dns",
// "round_robin" and "auto".
TEST(ConfigLoader, EnumNamesIgnoreCase) {
  LoadResult r = load_from_string(R"(static_resources:
  listeners:
  - address: {socket_address: {address: 0.0.0.0, port_value: 8080}}
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          {"@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager, stat_prefix: x, codec_type: auto, route_config: {virtual_hosts: [{name: vh, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: a}}]}]}, http_filters: [{name: r, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]}
  clusters:
  - {name: a, type: strict_dns, lb_policy: least_request, load_assignment: {cluster_name: a, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: localhost, port_value: 80}}}}]}]}}
)");
  ASSERT_TRUE(r.ok()) << Describe(r.errors);
  EXPECT_EQ(r.bootstrap->clusters[0].type, Cluster::Type::StrictDns);
  EXPECT_EQ(r.bootstrap->clusters[0].lb_policy, Cluster::LbPolicy::LeastRequest);
}

// A bad cluster type is one error: the endpoints are not also judged against a guessed type.
TEST(ConfigLoader, BadClusterTypeDoesNotCascade) {
  LoadResult r = load_from_string(R"(static_resources:
  clusters:
  - name: a
    type: strictdns
    load_assignment: {cluster_name: a, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: web, port_value: 80}}}}]}]}
)");
  EXPECT_TRUE(
      Has(r.errors, "static_resources.clusters[0].type", 4, "unsupported value \"strictdns\""));
  EXPECT_EQ(r.errors.size(), 1u) << Describe(r.errors);
}

// HTTP/1 trailers are off by default (as in Envoy) and enabled per listener and per cluster.
TEST(ConfigLoader, TrailerOptions) {
  LoadResult r = load_from_string(R"(static_resources:
  listeners:
  - address: {socket_address: {address: 0.0.0.0, port_value: 8080}}
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          {"@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager, stat_prefix: x, http_protocol_options: {enable_trailers: true, accept_http_10: true}, route_config: {virtual_hosts: [{name: vh, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: a}}]}]}, http_filters: [{name: r, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]}
  clusters:
  - name: a
    load_assignment: {cluster_name: a}
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http_protocol_options: {enable_trailers: true}}
  - name: b
    load_assignment: {cluster_name: b}
    typed_extension_protocol_options:
      envoy.extensions.upstreams.tcp.v3.TcpProtocolOptions: {}
)");
  EXPECT_TRUE(Has(r.errors,
                  "static_resources.clusters[1].typed_extension_protocol_options.envoy.extensions."
                  "upstreams.tcp.v3.TcpProtocolOptions",
                  19, "unsupported protocol options"));
  EXPECT_EQ(r.errors.size(), 1u) << Describe(r.errors);
  LoadResult ok = load_from_string(R"(static_resources:
  clusters:
  - name: a
    load_assignment: {cluster_name: a}
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http_protocol_options: {enable_trailers: true}}
  - {name: b, load_assignment: {cluster_name: b}}
)");
  ASSERT_TRUE(ok.ok()) << Describe(ok.errors);
  EXPECT_TRUE(ok.bootstrap->clusters[0].enable_trailers);
  EXPECT_FALSE(ok.bootstrap->clusters[1].enable_trailers);
}

TEST(ConfigLoader, BootstrapWasmServices) {
  LoadResult r = load_from_string(R"(bootstrap_extensions:
- name: svc
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.wasm.v3.WasmService
    singleton: true
    config: {name: svc, root_id: r, vm_config: {runtime: envoy.wasm.runtime.null, code: {local: {inline_string: sluice.ticker}}}}
- name: other
  typed_config: {"@type": type.googleapis.com/envoy.extensions.bootstrap.internal_listener.v3.InternalListener}
)");
  EXPECT_TRUE(Has(r.errors, "bootstrap_extensions[1].typed_config", 8,
                  "unsupported bootstrap extension 'other'"));
  EXPECT_EQ(r.errors.size(), 1u) << Describe(r.errors);
  LoadResult ok = load_from_string(R"(bootstrap_extensions:
- name: svc
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.wasm.v3.WasmService
    config: {name: svc, root_id: r, vm_config: {runtime: envoy.wasm.runtime.null, code: {local: {inline_string: sluice.ticker}}}}
)");
  ASSERT_TRUE(ok.ok()) << Describe(ok.errors);
  ASSERT_EQ(ok.bootstrap->wasm_services.size(), 1u);
  EXPECT_FALSE(ok.bootstrap->wasm_services[0].singleton);
  EXPECT_EQ(ok.bootstrap->wasm_services[0].plugin.root_id, "r");
}

TEST(ConfigLoader, UnknownClusters) {
  LoadResult r = load_from_string(WithRoutes(
      "[{match: {prefix: /x}, route: {cluster: nope}},"
      " {match: {prefix: /}, route: {weighted_clusters: {clusters: [{name: a, weight: 1},"
      " {name: gone, weight: 2}]}}}]"));
  EXPECT_TRUE(
      Has(r.errors, absl::StrCat(kVh, ".routes[0].route.cluster"), 8, "unknown cluster 'nope'"));
  EXPECT_TRUE(Has(r.errors,
                  absl::StrCat(kVh, ".routes[1].route.weighted_clusters.clusters[1].name"), 8,
                  "unknown cluster 'gone'"));
  EXPECT_EQ(r.errors.size(), 2u) << Describe(r.errors);
}

TEST(ConfigLoader, WeightedClusterTotals) {
  LoadResult r = load_from_string(WithRoutes(
      "[{match: {prefix: /x}, route: {weighted_clusters: {clusters: [{name: a, weight: 1}],"
      " total_weight: 100}}},"
      " {match: {prefix: /}, route: {weighted_clusters: {clusters: [{name: a, weight: 0}]}}}]"));
  EXPECT_TRUE(Has(r.errors, absl::StrCat(kVh, ".routes[0].route.weighted_clusters.total_weight"), 8,
                  "total_weight is 100 but the weights sum to 1"));
  EXPECT_TRUE(Has(r.errors, absl::StrCat(kVh, ".routes[1].route.weighted_clusters"), 8,
                  "must be greater than 0"));
}

TEST(ConfigLoader, DuplicateNamesAndAddressClashes) {
  LoadResult r = load_from_string(R"(admin:
  address: {socket_address: {address: 127.0.0.1, port_value: 9000}}
static_resources:
  listeners:
  - name: l
    address: {socket_address: {address: 0.0.0.0, port_value: 8080}}
    filter_chains: [{filters: [{name: envoy.filters.network.http_connection_manager, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager, stat_prefix: a, route_config: {}, http_filters: [{name: envoy.filters.http.router}]}}]}]
  - name: l
    address: {socket_address: {address: 127.0.0.1, port_value: 8080}}
    filter_chains: [{filters: [{name: envoy.filters.network.http_connection_manager, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager, stat_prefix: b, route_config: {}, http_filters: [{name: envoy.filters.http.router}]}}]}]
  - name: m
    address: {socket_address: {address: "::", port_value: 9000}}
    filter_chains: [{filters: [{name: envoy.filters.network.http_connection_manager, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager, stat_prefix: c, route_config: {}, http_filters: [{name: envoy.filters.http.router}]}}]}]
  clusters:
  - name: c
  - name: c
)");
  EXPECT_TRUE(Has(r.errors, "static_resources.listeners[1].name", 8,
                  "duplicate listener name 'l' (first at line 5)"));
  EXPECT_TRUE(Has(r.errors, "static_resources.listeners[1].address", 9,
                  "address 127.0.0.1:8080 clashes with static_resources.listeners[0].address"));
  EXPECT_TRUE(Has(r.errors, "static_resources.listeners[2].address", 12,
                  "address :::9000 clashes with admin.address (line 2)"));
  EXPECT_TRUE(Has(r.errors, "static_resources.clusters[1].name", 16, "duplicate cluster name 'c'"));
  EXPECT_EQ(r.errors.size(), 4u) << Describe(r.errors);
}

TEST(ConfigLoader, RouterMustBeLast) {
  const std::string router =
      "{name: envoy.filters.http.router, typed_config: {\"@type\": "
      "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}";
  LoadResult r = load_from_string(WithRoutes("[]", absl::StrCat("[", router, ", ", router, "]")));
  EXPECT_TRUE(Has(r.errors, absl::StrCat(kHcm, ".http_filters[0]"), 9,
                  "the router filter must be the last HTTP filter"));
  EXPECT_EQ(r.errors.size(), 1u) << Describe(r.errors);
  r = load_from_string(WithRoutes("[]", "[]"));
  EXPECT_TRUE(Has(r.errors, absl::StrCat(kHcm, ".http_filters"), 7,
                  "http_filters must end with the router filter"));
  r = load_from_string(WithRoutes("[]", "[{name: envoy.filters.http.router}, {name: x}]"));
  EXPECT_TRUE(Has(r.errors, absl::StrCat(kHcm, ".http_filters[0]"), 9,
                  "the router filter must be the last HTTP filter"));
  EXPECT_TRUE(Has(r.errors, absl::StrCat(kHcm, ".http_filters[1]"), 9,
                  "the last HTTP filter must be the router filter"));
  EXPECT_TRUE(
      Has(r.errors, absl::StrCat(kHcm, ".http_filters[1]"), 9, "unsupported HTTP filter 'x'"));
}

TEST(ConfigLoader, HeaderValuesWithLineBreaksAreRejected) {
  LoadResult r = load_from_string(WithRoutes(
      "[{match: {prefix: /}, direct_response: {status: 200}, "
      "response_headers_to_add: [{header: {key: x-a, value: \"ok\\r\\nset-cookie: evil\"}}]}]"));
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE(Has(r.errors, absl::StrCat(kVh, ".routes[0].response_headers_to_add[0].header.value"),
                  8, "may not contain CR, LF or NUL"))
      << Describe(r.errors);
}

// A Wasm filter entry for WithRoutes() with the given PluginConfig body.
std::string WasmFilters(std::string_view plugin_config) {
  return absl::StrCat(
      "[{name: my-plugin, typed_config: {\"@type\": "
      "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm, config: {",
      std::string(plugin_config), "}}}, {name: envoy.filters.http.router}]");
}

TEST(ConfigLoader, WasmFilterReadsPluginConfig) {
  LoadResult r = load_from_string(WithRoutes(
      "[]",
      WasmFilters("name: p1, root_id: r1, failure_policy: FAIL_OPEN, "
                  "configuration: {\"@type\": type.googleapis.com/google.protobuf.Struct, "
                  "value: {a: 1, b: [x]}}, "
                  "vm_config: {vm_id: v1, runtime: envoy.wasm.runtime.null, "
                  "configuration: {\"@type\": type.googleapis.com/google.protobuf.StringValue, "
                  "value: vmconf}, environment_variables: {key_values: {K: V}}, "
                  "code: {local: {inline_string: sluice.add_header}}}")));
  ASSERT_TRUE(r.ok()) << Describe(r.errors);
  const auto& hcm =
      std::get<HttpConnectionManager>(r.bootstrap->listeners[0].filter_chains[0].filters[0].config);
  ASSERT_EQ(hcm.http_filters.size(), 2u);
  ASSERT_TRUE(hcm.http_filters[0].wasm);
  const WasmPlugin& w = *hcm.http_filters[0].wasm;
  EXPECT_EQ(w.name, "p1");
  EXPECT_EQ(w.root_id, "r1");
  EXPECT_EQ(w.configuration, R"({"a":1,"b":["x"]})");
  EXPECT_EQ(w.vm_id, "v1");
  EXPECT_EQ(w.runtime, "envoy.wasm.runtime.null");
  EXPECT_EQ(w.vm_configuration, "vmconf");
  EXPECT_EQ(w.code, "sluice.add_header");
  ASSERT_EQ(w.env.size(), 1u);
  EXPECT_EQ(w.env[0].first, "K");
  EXPECT_EQ(w.failure_policy, WasmPlugin::FailurePolicy::FailOpen);
  EXPECT_TRUE(w.heal);
  EXPECT_FALSE(hcm.http_filters[1].wasm);
}

// Self-healing follows the policy: unset and UNSPECIFIED heal (answering as FAIL_CLOSED),
// FAIL_CLOSED named explicitly does not (Envoy's behaviour).
TEST(ConfigLoader, WasmFailurePolicyHealing) {
  const auto plugin = [](std::string_view policy) {
    LoadResult r = load_from_string(WithRoutes(
        "[]", WasmFilters(std::string(policy) + "vm_config: {runtime: envoy.wasm.runtime.null, "
                                                "code: {local: {inline_string: sluice.x}}}")));
    EXPECT_TRUE(r.ok()) << Describe(r.errors);
    return *std::get<HttpConnectionManager>(
                r.bootstrap->listeners[0].filter_chains[0].filters[0].config)
                .http_filters[0]
                .wasm;
  };
  EXPECT_TRUE(plugin("").heal);
  EXPECT_EQ(plugin("").failure_policy, WasmPlugin::FailurePolicy::FailClosed);
  EXPECT_TRUE(plugin("failure_policy: UNSPECIFIED, ").heal);
  EXPECT_FALSE(plugin("failure_policy: FAIL_CLOSED, ").heal);
  EXPECT_TRUE(plugin("failure_policy: FAIL_RELOAD, ").heal);
}

TEST(ConfigLoader, WasmInlineBytesAreBase64) {
  // "\0asm" + version 1, base64.
  LoadResult r = load_from_string(
      WithRoutes("[]", WasmFilters("vm_config: {code: {local: {inline_bytes: AGFzbQEAAAA=}}}")));
  ASSERT_TRUE(r.ok()) << Describe(r.errors);
  const auto& hcm =
      std::get<HttpConnectionManager>(r.bootstrap->listeners[0].filter_chains[0].filters[0].config);
  EXPECT_EQ(hcm.http_filters[0].wasm->code, std::string("\0asm\1\0\0\0", 8));
  EXPECT_EQ(hcm.http_filters[0].wasm->runtime, "envoy.wasm.runtime.v8");
}

TEST(ConfigLoader, WasmFilterErrorsNamePaths) {
  const std::string f0 = absl::StrCat(kHcm, ".http_filters[0].typed_config.config");
  {
    LoadResult r = load_from_string(WithRoutes("[]", WasmFilters("vm_config: {}")));
    EXPECT_TRUE(Has(r.errors, f0 + ".vm_config.code", 9, "missing required field"))
        << Describe(r.errors);
  }
  {
    LoadResult r = load_from_string(
        WithRoutes("[]", WasmFilters("vm_config: {runtime: envoy.wasm.runtime.wamr, "
                                     "code: {local: {inline_string: x}}}")));
    EXPECT_TRUE(Has(r.errors, f0 + ".vm_config.runtime", 9, "unsupported Wasm runtime"))
        << Describe(r.errors);
  }
  {
    LoadResult r = load_from_string(
        WithRoutes("[]", WasmFilters("vm_config: {code: {remote: {sha256: x, http_uri: {uri: "
                                     "\"ftp://h/m.wasm\", cluster: nowhere}}}}")));
    EXPECT_TRUE(Has(r.errors, f0 + ".vm_config.code.remote.sha256", 9, "64 hex digits"))
        << Describe(r.errors);
    EXPECT_TRUE(Has(r.errors, f0 + ".vm_config.code.remote.http_uri.uri", 9, "not an http://"))
        << Describe(r.errors);
    EXPECT_TRUE(Has(r.errors, f0 + ".vm_config.code.remote.http_uri.cluster", 9,
                    "unknown cluster 'nowhere'"))
        << Describe(r.errors);
  }
  {
    LoadResult r = load_from_string(WithRoutes(
        "[]", WasmFilters("vm_config: {code: {local: {inline_string: a}, remote: {}}}")));
    EXPECT_TRUE(Has(r.errors, f0 + ".vm_config.code", 9, "exactly one of local, remote"))
        << Describe(r.errors);
  }
  {
    LoadResult r = load_from_string(WithRoutes(
        "[]", WasmFilters("vm_config: {code: {local: {inline_string: a, filename: b}}}")));
    EXPECT_TRUE(Has(r.errors, f0 + ".vm_config.code.local", 9, "exactly one of"))
        << Describe(r.errors);
  }
  {
    LoadResult r = load_from_string(WithRoutes(
        "[]", WasmFilters("vm_config: {code: {local: {filename: /nonexistent/x.wasm}}}")));
    EXPECT_TRUE(Has(r.errors, f0 + ".vm_config.code.local.filename", 9, "cannot read Wasm module"))
        << Describe(r.errors);
  }
  {
    LoadResult r = load_from_string(WithRoutes(
        "[]", WasmFilters("failure_policy: SOMETIMES, vm_config: {code: {local: {inline_string: "
                          "a}}}")));
    EXPECT_TRUE(Has(r.errors, f0 + ".failure_policy", 9, "unknown failure_policy"))
        << Describe(r.errors);
  }
  {
    LoadResult r = load_from_string(
        WithRoutes("[]", WasmFilters("configuration: {\"@type\": type.googleapis.com/foo.Bar}, "
                                     "vm_config: {code: {local: {inline_string: a}}}")));
    EXPECT_TRUE(Has(r.errors, f0 + ".configuration", 9, "unsupported configuration type"))
        << Describe(r.errors);
  }
  {
    // SanitizationConfig has no fields.
    LoadResult r = load_from_string(WithRoutes(
        "[]", WasmFilters("capability_restriction_config: {allowed_capabilities: {proxy_log: "
                          "{deny: x}}}, vm_config: {code: {local: {inline_string: a}}}")));
    EXPECT_TRUE(Has(r.errors,
                    f0 + ".capability_restriction_config.allowed_capabilities.proxy_log.deny", 9,
                    "unknown field"))
        << Describe(r.errors);
  }
}

TEST(ConfigLoader, RemoteWasmCode) {
  const std::string sha(64, 'A');
  LoadResult r = load_from_string(WithRoutes(
      "[]", WasmFilters("vm_config: {code: {remote: {http_uri: {uri: "
                        "\"https://hub.example:8443/m/x.wasm\", cluster: a, timeout: 3s}, "
                        "sha256: " +
                        sha +
                        ", retry_policy: {num_retries: 5, retry_back_off: {base_interval: "
                        "0.2s, max_interval: 2s}}}}}")));
  ASSERT_TRUE(r.ok()) << Describe(r.errors);
  const auto& hcm =
      std::get<HttpConnectionManager>(r.bootstrap->listeners[0].filter_chains[0].filters[0].config);
  const auto& remote = hcm.http_filters[0].wasm->remote;
  ASSERT_TRUE(remote.has_value());
  EXPECT_EQ(remote->authority, "hub.example:8443");
  EXPECT_EQ(remote->path, "/m/x.wasm");
  EXPECT_EQ(remote->cluster, "a");
  EXPECT_EQ(remote->timeout, std::chrono::milliseconds(3000));
  EXPECT_EQ(remote->sha256, std::string(64, 'a'));  // lower case
  EXPECT_EQ(remote->num_retries, 5u);
  EXPECT_EQ(remote->base_interval, std::chrono::milliseconds(200));
  EXPECT_EQ(remote->max_interval, std::chrono::milliseconds(2000));
  EXPECT_TRUE(hcm.http_filters[0].wasm->code.empty());
  EXPECT_EQ(hcm.http_filters[0].wasm->code_origin, "remote https://hub.example:8443/m/x.wasm");
}

TEST(ConfigLoader, WasmCodeFromAnOciImage) {
  LoadResult r = load_from_string(
      WithRoutes("[]", WasmFilters("vm_config: {code: {remote: {http_uri: {uri: "
                                   "\"oci://127.0.0.1:5000/ext/basic:v1\", timeout: 9s}}}}")) +
      "sluice: {oci: {insecure_registries: [\"127.0.0.1:5000\", localhost], credentials_file: "
      "/etc/sluice/auth.json}}\n");
  ASSERT_TRUE(r.ok()) << Describe(r.errors);
  const auto& remote =
      std::get<HttpConnectionManager>(r.bootstrap->listeners[0].filter_chains[0].filters[0].config)
          .http_filters[0]
          .wasm->remote;
  ASSERT_TRUE(remote && remote->oci);
  EXPECT_EQ(remote->oci->registry, "127.0.0.1:5000");
  EXPECT_EQ(remote->oci->repository, "ext/basic");
  EXPECT_EQ(remote->oci->tag, "v1");
  EXPECT_EQ(remote->sha256, "") << "optional for an image";
  EXPECT_EQ(remote->cluster, "");
  EXPECT_EQ(remote->timeout, std::chrono::milliseconds(9000));
  EXPECT_EQ(r.bootstrap->sluice.oci.insecure_registries,
            (std::vector<std::string>{"127.0.0.1:5000", "localhost"}));
  EXPECT_EQ(r.bootstrap->sluice.oci.credentials_file, "/etc/sluice/auth.json");

  const std::string f0 =
      "static_resources.listeners[0].filter_chains[0].filters[0].typed_config."
      "http_filters[0].typed_config.config.vm_config.code.remote";
  r = load_from_string(WithRoutes(
      "[]", WasmFilters("vm_config: {code: {remote: {http_uri: {uri: \"oci://h/Bad\", cluster: "
                        "a}}}}")));
  EXPECT_TRUE(Has(r.errors, f0 + ".http_uri.uri", 9, "is not an OCI reference"))
      << Describe(r.errors);
  EXPECT_TRUE(Has(r.errors, f0 + ".http_uri.cluster", 9, "not through a cluster"))
      << Describe(r.errors);
  // Over HTTP the hash stays required.
  r = load_from_string(WithRoutes(
      "[]", WasmFilters("vm_config: {code: {remote: {http_uri: {uri: \"http://h/m.wasm\", "
                        "cluster: a}}}}")));
  EXPECT_TRUE(Has(r.errors, f0 + ".sha256", 9, "")) << Describe(r.errors);
}

TEST(ConfigLoader, ReloadConfigBackoff) {
  {
    LoadResult r = load_from_string(WithRoutes(
        "[]", WasmFilters("failure_policy: FAIL_RELOAD, reload_config: {backoff: {base_interval: "
                          "0.25s}}, vm_config: {code: {local: {inline_string: a}}}")));
    ASSERT_TRUE(r.ok()) << Describe(r.errors);
    const auto& w = *std::get<HttpConnectionManager>(
                         r.bootstrap->listeners[0].filter_chains[0].filters[0].config)
                         .http_filters[0]
                         .wasm;
    EXPECT_EQ(w.reload_base_interval, std::chrono::milliseconds(250));
    EXPECT_EQ(w.reload_max_interval, std::chrono::milliseconds(2500));  // 10 x base
  }
  {
    LoadResult r = load_from_string(WithRoutes(
        "[]", WasmFilters("reload_config: {backoff: {base_interval: 0s, max_interval: 1s}}, "
                          "vm_config: {code: {local: {inline_string: a}}}")));
    const std::string f0 = absl::StrCat(kHcm, ".http_filters[0].typed_config.config");
    EXPECT_TRUE(Has(r.errors, f0 + ".reload_config.backoff.base_interval", 9, "at least 1ms"))
        << Describe(r.errors);
  }
}

TEST(ConfigLoader, CapabilityRestrictions) {
  LoadResult r = load_from_string(WithRoutes(
      "[]", WasmFilters("capability_restriction_config: {allowed_capabilities: {proxy_log: {}, "
                        "fd_write: null, proxy_on_request_headers: {}}}, vm_config: {code: "
                        "{local: {inline_string: a}}}")));
  ASSERT_TRUE(r.ok()) << Describe(r.errors);
  const auto& hcm =
      std::get<HttpConnectionManager>(r.bootstrap->listeners[0].filter_chains[0].filters[0].config);
  EXPECT_THAT(hcm.http_filters[0].wasm->allowed_capabilities,
              ::testing::ElementsAre("proxy_log", "fd_write", "proxy_on_request_headers"));
}

TEST(ConfigLoader, UnsupportedNetworkFilter) {
  LoadResult r = load_from_string(R"(static_resources:
  listeners:
  - address: {socket_address: {address: 0.0.0.0, port_value: 8080}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.redis_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.redis_proxy.v3.RedisProxy
          stat_prefix: redis
          settings: {op_timeout: 5s}
    - filters: []
)");
  EXPECT_TRUE(Has(r.errors, "static_resources.listeners[0].filter_chains[0].filters[0]", 6,
                  "unsupported network filter 'envoy.filters.network.redis_proxy'"));
  EXPECT_TRUE(Has(r.errors, "static_resources.listeners[0].filter_chains[1]", 11,
                  "a filter chain needs at least one network filter"));
  EXPECT_TRUE(Has(r.errors, "static_resources.listeners[0].filter_chains", 4,
                  "more than one filter chain without TLS"));
  EXPECT_EQ(r.errors.size(), 3u) << Describe(r.errors);
}

TEST(ConfigLoader, TypedConfigTypeMustMatch) {
  // The name says HCM but the @type says otherwise: the @type wins, as in Envoy.
  LoadResult r = load_from_string(R"(static_resources:
  listeners:
  - address: {socket_address: {address: 0.0.0.0, port_value: 8080}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v2.HttpConnectionManager
)");
  EXPECT_TRUE(Has(r.errors, "static_resources.listeners[0].filter_chains[0].filters[0]", 6,
                  "unsupported network filter 'envoy.filters.network.http_connection_manager' "
                  "(type.googleapis.com/envoy.extensions.filters.network.http_connection_manager."
                  "v2.HttpConnectionManager)"));
}

TEST(ConfigLoader, Http2ProtocolOptions) {
  LoadResult r = load_from_string(R"(static_resources:
  listeners:
  - address: {socket_address: {address: 127.0.0.1, port_value: 8080}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: x
          codec_type: HTTP2
          http2_protocol_options:
            max_concurrent_streams: 7
            initial_stream_window_size: 70000
            initial_connection_window_size: 1000000
            max_outbound_frames: 50
            max_inbound_priority_frames_per_stream: 3
          route_config: {virtual_hosts: [{name: vh, domains: ["*"], routes: [{match: {prefix: /}, direct_response: {status: 200}}]}]}
          http_filters: [{name: envoy.filters.http.router}]
)");
  ASSERT_TRUE(r.errors.empty()) << r.errors[0].message;
  const auto& hcm =
      std::get<HttpConnectionManager>(r.bootstrap->listeners[0].filter_chains[0].filters[0].config);
  EXPECT_EQ(hcm.codec_type, HttpConnectionManager::Codec::Http2);
  EXPECT_EQ(hcm.http2.max_concurrent_streams, 7u);
  EXPECT_EQ(hcm.http2.initial_stream_window_size, 70000u);
  EXPECT_EQ(hcm.http2.initial_connection_window_size, 1000000u);
  EXPECT_EQ(hcm.http2.max_outbound_frames, 50u);
  EXPECT_EQ(hcm.http2.max_inbound_priority_frames_per_stream, 3u);
  EXPECT_EQ(hcm.http2.max_outbound_control_frames, 1000u);  // Envoy's default

  // Windows below RFC 9113's 65535 and CONNECT are refused with their path.
  LoadResult bad = load_from_string(R"(static_resources:
  listeners:
  - address: {socket_address: {address: 127.0.0.1, port_value: 8080}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: x
          http2_protocol_options: {initial_stream_window_size: 100, allow_connect: true}
          route_config: {virtual_hosts: [{name: vh, domains: ["*"], routes: [{match: {prefix: /}, direct_response: {status: 200}}]}]}
          http_filters: [{name: envoy.filters.http.router}]
)");
  const std::string opts =
      "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http2_protocol_"
      "options";
  EXPECT_TRUE(Has(bad.errors, opts + ".initial_stream_window_size", 10, "65535"));
  EXPECT_TRUE(Has(bad.errors, opts + ".allow_connect", 10, "CONNECT over HTTP/2 is not supported"));
}

TEST(ConfigLoader, UnsupportedEnvoyFeatures) {
  LoadResult r = load_from_string(R"(dynamic_resources: {}
static_resources:
  listeners:
  - address: {socket_address: {address: 0.0.0.0, port_value: 8080}}
    filter_chains:
    - transport_socket: {}
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: x
          codec_type: HTTP3
          rds: {route_config_name: r}
          http_filters: [{name: envoy.filters.http.router}]
  clusters:
  - name: a
    type: EDS
    lb_policy: MAGLEV
    health_checks: [{timeout: 1s, interval: 1s, grpc_health_check: {}}]
    http2_protocol_options: {}
    typed_extension_protocol_options: {envoy.extensions.upstreams.http.v3.HttpProtocolOptions: {"@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions, explicit_http_config: {http2_protocol_options: {}}}}
    transport_socket: {}
  - name: b
    type: STRICT_DNSS
)");
  const std::string hcm = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config";
  EXPECT_TRUE(Has(r.errors, "dynamic_resources", 1, "not supported"));
  EXPECT_TRUE(Has(r.errors,
                  "static_resources.listeners[0].filter_chains[0].transport_socket.typed_config", 6,
                  "missing required field"));
  EXPECT_TRUE(Has(r.errors, hcm + ".codec_type", 12, "\"HTTP3\" is not supported yet"));
  EXPECT_TRUE(Has(r.errors, hcm + ".rds", 13, "RDS is not supported"));
  EXPECT_TRUE(
      Has(r.errors, "static_resources.clusters[0].type", 17, "\"EDS\" is not supported yet"));
  EXPECT_TRUE(Has(r.errors, "static_resources.clusters[0].lb_policy", 18,
                  "unsupported value \"MAGLEV\" (supported: ROUND_ROBIN, LEAST_REQUEST, RANDOM)"));
  EXPECT_TRUE(Has(r.errors, "static_resources.clusters[0].health_checks[0].grpc_health_check", 19,
                  "gRPC health checks are not supported yet"));
  EXPECT_TRUE(Has(r.errors, "static_resources.clusters[0].transport_socket.typed_config", 22,
                  "missing required field"));
  EXPECT_TRUE(
      Has(r.errors, "static_resources.clusters[1].type", 24, "unsupported value \"STRICT_DNSS\""));
  EXPECT_EQ(r.errors.size(), 9u) << Describe(r.errors);
}

TEST(ConfigLoader, RouteLevelValidation) {
  LoadResult r = load_from_string(R"(static_resources:
  listeners:
  - address: {socket_address: {address: 0.0.0.0, port_value: 8080}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: x
          max_request_headers_kb: 9000
          http_filters: [{name: envoy.filters.http.router}]
          route_config:
            virtual_hosts:
            - name: one
              domains: ["a.com", "b*c.com", "**", ""]
              routes:
              - match: {prefix: /}
                route: {cluster: a, retry_policy: {retry_on: "5xx,refused-stream", retriable_status_codes: [503, 700]}}
              - match: {prefix: /}
                direct_response: {status: 99, body: {filename: /nonexistent/sluice-body}}
              - match: {prefix: /}
                redirect: {response_code: MOVED}
                response_headers_to_add: [{header: {key: ":status", value: "1"}, append: true, append_action: ADD_IF_ABSENT}]
                request_headers_to_remove: [Host]
                typed_per_filter_config:
                  envoy.filters.http.wasm: {"@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm}
            - name: two
              domains: ["A.com"]
  clusters:
  - {name: a}
)");
  const std::string rc =
      "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config";
  const std::string vh = rc + ".virtual_hosts[0]";
  EXPECT_TRUE(Has(r.errors,
                  "static_resources.listeners[0].filter_chains[0].filters[0].typed_config."
                  "max_request_headers_kb",
                  10, "must be between 1 and 8192, got 9000"));
  EXPECT_TRUE(Has(r.errors, vh + ".domains[1]", 15, "invalid domain \"b*c.com\""));
  EXPECT_TRUE(Has(r.errors, vh + ".domains[2]", 15, "invalid domain \"**\""));
  EXPECT_TRUE(Has(r.errors, vh + ".domains[3]", 15, "domain must not be empty"));
  EXPECT_TRUE(
      Has(r.errors, vh + ".routes[0].route.retry_policy.retry_on", 18,
          "unsupported retry_on condition \"refused-stream\" (supported: 5xx, gateway-error, "
          "connect-failure, reset, retriable-status-codes)"));
  EXPECT_TRUE(Has(r.errors, vh + ".routes[0].route.retry_policy.retriable_status_codes[1]", 18,
                  "must be between 100 and 599, got 700"));
  EXPECT_TRUE(Has(r.errors, vh + ".routes[1].direct_response.status", 20,
                  "must be between 200 and 599, got 99"));
  EXPECT_TRUE(Has(r.errors, vh + ".routes[1].direct_response.body.filename", 20,
                  "cannot read file '/nonexistent/sluice-body'"));
  EXPECT_TRUE(
      Has(r.errors, vh + ".routes[2].redirect.response_code", 22, "unsupported value \"MOVED\""));
  EXPECT_TRUE(Has(r.errors, vh + ".routes[2].response_headers_to_add[0]", 23,
                  "only one of append, append_action may be set"));
  EXPECT_TRUE(Has(r.errors, vh + ".routes[2].response_headers_to_add[0].header.key", 23,
                  "header \":status\" may not be modified"));
  EXPECT_TRUE(Has(r.errors, vh + ".routes[2].request_headers_to_remove[0]", 24,
                  "header \"host\" may not be removed"));
  EXPECT_TRUE(Has(r.errors, vh + ".routes[2].typed_per_filter_config.envoy.filters.http.wasm", 26,
                  "unsupported per-filter config for 'envoy.filters.http.wasm'"));
  EXPECT_TRUE(Has(r.errors, rc + ".virtual_hosts[1].domains[0]", 28,
                  "duplicate domain \"a.com\" (also at " + vh + ".domains[0], line 15)"));
  EXPECT_EQ(r.errors.size(), 14u) << Describe(r.errors);
}

TEST(ConfigLoader, ClusterEndpointValidation) {
  LoadResult r = load_from_string(R"(static_resources:
  clusters:
  - name: s
    load_assignment:
      cluster_name: s
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: backend.local, port_value: 80}}}
        - endpoint: {address: {socket_address: {address: 10.0.0.1, port_value: 0}}}
          load_balancing_weight: 0
  - name: l
    type: LOGICAL_DNS
    load_assignment:
      cluster_name: l
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: a.local, port_value: 80}}}
        - endpoint: {address: {socket_address: {address: b.local, port_value: 80}}}
  - name: h
    circuit_breakers: {thresholds: [{priority: HIGH, max_connections: 5}]}
    connect_timeout: 0s
    dns_refresh_rate: 0.001s
  - name: ""
)");
  const std::string lb = "static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints";
  EXPECT_TRUE(Has(r.errors, lb + "[0].endpoint.address.socket_address.address", 8,
                  "a STATIC cluster needs an IP address, got \"backend.local\""));
  EXPECT_TRUE(Has(r.errors, lb + "[1].endpoint.address.socket_address.port_value", 9,
                  "must be between 1 and 65535, got 0"));
  EXPECT_TRUE(Has(r.errors, lb + "[1].load_balancing_weight", 10, "must be between 1 and"));
  EXPECT_TRUE(Has(r.errors, "static_resources.clusters[1].load_assignment", 13,
                  "a LOGICAL_DNS cluster needs exactly one endpoint"));
  EXPECT_TRUE(
      Has(r.errors, "static_resources.clusters[2].connect_timeout", 21, "must be greater than 0s"));
  EXPECT_TRUE(Has(r.errors, "static_resources.clusters[2].dns_refresh_rate", 22,
                  "must be greater than 1ms"));
  EXPECT_TRUE(Has(r.errors, "static_resources.clusters[3].name", 23, "must not be empty"));
  EXPECT_EQ(r.errors.size(), 7u) << Describe(r.errors);
  EXPECT_TRUE(Has(r.warnings, "static_resources.clusters[2].circuit_breakers.thresholds[0]", 20,
                  "HIGH priority thresholds are accepted but ignored"));
}

TEST(ConfigLoader, ListenerAddressMustBeAnIp) {
  LoadResult r = load_from_string(R"(static_resources:
  listeners:
  - address: {socket_address: {address: localhost, port_value: 80, protocol: UDP}}
    filter_chains: [{filters: [{name: envoy.filters.network.http_connection_manager}]}]
)");
  const std::string sa = "static_resources.listeners[0].address.socket_address";
  EXPECT_TRUE(Has(r.errors, sa + ".address", 3, "must be an IP address, got \"localhost\""));
  EXPECT_TRUE(Has(r.errors, sa + ".protocol", 3, "only TCP is supported, got \"UDP\""));
  EXPECT_TRUE(Has(r.errors,
                  "static_resources.listeners[0].filter_chains[0].filters[0].typed_config", 4,
                  "missing required field"));
}

TEST(ConfigLoader, MultipleErrorsReportedTogetherInLineOrder) {
  LoadResult r = load_from_string(R"(node:
  id: n
  extra: 1
admin:
  address: {socket_address: {address: 127.0.0.1, port_value: x}}
static_resources:
  clusters:
  - name: a
    lb_policy: ROUND_ROBIN
    type: WHATEVER
    connect_timeout: soon
)");
  ASSERT_EQ(r.errors.size(), 4u) << Describe(r.errors);
  EXPECT_EQ(r.errors[0].to_string(), "node.extra (line 3): unknown field");
  EXPECT_EQ(r.errors[1].line, 5);
  EXPECT_EQ(r.errors[2].line, 10);
  EXPECT_EQ(r.errors[3].to_string(),
            "static_resources.clusters[0].connect_timeout (line 11): expected a duration like "
            "\"5s\", got \"soon\"");
}

TEST(ConfigLoader, OperationalFieldsWarn) {
  LoadResult r = load_from_string(R"(layered_runtime: {layers: []}
overload_manager: {}
stats_sinks: []
stats_flush_interval: 5s
watchdog: {}
watchdogs: {}
cluster_manager: {}
stats_config: {}
admin:
  profile_path: /tmp/prof
  access_log: []
)");
  ASSERT_TRUE(r.ok()) << Describe(r.errors);
  ASSERT_EQ(r.warnings.size(), 9u) << Describe(r.warnings);
  EXPECT_TRUE(Has(r.warnings, "layered_runtime", 1, "accepted but ignored"));
  EXPECT_TRUE(Has(r.warnings, "admin.profile_path", 10, "accepted but ignored"));
  EXPECT_FALSE(r.bootstrap->admin.address.has_value());
}

TEST(ConfigLoader, StatsTags) {
  LoadResult r = load_from_string(R"yaml(stats_config:
  use_all_default_tags: false
  stats_matcher: { reject_all: true }
  stats_tags:
  - { tag_name: response_code, regex: "(response_code=\\.=(.+?);\\.;)" }
  - { tag_name: mesh, fixed_value: demo }
)yaml");
  ASSERT_TRUE(r.ok()) << Describe(r.errors);
  ASSERT_EQ(r.bootstrap->stats_tags.size(), 2u);
  EXPECT_EQ(r.bootstrap->stats_tags[0].regex, R"((response_code=\.=(.+?);\.;))");
  EXPECT_EQ(r.bootstrap->stats_tags[1].fixed_value, "demo");
  EXPECT_TRUE(Has(r.warnings, "stats_config", 1, "use_all_default_tags: false is ignored"));
  EXPECT_TRUE(Has(r.warnings, "stats_config.stats_matcher", 3, "accepted but ignored"));

  r = load_from_string(R"yaml(stats_config:
  stats_tags:
  - { tag_name: a, regex: "(unclosed" }
  - { tag_name: b, regex: "no_group" }
  - { tag_name: c, regex: "(x)", fixed_value: y
  }
  - { regex: "(x)" }
  - { tag_name: d, regex: "(?=lookahead)(x)" }
)yaml");
  ASSERT_EQ(r.errors.size(), 5u) << Describe(r.errors);
  EXPECT_NE(r.errors[0].to_string().find("invalid regex '(unclosed'"), std::string::npos);
  EXPECT_NE(r.errors[1].to_string().find("needs a capture group"), std::string::npos);
  EXPECT_NE(r.errors[2].to_string().find("exactly one of regex and fixed_value"),
            std::string::npos);
  EXPECT_NE(r.errors[3].to_string().find("tag_name is required"), std::string::npos);
  EXPECT_NE(r.errors[4].to_string().find("invalid regex"), std::string::npos);
}

TEST(ConfigLoader, JsonInput) {
  LoadResult r = load_from_string(R"({
  "static_resources": {
    "clusters": [{
      "name": "svc",
      "connect_timeout": "0.5s",
      "type": "STATIC",
      "load_assignment": {"cluster_name": "svc", "endpoints": [{"lb_endpoints": [
        {"endpoint": {"address": {"socket_address":
          {"address": "127.0.0.1", "port_value": "9000"}}}}
      ]}]},
      "unknown": 1
    }]
  }
})");
  EXPECT_TRUE(Has(r.errors, "static_resources.clusters[0].unknown", 11, "unknown field"));
  ASSERT_EQ(r.errors.size(), 1u) << Describe(r.errors);

  r = load_from_string(R"({"node": {"id": "n\"1", "metadata": {"a": [1, "2", true, null]}}})",
                       "--config-yaml");
  ASSERT_TRUE(r.ok()) << Describe(r.errors);
  EXPECT_EQ(r.bootstrap->node.id, "n\"1");
  EXPECT_EQ(r.bootstrap->node.metadata_json, R"({"a":[1,"2",true,null]})");
  EXPECT_EQ(r.bootstrap->source_json,
            R"({"node":{"id":"n\"1","metadata":{"a":[1,"2",true,null]}}})");
}

TEST(ConfigLoader, SourceJsonKeepsScalarTypes) {
  LoadResult r = load_from_string(R"(node:
  id: "8080"
  metadata:
    n: 8080
    f: -1.5e3
    b: false
    s: 0.0.0.0
    o: 010
    t: "tab\there"
    l: |
      two
      lines
)");
  ASSERT_TRUE(r.ok()) << Describe(r.errors);
  EXPECT_EQ(r.bootstrap->source_json,
            R"({"node":{"id":"8080","metadata":{"n":8080,"f":-1.5e3,"b":false,"s":"0.0.0.0",)"
            R"("o":"010","t":"tab\there","l":"two\nlines\n"}}})");
}

TEST(ConfigLoader, EmptyDocumentIsAnEmptyBootstrap) {
  LoadResult r = load_from_string("");
  ASSERT_TRUE(r.ok()) << Describe(r.errors);
  EXPECT_TRUE(r.bootstrap->listeners.empty());
  EXPECT_EQ(r.bootstrap->source_json, "{}");
}

TEST(ConfigLoader, NonMappingRootAndDuplicateKeys) {
  LoadResult r = load_from_string("- a\n- b\n");
  EXPECT_TRUE(Has(r.errors, "", 1, "expected a mapping, got a list"));
  r = load_from_string("node:\n  id: a\n  id: b\n");
  EXPECT_TRUE(Has(r.errors, "node.id", 3, "duplicate key"));
}

TEST(ConfigLoader, YamlSyntaxError) {
  LoadResult r = load_from_string("node:\n  id: [a, b\n  cluster: c\n", "bad.yaml");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_GT(r.errors[0].line, 0);
  EXPECT_THAT(r.errors[0].message, testing::HasSubstr("invalid YAML in bad.yaml"));
  EXPECT_EQ(r.bootstrap, nullptr);
}

TEST(ConfigLoader, MissingFile) {
  LoadResult r = load_from_file("/nonexistent/sluice.yaml");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].to_string(),
            "cannot load config: cannot read file '/nonexistent/sluice.yaml': No such file or "
            "directory");
}

TEST(ConfigLoader, DirectResponseBodyFromFile) {
  LoadResult r = load_from_string(WithRoutes(
      absl::StrCat("[{match: {prefix: /}, direct_response: {status: 503, body: {filename: \"",
                   TestData("direct_response_body.txt"), "\"}}}]")));
  ASSERT_TRUE(r.ok()) << Describe(r.errors);
  const auto& hcm =
      std::get<HttpConnectionManager>(r.bootstrap->listeners[0].filter_chains[0].filters[0].config);
  const auto& dr =
      std::get<DirectResponseAction>(hcm.route_config.virtual_hosts[0].routes[0].action);
  EXPECT_EQ(dr.status, 503u);
  EXPECT_EQ(dr.body, "Hello from a file.\n");
}

TEST(ConfigLoader, HeaderMatcherPresenceForms) {
  LoadResult r = load_from_string(
      WithRoutes("[{match: {prefix: /, headers: [{name: a}, {name: b, present_match: false},"
                 " {name: c, present_match: false, invert_match: true},"
                 " {name: d, safe_regex_match: {regex: \"x+\"}}],"
                 " query_parameters: [{name: q}, {name: r, present_match: true}]},"
                 " route: {cluster_header: X-Cluster}}]"));
  ASSERT_TRUE(r.ok()) << Describe(r.errors);
  const auto& hcm =
      std::get<HttpConnectionManager>(r.bootstrap->listeners[0].filter_chains[0].filters[0].config);
  const Route& route = hcm.route_config.virtual_hosts[0].routes[0];
  const auto& h = route.match.headers;
  EXPECT_TRUE(h[0].present_match && !h[0].invert_match);
  EXPECT_TRUE(h[1].present_match && h[1].invert_match);  // present_match: false means absent
  EXPECT_TRUE(h[2].present_match && !h[2].invert_match);
  ASSERT_TRUE(h[3].string_match.has_value());
  EXPECT_EQ(h[3].string_match->kind, StringMatcher::Kind::SafeRegex);
  EXPECT_TRUE(h[3].string_match->matches("xxx"));
  EXPECT_FALSE(h[3].present_match);
  EXPECT_TRUE(route.match.query_parameters[0].present_match);
  EXPECT_TRUE(route.match.query_parameters[1].present_match);
  EXPECT_EQ(std::get<RouteAction>(route.action).cluster_header, "x-cluster");
}

TEST(ConfigLoader, AccessLogForms) {
  const std::string file_type =
      "\"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog";
  LoadResult r = load_from_string(
      absl::StrCat(R"(static_resources:
  listeners:
  - address: {socket_address: {address: 0.0.0.0, port_value: 8080}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: x
          route_config: {}
          http_filters: [{name: envoy.filters.http.router}]
          access_log:
          - {name: a, typed_config: {)",
                   file_type, R"(, path: /tmp/a, format: "legacy %PROTOCOL%"}}
          - {name: b, typed_config: {)",
                   file_type, R"(, path: /tmp/b, log_format: {text_format: "text"}}}
          - {name: envoy.access_loggers.stderr}
          - {name: c, typed_config: {)",
                   file_type, R"(, log_format: {json_format: {a: b}}}}
          - {name: envoy.access_loggers.http_grpc}
)"));
  const std::string logs =
      "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.access_log";
  EXPECT_TRUE(Has(r.errors, logs + "[3].typed_config.path", 16, "missing required field"));
  EXPECT_TRUE(Has(r.errors, logs + "[3].typed_config.log_format.json_format", 16,
                  "JSON access log format is not supported yet"));
  EXPECT_TRUE(Has(r.errors, logs + "[4]", 17,
                  "unsupported access logger 'envoy.access_loggers.http_grpc'"));
  EXPECT_EQ(r.errors.size(), 3u) << Describe(r.errors);

  // Without the failing entries the rest loads.
  r = load_from_string(absl::StrCat(R"(static_resources:
  listeners:
  - address: {socket_address: {address: 0.0.0.0, port_value: 8080}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: x
          route_config: {}
          http_filters: [{name: envoy.filters.http.router}]
          access_log:
          - {name: a, typed_config: {)",
                                    file_type, R"(, path: /tmp/a, format: "legacy %PROTOCOL%"}}
          - {name: b, typed_config: {)",
                                    file_type,
                                    R"(, path: /tmp/b, log_format: {text_format: "text"}}}
          - {name: envoy.access_loggers.stderr}
)"));
  ASSERT_TRUE(r.ok()) << Describe(r.errors);
  const auto& hcm =
      std::get<HttpConnectionManager>(r.bootstrap->listeners[0].filter_chains[0].filters[0].config);
  ASSERT_EQ(hcm.access_logs.size(), 3u);
  EXPECT_EQ(hcm.access_logs[0].path, "/tmp/a");
  EXPECT_EQ(hcm.access_logs[0].format, "legacy %PROTOCOL%");
  EXPECT_EQ(hcm.access_logs[1].format, "text");
  EXPECT_EQ(hcm.access_logs[2].path, "/dev/stderr");
}

TEST(ConfigDiagnostic, ToString) {
  EXPECT_EQ((Diagnostic{"a.b", 3, "bad"}).to_string(), "a.b (line 3): bad");
  EXPECT_EQ((Diagnostic{"a.b", 0, "bad"}).to_string(), "a.b: bad");
  EXPECT_EQ((Diagnostic{"", 7, "bad"}).to_string(), "(line 7): bad");
  EXPECT_EQ((Diagnostic{"", 0, "bad"}).to_string(), "bad");
}

TEST(ConfigDuration, Parses) {
  EXPECT_EQ(parse_duration("0.25s"), milliseconds(250));
  EXPECT_EQ(parse_duration("5s"), milliseconds(5000));
  EXPECT_EQ(parse_duration("1.5s"), milliseconds(1500));
  EXPECT_EQ(parse_duration("0s"), milliseconds(0));
  EXPECT_EQ(parse_duration("0.000999999s"), milliseconds(0));  // truncated, as Envoy's getters
  EXPECT_EQ(parse_duration("3600s"), milliseconds(3'600'000));
  EXPECT_EQ(parse_duration("0.123456789s"), milliseconds(123));
  for (std::string_view bad : {"", "s", "5", "5ms", "-1s", "1.s", ".5s", "1.0000000001s", "abc",
                               "1e3s", " 5s", "99999999999999s"}) {
    EXPECT_EQ(parse_duration(bad), std::nullopt) << bad;
  }
  EXPECT_EQ(duration_from_parts(2, 500'000'000), milliseconds(2500));
  EXPECT_EQ(duration_from_parts(0, 1'000'000'000), std::nullopt);
}

StringMatcher Matcher(StringMatcher::Kind kind, std::string value, bool ignore_case = false) {
  StringMatcher m{kind, std::move(value), ignore_case};
  if (kind == StringMatcher::Kind::SafeRegex) m.regex = std::make_shared<const RE2>(m.value);
  return m;
}

TEST(ConfigStringMatcher, Exact) {
  EXPECT_TRUE(Matcher(StringMatcher::Kind::Exact, "Foo").matches("Foo"));
  EXPECT_FALSE(Matcher(StringMatcher::Kind::Exact, "Foo").matches("foo"));
  EXPECT_FALSE(Matcher(StringMatcher::Kind::Exact, "Foo").matches("Foox"));
  EXPECT_TRUE(Matcher(StringMatcher::Kind::Exact, "Foo", true).matches("fOO"));
  EXPECT_TRUE(Matcher(StringMatcher::Kind::Exact, "").matches(""));
}

TEST(ConfigStringMatcher, PrefixSuffixContains) {
  EXPECT_TRUE(Matcher(StringMatcher::Kind::Prefix, "/api").matches("/api/v1"));
  EXPECT_FALSE(Matcher(StringMatcher::Kind::Prefix, "/api").matches("/API/v1"));
  EXPECT_TRUE(Matcher(StringMatcher::Kind::Prefix, "/api", true).matches("/API/v1"));
  EXPECT_FALSE(Matcher(StringMatcher::Kind::Prefix, "/api", true).matches("/ap"));

  EXPECT_TRUE(Matcher(StringMatcher::Kind::Suffix, ".json").matches("a.json"));
  EXPECT_FALSE(Matcher(StringMatcher::Kind::Suffix, ".json").matches("a.JSON"));
  EXPECT_TRUE(Matcher(StringMatcher::Kind::Suffix, ".json", true).matches("a.JSON"));

  EXPECT_TRUE(Matcher(StringMatcher::Kind::Contains, "bot").matches("googlebot/2.1"));
  EXPECT_FALSE(Matcher(StringMatcher::Kind::Contains, "bot").matches("GoogleBot/2.1"));
  EXPECT_TRUE(Matcher(StringMatcher::Kind::Contains, "bot", true).matches("GoogleBot/2.1"));
  EXPECT_FALSE(Matcher(StringMatcher::Kind::Contains, "bot", true).matches("b-o-t"));
}

TEST(ConfigStringMatcher, RegexIsAFullMatchAndIgnoresIgnoreCase) {
  EXPECT_TRUE(Matcher(StringMatcher::Kind::SafeRegex, "v[0-9]+").matches("v12"));
  EXPECT_FALSE(Matcher(StringMatcher::Kind::SafeRegex, "v[0-9]+").matches("av12"));
  EXPECT_FALSE(Matcher(StringMatcher::Kind::SafeRegex, "v[0-9]+").matches("v12b"));
  EXPECT_FALSE(Matcher(StringMatcher::Kind::SafeRegex, "v[0-9]+", true).matches("V12"));
  StringMatcher no_regex{StringMatcher::Kind::SafeRegex, "x"};
  EXPECT_FALSE(no_regex.matches("x"));
}

TEST(ConfigStringMatcher, LoadedFromYaml) {
  LoadResult r = load_from_string(WithRoutes(
      "[{match: {prefix: /, headers: [{name: a, string_match: {suffix: \"\"}},"
      " {name: b, string_match: {contains: Bot, ignore_case: true}}]}, route: {cluster: a}}]"));
  EXPECT_TRUE(Has(r.errors, absl::StrCat(kVh, ".routes[0].match.headers[0].string_match.suffix"), 8,
                  "must not be empty"));
  ASSERT_EQ(r.errors.size(), 1u) << Describe(r.errors);
}

// Found by tests/fuzz/config_fuzz: a recursive alias and an exponential ("billion laughs") one
// used to overflow the stack or run for minutes; both are bounded errors now.
TEST(ConfigLoader, RecursiveAndExplodingAliasesAreRejected) {
  LoadResult r = load_from_string("&s\n: *s\n");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.errors[0].message.find("aliases"), std::string::npos) << r.errors[0].message;
  std::string bomb = "a: &a [1,1,1,1,1,1,1,1,1,1]\n";
  for (char c = 'b'; c <= 'j'; ++c) {
    bomb += fmt::format("{}: &{} [", c, c);
    for (int i = 0; i < 10; ++i)
      bomb += fmt::format("{}*{}", i ? "," : "", static_cast<char>(c - 1));
    bomb += "]\n";
  }
  r = load_from_string(bomb);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.errors[0].message.find("nodes"), std::string::npos) << r.errors[0].message;
}

TEST(ConfigLoader, TcpProxy) {
  const std::string listener = R"(static_resources:
  listeners:
  - address: {socket_address: {address: 127.0.0.1, port_value: 9000}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
)";
  const std::string clusters = R"(  clusters:
  - {name: a, load_assignment: {cluster_name: a}}
  - {name: b, load_assignment: {cluster_name: b}}
)";
  LoadResult r = load_from_string(listener + R"(          stat_prefix: db
          weighted_clusters: {clusters: [{name: a, weight: 3}, {name: b, weight: 1}]}
          idle_timeout: 30s
          max_connect_attempts: 3
)" + clusters);
  ASSERT_TRUE(r.ok()) << Describe(r.errors);
  const auto& proxy =
      std::get<TcpProxy>(r.bootstrap->listeners[0].filter_chains[0].filters[0].config);
  EXPECT_EQ(proxy.stat_prefix, "db");
  ASSERT_EQ(proxy.weighted_clusters.size(), 2u);
  EXPECT_EQ(proxy.total_weight, 4u);
  EXPECT_EQ(proxy.idle_timeout, milliseconds(30000));
  EXPECT_EQ(proxy.max_connect_attempts, 3u);

  r = load_from_string(listener + "          stat_prefix: db\n          cluster: a\n" + clusters);
  ASSERT_TRUE(r.ok()) << Describe(r.errors);
  EXPECT_EQ(
      std::get<TcpProxy>(r.bootstrap->listeners[0].filter_chains[0].filters[0].config).idle_timeout,
      milliseconds(3600000));  // Envoy's default

  const std::string typed =
      "static_resources.listeners[0].filter_chains[0].filters[0].typed_config";
  r = load_from_string(listener + "          cluster: nope\n" + clusters);
  EXPECT_TRUE(Has(r.errors, typed + ".stat_prefix", 7, "missing required field"))
      << Describe(r.errors);
  EXPECT_TRUE(Has(r.errors, typed + ".cluster", 9, "unknown cluster 'nope'")) << Describe(r.errors);
  r = load_from_string(listener + R"(          stat_prefix: db
          cluster: a
          access_log:
          - name: envoy.access_loggers.stdout
)" + clusters);
  ASSERT_TRUE(r.ok()) << Describe(r.errors);
  const auto& logged =
      std::get<TcpProxy>(r.bootstrap->listeners[0].filter_chains[0].filters[0].config);
  ASSERT_EQ(logged.access_logs.size(), 1u);
  EXPECT_EQ(logged.access_logs[0].path, "/dev/stdout");
  r = load_from_string(listener + "          stat_prefix: x\n" + clusters);
  EXPECT_TRUE(Has(r.errors, typed, 7, "exactly one of cluster, weighted_clusters"))
      << Describe(r.errors);
}

// envoy.filters.network.wasm: a PluginConfig before the terminal filter, never in its place.
TEST(ConfigLoader, NetworkWasmFilter) {
  const std::string head = R"(static_resources:
  listeners:
  - address: {socket_address: {address: 127.0.0.1, port_value: 9000}}
    filter_chains:
    - filters:
      - name: counter
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.wasm.v3.Wasm
          config:
            name: counter
            root_id: tcp_rewrite
            configuration: "from = a"
            vm_config: {runtime: envoy.wasm.runtime.null, code: {local: {inline_string: sluice.tcp_rewrite}}}
)";
  const std::string tail = R"(      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: t
          cluster: a
  clusters:
  - {name: a, load_assignment: {cluster_name: a}}
)";
  LoadResult r = load_from_string(head + tail);
  ASSERT_TRUE(r.ok()) << Describe(r.errors);
  const auto& filters = r.bootstrap->listeners[0].filter_chains[0].filters;
  ASSERT_EQ(filters.size(), 2u);
  const auto& plugin = std::get<WasmPlugin>(filters[0].config);
  EXPECT_EQ(plugin.name, "counter");
  EXPECT_EQ(plugin.root_id, "tcp_rewrite");
  EXPECT_EQ(plugin.configuration, "from = a");
  EXPECT_EQ(plugin.runtime, "envoy.wasm.runtime.null");
  EXPECT_TRUE(std::holds_alternative<TcpProxy>(filters[1].config));

  // Alone, it has nothing to hand the connection to.
  r = load_from_string(head);
  EXPECT_TRUE(Has(r.errors, "static_resources.listeners[0].filter_chains[0]", 5,
                  "must be followed by a terminal filter"))
      << Describe(r.errors);
}

// The sluice: block: Wasm limits by default and per plugin (config.name), resolved per plugin.
TEST(ConfigLoader, SluiceWasmPluginSettings) {
  const std::string base = R"(bootstrap_extensions:
- name: svc
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.wasm.v3.WasmService
    config:
      name: svc
      vm_config: {runtime: envoy.wasm.runtime.null, code: {local: {inline_string: sluice.ticker}}}
)";
  LoadResult r = load_from_string(base + R"(sluice:
  wasm:
    defaults: {memory_limit_mb: 32, callback_cpu_ms: 20}
    plugins:
      svc: {callback_cpu_ms: 0, startup_cpu_ms: 500, hide_request_headers: [Authorization],
            hide_client_address: true}
)");
  ASSERT_TRUE(r.ok()) << Describe(r.errors);
  const WasmPluginSettings svc = r.bootstrap->sluice.wasm_settings_for("svc");
  EXPECT_EQ(svc.hide_request_headers, std::vector<std::string>{"authorization"});
  EXPECT_TRUE(svc.hide_client_address);
  EXPECT_TRUE(svc.hide_response_headers.empty());
  EXPECT_EQ(*svc.memory_limit_mb, 32u);  // from the defaults
  EXPECT_EQ(*svc.callback_cpu_ms, 0u);   // the plugin's own: unlimited
  EXPECT_EQ(*svc.startup_cpu_ms, 500u);
  const WasmPluginSettings other = r.bootstrap->sluice.wasm_settings_for("other");
  EXPECT_EQ(*other.callback_cpu_ms, 20u);
  EXPECT_EQ(*other.startup_cpu_ms, 2000u);  // Sluice's default

  // Without the block: Sluice's defaults.
  r = load_from_string(base);
  ASSERT_TRUE(r.ok()) << Describe(r.errors);
  const WasmPluginSettings d = r.bootstrap->sluice.wasm_settings_for("svc");
  EXPECT_EQ(*d.memory_limit_mb, 64u);
  EXPECT_EQ(*d.callback_cpu_ms, 50u);

  r = load_from_string(base + R"(sluice:
  wasm:
    defaults: {memory_limit_mb: 0, cpu: 1}
    plugins: {nope: {callback_cpu_ms: 1}, svc: {hide_request_headers: [":path"]}}
  oci: {insecure_registries: ["127.0.0.1:5000", "bad host"], credentials: x}
)");
  EXPECT_TRUE(Has(r.errors, "sluice.wasm.plugins.svc.hide_request_headers[0]", 11,
                  "pseudo-headers cannot be hidden"))
      << Describe(r.errors);
  EXPECT_TRUE(Has(r.errors, "sluice.wasm.defaults.memory_limit_mb", 10, "")) << Describe(r.errors);
  EXPECT_TRUE(Has(r.errors, "sluice.wasm.defaults.cpu", 10, "unknown field")) << Describe(r.errors);
  EXPECT_TRUE(Has(r.errors, "sluice.wasm.plugins.nope", 11, "no Wasm plugin is named 'nope'"))
      << Describe(r.errors);
  EXPECT_TRUE(Has(r.errors, "sluice.oci.insecure_registries[1]", 12, "not a registry host"))
      << Describe(r.errors);
  EXPECT_TRUE(Has(r.errors, "sluice.oci.credentials", 12, "unknown field")) << Describe(r.errors);
}

}  // namespace
}  // namespace sluice::config
