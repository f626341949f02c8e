// Unit tests for src/http/route_table.{h,cc}: virtual host selection and route matching, with
// Envoy's semantics.
#include "http/route_table.h"

#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <re2/re2.h>

#include "common/header_map.h"
#include "config/bootstrap.h"
#include "config/loader.h"

namespace sluice::http {
namespace {

using config::HeaderMatcher;
using config::QueryParameterMatcher;
using config::Route;
using config::RouteConfiguration;
using config::RouteMatch;
using config::StringMatcher;
using config::VirtualHost;

// ---- Builders -------------------------------------------------------------------------------

std::shared_ptr<const re2::RE2> Re(const std::string& pattern) {
  auto re = std::make_shared<const re2::RE2>(pattern);
  EXPECT_TRUE(re->ok()) << pattern;
  return re;
}

RouteMatch PrefixMatch(std::string prefix) {
  RouteMatch m;
  m.kind = RouteMatch::PathKind::Prefix;
  m.value = std::move(prefix);
  return m;
}

RouteMatch PathMatch(std::string path) {
  RouteMatch m;
  m.kind = RouteMatch::PathKind::Path;
  m.value = std::move(path);
  return m;
}

RouteMatch RegexMatch(const std::string& regex) {
  RouteMatch m;
  m.kind = RouteMatch::PathKind::SafeRegex;
  m.regex = Re(regex);
  return m;
}

StringMatcher Str(StringMatcher::Kind kind, std::string value, bool ignore_case = false) {
  StringMatcher s;
  s.kind = kind;
  s.value = std::move(value);
  s.ignore_case = ignore_case;
  if (kind == StringMatcher::Kind::SafeRegex) s.regex = Re(s.value);
  return s;
}

HeaderMatcher Header(std::string name, std::optional<StringMatcher> match, bool invert = false) {
  HeaderMatcher h;
  h.name = std::move(name);
  h.string_match = std::move(match);
  h.invert_match = invert;
  return h;
}

HeaderMatcher HeaderPresent(std::string name, bool invert = false) {
  HeaderMatcher h;
  h.name = std::move(name);
  h.present_match = true;
  h.invert_match = invert;
  return h;
}

QueryParameterMatcher Query(std::string name, std::optional<StringMatcher> match) {
  QueryParameterMatcher q;
  q.name = std::move(name);
  q.string_match = std::move(match);
  q.present_match = !q.string_match.has_value();
  return q;
}

Route MakeRoute(std::string name, RouteMatch match) {
  Route r;
  r.name = std::move(name);
  r.match = std::move(match);
  r.action = config::DirectResponseAction{200, ""};
  return r;
}

VirtualHost Vhost(std::string name, std::vector<std::string> domains,
                  std::vector<Route> routes = {}) {
  VirtualHost vh;
  vh.name = std::move(name);
  vh.domains = std::move(domains);
  if (routes.empty()) routes.push_back(MakeRoute(vh.name + "-default", PrefixMatch("/")));
  vh.routes = std::move(routes);
  return vh;
}

HeaderMap Request(
    std::string_view authority, std::string_view path,
    std::initializer_list<std::pair<std::string_view, std::string_view>> headers = {}) {
  HeaderMap h;
  h.add(":method", "GET");
  h.add(":scheme", "http");
  h.add(":path", path);
  h.add(":authority", authority);
  for (const auto& [k, v] : headers) h.add(k, v);
  return h;
}

// Name of the virtual host chosen for `authority`, or "<none>".
std::string VhostFor(const RouteTable& table, std::string_view authority) {
  const VirtualHost* vh = table.find_virtual_host(authority);
  return vh ? vh->name : "<none>";
}

// Name of the route matched in a single-vhost ("*") table, or "<none>".
std::string RouteFor(const RouteTable& table, const HeaderMap& headers) {
  const Route* r = table.route(headers);
  return r ? r->name : "<none>";
}

// A table with one catch-all virtual host holding `routes`.
struct SingleVhost {
  explicit SingleVhost(std::vector<Route> routes) {
    config.virtual_hosts.push_back(Vhost("all", {"*"}, std::move(routes)));
    table = std::make_unique<RouteTable>(config);
  }
  bool matches(const HeaderMap& headers) const { return table->route(headers) != nullptr; }
  bool matches_path(std::string_view path) const { return matches(Request("h", path)); }

