// telemetry: Istio's standard metrics (istio_requests_total, the duration and size histograms and
// the TCP counters) with Istio's labels, plus Istio's HTTP peer metadata exchange, written with
// the Sluice C++ SDK. The same source builds to telemetry.wasm (V8) and to the null-runtime
// plugin sluice.telemetry, and the module runs unchanged in Envoy.
//
// Root ids, as Istio's: `stats_inbound` (a server-side proxy: reporter="destination") and
// `stats_outbound` (a client-side proxy: reporter="source"). Each serves as an HTTP filter
// (envoy.filters.http.wasm) and as a network filter (envoy.filters.network.wasm, TCP metrics).
// Configuration: Istio's stats plugin JSON, see config.h and docs/extensions.md.
//
// Labels travel in the metric name, packed the way Istio packs them ("reporter=.=source;.;...;.;
// istio_requests_total"): Sluice's stats turn that into Prometheus labels once, when the plugin
// defines the series; Envoy does it with Istio's stats_tags regexes. Per request the plugin
// finds the series' metric ids in its own table, so a known series costs a hash lookup and the
// metric updates, never a definition. With the standard HTTP metrics, a known kind of request
// finds its series by a short key of what its labels come from (Shortcut), without writing the
// label values out.
#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "../common/base64.h"
#include "config.h"
#include "expression.h"
#include "peer_metadata.h"
#include "sluice/sdk.h"

namespace {

using telemetry::Config;
using telemetry::MetricConfig;
using telemetry::MetricType;
using telemetry::MetricValue;
using telemetry::Value;
using telemetry::WorkloadInfo;

uint64_t now_ms() { return sluice::current_time_nanoseconds() / 1000000; }

// Envoy's response flag bits (the `response.flags` property) and their letters, in the order
// Envoy prints them.
struct FlagLetters {
  uint32_t bit;
  const char* letters;
};
constexpr FlagLetters kFlagLetters[] = {
    {1u << 0, "LH"},    {1u << 1, "UH"},    {1u << 2, "UT"},   {1u << 3, "LR"},
    {1u << 4, "UR"},    {1u << 5, "UF"},    {1u << 6, "UC"},   {1u << 7, "UO"},
    {1u << 8, "NR"},    {1u << 9, "DI"},    {1u << 10, "FI"},  {1u << 11, "RL"},
    {1u << 12, "UAEX"}, {1u << 13, "RLSE"}, {1u << 14, "DC"},  {1u << 15, "URX"},
    {1u << 16, "SI"},   {1u << 17, "IH"},   {1u << 18, "DPE"}, {1u << 19, "UMSDR"},
    {1u << 20, "RFCF"}, {1u << 21, "NFCF"}, {1u << 22, "DT"},  {1u << 23, "UPE"},
    {1u << 24, "NC"},   {1u << 25, "OM"},
};

std::string response_flags_text(uint64_t flags) {
  if (flags == 0) return "-";
  std::string out;
  for (const FlagLetters& f : kFlagLetters) {
    if ((flags & f.bit) == 0) continue;
    if (!out.empty()) out += ',';
    out += f.letters;
  }
  return out.empty() ? "-" : out;
}

// Property paths joined once, here (segments separated by NUL bytes), not per request.
using namespace std::string_view_literals;
constexpr std::string_view kPathConnectionMtls = "connection\0mtls"sv;
constexpr std::string_view kPathUriSanPeer = "connection\0uri_san_peer_certificate"sv;
constexpr std::string_view kPathUriSanLocal = "connection\0uri_san_local_certificate"sv;
constexpr std::string_view kPathClusterName = "xds\0cluster_name"sv;
constexpr std::string_view kPathRequestHost = "request\0host"sv;
constexpr std::string_view kPathResponseCode = "response\0code"sv;
constexpr std::string_view kPathResponseFlags = "response\0flags"sv;
constexpr std::string_view kPathRequestDuration = "request\0duration"sv;
constexpr std::string_view kPathRequestTotalSize = "request\0total_size"sv;
constexpr std::string_view kPathResponseTotalSize = "response\0total_size"sv;

// The properties a report reads, all in one batch (one crossing into Sluice): the inbound-only
// ones first and the HTTP-only ones last, so each kind of report reads a contiguous run
// (TelemetryRoot::report_batch).
enum ReportProperty : size_t {
  kPropMtls,
  kPropUriSanPeer,
  kPropUriSanLocal,
  kPropClusterName,
  kPropFlags,
  kPropCode,
  kPropDuration,
  kPropRequestTotalSize,
  kPropResponseTotalSize,
  kReportPropertyCount
};
constexpr std::string_view kReportPaths[kReportPropertyCount] = {
    kPathConnectionMtls,  kPathUriSanPeer,       kPathUriSanLocal,
    kPathClusterName,     kPathResponseFlags,    kPathResponseCode,
    kPathRequestDuration, kPathRequestTotalSize, kPathResponseTotalSize};

// Attributes whose values are integers or booleans; every other one is a string.
bool is_int_attribute(const std::vector<std::string>& p) {
  if (p.size() != 2) return p.size() == 1 && p[0] == "connection_id";
  static const std::unordered_set<std::string> kInts = {
      "request.size",         "request.total_size",     "request.duration",
      "request.time",         "request.headers_bytes",  "response.code",
      "response.size",        "response.total_size",    "response.flags",
      "response.grpc_status", "response.headers_bytes", "source.port",
      "destination.port",     "upstream.port",          "connection.id"};
  return kInts.count(p[0] + "." + p[1]) != 0;
}

// The service host a request went to: the host of an Istio cluster name
// ("outbound|9080||reviews.default.svc.cluster.local"), else the Host header without its port.
// A view into one of the two.
std::string_view service_host(std::string_view cluster, std::string_view authority, bool fallback) {
  if (cluster.rfind("outbound|", 0) == 0 || cluster.rfind("inbound|", 0) == 0) {
    const size_t last = cluster.rfind('|');
    if (last != std::string_view::npos && last + 1 < cluster.size()) {
      return cluster.substr(last + 1);
    }
  }
  if (!fallback) return {};
  std::string_view host = authority;
  if (!host.empty() && host.front() != '[') host = host.substr(0, host.find(':'));
  return host;
}

class TelemetryRoot;

// Hashes std::string keys and std::string_view lookups alike.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

// What a report's standard labels are made of, read from the host once per report.
struct LabelInputs {
  const WorkloadInfo* peer = nullptr;                   // the exchanged peer's workload (HTTP only)
  bool mtls = false;                                    // inbound only
  std::string source_principal, destination_principal;  // read only under mTLS
  // The service host: from an Istio cluster name (xds.cluster_name), else from the Host header.
  // Held by the root (its cluster-name cache or its service buffer) until the next report reads
  // its inputs.
  std::string_view service;
  uint64_t flags = 0;  // response.flags
};

// A series: the metric ids of one set of label values, for each metric of a table.
struct Series {
  std::vector<uint32_t> ids;
  uint64_t last_used_ms = 0;
};

// The series of metrics that share their labels (Istio's standard HTTP metrics, for instance):
// one key, one lookup for all of them.
struct SeriesTable {
  std::vector<size_t> metrics;  // indices into Config::metrics
  std::unordered_map<std::string, Series> series;
};

// A request's series found from what its labels are made of (LabelInputs, the response code,
// the protocol), without writing the labels out: a known kind of request costs a short key and
// one lookup instead of 25 label values and a key of all of them.
struct Shortcut {
  Series* series;  // in the plain HTTP table; every shortcut goes before any series does
  // Holds the peer, so no other peer can take its address, which the key holds.
  std::shared_ptr<const WorkloadInfo> peer;
};

class TelemetryRoot : public sluice::RootContext {
 public:
  using RootContext::RootContext;

