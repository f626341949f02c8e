// The overlay of deployed plugins (config/overlay.h): parsing what POST /wasm/plugins sends, and
// merging into the config at load.
#include <filesystem>
#include <fstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "config/loader.h"
#include "config/overlay.h"

namespace sluice::config {
namespace {

using testing::ElementsAre;
using testing::HasSubstr;

const std::string kModule = std::string(SLUICE_TEST_WASM_DIR) + "/filter_basic.wasm";
const std::string kTlsDir = std::string(SLUICE_SOURCE_DIR) + "/tests/unit/testdata/tls/";

std::string Error(std::string_view json) {
  Result<DeployedPlugin> p = parse_deployed_plugin(json);
  return p ? "(accepted)" : p.error();
}

TEST(DeployedPlugin, ParsesEveryField) {
  Result<DeployedPlugin> p = parse_deployed_plugin(R"({
    "name": "add-header", "listener": "web", "position": {"before": "auth"},
    "code": "oci://127.0.0.1:5000/ext/add-header:v1", "sha256": "ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789",
    "root_id": "r", "configuration": {"header": "x-a"}, "failure_policy": "FAIL_OPEN",
    "runtime": "envoy.wasm.runtime.v8"})");
  ASSERT_TRUE(p) << p.error();
  EXPECT_EQ(p->name, "add-header");
  EXPECT_EQ(p->listener, "web");
  EXPECT_EQ(p->position, DeployedPlugin::Position::kBefore);
  EXPECT_EQ(p->anchor, "auth");
  EXPECT_TRUE(p->is_oci());
  EXPECT_EQ(p->sha256, "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789");
  EXPECT_EQ(p->configuration, R"({"header":"x-a"})");  // a JSON value: its text
  EXPECT_EQ(p->failure_policy, "FAIL_OPEN");

  // What the overlay file keeps reads back the same.
  Overlay o;
  o.put(*p);
  Result<Overlay> again = parse_overlay(overlay_json(o));
  ASSERT_TRUE(again) << again.error();
  ASSERT_EQ(again->plugins.size(), 1u);
  EXPECT_EQ(deployed_plugin_json(again->plugins[0]), deployed_plugin_json(*p));
}

TEST(DeployedPlugin, RefusesBadFieldsByName) {
  EXPECT_THAT(Error("{"), HasSubstr("not valid JSON"));
  EXPECT_THAT(Error("[]"), HasSubstr("JSON object"));
  EXPECT_THAT(Error(R"({"code":"/x.wasm"})"), HasSubstr("'name' is required"));
  EXPECT_THAT(Error(R"({"name":"../etc","code":"/x.wasm"})"), HasSubstr("letters, digits"));
  EXPECT_THAT(Error(R"({"name":"envoy.filters.http.router","code":"/x.wasm"})"),
              HasSubstr("reserved"));
  EXPECT_THAT(Error(R"({"name":"a"})"), HasSubstr("'code' is required"));
  EXPECT_THAT(Error(R"({"name":"a","code":"x.wasm"})"), HasSubstr("absolute path"));
  EXPECT_THAT(Error(R"({"name":"a","code":"oci://Bad Host/x"})"), HasSubstr("code: "));
  EXPECT_THAT(Error(R"({"name":"a","code":"/x.wasm","sha256":"abc"})"), HasSubstr("64 hex"));
  EXPECT_THAT(Error(R"({"name":"a","code":"/x.wasm","failure_policy":"MAYBE"})"),
              HasSubstr("FAIL_CLOSED, FAIL_OPEN or FAIL_RELOAD"));
  EXPECT_THAT(Error(R"({"name":"a","code":"/x.wasm","runtime":"wamr"})"),
              HasSubstr("runtime 'wamr'"));
  EXPECT_THAT(Error(R"({"name":"a","code":"/x.wasm","position":"middle"})"),
              HasSubstr("'position' must be"));
  EXPECT_THAT(Error(R"({"name":"a","code":"/x.wasm","position":{"after":"a"}})"),
              HasSubstr("beside itself"));
  EXPECT_THAT(
      Error(R"({"name":"a","code":"/x.wasm","position":{"after":"envoy.filters.http.router"}})"),
      HasSubstr("after the router"));
  EXPECT_THAT(Error(R"({"name":"a","code":"/x.wasm","cofniguration":"x"})"),
              HasSubstr("unknown field 'cofniguration'"));
  EXPECT_THAT(Error(R"({"name":7,"code":"/x.wasm"})"), HasSubstr("'name' must be a string"));
  EXPECT_THAT(Error(R"({"name":"a","listener":"l\u0001","code":"/x.wasm"})"),
              HasSubstr("control characters"));
}

TEST(Overlay, FileErrorsNameTheEntry) {
  EXPECT_TRUE(parse_overlay(""));
  EXPECT_TRUE(parse_overlay("{}"));
  EXPECT_THAT(parse_overlay(R"({"plugins":{}})").error(), HasSubstr("must be an array"));
  EXPECT_THAT(
      parse_overlay(R"({"plugins":[{"name":"a","code":"/a.wasm"},{"name":"a","code":"/b.wasm"}]})")
          .error(),
      HasSubstr("plugins[1]: a second plugin named 'a'"));
  EXPECT_THAT(parse_overlay(R"({"plugins":[{"name":"a"}]})").error(),
              HasSubstr("plugins[0]: 'code' is required"));
}

TEST(Overlay, PutReplacesByNameAndEraseReports) {
  Overlay o;
  DeployedPlugin a;
  a.name = "a";
  a.code = "/1.wasm";
  o.put(a);
  a.code = "/2.wasm";
  o.put(a);
  ASSERT_EQ(o.plugins.size(), 1u);
  EXPECT_EQ(o.find("a")->code, "/2.wasm");
  EXPECT_TRUE(o.erase("a"));
  EXPECT_FALSE(o.erase("a"));
}

// A config with two HTTP listeners (the first with two filter chains) and a TCP one.
std::string Config(const std::string& overlay_path) {
  const std::string hcm = R"(
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: s
          route_config: {virtual_hosts: [{name: v, domains: ["*"], routes: [{match: {prefix: /}, direct_response: {status: 200}}]}]}
          http_filters:
          - name: first-in-file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config: {name: first-in-file, vm_config: {runtime: envoy.wasm.runtime.v8, code: {local: {filename: )" +
                          kModule + R"(}}}}
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
)";
  return absl::StrCat(R"(sluice:
  overlay_path: )",
                      overlay_path, R"(
static_resources:
  listeners:
  - name: web
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filter_chain_match: {server_names: [a.example]}
      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            tls_certificates:
            - certificate_chain: {filename: )",
                      kTlsDir, R"(server.pem}
              private_key: {filename: )",
                      kTlsDir, R"(server.key}
      filters:)",
                      hcm, R"(    - filters:)", hcm, R"(  - name: api
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:)",
                      hcm, R"(  - name: tcp
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: t, cluster: c}
  clusters:
  - name: c
    load_assignment: {cluster_name: c, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 1}}}}]}]}
)");
}