  RouteConfiguration config;
  std::unique_ptr<RouteTable> table;
};

// ---- Virtual hosts --------------------------------------------------------------------------

TEST(RouteTable, VirtualHostPrecedence) {
  RouteConfiguration cfg;
  cfg.virtual_hosts.push_back(Vhost("default", {"*"}));
  cfg.virtual_hosts.push_back(Vhost("prefix-short", {"api.*"}));
  cfg.virtual_hosts.push_back(Vhost("prefix-long", {"api.example.*"}));
  cfg.virtual_hosts.push_back(Vhost("suffix-short", {"*.com"}));
  cfg.virtual_hosts.push_back(Vhost("suffix-long", {"*.example.com"}));
  cfg.virtual_hosts.push_back(Vhost("exact", {"api.example.com"}));
  RouteTable table(cfg);

  // Exact beats every wildcard.
  EXPECT_EQ(VhostFor(table, "api.example.com"), "exact");
  // The longest suffix wins, whatever the order of definition.
  EXPECT_EQ(VhostFor(table, "www.example.com"), "suffix-long");
  EXPECT_EQ(VhostFor(table, "www.other.com"), "suffix-short");
  // Any suffix match beats any prefix match, even a longer one.
  EXPECT_EQ(VhostFor(table, "api.other.com"), "suffix-short");
  // The longest prefix wins.
  EXPECT_EQ(VhostFor(table, "api.example.org"), "prefix-long");
  EXPECT_EQ(VhostFor(table, "api.other.org"), "prefix-short");
  // Nothing else: the default.
  EXPECT_EQ(VhostFor(table, "unrelated.org"), "default");
  EXPECT_EQ(VhostFor(table, ""), "default");
}

// The connection manager looks the route up before creating filters only when some route or
// virtual host disables one (typed_per_filter_config).
TEST(RouteTable, KnowsWhetherAnyRouteDisablesAFilter) {
  RouteConfiguration plain;
  plain.virtual_hosts.push_back(Vhost("a", {"a"}));
  plain.virtual_hosts.push_back(Vhost("b", {"*"}));
  EXPECT_FALSE(RouteTable(plain).disables_filters());

  RouteConfiguration by_route = plain;
  Route off = MakeRoute("off", PrefixMatch("/off"));
  off.disabled_filters = {"my_wasm"};
  by_route.virtual_hosts[1].routes.insert(by_route.virtual_hosts[1].routes.begin(), off);
  EXPECT_TRUE(RouteTable(by_route).disables_filters());

  RouteConfiguration by_vhost = plain;
  by_vhost.virtual_hosts[0].disabled_filters = {"my_wasm"};
  EXPECT_TRUE(RouteTable(by_vhost).disables_filters());
}

TEST(RouteTable, WildcardMustMatchAtLeastOneCharacter) {
  RouteConfiguration cfg;
  cfg.virtual_hosts.push_back(Vhost("suffix", {"*.example.com"}));
  cfg.virtual_hosts.push_back(Vhost("prefix", {"www.*"}));
  cfg.virtual_hosts.push_back(Vhost("dash-suffix", {"*-bar.net"}));
  RouteTable table(cfg);
  EXPECT_EQ(VhostFor(table, ".example.com"), "<none>");
  EXPECT_EQ(VhostFor(table, "example.com"), "<none>");
  EXPECT_EQ(VhostFor(table, "a.example.com"), "suffix");
  EXPECT_EQ(VhostFor(table, "a.b.example.com"), "suffix");
  EXPECT_EQ(VhostFor(table, "www."), "<none>");
  EXPECT_EQ(VhostFor(table, "www.x"), "prefix");
  EXPECT_EQ(VhostFor(table, "foo-bar.net"), "dash-suffix");
  EXPECT_EQ(VhostFor(table, "-bar.net"), "<none>");
}

TEST(RouteTable, NoDefaultVirtualHostMeansNoMatch) {
  RouteConfiguration cfg;
  cfg.virtual_hosts.push_back(Vhost("only", {"only.example"}));
  RouteTable table(cfg);
  EXPECT_EQ(VhostFor(table, "other.example"), "<none>");
  const VirtualHost sentinel;
  const VirtualHost* vh = &sentinel;  // must be reset to nullptr
  EXPECT_EQ(table.route(Request("other.example", "/"), &vh), nullptr);
  EXPECT_EQ(vh, nullptr);
}

TEST(RouteTable, HostPortDomains) {
  RouteConfiguration cfg;
  cfg.virtual_hosts.push_back(Vhost("default", {"*"}));
  cfg.virtual_hosts.push_back(Vhost("with-port", {"example.com:8080"}));
  cfg.virtual_hosts.push_back(Vhost("without-port", {"example.com"}));
  cfg.virtual_hosts.push_back(Vhost("prefix", {"example.*"}));
  RouteTable table(cfg);
  EXPECT_EQ(VhostFor(table, "example.com:8080"), "with-port");
  EXPECT_EQ(VhostFor(table, "example.com"), "without-port");
  // The port is part of the authority: no exact match, but "example.*" matches.
  EXPECT_EQ(VhostFor(table, "example.com:9090"), "prefix");
}

TEST(RouteTable, SeveralDomainsPerVirtualHost) {
  RouteConfiguration cfg;
  cfg.virtual_hosts.push_back(Vhost("a", {"a.example", "alias.example", "*.a.example"}));
  cfg.virtual_hosts.push_back(Vhost("b", {"b.example"}));
  RouteTable table(cfg);
  EXPECT_EQ(VhostFor(table, "a.example"), "a");
  EXPECT_EQ(VhostFor(table, "alias.example"), "a");
  EXPECT_EQ(VhostFor(table, "x.a.example"), "a");
  EXPECT_EQ(VhostFor(table, "b.example"), "b");
}

TEST(RouteTable, AuthorityIsCaseInsensitive) {
  RouteConfiguration cfg;
  cfg.virtual_hosts.push_back(Vhost("exact", {"api.example.com"}));
  cfg.virtual_hosts.push_back(Vhost("suffix", {"*.example.org"}));
  cfg.virtual_hosts.push_back(Vhost("prefix", {"www.*"}));
  RouteTable table(cfg);
  EXPECT_EQ(VhostFor(table, "API.Example.COM"), "exact");
  EXPECT_EQ(VhostFor(table, "Foo.EXAMPLE.org"), "suffix");
  EXPECT_EQ(VhostFor(table, "WWW.anything"), "prefix");
  EXPECT_EQ(VhostFor(table, "Api.Example.Com.evil"), "<none>");
}

TEST(RouteTable, RouteReportsVirtualHost) {
  RouteConfiguration cfg;
  cfg.virtual_hosts.push_back(
      Vhost("api", {"api.example"}, {MakeRoute("api-v1", PrefixMatch("/v1/"))}));
  cfg.virtual_hosts.push_back(Vhost("default", {"*"}, {MakeRoute("fallback", PrefixMatch("/"))}));
  RouteTable table(cfg);
  const VirtualHost* vh = nullptr;
  const Route* r = table.route(Request("api.example", "/v1/users"), &vh);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->name, "api-v1");
  ASSERT_NE(vh, nullptr);
  EXPECT_EQ(vh->name, "api");

