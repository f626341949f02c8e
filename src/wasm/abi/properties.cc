#include "wasm/abi/properties.h"

#include "net/tls.h"

#include <algorithm>
#include <bit>
#include <charconv>
#include <chrono>
#include <cstring>
#include <iterator>
#include <vector>

#include "common/header_map.h"
#include "common/strings.h"
#include "http/filter.h"
#include "wasm/abi/node_metadata.h"
#include "wasm/abi/pairs.h"
#include "wasm/abi/sluice_functions.h"
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

// What `plugin` hides from its module (sluice.wasm), or nullptr when it hides nothing.
const HidePolicy* hide_policy(const PluginSpec* plugin) {
  return plugin && plugin->hide.any() ? &plugin->hide : nullptr;
}

// A value the module stored itself (set_property), under exactly this path.
WasmResult stored_value(const Context& ctx, std::string_view path, std::string& out) {
  for (const auto& [k, v] : ctx.filter_state) {
    if (k == path) return out = v, WasmResult::Ok;
  }
  return WasmResult::NotFound;
}

// ---- fixed attributes ----------------------------------------------------------------------
// The paths that name one value whatever their context (request.path, response.code,
// xds.cluster_name...), found by one hash lookup of the whole path: a telemetry plugin reads a
// dozen a request, and splitting each path and walking a chain of comparisons cost more than
// the value. Paths with variable parts (header names, node metadata keys) go the long way.
enum class Attribute : uint8_t {
  PluginName,
  PluginRootId,
  PluginVmId,
  ConnectionIdTop,
  ClusterNameTop,
  RouteNameTop,
  RequestPath,
  RequestUrlPath,
  RequestHost,
  RequestScheme,
  RequestMethod,
  RequestReferer,
  RequestUserAgent,
  RequestId,
  RequestProtocol,
  RequestQuery,
  RequestTime,
  RequestDuration,
  RequestSize,
  RequestTotalSize,
  RequestHeadersBytes,
  ResponseCode,
  ResponseCodeDetails,
  ResponseFlags,
  ResponseSize,
  ResponseTotalSize,
  ResponseHeadersBytes,
  SourceAddress,
  SourcePort,
  DestinationAddress,
  DestinationPort,
  ConnectionId,
  ConnectionMtls,
  ConnectionTlsVersion,
  ConnectionSni,
  ConnectionPeerSubject,
  ConnectionLocalSubject,
  ConnectionPeerUriSan,
  ConnectionLocalUriSan,
  ConnectionPeerDnsSan,
  ConnectionPeerSha256,
  UpstreamAddress,
  UpstreamPort,
  XdsClusterName,
  XdsRouteName,
};

struct FixedAttribute {
  std::string_view path;
  Attribute attribute;
};