std::vector<std::string> FilterNames(const Bootstrap& b, std::string_view listener,
                                     size_t chain = 0) {
  std::vector<std::string> names;
  for (const auto& l : b.listeners) {
    if (l.name != listener) continue;
    const auto& hcm = std::get<HttpConnectionManager>(l.filter_chains.at(chain).filters[0].config);
    for (const auto& f : hcm.http_filters) names.push_back(f.name);
  }
  return names;
}

std::string Plugin(std::string_view fields) {
  return absl::StrCat(R"({"name":"dep","code":")", kModule, "\"", fields.empty() ? "" : ",",
                      std::string(fields), "}");
}

LoadResult LoadWith(const std::string& overlay_text) {
  return load_from_string(Config("/nonexistent/overlay.json"), "test.yaml",
                          LoadOptions{overlay_text});
}

std::string OverlayOf(std::initializer_list<std::string> plugins) {
  std::string out = R"({"plugins":[)";
  bool first = true;
  for (const auto& p : plugins) {
    absl::StrAppend(&out, first ? "" : ",", p);
    first = false;
  }
  return out + "]}";
}

TEST(OverlayMerge, PlacesPluginsInEveryChainOfTheirListener) {
  LoadResult r = LoadWith(
      OverlayOf({Plugin(R"("listener":"web","configuration":"c1")"),
                 Plugin(R"("name":"early","listener":"web","position":"first")"),
                 Plugin(R"("name":"mid","listener":"api","position":{"after":"first-in-file"})")}));
  ASSERT_TRUE(r.ok()) << r.errors[0].to_string();
  const Bootstrap& b = *r.bootstrap;
  for (size_t chain : {0u, 1u}) {
    EXPECT_THAT(FilterNames(b, "web", chain),
                ElementsAre("early", "first-in-file", "dep", "envoy.filters.http.router"));
  }
  EXPECT_THAT(FilterNames(b, "api"),
              ElementsAre("first-in-file", "mid", "envoy.filters.http.router"));
  const auto& hcm =
      std::get<HttpConnectionManager>(b.listeners[0].filter_chains[0].filters[0].config);
  ASSERT_TRUE(hcm.http_filters[2].wasm);
  EXPECT_EQ(hcm.http_filters[2].wasm->name, "dep");
  EXPECT_EQ(hcm.http_filters[2].wasm->configuration, "c1");
  EXPECT_FALSE(hcm.http_filters[2].wasm->code.empty());  // the module was read
  EXPECT_EQ(b.overlay.plugins.size(), 3u);
  EXPECT_THAT(b.source_json, HasSubstr("\"dep\""));  // /config_dump shows what runs
}

