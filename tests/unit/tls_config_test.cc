// TLS in the config (DownstreamTlsContext on filter chains, filter_chain_match.server_names,
// the TLS inspector, UpstreamTlsContext on clusters) and the SNI rules that pick a chain.
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "config/loader.h"
#include "net/tls.h"

namespace sluice {
namespace {

const std::filesystem::path kTlsDir =
    std::filesystem::path(SLUICE_SOURCE_DIR) / "tests" / "unit" / "testdata" / "tls";
const std::string kCert = (kTlsDir / "server.pem").string();
const std::string kKey = (kTlsDir / "server.key").string();
const std::string kOtherKey = (kTlsDir / "other.key").string();

std::string Describe(const std::vector<config::Diagnostic>& diags) {
  std::vector<std::string> lines;
  for (const auto& d : diags) lines.push_back(d.to_string());
  return absl::StrJoin(lines, "\n");
}

bool Has(const std::vector<config::Diagnostic>& diags, std::string_view path,
         std::string_view message) {
  for (const auto& d : diags) {
    if (d.path == path && d.message.find(message) != std::string::npos) return true;
  }
  return false;
}

// A filter chain: `match` is a filter_chain_match flow map ("" for none); `tls` false leaves
// out the transport socket.
std::string Chain(const std::string& match, bool tls = true, const std::string& key = kKey) {
  std::string out = "    - ";
  if (!match.empty()) out += "filter_chain_match: " + match + "\n      ";
  if (tls) {
    out += absl::StrCat(
        "transport_socket: {name: envoy.transport_sockets.tls, typed_config: {\"@type\": "
        "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext, "
        "common_tls_context: {tls_certificates: [{certificate_chain: {filename: ",
        kCert, "}, private_key: {filename: ", key, "}}]}}}\n      ");
  }
  out +=
      "filters: [{name: hcm, typed_config: {\"@type\": "
      "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
      "HttpConnectionManager, stat_prefix: x, route_config: {virtual_hosts: [{name: vh, "
      "domains: [\"*\"], routes: [{match: {prefix: /}, direct_response: {status: 200}}]}]}, "
      "http_filters: [{name: r, typed_config: {\"@type\": "
      "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]}}]\n";
  return out;
}

std::string Listener(const std::string& chains, const std::string& extra = "") {
  return absl::StrCat(R"(static_resources:
  listeners:
  - address: {socket_address: {address: 127.0.0.1, port_value: 8443}}
)",
                      extra, "    filter_chains:\n", chains);
}

TEST(TlsConfig, ChainsBySniWithTheTlsInspector) {
  auto r = config::load_from_string(
      Listener(Chain("{server_names: [API.example.com, \"*.example.org\"]}") + Chain(""),
               "    listener_filters: [{name: envoy.filters.listener.tls_inspector, typed_config: "
               "{\"@type\": type.googleapis.com/"
               "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector}}]\n"));
  ASSERT_TRUE(r.ok()) << Describe(r.errors);
  const auto& chains = r.bootstrap->listeners[0].filter_chains;
  ASSERT_EQ(chains.size(), 2u);
  EXPECT_EQ(chains[0].server_names,
            (std::vector<std::string>{"api.example.com", "*.example.org"}));  // lower case
  EXPECT_TRUE(chains[1].server_names.empty());
  ASSERT_TRUE(chains[0].tls);
  EXPECT_EQ(chains[0].tls->certificates[0].certificate_chain_path, kCert);
  EXPECT_EQ(chains[0].tls->certificates[0].private_key_path, kKey);
}

TEST(TlsConfig, DefaultFilterChainIsTheFallback) {
  auto r = config::load_from_string(Listener(
      Chain("{server_names: [a.test]}"),
      "    default_filter_chain:\n" +
          absl::StrReplaceAll(Chain(""), {{"    - ", "      "}, {"\n      ", "\n      "}})));
  ASSERT_TRUE(r.ok()) << Describe(r.errors);
  ASSERT_EQ(r.bootstrap->listeners[0].filter_chains.size(), 2u);
  EXPECT_TRUE(r.bootstrap->listeners[0].filter_chains[1].server_names.empty());
}

TEST(TlsConfig, ChainErrors) {
  const std::string chains = "static_resources.listeners[0].filter_chains";
  // Two chains claiming one name (case-insensitively).
  auto r = config::load_from_string(
      Listener(Chain("{server_names: [a.test]}") + Chain("{server_names: [A.TEST]}")));
  EXPECT_TRUE(Has(r.errors, chains, "server name 'a.test' is in more than one filter chain"))
      << Describe(r.errors);
  // Two defaults.
  r = config::load_from_string(Listener(Chain("") + Chain("")));
  EXPECT_TRUE(Has(r.errors, chains, "more than one filter chain without")) << Describe(r.errors);
  // One plaintext chain may sit beside the TLS ones (the first byte tells them apart); two
  // would match the same connections.
  r = config::load_from_string(Listener(Chain("{server_names: [a.test]}") + Chain("", false)));
  EXPECT_TRUE(r.ok()) << Describe(r.errors);
  r = config::load_from_string(
      Listener(Chain("{server_names: [a.test]}") + Chain("", false) + Chain("", false)));
  EXPECT_TRUE(Has(r.errors, chains, "more than one filter chain without TLS"))
      << Describe(r.errors);
  // transport_protocol must agree with the chain's transport socket.
  r = config::load_from_string(Listener(Chain("{transport_protocol: raw_buffer}")));
  EXPECT_TRUE(Has(r.errors,
                  "static_resources.listeners[0].filter_chains[0].filter_chain_match."
                  "transport_protocol",
                  "'raw_buffer' on a chain with a TLS"))
      << Describe(r.errors);
  // server_names on a plain-text chain.
  r = config::load_from_string(Listener(Chain("{server_names: [a.test]}", false)));
  EXPECT_TRUE(Has(r.errors, "static_resources.listeners[0]", "needs a TLS transport_socket"))
      << Describe(r.errors);
  // Bad patterns and unsupported match fields.
  r = config::load_from_string(
      Listener(Chain("{server_names: [\"a.*.test\"], destination_port: 443}")));
  EXPECT_TRUE(Has(r.errors, chains + "[0].filter_chain_match.server_names[0]",
                  "use an exact name or '*.suffix'"))
      << Describe(r.errors);
  EXPECT_TRUE(Has(r.errors, chains + "[0].filter_chain_match.destination_port", "not supported"))
      << Describe(r.errors);
  // A listener filter Sluice does not have.
  r = config::load_from_string(Listener(
      Chain(""), "    listener_filters: [{name: envoy.filters.listener.proxy_protocol}]\n"));
  EXPECT_TRUE(Has(r.errors, "static_resources.listeners[0].listener_filters[0]",
                  "unsupported listener filter 'envoy.filters.listener.proxy_protocol'"))
      << Describe(r.errors);
  // A key that is not the certificate's.
  r = config::load_from_string(Listener(Chain("", true, kOtherKey)));
  EXPECT_TRUE(Has(r.errors,
                  chains + "[0].transport_socket.typed_config.common_tls_context."
                           "tls_certificates[0]",
                  "does not belong to the first certificate"))
      << Describe(r.errors);
}

std::string Cluster(const std::string& tls) {
  return absl::StrCat(R"(static_resources:
  clusters:
  - name: up
    load_assignment: {cluster_name: up}
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
)",
                      tls);
}