  bool on_configure(size_t) override;
  void on_tick() override;

  const Config& config() const { return config_; }
  bool inbound() const { return inbound_; }
  const std::string& reporter() const { return reporter_; }
  const WorkloadInfo& local() const { return local_; }
  const std::string& local_id() const { return local_id_; }
  const std::string& local_metadata_header() const { return local_metadata_b64_; }
  // Inbound: the response headers that answer a mesh peer (our id and metadata).
  const sluice::HeaderEdits& peer_reply() const { return peer_reply_; }
  // The properties a report reads: the run of kReportPaths from first_report_property() up to
  // kPropCode (a connection's) or to the end (a request's).
  size_t first_report_property() const { return inbound_ ? kPropMtls : kPropClusterName; }
  sluice::PropertyBatch& report_batch(bool http) { return http ? *http_batch_ : *tcp_batch_; }
  // Where a report keeps its service host (LabelInputs::service): reused, so no allocation.
  std::string& service_buffer() { return service_; }
  // The service host of an Istio cluster name (service_host), remembered for the last name
  // seen: a proxy's requests mostly go to a few clusters, and the name is parsed only when it
  // changes. The view lasts until the next call.
  std::string_view cluster_service(std::string_view cluster) {
    if (cluster != last_cluster_) {
      last_cluster_.assign(cluster);
      last_cluster_service_.assign(service_host(cluster, "", false));
    }
    return last_cluster_service_;
  }

  // The peer whose exchange headers `headers` holds (`*present`: whether it has any). The
  // per-worker cache answers a known id without reading or decoding the metadata. nullptr when
  // they give no workload.
  std::shared_ptr<const WorkloadInfo> peer_from(const sluice::HeaderMap& headers, bool* present);

  // Label values, reused from request to request (their strings keep their capacity).
  std::vector<std::string>& label_scratch() {
    scratch_.resize(config_.label_names.size());
    for (std::string& v : scratch_) v.clear();
    return scratch_;
  }

  // Records one request (HTTP) or one report of a connection (TCP). `values` holds a value per
  // label of Config::label_names (standard ones filled, "" is unknown); `resolve` answers the
  // expressions of dimensions, matches and definitions.
  struct Measurements {
    uint64_t duration_ms = 0, request_bytes = 0, response_bytes = 0;
    uint64_t tcp_sent = 0, tcp_received = 0, tcp_opened = 0, tcp_closed = 0;
  };
  // Returns the series of the plain table it recorded into (nullptr: none).
  Series* record(bool tcp, std::vector<std::string>& values, const Measurements& m,
                 const telemetry::Resolver& resolve);