  // A virtual host is chosen, then no route in it matches: no fallback to another vhost.
  vh = nullptr;
  EXPECT_EQ(table.route(Request("api.example", "/v2/users"), &vh), nullptr);
  ASSERT_NE(vh, nullptr);
  EXPECT_EQ(vh->name, "api");

  r = table.route(Request("other.example", "/v2/users"), &vh);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->name, "fallback");
  EXPECT_EQ(vh->name, "default");
  EXPECT_EQ(&table.config(), &cfg);
}

// ---- Path matching --------------------------------------------------------------------------

TEST(RouteTable, PrefixMatch) {
  SingleVhost t({MakeRoute("r", PrefixMatch("/api"))});
  EXPECT_TRUE(t.matches_path("/api"));
  EXPECT_TRUE(t.matches_path("/api/v1"));
  EXPECT_TRUE(t.matches_path("/apis"));  // a plain string prefix, as Envoy
  EXPECT_TRUE(t.matches_path("/api?x=1"));
  EXPECT_FALSE(t.matches_path("/ap"));
  EXPECT_FALSE(t.matches_path("/API"));
  EXPECT_FALSE(t.matches_path("/v1/api"));
  EXPECT_FALSE(t.matches_path(""));
}

TEST(RouteTable, PrefixIncludesQueryString) {
  SingleVhost t({MakeRoute("r", PrefixMatch("/search?q="))});
  EXPECT_TRUE(t.matches_path("/search?q=cats"));
  EXPECT_TRUE(t.matches_path("/search?q="));
  EXPECT_FALSE(t.matches_path("/search"));
  EXPECT_FALSE(t.matches_path("/search?lang=en&q=cats"));
}

TEST(RouteTable, EmptyAndRootPrefixMatchEverything) {
  SingleVhost root({MakeRoute("r", PrefixMatch("/"))});
  EXPECT_TRUE(root.matches_path("/"));
  EXPECT_TRUE(root.matches_path("/anything/at/all?x"));
  SingleVhost empty({MakeRoute("r", PrefixMatch(""))});
  EXPECT_TRUE(empty.matches_path("/"));
  EXPECT_TRUE(empty.matches_path("*"));
}