TEST(TlsConfig, UpstreamTlsContext) {
  auto r = config::load_from_string(Cluster(absl::StrCat(R"(        sni: up.example.com
        common_tls_context:
          tls_certificates: [{certificate_chain: {filename: )",
                                                         kCert, "}, private_key: {filename: ", kKey,
                                                         R"(}}]
          alpn_protocols: [http/1.1]
          tls_params: {tls_minimum_protocol_version: TLSv1_3}
          validation_context:
            trusted_ca: {filename: )",
                                                         kCert, R"(}
            match_typed_subject_alt_names:
            - {san_type: DNS, matcher: {exact: up.example.com}}
            - {san_type: URI, matcher: {exact: "spiffe://x/up"}}
            match_subject_alt_names: [{exact: both.example.com}]
)")));
  ASSERT_TRUE(r.ok()) << Describe(r.errors);
  const auto& tls = r.bootstrap->clusters[0].tls;
  ASSERT_TRUE(tls);
  EXPECT_EQ(tls->sni, "up.example.com");
  EXPECT_EQ(tls->certificates.size(), 1u);
  EXPECT_EQ(tls->min_version, config::CommonTls::Version::Tls13);
  EXPECT_EQ(tls->match_dns_san, (std::vector<std::string>{"up.example.com", "both.example.com"}));
  EXPECT_EQ(tls->match_uri_san, (std::vector<std::string>{"spiffe://x/up", "both.example.com"}));
  EXPECT_FALSE(tls->trusted_ca.empty());
  EXPECT_EQ(tls->max_session_keys, 1u);  // Envoy's default: resume with the latest session
  // The context builds with it.
  EXPECT_TRUE(net::TlsClientContext::create(*tls).ok());
}

TEST(TlsConfig, MaxSessionKeys) {
  auto r = config::load_from_string(Cluster("        max_session_keys: 0\n"));
  ASSERT_TRUE(r.ok()) << Describe(r.errors);
  EXPECT_EQ(r.bootstrap->clusters[0].tls->max_session_keys, 0u);
  EXPECT_TRUE(net::TlsClientContext::create(*r.bootstrap->clusters[0].tls).ok());
  r = config::load_from_string(Cluster("        max_session_keys: 5000\n"));
  EXPECT_TRUE(Has(
      r.errors, "static_resources.clusters[0].transport_socket.typed_config.max_session_keys", ""))
      << Describe(r.errors);
}

TEST(TlsConfig, UpstreamErrors) {
  const std::string vc =
      "static_resources.clusters[0].transport_socket.typed_config.common_tls_context."
      "validation_context";
  auto r = config::load_from_string(Cluster(R"(        common_tls_context:
          validation_context:
            match_typed_subject_alt_names:
            - {san_type: EMAIL, matcher: {exact: a@b}}
            - {san_type: DNS, matcher: {prefix: up}}
            - {san_type: DNS, matcher: {exact: up.test}}
)"));
  EXPECT_TRUE(Has(r.errors, vc + ".match_typed_subject_alt_names[0]", "san_type 'EMAIL'"))
      << Describe(r.errors);
  EXPECT_TRUE(
      Has(r.errors, vc + ".match_typed_subject_alt_names[1].matcher", "only exact SAN matchers"))
      << Describe(r.errors);
  EXPECT_TRUE(Has(r.errors,
                  "static_resources.clusters[0].transport_socket.typed_config."
                  "common_tls_context",
                  "SAN matching needs validation_context.trusted_ca"))
      << Describe(r.errors);
  // A downstream context on a cluster.
  r = config::load_from_string(
      absl::StrReplaceAll(Cluster("        common_tls_context: {}\n"),
                          {{"UpstreamTlsContext", "DownstreamTlsContext"}}));
  EXPECT_TRUE(Has(r.errors, "static_resources.clusters[0].transport_socket.typed_config",
                  "expected type.googleapis.com/"
                  "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"))
      << Describe(r.errors);
}

TEST(TlsConfig, BadTlsParamsAreCaughtAtLoad) {
  auto r = config::load_from_string(Cluster(R"(        common_tls_context:
          tls_params:
            tls_minimum_protocol_version: TLSv1_3
            tls_maximum_protocol_version: TLSv1_2
            cipher_suites: [NOT-A-CIPHER]
)"));
  const std::string params =
      "static_resources.clusters[0].transport_socket.typed_config.common_tls_context.tls_params";
  EXPECT_TRUE(Has(r.errors, params + ".cipher_suites", "no cipher OpenSSL knows in 'NOT-A-CIPHER'"))
      << Describe(r.errors);
  EXPECT_TRUE(Has(r.errors, params, "tls_minimum_protocol_version is above")) << Describe(r.errors);
}

// Envoy's rules: exact beats wildcard, the longest wildcard suffix wins, the chain without
// server names takes the rest (and clients without SNI).
TEST(TlsFilterChains, SelectBySni) {
  net::TlsFilterChains t;
  t.chains = {{{"api.test"}, nullptr},
              {{"*.test"}, nullptr},
              {{"*.deep.test", "exact.deep.test"}, nullptr},
              {{}, nullptr}};
  EXPECT_EQ(t.select("api.test"), 0);
  EXPECT_EQ(t.select("other.test"), 1);
  EXPECT_EQ(t.select("a.b.test"), 1);
  EXPECT_EQ(t.select("x.deep.test"), 2);
  EXPECT_EQ(t.select("exact.deep.test"), 2);
  EXPECT_EQ(t.select("test"), 3);  // "*.test" needs a label before ".test"
  EXPECT_EQ(t.select("elsewhere.org"), 3);
  EXPECT_EQ(t.select(""), 3);
  t.chains.pop_back();
  EXPECT_EQ(t.select("elsewhere.org"), -1);
  EXPECT_EQ(t.select(""), -1);
}

TEST(TlsFilterChains, ExactBeatsWildcardWhateverTheOrder) {
  net::TlsFilterChains t;
  t.chains = {{{"*.example.com"}, nullptr}, {{"www.example.com"}, nullptr}};
  EXPECT_EQ(t.select("www.example.com"), 1);
  EXPECT_EQ(t.select("mail.example.com"), 0);
}

}  // namespace
}  // namespace sluice
