#include "wasm/abi/properties.h"

#include "net/tls.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstring>
#include <vector>

#include "common/header_map.h"
#include "common/strings.h"
#include "http/filter.h"
#include "wasm/abi/node_metadata.h"
#include "wasm/abi/pairs.h"
#include "wasm/plugin.h"

namespace sluice::wasm {

namespace {

// The index of the first NUL at or after `from`, else path.size(): eight bytes at a time (a word
// has a zero byte when subtracting 1 from each byte borrows into a high bit that was clear; the
// lowest such bit is the first zero byte, as only bytes above a zero can borrow falsely).
size_t find_nul(std::string_view path, size_t from) {
  constexpr uint64_t kOnes = 0x0101010101010101ull, kHigh = 0x8080808080808080ull;
  size_t i = from;
  for (; i + 8 <= path.size(); i += 8) {
    uint64_t x;
    std::memcpy(&x, path.data() + i, 8);  // little-endian: the first byte is the lowest
    if (const uint64_t zeros = (x - kOnes) & ~x & kHigh; zeros != 0) {
      return i + static_cast<size_t>(__builtin_ctzll(zeros) / 8);
    }
  }
  while (i < path.size() && path[i] != '\0') ++i;
  return i;
}

// A property path's segments, as views into the path. Telemetry plugins read a dozen properties
// a request, so splitting fills a fixed array: no allocation, no memchr call per segment (both
// showed in profiles). Deeper paths than kMaxSegments name nothing.
class PathParts {
 public:
  static constexpr size_t kMaxSegments = 16;

  explicit PathParts(std::string_view path) {
    size_t start = 0;
    for (;;) {
      const size_t nul = find_nul(path, start);
      if (n_ == kMaxSegments) {
        too_deep_ = true;
        return;
      }
      data_[n_] = path.data() + start;
      sizes_[n_] = nul - start;
      ++n_;
      if (nul == path.size()) break;
      start = nul + 1;
    }
    // The C++ SDK ends the path with a NUL: ignore the empty segment after it.
    if (n_ > 1 && sizes_[n_ - 1] == 0) --n_;
  }

  bool too_deep() const { return too_deep_; }
  size_t size() const { return n_; }
  bool empty() const { return n_ == 0; }
  std::string_view operator[](size_t i) const { return {data_[i], sizes_[i]}; }

 private:
  // Left uninitialized past n_: zeroing them cost more than the split.
  const char* data_[kMaxSegments];
  size_t sizes_[kMaxSegments];
  size_t n_ = 0;
  bool too_deep_ = false;
};

void put_int(std::string& out, int64_t v) {
  char bytes[8];
  std::memcpy(bytes, &v, 8);
  out.assign(bytes, 8);
}

int64_t port_of(std::string_view address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string_view::npos) return 0;
  int64_t port = 0;
  for (char c : address.substr(colon + 1)) {
    if (c < '0' || c > '9') return 0;
    port = port * 10 + (c - '0');
  }
  return port;
}

// A decimal header value (content-length, :status). A module can set these to anything, so
// no digit loop that could overflow: nullopt unless the whole text is a number that fits.
std::optional<int64_t> parse_decimal(std::string_view s) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v < 0) return std::nullopt;
  return v;
}

// `hide` (with the map's ABI type): the names the plugin may not see (sluice.wasm).
WasmResult header_map_value(const HeaderMap* h, std::string& out, const HidePolicy* hide,
                            uint32_t type) {
  if (!h) return WasmResult::NotFound;
  // Multiple values of one name are joined with "," (Envoy's CEL view of headers).
  std::vector<std::pair<std::string, std::string>> joined;
  for (const auto& e : *h) {
    if (hide && hide->hides(type, e.key)) continue;
    auto it = std::find_if(joined.begin(), joined.end(), [&](auto& p) { return p.first == e.key; });
    if (it == joined.end()) {
      joined.emplace_back(e.key, e.value);
    } else {
      it->second += ",";
      it->second += e.value;
    }
  }
  Pairs pairs;
  for (const auto& [k, v] : joined) pairs.emplace_back(k, v);
  encode_pairs(pairs, out);
  return WasmResult::Ok;
}

WasmResult header_value(const HeaderMap* h, std::string_view name, std::string& out,
                        const HidePolicy* hide, uint32_t type) {
  if (!h) return WasmResult::NotFound;
  const LowerCased lower(name);
  if (!h->has(lower) || (hide && hide->hides(type, lower))) return WasmResult::NotFound;
  // Joined with "," like the map view above (Envoy's getAllOfHeaderAsString).
  out.clear();
  for (const auto& e : *h) {
    if (e.key != lower.view()) continue;
    if (!out.empty()) out += ',';
    out += e.value;
  }
  return WasmResult::Ok;
}