  std::string& shortcut_key_scratch() {
    shortcut_key_.clear();
    return shortcut_key_;
  }
  // Request shortcuts (see Shortcut): only when the plain HTTP table is all a request records
  // into (no customized HTTP metric, whose dimensions need the label values).
  bool request_shortcuts() const { return request_shortcuts_; }
  Series* find_shortcut(const std::string& key);
  void add_shortcut(const std::string& key, Series* series,
                    const std::shared_ptr<const WorkloadInfo>& peer);
  void record_shortcut(Series& series, const Measurements& m, const telemetry::Resolver& resolve);

  void add_connection(class TelemetryConnection* c) { connections_.insert(c); }
  void remove_connection(class TelemetryConnection* c) { connections_.erase(c); }

 private:
  Series* record_table(SeriesTable& table, std::vector<std::string>& values, const Measurements& m,
                       const telemetry::Resolver& resolve);
  void update_series(const SeriesTable& table, Series& series, const Measurements& m,
                     const telemetry::Resolver& resolve);
  std::string packed_name(const MetricConfig& metric, const std::vector<std::string>& values) const;
  void count_dropped(const MetricConfig& metric);
  void read_local_node();
  void clear_shortcuts() {
    shortcuts_.clear();
    last_shortcut_ = nullptr;
  }
  void remember_peer(std::string_view id, const std::shared_ptr<const WorkloadInfo>& peer) {
    last_peer_id_.assign(id);
    last_peer_ = peer;
  }

  Config config_;
  bool inbound_ = true;
  std::string reporter_;
  WorkloadInfo local_;
  std::string local_id_, local_metadata_b64_;
  sluice::HeaderEdits peer_reply_;
  // Keyed by peer metadata id; looked up by a view of the header (transparent hash).
  std::unordered_map<std::string, std::shared_ptr<const WorkloadInfo>, StringHash, std::equal_to<>>
      peer_cache_;
  // The last peer found or added: consecutive requests mostly come from one peer, whose id is
  // then compared rather than hashed (~70 bytes).
  std::string last_peer_id_;
  std::shared_ptr<const WorkloadInfo> last_peer_;
  // Tables: [0] the plain HTTP metrics, [1] the plain TCP ones, then one per customized metric.
  std::vector<SeriesTable> tables_;
  std::unordered_map<std::string, uint32_t> dropped_ids_;  // metric name -> its dropped counter
  std::string key_;                                        // reused per record
  bool request_shortcuts_ = false;
  std::string shortcut_key_;  // reused per request
  std::unordered_map<std::string, Shortcut> shortcuts_;
  // The last shortcut found or added (a node of shortcuts_: stable until clear_shortcuts()).
  const std::pair<const std::string, Shortcut>* last_shortcut_ = nullptr;
  std::vector<std::string> scratch_;
  std::string service_;
  std::string last_cluster_, last_cluster_service_;              // see cluster_service()
  std::optional<sluice::PropertyBatch> http_batch_, tcp_batch_;  // see report_batch()
  std::unordered_set<class TelemetryConnection*> connections_;
};

// ---- HTTP ------------------------------------------------------------------------------------

class TelemetryStream : public sluice::HttpContext {
 public:
  TelemetryStream(uint32_t id, TelemetryRoot* root) : HttpContext(id, root), root_(root) {}

  sluice::FilterHeadersStatus on_request_headers(uint32_t, bool) override {
    const auto headers = sluice::request_headers();
    grpc_ = headers.get_view("content-type").value_or("").rfind("application/grpc", 0) == 0;
    if (root_->inbound()) {
      // The client's metadata: used for the source_* labels, then removed.
      peer_ = root_->peer_from(headers, &peer_asked_);
      // Our answer to a mesh peer (our own metadata) is put on the response headers by the host
      // when they come; unless this is gRPC (grpc-status), on_response_headers has nothing more
      // to do and is not called.
      if (peer_asked_) {  // (a request from outside the mesh costs no removals)
        headers.remove(telemetry::kPeerMetadataHeader);
        headers.remove(telemetry::kPeerMetadataIdHeader);
        edit_response_headers(&root_->peer_reply(), /*skip_on_response_headers=*/!grpc_);
      } else if (!grpc_) {
        edit_response_headers(nullptr, /*skip_on_response_headers=*/true);
      }
    } else {
      headers.replace(telemetry::kPeerMetadataIdHeader, root_->local_id());
      headers.replace(telemetry::kPeerMetadataHeader, root_->local_metadata_header());
    }
    return sluice::FilterHeadersStatus::Continue;
  }

  sluice::FilterHeadersStatus on_response_headers(uint32_t, bool) override {
    const auto headers = sluice::response_headers();
    if (grpc_) grpc_status_ = headers.get("grpc-status");  // trailers-only answers
    if (!root_->inbound()) {  // (inbound, our reply to a peer is on already: peer_reply())
      bool present;
      peer_ = root_->peer_from(headers, &present);
      if (present) {
        headers.remove(telemetry::kPeerMetadataHeader);
        headers.remove(telemetry::kPeerMetadataIdHeader);
      }
    }
    return sluice::FilterHeadersStatus::Continue;
  }