using namespace std::string_view_literals;
constexpr FixedAttribute kFixedAttributes[] = {
    {"plugin_name"sv, Attribute::PluginName},
    {"plugin_root_id"sv, Attribute::PluginRootId},
    {"plugin_vm_id"sv, Attribute::PluginVmId},
    {"connection_id"sv, Attribute::ConnectionIdTop},
    {"cluster_name"sv, Attribute::ClusterNameTop},  // older Envoy's spellings
    {"route_name"sv, Attribute::RouteNameTop},
    {"request\0path"sv, Attribute::RequestPath},
    {"request\0url_path"sv, Attribute::RequestUrlPath},
    {"request\0host"sv, Attribute::RequestHost},
    {"request\0scheme"sv, Attribute::RequestScheme},
    {"request\0method"sv, Attribute::RequestMethod},
    {"request\0referer"sv, Attribute::RequestReferer},
    {"request\0useragent"sv, Attribute::RequestUserAgent},
    {"request\0id"sv, Attribute::RequestId},
    {"request\0protocol"sv, Attribute::RequestProtocol},
    {"request\0query"sv, Attribute::RequestQuery},
    {"request\0time"sv, Attribute::RequestTime},
    {"request\0duration"sv, Attribute::RequestDuration},
    {"request\0size"sv, Attribute::RequestSize},
    {"request\0total_size"sv, Attribute::RequestTotalSize},
    {"request\0headers_bytes"sv, Attribute::RequestHeadersBytes},
    {"response\0code"sv, Attribute::ResponseCode},
    {"response\0code_details"sv, Attribute::ResponseCodeDetails},
    {"response\0flags"sv, Attribute::ResponseFlags},
    {"response\0size"sv, Attribute::ResponseSize},
    {"response\0total_size"sv, Attribute::ResponseTotalSize},
    {"response\0headers_bytes"sv, Attribute::ResponseHeadersBytes},
    {"source\0address"sv, Attribute::SourceAddress},
    {"source\0port"sv, Attribute::SourcePort},
    {"destination\0address"sv, Attribute::DestinationAddress},
    {"destination\0port"sv, Attribute::DestinationPort},
    {"connection\0id"sv, Attribute::ConnectionId},
    {"connection\0mtls"sv, Attribute::ConnectionMtls},
    {"connection\0tls_version"sv, Attribute::ConnectionTlsVersion},
    {"connection\0requested_server_name"sv, Attribute::ConnectionSni},
    {"connection\0subject_peer_certificate"sv, Attribute::ConnectionPeerSubject},
    {"connection\0subject_local_certificate"sv, Attribute::ConnectionLocalSubject},
    {"connection\0uri_san_peer_certificate"sv, Attribute::ConnectionPeerUriSan},
    {"connection\0uri_san_local_certificate"sv, Attribute::ConnectionLocalUriSan},
    {"connection\0dns_san_peer_certificate"sv, Attribute::ConnectionPeerDnsSan},
    {"connection\0sha256_peer_certificate_digest"sv, Attribute::ConnectionPeerSha256},
    {"upstream\0address"sv, Attribute::UpstreamAddress},
    {"upstream\0port"sv, Attribute::UpstreamPort},
    {"xds\0cluster_name"sv, Attribute::XdsClusterName},
    {"xds\0route_name"sv, Attribute::XdsRouteName},
};

// An open-addressed table of kFixedAttributes, hashed on the path's size and three of its bytes:
// a few instructions, where a general string hash cost more than the old comparisons did. Paths
// whose hashes collide are found by probing on; every probe compares the whole path.
class FixedAttributeTable {
 public:
  FixedAttributeTable() {
    for (const FixedAttribute& f : kFixedAttributes) {
      size_t i = hash(f.path);
      while (slots_[i] != nullptr) i = (i + 1) % kSlots;
      slots_[i] = &f;
    }
  }

  const FixedAttribute* find(std::string_view path) const {
    if (path.size() < 2) return nullptr;
    for (size_t i = hash(path);; i = (i + 1) % kSlots) {
      const FixedAttribute* f = slots_[i];
      if (f == nullptr) return nullptr;
      if (f->path == path) return f;
    }
  }

 private:
  static constexpr size_t kSlots = 256;  // more than four times the entries: short probes
  static_assert(std::size(kFixedAttributes) * 4 < kSlots);

  static size_t hash(std::string_view p) {  // p.size() >= 2 (every fixed path's is)
    const auto byte = [&](size_t i) { return static_cast<size_t>(static_cast<uint8_t>(p[i])); };
    return (p.size() * 131 + byte(0) * 31 + byte(p.size() - 1) * 7 + byte(p.size() - 2) * 57) %
           kSlots;
  }

  const FixedAttribute* slots_[kSlots] = {};
};

const Attribute* find_fixed(std::string_view path) {
  static const FixedAttributeTable table;
  const FixedAttribute* f = table.find(path);
  return f ? &f->attribute : nullptr;
}