TEST(RouteTable, PathMatchIgnoresQueryAndFragment) {
  SingleVhost t({MakeRoute("r", PathMatch("/exact"))});
  EXPECT_TRUE(t.matches_path("/exact"));
  EXPECT_TRUE(t.matches_path("/exact?x=1&y=2"));
  EXPECT_TRUE(t.matches_path("/exact?"));
  EXPECT_TRUE(t.matches_path("/exact#frag"));
  EXPECT_FALSE(t.matches_path("/exact/"));
  EXPECT_FALSE(t.matches_path("/exactly"));
  EXPECT_FALSE(t.matches_path("/Exact"));
  EXPECT_FALSE(t.matches_path("/exac"));
}

TEST(RouteTable, SafeRegexIsFullMatchWithoutQuery) {
  SingleVhost t({MakeRoute("r", RegexMatch("/users/[0-9]+"))});
  EXPECT_TRUE(t.matches_path("/users/42"));
  EXPECT_TRUE(t.matches_path("/users/42?expand=true"));
  EXPECT_FALSE(t.matches_path("/users/42/posts"));  // full match, not search
  EXPECT_FALSE(t.matches_path("/v1/users/42"));
  EXPECT_FALSE(t.matches_path("/users/abc"));
  EXPECT_FALSE(t.matches_path("/users/"));
}

TEST(RouteTable, SafeRegexDoesNotSeeQuery) {
  // A regex written to match the query string does not: the query is stripped first.
  SingleVhost t({MakeRoute("r", RegexMatch("/a\\?b=.*"))});
  EXPECT_FALSE(t.matches_path("/a?b=1"));
}

TEST(RouteTable, CaseInsensitivePrefixAndPath) {
  RouteMatch prefix = PrefixMatch("/API/");
  prefix.case_sensitive = false;
  RouteMatch path = PathMatch("/Login");
  path.case_sensitive = false;
  SingleVhost t({MakeRoute("prefix", prefix), MakeRoute("path", path)});
  EXPECT_EQ(RouteFor(*t.table, Request("h", "/api/x")), "prefix");
  EXPECT_EQ(RouteFor(*t.table, Request("h", "/Api/X")), "prefix");
  EXPECT_EQ(RouteFor(*t.table, Request("h", "/LOGIN")), "path");
  EXPECT_EQ(RouteFor(*t.table, Request("h", "/login?next=/")), "path");
  EXPECT_EQ(RouteFor(*t.table, Request("h", "/logins")), "<none>");
  EXPECT_EQ(RouteFor(*t.table, Request("h", "/ap")), "<none>");
}

TEST(RouteTable, CaseSensitiveFlagDoesNotApplyToRegex) {
  RouteMatch m = RegexMatch("/abc");
  m.case_sensitive = false;  // ignored for safe_regex, as in Envoy
  SingleVhost t({MakeRoute("r", m)});
  EXPECT_TRUE(t.matches_path("/abc"));
  EXPECT_FALSE(t.matches_path("/ABC"));
}

TEST(RouteTable, FirstMatchWins) {
  SingleVhost t({
      MakeRoute("exact-health", PathMatch("/healthz")),
      MakeRoute("api", PrefixMatch("/api/")),
      MakeRoute("api-v2-never", PrefixMatch("/api/v2/")),  // shadowed by "api"
      MakeRoute("catch-all", PrefixMatch("/")),
      MakeRoute("after-catch-all", PathMatch("/healthz")),
  });
  EXPECT_EQ(RouteFor(*t.table, Request("h", "/healthz")), "exact-health");
  EXPECT_EQ(RouteFor(*t.table, Request("h", "/api/v2/x")), "api");
  EXPECT_EQ(RouteFor(*t.table, Request("h", "/other")), "catch-all");
  EXPECT_EQ(RouteFor(*t.table, Request("h", "/healthz/x")), "catch-all");
}

TEST(RouteTable, FirstMatchWinsWithHeaderConditions) {
  RouteMatch canary = PrefixMatch("/");
  canary.headers.push_back(Header("x-canary", Str(StringMatcher::Kind::Exact, "1")));
  SingleVhost t({MakeRoute("canary", canary), MakeRoute("stable", PrefixMatch("/"))});
  EXPECT_EQ(RouteFor(*t.table, Request("h", "/", {{"x-canary", "1"}})), "canary");
  EXPECT_EQ(RouteFor(*t.table, Request("h", "/", {{"x-canary", "0"}})), "stable");
  EXPECT_EQ(RouteFor(*t.table, Request("h", "/")), "stable");
}

