// Request -> route resolution for one route_config: virtual host by :authority (Envoy's precedence:
// exact, then longest "*.suffix", then longest "prefix.*", then "*"), then the first route whose
// match accepts the request. Built once per config snapshot; read-only and shared by all workers.
#pragma once

#include <string_view>
#include <vector>

#include "common/header_map.h"
#include "config/bootstrap.h"

namespace sluice::http {

class RouteTable {
 public:
  explicit RouteTable(const config::RouteConfiguration& config);

  const config::VirtualHost* find_virtual_host(std::string_view authority) const;
  // nullptr when no route matches (404, flag NR).
  const config::Route* route(const HeaderMap& request_headers,
                             const config::VirtualHost** vhost_out = nullptr) const;

  const config::RouteConfiguration& config() const { return config_; }
  // Whether any route or virtual host disables a filter (typed_per_filter_config): only then
  // must the filters' creation know the route.
  bool disables_filters() const { return disables_filters_; }

 private:
  struct WildcardDomain {
    std::string_view text;  // without the '*'
    const config::VirtualHost* vhost;
  };
  const config::RouteConfiguration& config_;
  std::vector<std::pair<std::string_view, const config::VirtualHost*>> exact_;
  std::vector<WildcardDomain> suffix_;  // longest first
  std::vector<WildcardDomain> prefix_;  // longest first
  const config::VirtualHost* default_ = nullptr;
  bool disables_filters_ = false;
};

bool route_matches(const config::RouteMatch& match, const HeaderMap& headers);

}  // namespace sluice::http