// The value of a fixed attribute; `path` is what the module asked for. Where the attribute does
// not apply (no plugin, no stream, a request attribute of a TCP connection), the answer is a
// value the module stored under that path itself, as for any unknown path.
WasmResult evaluate(Context& ctx, Attribute a, std::string_view path, std::string& out) {
  using A = Attribute;
  const PluginSpec* plugin = ctx.plugin();
  switch (a) {  // identity: every context, root ones included
    case A::PluginName:
      return plugin ? (out = plugin->name, WasmResult::Ok) : stored_value(ctx, path, out);
    case A::PluginRootId:
      return plugin ? (out = plugin->root_id, WasmResult::Ok) : stored_value(ctx, path, out);
    case A::PluginVmId:
      return plugin ? (out = plugin->vm_id, WasmResult::Ok) : stored_value(ctx, path, out);
    default:
      break;
  }
  http::StreamFilterCallbacks* s = ctx.stream();
  NetworkStream* net = ctx.network();
  if (!s && !net) return stored_value(ctx, path, out);  // root contexts have no stream
  const StreamInfo& info = s ? s->stream_info() : net->stream_info();
  const auto connection_id = [&] { return s ? s->connection_id() : net->connection_id(); };

  if (a >= A::RequestPath && a <= A::RequestHeadersBytes) {
    if (!s) return stored_value(ctx, path, out);  // a TCP connection has no request
    const HeaderMap& rq = s->request_headers();
    switch (a) {
      case A::RequestPath:
        return out = rq.path(), WasmResult::Ok;
      case A::RequestUrlPath: {
        const std::string_view p = rq.path();
        return out = p.substr(0, std::min(p.find('?'), p.size())), WasmResult::Ok;
      }
      case A::RequestHost:
        return out = rq.authority(), WasmResult::Ok;
      case A::RequestScheme:
        out = rq.scheme().empty() ? rq.get_or_empty("x-forwarded-proto") : rq.scheme();
        if (out.empty()) out = "http";
        return WasmResult::Ok;
      case A::RequestMethod:
        return out = rq.method(), WasmResult::Ok;
      case A::RequestReferer:
        return header_value(&rq, "referer", out, hide_policy(plugin), 0);
      case A::RequestUserAgent:
        return header_value(&rq, "user-agent", out, hide_policy(plugin), 0);
      case A::RequestId:
        return header_value(&rq, "x-request-id", out, hide_policy(plugin), 0);
      case A::RequestProtocol:
        return out = info.protocol, WasmResult::Ok;
      case A::RequestQuery: {
        const std::string_view p = rq.path();
        const size_t q = p.find('?');
        if (q != std::string_view::npos) out = p.substr(q + 1);
        return WasmResult::Ok;
      }
      case A::RequestTime:
        put_int(out, std::chrono::duration_cast<std::chrono::nanoseconds>(
                         info.start_time.time_since_epoch())
                         .count());
        return WasmResult::Ok;
      case A::RequestDuration:
        if (!info.last_downstream_tx_byte) return WasmResult::NotFound;
        put_int(out, std::chrono::duration_cast<std::chrono::nanoseconds>(
                         *info.last_downstream_tx_byte - info.start_mono)
                         .count());
        return WasmResult::Ok;
      case A::RequestSize: {
        int64_t size = static_cast<int64_t>(info.bytes_received);
        if (const std::string* cl = rq.get("content-length")) {
          if (auto parsed = parse_decimal(*cl)) size = *parsed;  // else: the bytes received
        }
        put_int(out, size);
        return WasmResult::Ok;
      }
      case A::RequestTotalSize:
        put_int(out, static_cast<int64_t>(info.bytes_received + rq.byte_size()));
        return WasmResult::Ok;
      default:  // RequestHeadersBytes
        put_int(out, static_cast<int64_t>(rq.byte_size()));
        return WasmResult::Ok;
    }
  }
  if (a >= A::ResponseCode && a <= A::ResponseHeadersBytes) {
    if (!s) return stored_value(ctx, path, out);
    const HeaderMap* rs = s->response_headers();
    switch (a) {
      case A::ResponseCode: {
        if (!info.response_code && !rs) return WasmResult::NotFound;
        int64_t code = info.response_code.value_or(0);
        if (rs && !rs->status().empty()) {
          if (auto parsed = parse_decimal(rs->status())) code = *parsed;
        }
        put_int(out, code);
        return WasmResult::Ok;
      }
      case A::ResponseCodeDetails:
        return out = info.response_code_details, WasmResult::Ok;
      case A::ResponseFlags:
        put_int(out, info.response_flags);
        return WasmResult::Ok;
      case A::ResponseSize:
        put_int(out, static_cast<int64_t>(info.bytes_sent));
        return WasmResult::Ok;
      case A::ResponseTotalSize:
        put_int(out, static_cast<int64_t>(info.bytes_sent + (rs ? rs->byte_size() : 0)));
        return WasmResult::Ok;
      default:  // ResponseHeadersBytes
        if (!rs) return WasmResult::NotFound;
        put_int(out, static_cast<int64_t>(rs->byte_size()));
        return WasmResult::Ok;
    }
  }
  const net::TlsInfo* tls = info.tls;
  const auto tls_text = [&](const std::string net::TlsInfo::*field) {
    if (!tls) return WasmResult::NotFound;  // the TLS fields of a plain TCP connection
    out = tls->*field;
    return WasmResult::Ok;
  };
  switch (a) {
    case A::ConnectionIdTop:
    case A::ConnectionId:
      put_int(out, static_cast<int64_t>(connection_id()));
      return WasmResult::Ok;
    case A::ClusterNameTop:
    case A::XdsClusterName:
      return out = info.upstream_cluster, WasmResult::Ok;
    case A::RouteNameTop:
    case A::XdsRouteName:
      return out = info.route_name, WasmResult::Ok;
    case A::SourceAddress:
    case A::SourcePort:
    case A::DestinationAddress:
    case A::DestinationPort: {
      const bool source = a == A::SourceAddress || a == A::SourcePort;
      if (const HidePolicy* hide = hide_policy(plugin); source && hide && hide->client_address) {
        return WasmResult::NotFound;
      }
      const std::string& addr =
          source ? info.downstream_direct_remote_address : info.downstream_local_address;
      if (a == A::SourceAddress || a == A::DestinationAddress) return out = addr, WasmResult::Ok;
      put_int(out, port_of(addr));
      return WasmResult::Ok;
    }
    case A::ConnectionMtls:
      out.assign(1, tls && tls->peer_certificate ? '\1' : '\0');
      return WasmResult::Ok;
    case A::ConnectionTlsVersion:
      return tls_text(&net::TlsInfo::version);
    case A::ConnectionSni:
      return tls_text(&net::TlsInfo::sni);
    case A::ConnectionPeerSubject:
      return tls_text(&net::TlsInfo::peer_subject);
    case A::ConnectionLocalSubject:
      return tls_text(&net::TlsInfo::local_subject);
    case A::ConnectionPeerUriSan:
      return tls_text(&net::TlsInfo::peer_uri_san);
    case A::ConnectionLocalUriSan:
      return tls_text(&net::TlsInfo::local_uri_san);
    case A::ConnectionPeerDnsSan:
      return tls_text(&net::TlsInfo::peer_dns_san);
    case A::ConnectionPeerSha256:
      return tls_text(&net::TlsInfo::peer_sha256);
    case A::UpstreamAddress:
      if (info.upstream_host.empty()) return WasmResult::NotFound;
      return out = info.upstream_host, WasmResult::Ok;
    case A::UpstreamPort:
      if (info.upstream_host.empty()) return WasmResult::NotFound;
      put_int(out, port_of(info.upstream_host));
      return WasmResult::Ok;
    default:
      return WasmResult::NotFound;  // not reached: every attribute is handled above
  }
}

}  // namespace