TEST(RouteTable, NoRouteMatches) {
  SingleVhost t({MakeRoute("a", PathMatch("/a")), MakeRoute("b", PrefixMatch("/b/"))});
  EXPECT_EQ(RouteFor(*t.table, Request("h", "/c")), "<none>");
  EXPECT_EQ(RouteFor(*t.table, Request("h", "/b")), "<none>");
  RouteConfiguration empty;
  RouteTable empty_table(empty);
  EXPECT_EQ(empty_table.route(Request("h", "/")), nullptr);
  EXPECT_EQ(empty_table.find_virtual_host("h"), nullptr);
}

// ---- Header matchers ------------------------------------------------------------------------

bool HeaderRouteMatches(const HeaderMatcher& hm, const HeaderMap& headers) {
  RouteMatch m = PrefixMatch("/");
  m.headers.push_back(hm);
  return route_matches(m, headers);
}

TEST(RouteTable, HeaderExactPrefixSuffixContains) {
  const HeaderMap req = Request("h", "/", {{"X-Env", "production-eu"}});
  using K = StringMatcher::Kind;
  EXPECT_TRUE(HeaderRouteMatches(Header("x-env", Str(K::Exact, "production-eu")), req));
  EXPECT_FALSE(HeaderRouteMatches(Header("x-env", Str(K::Exact, "production")), req));
  EXPECT_FALSE(HeaderRouteMatches(Header("x-env", Str(K::Exact, "PRODUCTION-EU")), req));
  EXPECT_TRUE(HeaderRouteMatches(Header("x-env", Str(K::Exact, "PRODUCTION-EU", true)), req));
  EXPECT_TRUE(HeaderRouteMatches(Header("x-env", Str(K::Prefix, "prod")), req));
  EXPECT_FALSE(HeaderRouteMatches(Header("x-env", Str(K::Prefix, "eu")), req));
  EXPECT_TRUE(HeaderRouteMatches(Header("x-env", Str(K::Prefix, "PROD", true)), req));
  EXPECT_TRUE(HeaderRouteMatches(Header("x-env", Str(K::Suffix, "-eu")), req));
  EXPECT_FALSE(HeaderRouteMatches(Header("x-env", Str(K::Suffix, "prod")), req));
  EXPECT_TRUE(HeaderRouteMatches(Header("x-env", Str(K::Suffix, "-EU", true)), req));
  EXPECT_TRUE(HeaderRouteMatches(Header("x-env", Str(K::Contains, "uction")), req));
  EXPECT_FALSE(HeaderRouteMatches(Header("x-env", Str(K::Contains, "staging")), req));
  EXPECT_TRUE(HeaderRouteMatches(Header("x-env", Str(K::Contains, "UCTION", true)), req));
  // A missing header matches nothing.
  EXPECT_FALSE(HeaderRouteMatches(Header("x-other", Str(K::Exact, "")), req));
  EXPECT_FALSE(HeaderRouteMatches(Header("x-other", Str(K::Prefix, "p")), req));
}

TEST(RouteTable, HeaderEmptyValueMatchesExactEmpty) {
  const HeaderMap req = Request("h", "/", {{"x-empty", ""}});
  EXPECT_TRUE(HeaderRouteMatches(Header("x-empty", Str(StringMatcher::Kind::Exact, "")), req));
  EXPECT_TRUE(HeaderRouteMatches(HeaderPresent("x-empty"), req));
}

TEST(RouteTable, HeaderRegexIsFullMatch) {
  using K = StringMatcher::Kind;
  const HeaderMap req = Request("h", "/", {{"x-version", "v123"}});
  EXPECT_TRUE(HeaderRouteMatches(Header("x-version", Str(K::SafeRegex, "v[0-9]+")), req));
  EXPECT_FALSE(HeaderRouteMatches(Header("x-version", Str(K::SafeRegex, "[0-9]+")), req));
  EXPECT_FALSE(HeaderRouteMatches(Header("x-version", Str(K::SafeRegex, "v[0-9]")), req));
  // ignore_case does not apply to regexes.
  EXPECT_FALSE(HeaderRouteMatches(Header("x-version", Str(K::SafeRegex, "V[0-9]+", true)), req));
}