TEST(OverlayMerge, ReplacesAFilterOfTheSameName) {
  LoadResult r = LoadWith(
      OverlayOf({Plugin(R"("name":"first-in-file","listener":"api","configuration":"new")")}));
  ASSERT_TRUE(r.ok()) << r.errors[0].to_string();
  EXPECT_THAT(FilterNames(*r.bootstrap, "api"),
              ElementsAre("first-in-file", "envoy.filters.http.router"));
  const auto& hcm =
      std::get<HttpConnectionManager>(r.bootstrap->listeners[1].filter_chains[0].filters[0].config);
  EXPECT_EQ(hcm.http_filters[0].wasm->configuration, "new");
}

TEST(OverlayMerge, PluginsThatCannotBePlacedAreErrors) {
  const auto first_error = [](const LoadResult& r) {
    return r.errors.empty() ? std::string("(loaded)") : r.errors[0].to_string();
  };
  EXPECT_THAT(first_error(LoadWith(OverlayOf({Plugin(R"("listener":"gone")")}))),
              HasSubstr("deployed plugin 'dep': the config has no listener 'gone'"));
  EXPECT_THAT(first_error(LoadWith(OverlayOf({Plugin(R"("listener":"tcp")")}))),
              HasSubstr("listener 'tcp' has no HTTP connection manager"));
  EXPECT_THAT(first_error(LoadWith(OverlayOf({Plugin("")}))),
              HasSubstr("name its listener: 2 listeners"));
  EXPECT_THAT(first_error(LoadWith(
                  OverlayOf({Plugin(R"("listener":"web","position":{"before":"nope"})")}))),
              HasSubstr("no HTTP filter named 'nope' to place it before in listener 'web'"));
  EXPECT_THAT(first_error(LoadWith("{not json")), HasSubstr("overlay of deployed plugins"));
  // A deployed module that is not there is the loader's usual error.
  EXPECT_THAT(first_error(LoadWith(
                  OverlayOf({R"({"name":"dep","listener":"api","code":"/nonexistent.wasm"})"}))),
              HasSubstr("/nonexistent.wasm"));
}

TEST(OverlayMerge, ReadsTheFileAndAMissingFileIsEmpty) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    ("sluice-overlay-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "overlay.json").string();
  LoadResult none = load_from_string(Config(path));
  ASSERT_TRUE(none.ok()) << none.errors[0].to_string();
  EXPECT_TRUE(none.bootstrap->overlay.plugins.empty());
  EXPECT_EQ(none.bootstrap->sluice.overlay_path, path);

  std::ofstream(path) << OverlayOf({Plugin(R"("listener":"api")")});
  LoadResult one = load_from_string(Config(path));
  ASSERT_TRUE(one.ok()) << one.errors[0].to_string();
  EXPECT_THAT(FilterNames(*one.bootstrap, "api"),
              ElementsAre("first-in-file", "dep", "envoy.filters.http.router"));
  std::filesystem::remove_all(dir);
}

TEST(AdminToken, IsReadTrimmedAndMustBeLongEnough) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("sluice-token-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "token").string();
  std::ofstream(path) << "  0123456789abcdef0123\n";
  LoadResult ok = load_from_string("sluice: {admin: {token_file: " + path + "}}");
  ASSERT_TRUE(ok.ok()) << ok.errors[0].to_string();
  EXPECT_EQ(ok.bootstrap->sluice.admin.token, "0123456789abcdef0123");
  EXPECT_EQ(ok.bootstrap->source_json.find("0123456789abcdef"), std::string::npos);

  std::ofstream(path, std::ios::trunc) << "short\n";
  LoadResult short_token = load_from_string("sluice: {admin: {token_file: " + path + "}}");
  ASSERT_FALSE(short_token.ok());
  EXPECT_THAT(short_token.errors[0].message, HasSubstr("shorter than 16"));
  LoadResult missing = load_from_string("sluice: {admin: {token_file: /nonexistent/t}}");
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.errors[0].message, HasSubstr("/nonexistent/t"));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sluice::config