WasmResult get_property(Context& ctx, std::string_view path, std::string& out) {
  out.clear();
  // The C++ SDKs end a path with a NUL: the same path.
  const std::string_view exact =
      !path.empty() && path.back() == '\0' ? path.substr(0, path.size() - 1) : path;
  if (const Attribute* a = find_fixed(exact)) return evaluate(ctx, *a, path, out);

  // The rest: paths with variable parts, and names of nothing.
  const PathParts parts(path);
  if (parts.too_deep()) return stored_value(ctx, path, out);  // no attribute is that deep
  if (parts.empty() || parts[0].empty()) return WasmResult::NotFound;
  const std::string_view top = parts[0];
  const std::string_view field = parts.size() > 1 ? parts[1] : std::string_view();
  const PluginSpec* plugin = ctx.plugin();
  if (plugin && top == "node") return node_property(*plugin, parts, 1, out);
  if (plugin && top == "xds" && field == "node") return node_property(*plugin, parts, 2, out);

  http::StreamFilterCallbacks* s = ctx.stream();
  if (!s && !ctx.network()) return stored_value(ctx, path, out);
  if (s && (top == "request" || top == "response") && parts.size() >= 2) {
    const bool request = top == "request";
    if (field == "headers") {
      const HeaderMap* map = request ? &s->request_headers() : s->response_headers();
      const uint32_t type = request ? 0 : 2;
      if (parts.size() >= 3) return header_value(map, parts[2], out, hide_policy(plugin), type);
      return header_map_value(map, out, hide_policy(plugin), type);
    }
    // A fixed attribute with more segments after it ("request\0path\0x") names the attribute.
    const std::string_view first_two = path.substr(0, top.size() + 1 + field.size());
    if (const Attribute* a = find_fixed(first_two)) return evaluate(ctx, *a, path, out);
    return WasmResult::NotFound;
  }
  if (top == "source") {
    if (const HidePolicy* hide = hide_policy(plugin); hide && hide->client_address) {
      return WasmResult::NotFound;
    }
  }
  // An unknown field of these: nothing (the known ones are fixed attributes).
  if (parts.size() == 2 && (top == "source" || top == "destination" || top == "connection" ||
                            top == "upstream" || top == "xds")) {
    return WasmResult::NotFound;
  }
  return stored_value(ctx, path, out);
}