TEST(RouteTable, HeaderPresentAndAbsent) {
  const HeaderMap with = Request("h", "/", {{"x-debug", "anything"}});
  const HeaderMap without = Request("h", "/");
  EXPECT_TRUE(HeaderRouteMatches(HeaderPresent("x-debug"), with));
  EXPECT_FALSE(HeaderRouteMatches(HeaderPresent("x-debug"), without));
  // Inverted presence: the header must be absent (what present_match: false loads as).
  EXPECT_FALSE(HeaderRouteMatches(HeaderPresent("x-debug", true), with));
  EXPECT_TRUE(HeaderRouteMatches(HeaderPresent("x-debug", true), without));
  // No string_match and no present_match: presence.
  EXPECT_TRUE(HeaderRouteMatches(Header("x-debug", std::nullopt), with));
  EXPECT_FALSE(HeaderRouteMatches(Header("x-debug", std::nullopt), without));
}

TEST(RouteTable, HeaderInvertMatch) {
  using K = StringMatcher::Kind;
  const HeaderMap beta = Request("h", "/", {{"x-channel", "beta"}});
  const HeaderMap stable = Request("h", "/", {{"x-channel", "stable"}});
  EXPECT_FALSE(HeaderRouteMatches(Header("x-channel", Str(K::Exact, "beta"), true), beta));
  EXPECT_TRUE(HeaderRouteMatches(Header("x-channel", Str(K::Exact, "beta"), true), stable));
  EXPECT_TRUE(HeaderRouteMatches(Header("x-channel", Str(K::SafeRegex, "b.*"), true), stable));
  EXPECT_FALSE(HeaderRouteMatches(Header("x-channel", Str(K::Prefix, "st"), true), stable));
}

// Envoy parity: with invert_match and a value matcher, a request that lacks the header does not
// match (Envoy's HeaderUtility::matchHeaders matches a missing header only for present_match
// forms); inverting "no match" for a missing header would wrongly route it.
TEST(RouteTable, HeaderInvertMatchDoesNotMatchMissingHeader) {
  const HeaderMap without = Request("h", "/");
  EXPECT_FALSE(HeaderRouteMatches(
      Header("x-channel", Str(StringMatcher::Kind::Exact, "beta"), true), without));
}

TEST(RouteTable, MultiValuedHeaderIsJoinedWithComma) {
  using K = StringMatcher::Kind;
  const HeaderMap req = Request("h", "/", {{"x-tag", "a"}, {"x-other", "z"}, {"X-Tag", "b"}});
  EXPECT_TRUE(HeaderRouteMatches(Header("x-tag", Str(K::Exact, "a,b")), req));
  EXPECT_FALSE(HeaderRouteMatches(Header("x-tag", Str(K::Exact, "a, b")), req));
  EXPECT_FALSE(HeaderRouteMatches(Header("x-tag", Str(K::Exact, "a")), req));
  EXPECT_FALSE(HeaderRouteMatches(Header("x-tag", Str(K::Exact, "b")), req));
  EXPECT_TRUE(HeaderRouteMatches(Header("x-tag", Str(K::Prefix, "a,")), req));
  EXPECT_TRUE(HeaderRouteMatches(Header("x-tag", Str(K::Suffix, ",b")), req));
  EXPECT_TRUE(HeaderRouteMatches(Header("x-tag", Str(K::SafeRegex, "a,b")), req));
  EXPECT_TRUE(HeaderRouteMatches(Header("x-tag", Str(K::Exact, "a"), true), req));
}

// Envoy parity: multiple values are joined with ',' keeping empty ones: {"", "b"} joins to ",b",
// as Envoy's getAllOfHeaderAsString does.
TEST(RouteTable, MultiValuedHeaderKeepsEmptyValues) {
  const HeaderMap req = Request("h", "/", {{"x-tag", ""}, {"x-tag", "b"}});
  EXPECT_TRUE(HeaderRouteMatches(Header("x-tag", Str(StringMatcher::Kind::Exact, ",b")), req));
}

TEST(RouteTable, PseudoHeadersCanBeMatched) {
  using K = StringMatcher::Kind;
  const HeaderMap post = [] {
    HeaderMap h = Request("h", "/x");
    h.set(":method", "POST");
    return h;
  }();
  EXPECT_TRUE(HeaderRouteMatches(Header(":method", Str(K::Exact, "POST")), post));
  EXPECT_FALSE(HeaderRouteMatches(Header(":method", Str(K::Exact, "GET")), post));
  EXPECT_TRUE(HeaderRouteMatches(Header(":authority", Str(K::Exact, "h")), post));
}