WasmResult node_property(const PluginSpec& p, const PathParts& parts, size_t at, std::string& out) {
  if (at >= parts.size()) return WasmResult::SerializationFailure;  // the proto itself: not yet
  const std::string_view field = parts[at];
  if (field == "id") {
    out = p.node_id;
  } else if (field == "cluster") {
    out = p.node_cluster;
  } else if (field == "metadata") {
    // The keys after "metadata", as they are in the path: NUL-joined, contiguous.
    const size_t first = at + 1, last = parts.size() - 1;
    if (first > last) return p.node_metadata->lookup({}, true, out);
    const char* begin = parts[first].data();
    const char* end = parts[last].data() + parts[last].size();
    return p.node_metadata->lookup({begin, static_cast<size_t>(end - begin)}, false, out);
  } else {
    return WasmResult::NotFound;
  }
  return WasmResult::Ok;
}

// A value the module stored itself (set_property), under exactly this path.
WasmResult stored_value(const Context& ctx, std::string_view path, std::string& out) {
  for (const auto& [k, v] : ctx.filter_state) {
    if (k == path) return out = v, WasmResult::Ok;
  }
  return WasmResult::NotFound;
}

}  // namespace

WasmResult get_property(Context& ctx, std::string_view path, std::string& out) {
  const PathParts parts(path);
  if (parts.too_deep()) return stored_value(ctx, path, out);  // no attribute is that deep
  if (parts.empty() || parts[0].empty()) return WasmResult::NotFound;
  const std::string_view top = parts[0];
  const std::string_view field = parts.size() > 1 ? parts[1] : std::string_view();
  const PluginSpec* plugin = ctx.plugin();
  out.clear();

  // Plugin identity: available in every context, root ones included.
  if (parts.size() == 1 && plugin) {
    if (top == "plugin_name") return out = plugin->name, WasmResult::Ok;
    if (top == "plugin_root_id") return out = plugin->root_id, WasmResult::Ok;
    if (top == "plugin_vm_id") return out = plugin->vm_id, WasmResult::Ok;
  }
  if (plugin && top == "node") return node_property(*plugin, parts, 1, out);
  if (plugin && top == "xds" && field == "node") return node_property(*plugin, parts, 2, out);

  http::StreamFilterCallbacks* s = ctx.stream();
  NetworkStream* net = ctx.network();
  if (!s && !net) {
    // Root contexts have no stream; values a module set itself remain readable there too.
    return stored_value(ctx, path, out);
  }
  // Not computed up front: each costs a virtual call, and most properties need neither.
  const auto connection_id = [&] { return s ? s->connection_id() : net->connection_id(); };
  if (top == "connection_id" && parts.size() == 1) {
    put_int(out, static_cast<int64_t>(connection_id()));
    return WasmResult::Ok;
  }
  const StreamInfo& info = s ? s->stream_info() : net->stream_info();
  const auto hide_policy = [plugin]() -> const HidePolicy* {
    return plugin && plugin->hide.any() ? &plugin->hide : nullptr;
  };

  if (s && top == "request" && parts.size() >= 2) {
    const HeaderMap& rq = s->request_headers();
    if (field == "path") return out = std::string(rq.path()), WasmResult::Ok;
    if (field == "url_path") {
      const std::string_view p = rq.path();
      out = std::string(p.substr(0, std::min(p.find('?'), p.size())));
      return WasmResult::Ok;
    }
    if (field == "host") return out = std::string(rq.authority()), WasmResult::Ok;
    if (field == "scheme") {
      out = rq.scheme().empty() ? std::string(rq.get_or_empty("x-forwarded-proto"))
                                : std::string(rq.scheme());
      if (out.empty()) out = "http";
      return WasmResult::Ok;
    }
    if (field == "method") return out = std::string(rq.method()), WasmResult::Ok;
    if (field == "referer") return header_value(&rq, "referer", out, hide_policy(), 0);
    if (field == "useragent") return header_value(&rq, "user-agent", out, hide_policy(), 0);
    if (field == "id") return header_value(&rq, "x-request-id", out, hide_policy(), 0);
    if (field == "protocol") return out = info.protocol, WasmResult::Ok;
    if (field == "query") {
      const std::string_view p = rq.path();
      const size_t q = p.find('?');
      out = q == std::string_view::npos ? std::string() : std::string(p.substr(q + 1));
      return WasmResult::Ok;
    }
    if (field == "headers") {
      if (parts.size() >= 3) return header_value(&rq, parts[2], out, hide_policy(), 0);
      return header_map_value(&rq, out, hide_policy(), 0);
    }
    if (field == "time") {
      put_int(out, std::chrono::duration_cast<std::chrono::nanoseconds>(
                       info.start_time.time_since_epoch())
                       .count());
      return WasmResult::Ok;
    }
    if (field == "duration") {
      if (!info.last_downstream_tx_byte) return WasmResult::NotFound;
      put_int(out, std::chrono::duration_cast<std::chrono::nanoseconds>(
                       *info.last_downstream_tx_byte - info.start_mono)
                       .count());
      return WasmResult::Ok;
    }
    if (field == "size" || field == "total_size") {
      int64_t size = static_cast<int64_t>(info.bytes_received);
      if (const std::string* cl = rq.get("content-length"); cl && field == "size") {
        if (auto parsed = parse_decimal(*cl)) size = *parsed;  // else: the bytes received
      }
      if (field == "total_size") size += static_cast<int64_t>(rq.byte_size());
      put_int(out, size);
      return WasmResult::Ok;
    }
    if (field == "headers_bytes") {
      put_int(out, static_cast<int64_t>(rq.byte_size()));
      return WasmResult::Ok;
    }
    return WasmResult::NotFound;
  }
  if (s && top == "response" && parts.size() >= 2) {
    const HeaderMap* rs = s->response_headers();
    if (field == "code") {
      if (!info.response_code && !rs) return WasmResult::NotFound;
      int64_t code = info.response_code.value_or(0);
      if (rs && !rs->status().empty()) {
        if (auto parsed = parse_decimal(rs->status())) code = *parsed;
      }
      put_int(out, code);
      return WasmResult::Ok;
    }
    if (field == "code_details") return out = info.response_code_details, WasmResult::Ok;
    if (field == "flags") {
      put_int(out, info.response_flags);
      return WasmResult::Ok;
    }
    if (field == "size" || field == "total_size") {
      int64_t size = static_cast<int64_t>(info.bytes_sent);
      if (field == "total_size" && rs) size += static_cast<int64_t>(rs->byte_size());
      put_int(out, size);
      return WasmResult::Ok;
    }
    if (field == "headers") {
      if (parts.size() >= 3) return header_value(rs, parts[2], out, hide_policy(), 2);
      return header_map_value(rs, out, hide_policy(), 2);
    }
    if (field == "headers_bytes") {
      if (!rs) return WasmResult::NotFound;
      put_int(out, static_cast<int64_t>(rs->byte_size()));
      return WasmResult::Ok;
    }
    return WasmResult::NotFound;
  }
  if (top == "source") {
    if (const HidePolicy* hide = hide_policy(); hide && hide->client_address) {
      return WasmResult::NotFound;
    }
  }
  if ((top == "source" || top == "destination") && parts.size() == 2) {
    const std::string& addr =
        top == "source" ? info.downstream_direct_remote_address : info.downstream_local_address;
    if (field == "address") return out = addr, WasmResult::Ok;
    if (field == "port") {
      put_int(out, port_of(addr));
      return WasmResult::Ok;
    }
    return WasmResult::NotFound;
  }
  if (top == "connection" && parts.size() == 2) {
    if (field == "id") {
      put_int(out, static_cast<int64_t>(connection_id()));
      return WasmResult::Ok;
    }
    const net::TlsInfo* tls = info.tls;
    if (field == "mtls") {
      out.assign(1, tls && tls->peer_certificate ? '\1' : '\0');
      return WasmResult::Ok;
    }
    if (!tls) return WasmResult::NotFound;  // the TLS fields of a plain TCP connection
    const std::string* text = nullptr;
    if (field == "tls_version") text = &tls->version;
    if (field == "requested_server_name") text = &tls->sni;
    if (field == "subject_peer_certificate") text = &tls->peer_subject;
    if (field == "subject_local_certificate") text = &tls->local_subject;
    if (field == "uri_san_peer_certificate") text = &tls->peer_uri_san;
    if (field == "uri_san_local_certificate") text = &tls->local_uri_san;
    if (field == "dns_san_peer_certificate") text = &tls->peer_dns_san;
    if (field == "sha256_peer_certificate_digest") text = &tls->peer_sha256;
    if (!text) return WasmResult::NotFound;
    out = *text;
    return WasmResult::Ok;
  }
  if (top == "upstream" && parts.size() == 2) {
    if (info.upstream_host.empty()) return WasmResult::NotFound;
    if (field == "address") return out = info.upstream_host, WasmResult::Ok;
    if (field == "port") {
      put_int(out, port_of(info.upstream_host));
      return WasmResult::Ok;
    }
    return WasmResult::NotFound;
  }
  if (top == "xds" && parts.size() == 2) {
    if (field == "cluster_name") return out = info.upstream_cluster, WasmResult::Ok;
    if (field == "route_name") return out = info.route_name, WasmResult::Ok;
    return WasmResult::NotFound;
  }
  // Older Envoy spelled some of these at the top level.
  if (parts.size() == 1 && top == "cluster_name")
    return out = info.upstream_cluster, WasmResult::Ok;
  if (parts.size() == 1 && top == "route_name") return out = info.route_name, WasmResult::Ok;
  return stored_value(ctx, path, out);
}

WasmResult set_property(Context& ctx, std::string_view path, std::string_view value) {
  if (!ctx.stream() && !ctx.network()) return WasmResult::NotFound;
  for (auto& [k, v] : ctx.filter_state) {
    if (k == path) {
      v = std::string(value);
      return WasmResult::Ok;
    }
  }
  ctx.filter_state.emplace_back(std::string(path), std::string(value));
  return WasmResult::Ok;
}

}  // namespace sluice::wasm
