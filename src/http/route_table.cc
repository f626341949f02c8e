#include "http/route_table.h"

#include <algorithm>

#include <re2/re2.h>
#include "common/strings.h"

namespace sluice::http {

RouteTable::RouteTable(const config::RouteConfiguration& config) : config_(config) {
  for (const auto& vh : config.virtual_hosts) {
    if (!vh.disabled_filters.empty()) disables_filters_ = true;
    for (const auto& r : vh.routes) {
      if (!r.disabled_filters.empty()) disables_filters_ = true;
    }
    for (const auto& d : vh.domains) {
      if (d == "*") {
        if (!default_) default_ = &vh;
      } else if (d.starts_with("*")) {
        suffix_.push_back({std::string_view(d).substr(1), &vh});
      } else if (d.ends_with("*")) {
        prefix_.push_back({std::string_view(d).substr(0, d.size() - 1), &vh});
      } else {
        exact_.emplace_back(d, &vh);
      }
    }
  }
  auto longer = [](const WildcardDomain& a, const WildcardDomain& b) {
    return a.text.size() > b.text.size();
  };
  std::stable_sort(suffix_.begin(), suffix_.end(), longer);
  std::stable_sort(prefix_.begin(), prefix_.end(), longer);
}

const config::VirtualHost* RouteTable::find_virtual_host(std::string_view authority) const {
  // Domains are stored lower-cased; authorities are usually already lower-case, so only copy when
  // needed.
  std::string lowered;
  if (std::any_of(authority.begin(), authority.end(),
                  [](char c) { return c >= 'A' && c <= 'Z'; })) {
    lowered = to_lower(authority);
    authority = lowered;
  }
  for (const auto& [domain, vh] : exact_) {
    if (domain == authority) return vh;
  }
  // A wildcard must match at least one character ("*.foo.com" does not match ".foo.com").
  for (const auto& w : suffix_) {
    if (authority.size() > w.text.size() && authority.ends_with(w.text)) return w.vhost;
  }
  for (const auto& w : prefix_) {
    if (authority.size() > w.text.size() && authority.starts_with(w.text)) return w.vhost;
  }
  return default_;
}

namespace {

std::string_view path_without_query(std::string_view path) {
  const size_t q = path.find_first_of("?#");
  return q == std::string_view::npos ? path : path.substr(0, q);
}

bool header_matches(const config::HeaderMatcher& m, const HeaderMap& headers) {
  const size_t n = headers.count(m.name);
  if (m.present_match) return (n > 0) != m.invert_match;
  // As Envoy: a value matcher never matches a missing header, inverted or not.
  if (n == 0) return false;
  bool matched;
  if (!m.string_match) {
    matched = true;
  } else if (n == 1) {
    matched = m.string_match->matches(*headers.get(m.name));
  } else {
    // Envoy matches multi-valued headers on the values joined with "," (empty values kept).
    std::string joined;
    bool first = true;
    for (const auto& e : headers) {
      if (e.key != m.name) continue;
      if (!first) joined += ',';
      first = false;
      joined += e.value;
    }
    matched = m.string_match->matches(joined);
  }
  return matched != m.invert_match;
}

bool query_matches(const config::QueryParameterMatcher& m, std::string_view path) {
  const size_t q = path.find('?');
  if (q == std::string_view::npos) return false;
  std::string_view query = path.substr(q + 1);
  if (const size_t hash = query.find('#'); hash != std::string_view::npos) {
    query = query.substr(0, hash);
  }
  for (std::string_view param : split(query, '&')) {
    const size_t eq = param.find('=');
    const std::string_view name = param.substr(0, eq);
    if (name != m.name) continue;
    if (m.present_match || !m.string_match) return true;
    // Only the first occurrence of a repeated parameter counts, as in Envoy.
    const std::string_view value = eq == std::string_view::npos ? "" : param.substr(eq + 1);
    return m.string_match->matches(value);
  }
  return false;
}

}  // namespace

bool route_matches(const config::RouteMatch& match, const HeaderMap& headers) {
  const std::string_view path = headers.path();
  switch (match.kind) {
    case config::RouteMatch::PathKind::Prefix:
      if (match.case_sensitive ? !path.starts_with(match.value)
                               : !starts_with_ignore_case(path, match.value)) {
        return false;
      }
      break;
    case config::RouteMatch::PathKind::Path: {
      const std::string_view p = path_without_query(path);
      if (match.case_sensitive ? p != match.value : !equals_ignore_case(p, match.value)) {
        return false;
      }
      break;
    }
    case config::RouteMatch::PathKind::SafeRegex: {
      const std::string_view p = path_without_query(path);
      if (!RE2::FullMatch(re2::StringPiece(p.data(), p.size()), *match.regex)) return false;
      break;
    }
  }
  for (const auto& h : match.headers) {
    if (!header_matches(h, headers)) return false;
  }
  for (const auto& q : match.query_parameters) {
    if (!query_matches(q, path)) return false;
  }
  return true;
}

const config::Route* RouteTable::route(const HeaderMap& request_headers,
                                       const config::VirtualHost** vhost_out) const {
  const config::VirtualHost* vh = find_virtual_host(request_headers.authority());
  if (vhost_out) *vhost_out = vh;
  if (!vh) return nullptr;
  for (const auto& r : vh->routes) {
    if (route_matches(r.match, request_headers)) return &r;
  }
  return nullptr;
}

}  // namespace sluice::http