TEST(RouteTable, AllHeaderMatchersMustMatch) {
  using K = StringMatcher::Kind;
  RouteMatch m = PrefixMatch("/");
  m.headers.push_back(Header("x-a", Str(K::Exact, "1")));
  m.headers.push_back(Header("x-b", Str(K::Exact, "2")));
  EXPECT_TRUE(route_matches(m, Request("h", "/", {{"x-a", "1"}, {"x-b", "2"}})));
  EXPECT_FALSE(route_matches(m, Request("h", "/", {{"x-a", "1"}})));
  EXPECT_FALSE(route_matches(m, Request("h", "/", {{"x-a", "1"}, {"x-b", "3"}})));
  // Headers are checked only once the path matched.
  EXPECT_FALSE(route_matches(m, Request("h", "", {{"x-a", "1"}, {"x-b", "2"}})));
}

// ---- Query parameter matchers ---------------------------------------------------------------

bool QueryRouteMatches(const QueryParameterMatcher& q, std::string_view path) {
  RouteMatch m = PrefixMatch("/");
  m.query_parameters.push_back(q);
  return route_matches(m, Request("h", path));
}

TEST(RouteTable, QueryParameterExactAndOthers) {
  using K = StringMatcher::Kind;
  EXPECT_TRUE(QueryRouteMatches(Query("debug", Str(K::Exact, "true")), "/p?debug=true"));
  EXPECT_TRUE(QueryRouteMatches(Query("debug", Str(K::Exact, "true")), "/p?a=1&debug=true&b=2"));
  EXPECT_FALSE(QueryRouteMatches(Query("debug", Str(K::Exact, "true")), "/p?debug=false"));
  EXPECT_FALSE(QueryRouteMatches(Query("debug", Str(K::Exact, "true")), "/p?debug=truex"));
  EXPECT_FALSE(QueryRouteMatches(Query("debug", Str(K::Exact, "true")), "/p?xdebug=true"));
  EXPECT_FALSE(QueryRouteMatches(Query("debug", Str(K::Exact, "true")), "/p"));
  EXPECT_FALSE(QueryRouteMatches(Query("debug", Str(K::Exact, "true")), "/p/debug=true"));
  EXPECT_TRUE(QueryRouteMatches(Query("debug", Str(K::Exact, "TRUE", true)), "/p?debug=true"));
  EXPECT_TRUE(QueryRouteMatches(Query("v", Str(K::Prefix, "1.")), "/p?v=1.2"));
  EXPECT_TRUE(QueryRouteMatches(Query("v", Str(K::SafeRegex, "[0-9]+")), "/p?v=42"));
  EXPECT_FALSE(QueryRouteMatches(Query("v", Str(K::SafeRegex, "[0-9]+")), "/p?v=42a"));
  // Values are matched as sent, not URL-decoded (as Envoy).
  EXPECT_TRUE(QueryRouteMatches(Query("q", Str(K::Exact, "a%20b")), "/p?q=a%20b"));
  // The fragment is not part of the last value.
  EXPECT_TRUE(QueryRouteMatches(Query("q", Str(K::Exact, "x")), "/p?q=x#frag"));
}

TEST(RouteTable, QueryParameterPresent) {
  EXPECT_TRUE(QueryRouteMatches(Query("flag", std::nullopt), "/p?flag"));
  EXPECT_TRUE(QueryRouteMatches(Query("flag", std::nullopt), "/p?flag="));
  EXPECT_TRUE(QueryRouteMatches(Query("flag", std::nullopt), "/p?a=1&flag=yes"));
  EXPECT_FALSE(QueryRouteMatches(Query("flag", std::nullopt), "/p?flags=1"));
  EXPECT_FALSE(QueryRouteMatches(Query("flag", std::nullopt), "/p?"));
  EXPECT_FALSE(QueryRouteMatches(Query("flag", std::nullopt), "/p"));
}

TEST(RouteTable, QueryParameterWithoutValueMatchesEmptyExact) {
  EXPECT_TRUE(QueryRouteMatches(Query("flag", Str(StringMatcher::Kind::Exact, "")), "/p?flag"));
}

TEST(RouteTable, AllQueryParametersMustMatch) {
  using K = StringMatcher::Kind;
  RouteMatch m = PathMatch("/search");
  m.query_parameters.push_back(Query("q", std::nullopt));
  m.query_parameters.push_back(Query("lang", Str(K::Exact, "en")));
  EXPECT_TRUE(route_matches(m, Request("h", "/search?lang=en&q=x")));
  EXPECT_FALSE(route_matches(m, Request("h", "/search?lang=fr&q=x")));
  EXPECT_FALSE(route_matches(m, Request("h", "/search?lang=en")));
  EXPECT_FALSE(route_matches(m, Request("h", "/find?lang=en&q=x")));
}