namespace {

// The batch's u32s are little-endian, as every host Sluice builds for is.
static_assert(std::endian::native == std::endian::little);

uint32_t load_u32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

void store_u32(char* p, uint32_t v) { std::memcpy(p, &v, sizeof v); }

}  // namespace

WasmResult get_properties(Context& ctx, std::string_view request, std::string& out) {
  if (request.size() < 4) return WasmResult::BadArgument;
  const uint32_t n = load_u32(request.data());
  if (n > sluice_functions::kMaxBatchedProperties) return WasmResult::BadArgument;
  const size_t sizes_end = 4 + size_t{4} * n;
  if (request.size() < sizes_end) return WasmResult::BadArgument;
  size_t paths_size = 0;
  for (uint32_t i = 0; i < n; ++i) paths_size += load_u32(request.data() + 4 + 4 * i);
  if (paths_size != request.size() - sizes_end) return WasmResult::BadArgument;

  const size_t base = out.size();
  out.resize(base + size_t{4} * n);  // the sizes, filled in below
  thread_local std::string value;    // reused: cluster names and addresses outgrow SSO
  size_t at = sizes_end;
  for (uint32_t i = 0; i < n; ++i) {
    const uint32_t path_size = load_u32(request.data() + 4 + 4 * i);
    const std::string_view path = request.substr(at, path_size);
    at += path_size;
    uint32_t size = sluice_functions::kNoProperty;
    if (get_property(ctx, path, value) == WasmResult::Ok && value.size() < size) {
      size = static_cast<uint32_t>(value.size());
      out += value;
    }
    store_u32(out.data() + base + 4 * i, size);
  }
  return WasmResult::Ok;
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
