// The telemetry extension's configuration: the JSON of Istio's stats plugin
// (istio.stats.PluginConfig), read strictly. `{}` gives Istio's standard metrics and labels.
// Kept apart from the plugin so that tests read configurations natively.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../common/extension_namespace.h"
#include "expression.h"

namespace telemetry {
inline namespace SLUICE_SDK_NS {

// Istio's standard labels, in Istio's order. HTTP metrics carry all of them, TCP metrics the
// first kTcpLabelCount (up to connection_security_policy).
enum StandardLabel : size_t {
  kReporter,
  kSourceWorkload,
  kSourceWorkloadNamespace,
  kSourcePrincipal,
  kSourceApp,
  kSourceVersion,
  kSourceCanonicalService,
  kSourceCanonicalRevision,
  kSourceCluster,
  kDestinationWorkload,
  kDestinationWorkloadNamespace,
  kDestinationPrincipal,
  kDestinationApp,
  kDestinationVersion,
  kDestinationService,
  kDestinationServiceName,
  kDestinationServiceNamespace,
  kDestinationCanonicalService,
  kDestinationCanonicalRevision,
  kDestinationCluster,
  kRequestProtocol,
  kResponseFlags,
  kConnectionSecurityPolicy,
  kResponseCode,
  kGrpcResponseStatus,
  kStandardLabelCount
};
inline constexpr size_t kTcpLabelCount = kConnectionSecurityPolicy + 1;
extern const std::array<std::string_view, kStandardLabelCount> kStandardLabelNames;

enum class MetricType : uint32_t { Counter = 0, Gauge = 1, Histogram = 2 };  // the ABI's values

// Where a metric's value comes from.
enum class MetricValue {
  One,               // istio_requests_total
  DurationMs,        // istio_request_duration_milliseconds
  RequestBytes,      // istio_request_bytes: request.total_size
  ResponseBytes,     // istio_response_bytes: response.total_size
  TcpSentBytes,      // bytes toward the client since the last report
  TcpReceivedBytes,  // bytes from the client since the last report
  TcpOpened,
  TcpClosed,
  Expression,  // a `definitions[]` metric: its `value`
};

struct MetricConfig {
  std::string name;        // as defined, with the prefix: "istio_requests_total"
  std::string short_name;  // as `metrics[].name` calls it: "requests_total"
  MetricType type = MetricType::Counter;
  MetricValue value = MetricValue::One;
  bool tcp = false;
  bool drop = false;
  std::optional<Expression> value_expression;  // MetricValue::Expression
  std::optional<Expression> match;             // recorded only when it evaluates to true
  // Indices into Config::label_names, in the order the metric name carries them.
  std::vector<size_t> labels;
  // Label index -> the expression giving its value (overriding a standard one, or a new label).
  std::vector<std::pair<size_t, Expression>> dimensions;
  // No dimensions, no removed tags, no match: shares the standard labels' series table.
  bool plain() const;
};

struct Config {
  std::string stat_prefix = "istio";
  std::string field_separator = ";.;";
  std::string value_separator = "=.=";
  bool disable_host_header_fallback = false;
  bool server_gateway = false;  // reporter: SERVER_GATEWAY (always reports as "destination")
  bool debug = false;
  uint64_t tcp_reporting_ms = 15000;
  uint64_t rotation_ms = 0;  // series idle this long leave the plugin's table; 0: never
  size_t max_peer_cache_size = 1000;
  size_t max_series_per_metric = 10000;
  std::vector<std::string> label_names;  // the standard ones, then added dimensions
  std::vector<MetricConfig> metrics;
  std::vector<std::string> notes;  // accepted fields that have no effect here, to log
};

// nullopt with `*error` naming the field (and expression) at fault.
std::optional<Config> parse_config(std::string_view json, std::string* error);

// "15s", "500ms", "1.5s", "2m", "1h" (protobuf JSON durations are seconds with an "s").
std::optional<uint64_t> parse_duration_ms(std::string_view text);

}  // namespace SLUICE_SDK_NS
}  // namespace telemetry