  sluice::FilterTrailersStatus on_response_trailers(uint32_t) override {
    if (grpc_) {
      if (auto status = sluice::response_trailers().get("grpc-status")) grpc_status_ = status;
    }
    return sluice::FilterTrailersStatus::Continue;
  }

  void on_log() override;

 private:
  TelemetryRoot* root_;
  std::shared_ptr<const WorkloadInfo> peer_;  // shared with the root's cache, which may drop it
  bool peer_asked_ = false;
  bool grpc_ = false;
  std::optional<std::string> grpc_status_;
};

// Istio's `downstream_peer.*` / `upstream_peer.*` attributes, from exchanged metadata.
Value workload_attribute(const WorkloadInfo* w, std::string_view field) {
  if (!w) return Value{};
  const std::string* v = field == "workload"    ? &w->workload
                         : field == "namespace" ? &w->namespace_
                         : field == "app"       ? &w->app
                         : field == "version"   ? &w->version
                         : field == "service"   ? &w->canonical_service
                         : field == "revision"  ? &w->canonical_revision
                         : field == "cluster"   ? &w->cluster
                         : field == "name"      ? &w->name
                                                : nullptr;
  if (!v || v->empty()) return Value{};
  return Value::string(*v);
}

Value property_value(const std::vector<std::string>& path) {
  std::string joined;
  for (const std::string& segment : path) {
    if (!joined.empty()) joined.push_back('\0');
    joined += segment;
  }
  auto raw = sluice::get_property_joined(joined);
  if (!raw) return Value{};
  if (path.size() == 2 && path[0] == "connection" && path[1] == "mtls") {
    return raw->size() == 1 ? Value::boolean((*raw)[0] != 0) : Value{};
  }
  if (is_int_attribute(path)) {
    if (raw->size() != sizeof(int64_t)) return Value{};
    int64_t n;
    std::memcpy(&n, raw->data(), sizeof n);
    return Value::integer(n);
  }
  return Value::string(std::move(*raw));
}

// An expression's attribute for a stream (HTTP: its peer and grpc-status) or a connection (TCP:
// no exchanged peer, no grpc-status): Istio's peer attributes from exchanged metadata, else the
// host's properties.
Value resolve_attribute(const TelemetryRoot& root, const WorkloadInfo* peer,
                        const std::optional<std::string>& grpc_status,
                        const std::vector<std::string>& path) {
  if (path.size() == 2 && (path[0] == "downstream_peer" || path[0] == "upstream_peer")) {
    const bool downstream = path[0] == "downstream_peer";
    return workload_attribute(downstream == root.inbound() ? peer : &root.local(), path[1]);
  }
  if (path.size() == 2 && path[0] == "response" && path[1] == "grpc_status") {
    if (!grpc_status) return Value{};
    auto n = sluice::parse_uint64(*grpc_status);
    return n ? Value::integer(static_cast<int64_t>(*n)) : Value{};
  }
  return property_value(path);
}

uint64_t uint64_of(const std::optional<std::string_view>& raw) {
  if (!raw || raw->size() != sizeof(int64_t)) return 0;
  int64_t v;
  std::memcpy(&v, raw->data(), sizeof v);
  return v < 0 ? 0 : static_cast<uint64_t>(v);
}

// `http`: a request, whose Host header may name the service, and whose code and sizes go into
// `code` and `m` (both may be null for a connection).
LabelInputs read_label_inputs(TelemetryRoot& root, const WorkloadInfo* peer, bool http,
                              int64_t* code, TelemetryRoot::Measurements* m) {
  const size_t first = root.first_report_property();
  const auto values = root.report_batch(http).read();
  // The batch holds the run from `first` on: an outbound report reads no mTLS properties.
  const auto v = [first, values](ReportProperty p) -> std::optional<std::string_view> {
    if (p < first) return std::nullopt;
    return values[p - first];
  };
  // The views last only until the next host call: everything is taken out of them first.
  LabelInputs in;
  in.peer = peer;
  // Principals are the SPIFFE ids of the mTLS certificates; the server side sees both.
  in.mtls = v(kPropMtls) && v(kPropMtls)->size() == 1 && (*v(kPropMtls))[0] != 0;
  if (in.mtls) {
    in.source_principal = v(kPropUriSanPeer).value_or("");
    in.destination_principal = v(kPropUriSanLocal).value_or("");
  }
  in.flags = uint64_of(v(kPropFlags));
  if (http) {
    if (v(kPropCode) && v(kPropCode)->size() == sizeof(int64_t)) {
      std::memcpy(code, v(kPropCode)->data(), sizeof(int64_t));
    } else {
      *code = 0;
    }
    m->duration_ms = uint64_of(v(kPropDuration)) / 1000000;
    m->request_bytes = uint64_of(v(kPropRequestTotalSize));
    m->response_bytes = uint64_of(v(kPropResponseTotalSize));
  }
  // The service host is kept by the root (cluster_service's cache, or the buffer for a Host
  // header's), as the views are not.
  in.service = root.cluster_service(v(kPropClusterName).value_or(""));
  if (in.service.empty() && http && !root.config().disable_host_header_fallback) {
    std::string& service = root.service_buffer();
    service = service_host("", sluice::get_property_view(kPathRequestHost).value_or(""), true);
    in.service = service;
  }
  return in;
}

// Fills the labels both kinds of metrics share (up to connection_security_policy) and the
// response flags.
void fill_shared_labels(const TelemetryRoot& root, const LabelInputs& in,
                        std::vector<std::string>& v) {
  using namespace telemetry;
  const WorkloadInfo* source = root.inbound() ? in.peer : &root.local();
  const WorkloadInfo* destination = root.inbound() ? &root.local() : in.peer;
  v[kReporter] = root.reporter();
  if (source) {
    v[kSourceWorkload] = source->workload;
    v[kSourceWorkloadNamespace] = source->namespace_;
    v[kSourceApp] = source->app;
    v[kSourceVersion] = source->version;
    v[kSourceCanonicalService] = source->canonical_service;
    v[kSourceCanonicalRevision] = source->canonical_revision;
    v[kSourceCluster] = source->cluster;
  }
  if (destination) {
    v[kDestinationWorkload] = destination->workload;
    v[kDestinationWorkloadNamespace] = destination->namespace_;
    v[kDestinationApp] = destination->app;
    v[kDestinationVersion] = destination->version;
    v[kDestinationCanonicalService] = destination->canonical_service;
    v[kDestinationCanonicalRevision] = destination->canonical_revision;
    v[kDestinationCluster] = destination->cluster;
  }
  if (root.inbound()) {
    v[kConnectionSecurityPolicy] = in.mtls ? "mutual_tls" : "none";
    v[kSourcePrincipal] = in.source_principal;
    v[kDestinationPrincipal] = in.destination_principal;
  } else {
    v[kConnectionSecurityPolicy] = "unknown";
  }
  const std::string_view host = in.service;
  v[kDestinationService] = host;
  // "reviews.default.svc.cluster.local": name "reviews", namespace "default".
  const size_t dot = host.find('.');
  if (dot != std::string_view::npos && host.find(".svc.", dot) != std::string_view::npos) {
    v[kDestinationServiceName] = host.substr(0, dot);
    const size_t next = host.find('.', dot + 1);
    v[kDestinationServiceNamespace] = host.substr(dot + 1, next - dot - 1);
  } else {
    v[kDestinationServiceName] = host;
    v[kDestinationServiceNamespace] = v[kDestinationWorkloadNamespace];
  }
  v[kResponseFlags] = response_flags_text(in.flags);
}

void TelemetryStream::on_log() {
  using namespace telemetry;
  TelemetryRoot::Measurements m;
  int64_t code = 0;
  const LabelInputs in = read_label_inputs(*root_, peer_.get(), true, &code, &m);
  const auto resolve = [this](const std::vector<std::string>& p) {
    return resolve_attribute(*root_, peer_.get(), grpc_status_, p);
  };

  std::string* key = nullptr;
  if (root_->request_shortcuts()) {
    // Everything the labels are made of; the strings with their lengths, so no two kinds of
    // request share a key.
    key = &root_->shortcut_key_scratch();
    const auto add_string = [key](std::string_view text) {
      const uint32_t n = static_cast<uint32_t>(text.size());
      key->append(reinterpret_cast<const char*>(&n), sizeof n);
      key->append(text);
    };
    // The fixed part is put together here and appended at once: an append per field showed
    // in the profile (each an out-of-line call and a memcpy call in the wasm build).
    const WorkloadInfo* peer = peer_.get();
    const char bits =
        static_cast<char>((in.mtls ? 1 : 0) | (grpc_ ? 2 : 0) | (grpc_status_ ? 4 : 0));
    const uint32_t service_size = static_cast<uint32_t>(in.service.size());
    char head[sizeof peer + sizeof code + sizeof in.flags + sizeof service_size + sizeof bits];
    char* at = head;
    const auto put = [&at](const auto& field) {
      __builtin_memcpy(at, &field, sizeof field);
      at += sizeof field;
    };
    put(peer);
    put(code);
    put(in.flags);
    put(service_size);
    put(bits);
    key->append(head, sizeof head);
    key->append(in.service);
    if (in.mtls) {
      add_string(in.source_principal);
      add_string(in.destination_principal);
    }
    if (grpc_status_) add_string(*grpc_status_);
    if (Series* known = root_->find_shortcut(*key)) {
      root_->record_shortcut(*known, m, resolve);
      return;
    }
  }

  std::vector<std::string>& values = root_->label_scratch();
  fill_shared_labels(*root_, in, values);
  values[kRequestProtocol] = grpc_ ? "grpc" : "http";
  values[kResponseCode] = std::to_string(code);
  if (grpc_status_) values[kGrpcResponseStatus] = *grpc_status_;
  Series* series = root_->record(false, values, m, resolve);
  if (key && series) root_->add_shortcut(*key, series, peer_);
}

// ---- TCP -------------------------------------------------------------------------------------

class TelemetryConnection : public sluice::NetworkContext {
 public:
  TelemetryConnection(uint32_t id, TelemetryRoot* root) : NetworkContext(id, root), root_(root) {
    root_->add_connection(this);
  }
  ~TelemetryConnection() override { root_->remove_connection(this); }