// Envoy parity: Envoy's QueryParameterMatcher::matches looks at the first value of a
// repeated parameter only ("This preserves the legacy behavior of ignoring all but the first value
// for a given key", ConfigUtility in source/common/router/config_utility.cc), so
// "?role=user&role=admin" must not match role == "admin".
TEST(RouteTable, RepeatedQueryParameterUsesFirstValue) {
  using K = StringMatcher::Kind;
  EXPECT_TRUE(QueryRouteMatches(Query("role", Str(K::Exact, "user")), "/p?role=user&role=admin"));
  EXPECT_FALSE(QueryRouteMatches(Query("role", Str(K::Exact, "admin")), "/p?role=user&role=admin"));
}

// ---- Through the YAML loader ----------------------------------------------------------------

constexpr char kYaml[] = R"(
static_resources:
  listeners:
  - name: main
    address: {socket_address: {address: 127.0.0.1, port_value: 10000}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
          route_config:
            name: local
            virtual_hosts:
            - name: catch_all
              domains: ["*"]
              routes:
              - name: fallback
                match: {prefix: "/"}
                direct_response: {status: 404}
            - name: api
              domains: ["API.Example.com", "api.example.com:8443"]
              routes:
              - name: users_regex
                match: {safe_regex: {regex: "/users/[0-9]+"}}
                direct_response: {status: 200}
              - name: admin_only
                match:
                  prefix: "/admin"
                  case_sensitive: false
                  headers:
                  - name: X-Role
                    string_match: {exact: admin}
                  - name: x-blocked
                    present_match: false
                direct_response: {status: 200}
              - name: search
                match:
                  path: "/search"
                  query_parameters:
                  - name: q
                    present_match: true
                  - name: lang
                    string_match: {prefix: "en"}
                direct_response: {status: 200}
              - name: legacy_header
                match:
                  prefix: "/legacy"
                  headers:
                  - {name: x-version, prefix_match: "v1"}
                direct_response: {status: 200}
            - name: wild
              domains: ["*.example.com"]
              routes:
              - name: wild_all
                match: {prefix: "/"}
                direct_response: {status: 200}
)";

TEST(RouteTable, LoadedYamlConfigRoutesLikeEnvoy) {
  const config::LoadResult result = config::load_from_string(kYaml);
  ASSERT_TRUE(result.ok()) << (result.errors.empty() ? "" : result.errors[0].to_string());
  const auto& hcm = std::get<config::HttpConnectionManager>(
      result.bootstrap->listeners.at(0).filter_chains.at(0).filters.at(0).config);
  const RouteTable table(hcm.route_config);
  const auto route_name =
      [&](std::string_view authority, std::string_view path,
          std::initializer_list<std::pair<std::string_view, std::string_view>> h = {}) {
        const Route* r = table.route(Request(authority, path, h));
        return r ? r->name : std::string("<none>");
      };

  EXPECT_EQ(VhostFor(table, "api.example.com"), "api");  // domains are lower-cased on load
  EXPECT_EQ(VhostFor(table, "Api.Example.Com"), "api");
  EXPECT_EQ(VhostFor(table, "api.example.com:8443"), "api");
  EXPECT_EQ(VhostFor(table, "api.example.com:9999"), "catch_all");
  EXPECT_EQ(VhostFor(table, "www.example.com"), "wild");
  EXPECT_EQ(VhostFor(table, "example.com"), "catch_all");

  EXPECT_EQ(route_name("api.example.com", "/users/7?x=1"), "users_regex");
  EXPECT_EQ(route_name("api.example.com", "/users/7/x"), "<none>");
  EXPECT_EQ(route_name("api.example.com", "/ADMIN/panel", {{"x-role", "admin"}}), "admin_only");
  EXPECT_EQ(route_name("api.example.com", "/admin", {{"x-role", "user"}}), "<none>");
  EXPECT_EQ(route_name("api.example.com", "/admin", {{"x-role", "admin"}, {"x-blocked", "1"}}),
            "<none>");
  EXPECT_EQ(route_name("api.example.com", "/search?q=x&lang=en-GB"), "search");
  EXPECT_EQ(route_name("api.example.com", "/search?lang=en"), "<none>");
  EXPECT_EQ(route_name("api.example.com", "/search?q=x&lang=fr"), "<none>");
  EXPECT_EQ(route_name("api.example.com", "/legacy", {{"x-version", "v1.2"}}), "legacy_header");
  EXPECT_EQ(route_name("api.example.com", "/legacy", {{"x-version", "v2"}}), "<none>");
  EXPECT_EQ(route_name("other.test", "/anything"), "fallback");
}

}  // namespace
}  // namespace sluice::http