  sluice::FilterStatus on_downstream_data(size_t size, bool) override {
    received_ += size;
    return sluice::FilterStatus::Continue;
  }
  sluice::FilterStatus on_upstream_data(size_t size, bool) override {
    sent_ += size;
    return sluice::FilterStatus::Continue;
  }
  void on_downstream_connection_close(sluice::PeerType) override { close(); }
  void on_upstream_connection_close(sluice::PeerType) override { close(); }
  // The end of the connection if no close event came first. on_log rather than on_done: the
  // HTTP context needs on_log anyway, so the host can skip on_done for both (sdk-cpp.md).
  void on_log() override { close(); }

  // Adds what happened since the last report (the timer's, or the final one at close).
  void report(bool closing) {
    TelemetryRoot::Measurements m;
    m.tcp_opened = opened_reported_ ? 0 : 1;
    m.tcp_closed = closing ? 1 : 0;
    m.tcp_sent = sent_ - sent_reported_;
    m.tcp_received = received_ - received_reported_;
    if (m.tcp_opened + m.tcp_closed + m.tcp_sent + m.tcp_received == 0) return;
    opened_reported_ = true;
    sent_reported_ = sent_;
    received_reported_ = received_;
    const LabelInputs in = read_label_inputs(*root_, nullptr, false, nullptr, nullptr);
    std::vector<std::string>& values = root_->label_scratch();
    fill_shared_labels(*root_, in, values);
    values[telemetry::kRequestProtocol] = "tcp";
    root_->record(true, values, m, [this](const std::vector<std::string>& p) {
      return resolve_attribute(*root_, nullptr, std::nullopt, p);
    });
  }

 private:
  void close() {
    if (closed_) return;
    closed_ = true;
    report(true);
    root_->remove_connection(this);
  }

  TelemetryRoot* root_;
  uint64_t sent_ = 0, received_ = 0, sent_reported_ = 0, received_reported_ = 0;
  bool opened_reported_ = false, closed_ = false;
};

// ---- the root ----------------------------------------------------------------------------------

void TelemetryRoot::read_local_node() {
  // The node metadata fields Istio exchanges (what a peer's labels are made of).
  std::vector<telemetry::StructField> fields;
  for (const char* key : {"NAME", "NAMESPACE", "WORKLOAD_NAME", "OWNER", "CLUSTER_ID", "MESH_ID",
                          "SERVICE_ACCOUNT", "ISTIO_VERSION", "INSTANCE_IPS", "APP_CONTAINERS"}) {
    auto v = sluice::get_property_string({"node", "metadata", key});
    if (!v || v->empty()) continue;
    telemetry::StructField f{key, {}};
    f.value.kind = telemetry::StructValue::Kind::String;
    f.value.text = std::move(*v);
    fields.push_back(std::move(f));
  }
  for (const char* key : {"LABELS", "PLATFORM_METADATA"}) {
    auto raw = sluice::get_property({"node", "metadata", key});
    if (!raw) continue;
    auto pairs = sluice::parse_pairs(*raw);
    if (!pairs) continue;
    telemetry::StructField f{key, {}};
    f.value.kind = telemetry::StructValue::Kind::Struct;
    for (auto& [k, v] : *pairs) {
      telemetry::StructField item{k, {}};
      item.value.kind = telemetry::StructValue::Kind::String;
      item.value.text = v;
      f.value.fields.push_back(std::move(item));
    }
    fields.push_back(std::move(f));
  }
  local_ = telemetry::workload_from_struct(fields);
  local_id_ = sluice::get_property_string({"node", "id"}).value_or("");
  local_metadata_b64_ = ext_common::base64_encode(telemetry::encode_struct(fields));
}

bool TelemetryRoot::on_configure(size_t) {
  std::string error;
  auto parsed = telemetry::parse_config(sluice::plugin_configuration(), &error);
  if (!parsed) {
    sluice::log_error("telemetry: {}", error);
    return false;
  }
  if (root_id() != "stats_inbound" && root_id() != "stats_outbound") {
    sluice::log_error("telemetry: root_id must be stats_inbound or stats_outbound, not '{}'",
                      root_id());
    return false;
  }
  for (const std::string& note : parsed->notes) sluice::log_warn("telemetry: {}", note);
  config_ = std::move(*parsed);
  inbound_ = root_id() == "stats_inbound";
  const auto report_paths = std::span(kReportPaths).subspan(first_report_property());
  http_batch_.emplace(report_paths);
  tcp_batch_.emplace(report_paths.first(kPropCode - first_report_property()));
  reporter_ = inbound_ || config_.server_gateway ? "destination" : "source";
  read_local_node();
  sluice::HeaderEdits reply;
  reply.replace(telemetry::kPeerMetadataIdHeader, local_id_)
      .replace(telemetry::kPeerMetadataHeader, local_metadata_b64_);
  peer_reply_.assign(reply);
  peer_cache_.clear();
  last_peer_.reset();

  // A reload starts the tables afresh: metric ids stay valid (definitions are idempotent), the
  // next request finds its series again.
  clear_shortcuts();
  tables_.clear();
  tables_.resize(2);
  request_shortcuts_ = true;
  for (size_t i = 0; i < config_.metrics.size(); ++i) {
    const MetricConfig& m = config_.metrics[i];
    if (m.drop) continue;
    if (m.plain()) {
      tables_[m.tcp ? 1 : 0].metrics.push_back(i);
    } else {
      tables_.push_back(SeriesTable{{i}, {}});
      if (!m.tcp) request_shortcuts_ = false;
    }
  }
  if (tables_[0].metrics.empty()) request_shortcuts_ = false;
  const uint64_t tick = config_.rotation_ms > 0
                            ? std::min(config_.tcp_reporting_ms, config_.rotation_ms)
                            : config_.tcp_reporting_ms;
  set_tick_period_milliseconds(static_cast<uint32_t>(tick));
  if (config_.debug) {
    sluice::log_info("telemetry: {} as reporter={}, node {}, workload '{}', {} metrics", root_id(),
                     reporter_, local_id_, local_.workload, config_.metrics.size());
  }
  return true;
}

void TelemetryRoot::on_tick() {
  // Copied: a report may not change the set, but be safe against it.
  std::vector<TelemetryConnection*> open(connections_.begin(), connections_.end());
  for (TelemetryConnection* c : open) c->report(false);
  if (config_.rotation_ms > 0) {
    const uint64_t cutoff = now_ms() - config_.rotation_ms;
    for (SeriesTable& t : tables_) {
      for (auto it = t.series.begin(); it != t.series.end();) {
        if (it->second.last_used_ms >= cutoff) {
          ++it;
          continue;
        }
        clear_shortcuts();  // (they may point at it)
        it = t.series.erase(it);
      }
    }
  }
}

std::shared_ptr<const WorkloadInfo> TelemetryRoot::peer_from(const sluice::HeaderMap& headers,
                                                             bool* present) {
  // A view: looked up before any other host call, copied once the lookup missed.
  const std::optional<std::string_view> id_view =
      headers.get_view(telemetry::kPeerMetadataIdHeader);
  *present = id_view.has_value();
  if (id_view && !id_view->empty()) {
    if (last_peer_ && *id_view == last_peer_id_) return last_peer_;
    if (auto it = peer_cache_.find(*id_view); it != peer_cache_.end()) {
      remember_peer(*id_view, it->second);
      return it->second;
    }
  }
  const std::optional<std::string> id =
      id_view ? std::optional<std::string>(*id_view) : std::nullopt;
  const std::optional<std::string> metadata = headers.get(telemetry::kPeerMetadataHeader);
  if (!metadata) return nullptr;
  *present = true;
  auto bytes = ext_common::base64_decode(*metadata);
  if (!bytes) return nullptr;
  auto fields = telemetry::decode_struct(*bytes);
  if (!fields) return nullptr;
  auto info = std::make_shared<const WorkloadInfo>(telemetry::workload_from_struct(*fields));
  if (!id || id->empty() || config_.max_peer_cache_size == 0) return info;
  // Bounded: a full cache starts over (a proxy talks to few peers, and their ids are stable).
  if (peer_cache_.size() >= config_.max_peer_cache_size) peer_cache_.clear();
  peer_cache_[*id] = info;
  remember_peer(*id, info);
  return info;
}

std::string TelemetryRoot::packed_name(const MetricConfig& metric,
                                       const std::vector<std::string>& values) const {
  std::string name;
  for (size_t label : metric.labels) {
    name += config_.label_names[label];
    name += config_.value_separator;
    if (values[label].empty()) {
      name += "unknown";
    } else {
      // A value may come from a client (a header through a dimension): one that holds a
      // separator would otherwise forge labels. Each separator's middle byte becomes '_'.
      std::string value = values[label];
      for (const std::string* sep : {&config_.field_separator, &config_.value_separator}) {
        for (size_t at = value.find(*sep); at != std::string::npos; at = value.find(*sep, at)) {
          value[at + sep->size() / 2] = '_';
          at += sep->size();
        }
      }
      name += value;
    }
    name += config_.field_separator;
  }
  name += metric.name;
  return name;
}

void TelemetryRoot::count_dropped(const MetricConfig& metric) {
  auto it = dropped_ids_.find(metric.name);
  if (it == dropped_ids_.end()) {
    const std::string name = "metric" + config_.value_separator + metric.name +
                             config_.field_separator + config_.stat_prefix +
                             "_telemetry_series_dropped_total";
    auto id = sluice::define_metric(sluice::Metric::Type::Counter, name);
    if (!id) return;
    it = dropped_ids_.emplace(metric.name, *id).first;
  }
  sluice::increment_metric(it->second, 1);
}

Series* TelemetryRoot::record(bool tcp, std::vector<std::string>& values, const Measurements& m,
                              const telemetry::Resolver& resolve) {
  Series* plain = nullptr;
  for (size_t t = 0; t < tables_.size(); ++t) {
    SeriesTable& table = tables_[t];
    if (table.metrics.empty() || t == (tcp ? 0u : 1u)) continue;
    if (t >= 2 && config_.metrics[table.metrics[0]].tcp != tcp) continue;
    Series* series = record_table(table, values, m, resolve);
    if (t < 2) plain = series;
  }
  return plain;
}

Series* TelemetryRoot::find_shortcut(const std::string& key) {
  if (last_shortcut_ && last_shortcut_->first == key) return last_shortcut_->second.series;
  auto it = shortcuts_.find(key);
  if (it == shortcuts_.end()) return nullptr;
  last_shortcut_ = &*it;
  return it->second.series;
}

void TelemetryRoot::add_shortcut(const std::string& key, Series* series,
                                 const std::shared_ptr<const WorkloadInfo>& peer) {
  // Bounded by the series cap; twice it, as a few kinds of request can share a series (peers
  // of one workload: pods with their own metadata ids). A full map starts over.
  if (shortcuts_.size() >= 2 * config_.max_series_per_metric) clear_shortcuts();
  last_shortcut_ = &*shortcuts_.emplace(key, Shortcut{series, peer}).first;
}

void TelemetryRoot::record_shortcut(Series& series, const Measurements& m,
                                    const telemetry::Resolver& resolve) {
  update_series(tables_[0], series, m, resolve);
}

Series* TelemetryRoot::record_table(SeriesTable& table, std::vector<std::string>& values,
                                    const Measurements& m, const telemetry::Resolver& resolve) {
  const MetricConfig& first = config_.metrics[table.metrics[0]];
  if (first.match) {
    Value v = first.match->evaluate(resolve);
    if (v.kind != Value::Kind::Bool || v.number == 0) return nullptr;
  }
  // A customized metric's own dimensions, on a copy of the values it overrides.
  std::vector<std::pair<size_t, std::string>> saved;
  for (const auto& [label, expression] : first.dimensions) {
    saved.emplace_back(label, values[label]);
    values[label] = expression.evaluate(resolve).to_label().value_or("");
  }
  key_.clear();
  for (size_t label : first.labels) {
    key_ += values[label];
    key_.push_back('\x1f');
  }
  auto it = table.series.find(key_);
  if (it == table.series.end()) {
    if (table.series.size() >= config_.max_series_per_metric) {
      for (size_t i : table.metrics) count_dropped(config_.metrics[i]);
      for (auto& [label, value] : saved) values[label] = std::move(value);
      return nullptr;
    }
    Series s;
    for (size_t i : table.metrics) {
      const MetricConfig& metric = config_.metrics[i];
      const std::string name = packed_name(metric, values);
      auto id = sluice::define_metric(static_cast<sluice::Metric::Type>(metric.type), name);
      if (!id) {
        sluice::log_warn("telemetry: the proxy refused metric {}", metric.name);
        for (auto& [label, value] : saved) values[label] = std::move(value);
        return nullptr;
      }
      s.ids.push_back(*id);
    }
    it = table.series.emplace(key_, std::move(s)).first;
  }
  update_series(table, it->second, m, resolve);
  for (auto& [label, value] : saved) values[label] = std::move(value);
  return &it->second;
}

void TelemetryRoot::update_series(const SeriesTable& table, Series& series, const Measurements& m,
                                  const telemetry::Resolver& resolve) {
  series.last_used_ms = config_.rotation_ms > 0 ? now_ms() : 0;
  for (size_t j = 0; j < table.metrics.size(); ++j) {
    const MetricConfig& metric = config_.metrics[table.metrics[j]];
    int64_t value = 0;
    switch (metric.value) {
      case MetricValue::One:
        value = 1;
        break;
      case MetricValue::DurationMs:
        value = static_cast<int64_t>(m.duration_ms);
        break;
      case MetricValue::RequestBytes:
        value = static_cast<int64_t>(m.request_bytes);
        break;
      case MetricValue::ResponseBytes:
        value = static_cast<int64_t>(m.response_bytes);
        break;
      case MetricValue::TcpSentBytes:
        value = static_cast<int64_t>(m.tcp_sent);
        break;
      case MetricValue::TcpReceivedBytes:
        value = static_cast<int64_t>(m.tcp_received);
        break;
      case MetricValue::TcpOpened:
        value = static_cast<int64_t>(m.tcp_opened);
        break;
      case MetricValue::TcpClosed:
        value = static_cast<int64_t>(m.tcp_closed);
        break;
      case MetricValue::Expression: {
        Value v = metric.value_expression->evaluate(resolve);
        if (v.kind != Value::Kind::Int) continue;  // no value: nothing recorded
        value = v.number;
        break;
      }
    }
    const uint32_t id = series.ids[j];
    if (metric.type == MetricType::Counter) {
      if (value > 0) sluice::increment_metric(id, value);
    } else {  // a gauge is set, a histogram records
      sluice::record_metric(id, static_cast<uint64_t>(value < 0 ? 0 : value));
    }
  }
}

sluice::RegisterContextFactory<TelemetryRoot, TelemetryStream, TelemetryConnection> inbound(
    "stats_inbound");
sluice::RegisterContextFactory<TelemetryRoot, TelemetryStream, TelemetryConnection> outbound(
    "stats_outbound");

}  // namespace
