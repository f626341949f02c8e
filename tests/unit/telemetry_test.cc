// The telemetry extension's pure parts, compiled natively: the CEL subset, the configuration
// reader and the peer metadata wire format. (The plugin itself runs in e2e.telemetry_test.)
#include <gtest/gtest.h>

#include <map>

#include "../../extensions/common/base64.h"
#include "../../extensions/telemetry/config.h"
#include "../../extensions/telemetry/expression.h"
#include "../../extensions/telemetry/peer_metadata.h"

namespace telemetry {
namespace {

using Attributes = std::map<std::string, Value>;

Value eval(std::string_view text, const Attributes& attributes = {}) {
  std::string error;
  auto e = Expression::parse(text, &error);
  EXPECT_TRUE(e) << text << ": " << error;
  if (!e) return Value{};
  return e->evaluate([&](const std::vector<std::string>& path) {
    std::string joined;
    for (const auto& p : path) joined += (joined.empty() ? "" : "/") + p;
    auto it = attributes.find(joined);
    return it == attributes.end() ? Value{} : it->second;
  });
}

std::string parse_error(std::string_view text) {
  std::string error;
  auto e = Expression::parse(text, &error);
  EXPECT_FALSE(e) << text << " parsed";
  return error;
}

TEST(TelemetryExpression, LiteralsPathsAndOperators) {
  const Attributes a = {{"request/host", Value::string("shop.example")},
                        {"response/code", Value::integer(503)},
                        {"request/headers/x-tenant", Value::string("acme")},
                        {"node/metadata/MESH_ID", Value::string("mesh1")},
                        {"connection/mtls", Value::boolean(true)}};
  EXPECT_EQ(eval("request.host", a).text, "shop.example");
  EXPECT_EQ(eval("request.headers['x-tenant']", a).text, "acme");
  EXPECT_EQ(eval("node.metadata[\"MESH_ID\"]", a).text, "mesh1");
  EXPECT_EQ(eval("response.code", a).number, 503);
  EXPECT_EQ(eval("string(response.code)", a).text, "503");
  EXPECT_EQ(eval("string(connection.mtls)", a).text, "true");
  EXPECT_EQ(eval("'a' + \"b\" + request.host", a).text, "abshop.example");
  EXPECT_EQ(eval("response.code + 1", a).number, 504);
  EXPECT_EQ(eval("response.code == 503 ? 'fail' : 'ok'", a).text, "fail");
  EXPECT_EQ(eval("response.code != 503 ? 'fail' : 'ok'", a).text, "ok");
  EXPECT_EQ(eval("has(request.headers['x-tenant']) && connection.mtls", a).number, 1);
  EXPECT_EQ(eval("has(request.headers['x-other'])", a).number, 0);
  EXPECT_EQ(eval("(request.host == 'x' || response.code == 503) ? 1 : 2", a).number, 1);
  EXPECT_EQ(eval("-5").number, -5);
  EXPECT_EQ(eval("true ? 'a' : 'b'").text, "a");
  // Nested conditionals associate to the right.
  EXPECT_EQ(eval("false ? 'a' : true ? 'b' : 'c'").text, "b");
}

TEST(TelemetryExpression, MissingValuesAndMismatchedTypes) {
  const Attributes a = {{"response/code", Value::integer(200)}};
  EXPECT_FALSE(eval("request.host", a).present());
  EXPECT_FALSE(eval("string(request.host)", a).present());
  EXPECT_FALSE(eval("response.code + 'x'", a).present());
  EXPECT_FALSE(eval("request.host == 'x'", a).present());
  // Values of different types are simply unequal.
  EXPECT_EQ(eval("response.code == '200'", a).number, 0);
  // && and || absorb a missing side when the other one decides.
  EXPECT_EQ(eval("request.host == 'x' || response.code == 200", a).number, 1);
  EXPECT_EQ(eval("request.host == 'x' && response.code == 201", a).number, 0);
  EXPECT_FALSE(eval("request.host == 'x' && response.code == 200", a).present());
  EXPECT_FALSE(eval("response.code ? 'a' : 'b'", a).present());
  EXPECT_EQ(eval("'a\\'b'").text, "a'b");
  EXPECT_EQ(Value::integer(7).to_label(), "7");
  EXPECT_EQ(Value{}.to_label(), std::nullopt);
}

TEST(TelemetryExpression, RefusesWhatItDoesNotEvaluate) {
  EXPECT_EQ(parse_error("response.code < 500"),
            "unsupported '<' at byte 14 in 'response.code < 500'");
  EXPECT_NE(parse_error("size(request.path)").find("unsupported 'size'"), std::string::npos);
  EXPECT_NE(parse_error("request.path.startsWith('/api')").find("unsupported '('"),
            std::string::npos);
  EXPECT_NE(parse_error("!connection.mtls").find("unsupported '!'"), std::string::npos);
  EXPECT_NE(parse_error("'a' in ['a']").find("unsupported 'in'"), std::string::npos);
  EXPECT_NE(parse_error("request.host = 'a'").find("unsupported '='"), std::string::npos);
  EXPECT_NE(parse_error("1.5").find("only integer literals"), std::string::npos);
  EXPECT_NE(parse_error("request.headers[x]").find("string literal"), std::string::npos);
  EXPECT_NE(parse_error("'open").find("unterminated string"), std::string::npos);
  EXPECT_NE(parse_error("a ? b").find("expected ':'"), std::string::npos);
  EXPECT_NE(parse_error("(a").find("expected ')'"), std::string::npos);
  EXPECT_NE(parse_error("").find("unexpected end"), std::string::npos);
  EXPECT_NE(parse_error("a +").find("unexpected end"), std::string::npos);
  EXPECT_NE(parse_error(std::string(100, '(') + "1" + std::string(100, ')')).find("too deep"),
            std::string::npos);
}

TEST(TelemetryConfig, EmptyGivesIstiosStandardMetrics) {
  std::string error;
  auto c = parse_config("{}", &error);
  ASSERT_TRUE(c) << error;
  ASSERT_EQ(c->metrics.size(), 8u);
  EXPECT_EQ(c->metrics[0].name, "istio_requests_total");
  EXPECT_EQ(c->metrics[0].type, MetricType::Counter);
  EXPECT_EQ(c->metrics[1].name, "istio_request_duration_milliseconds");
  EXPECT_EQ(c->metrics[1].type, MetricType::Histogram);
  EXPECT_EQ(c->metrics[4].name, "istio_tcp_sent_bytes_total");
  EXPECT_TRUE(c->metrics[4].tcp);
  EXPECT_EQ(c->metrics[0].labels.size(), 25u);
  EXPECT_EQ(c->metrics[4].labels.size(), 23u);
  EXPECT_EQ(c->label_names[c->metrics[4].labels.back()], "connection_security_policy");
  for (const auto& m : c->metrics) EXPECT_TRUE(m.plain()) << m.name;
  EXPECT_EQ(c->tcp_reporting_ms, 15000u);
  EXPECT_EQ(c->rotation_ms, 0u);
  EXPECT_FALSE(c->server_gateway);
  // An empty configuration is the same as {}.
  EXPECT_TRUE(parse_config("  ", &error));
}

TEST(TelemetryConfig, IstioFieldsDimensionsAndDefinitions) {
  std::string error;
  // A match outside the subset refuses the whole configuration, naming the metric.
  auto c = parse_config(R"({
    "definitions": [{"name": "error_requests", "value": "response.code == 500 ? 1 : 0",
                     "type": "COUNTER"}],
    "metrics": [{"name": "error_requests", "match": "response.code >= 0 || true", "drop": false}]
    })",
                        &error);
  EXPECT_FALSE(c);
  EXPECT_NE(error.find("match: unsupported '>='"), std::string::npos) << error;
  EXPECT_NE(error.find("error_requests"), std::string::npos) << error;

  c = parse_config(R"({
    "reporter": "SERVER_GATEWAY",
    "disable_host_header_fallback": true,
    "tcp_reporting_duration": "2.5s",
    "rotation_interval": "10m",
    "max_peer_cache_size": "50",
    "max_series_per_metric": 3,
    "definitions": [{"name": "error_requests", "value": "response.code == 500 ? 1 : 0"}],
    "metrics": [
      {"dimensions": {"mesh": "node.metadata['MESH_ID']"}},
      {"name": "requests_total", "dimensions": {"request_protocol": "request.protocol"},
       "tags_to_remove": ["response_flags", "source_principal"]},
      {"name": "istio_request_bytes", "drop": true}
    ]})",
                   &error);
  ASSERT_TRUE(c) << error;
  EXPECT_TRUE(c->server_gateway);
  EXPECT_TRUE(c->disable_host_header_fallback);
  EXPECT_EQ(c->tcp_reporting_ms, 2500u);
  EXPECT_EQ(c->rotation_ms, 600000u);
  EXPECT_EQ(c->max_peer_cache_size, 50u);
  EXPECT_EQ(c->max_series_per_metric, 3u);
  ASSERT_EQ(c->metrics.size(), 9u);
  ASSERT_EQ(c->label_names.size(), 26u);
  EXPECT_EQ(c->label_names[25], "mesh");

  const MetricConfig& requests = c->metrics[0];
  EXPECT_FALSE(requests.plain());
  // 25 standard - 2 removed + mesh; request_protocol overridden in place.
  ASSERT_EQ(requests.labels.size(), 24u);
  EXPECT_EQ(c->label_names[requests.labels.back()], "mesh");
  ASSERT_EQ(requests.dimensions.size(), 2u);
  EXPECT_EQ(c->label_names[requests.dimensions[1].first], "request_protocol");
  for (size_t l : requests.labels) {
    EXPECT_NE(c->label_names[l], "response_flags");
    EXPECT_NE(c->label_names[l], "source_principal");
  }
  EXPECT_TRUE(c->metrics[2].drop);  // request_bytes
  const MetricConfig& errors = c->metrics[8];
  EXPECT_EQ(errors.name, "istio_error_requests");
  EXPECT_EQ(errors.value, MetricValue::Expression);
  ASSERT_TRUE(errors.value_expression);
  EXPECT_EQ(errors.value_expression
                ->evaluate([](const std::vector<std::string>&) { return Value::integer(500); })
                .number,
            1);
  // The name-less override reached every metric, the new one and TCP ones too.
  EXPECT_EQ(c->label_names[errors.labels.back()], "mesh");
  EXPECT_EQ(c->label_names[c->metrics[5].labels.back()], "mesh");
}

TEST(TelemetryConfig, ClearErrors) {
  auto error_of = [](std::string_view json) {
    std::string error;
    EXPECT_FALSE(parse_config(json, &error)) << json;
    return error;
  };
  EXPECT_NE(error_of("[").find("not a JSON object"), std::string::npos);
  EXPECT_EQ(error_of(R"({"verbose": true})"), "unknown field 'verbose'");
  EXPECT_EQ(error_of(R"({"reporter": "CLIENT"})"),
            "'reporter' must be UNSPECIFIED or SERVER_GATEWAY, not 'CLIENT'");
  EXPECT_NE(error_of(R"({"tcp_reporting_duration": "soon"})").find("not a duration"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"tcp_reporting_duration": "10ms"})").find("at least 100ms"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"metrics": [{"name": "nope"}]})").find("'nope' is no metric"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"metrics": [{"dimensions": {"x": "a < b"}}]})")
                .find("dimension 'x': unsupported '<'"),
            std::string::npos);
  EXPECT_NE(
      error_of(R"({"metrics": [{"dimensions": {"bad-name": "'a'"}}]})").find("not a label name"),
      std::string::npos);
  EXPECT_NE(
      error_of(R"({"metrics": [{"name": "requests_total", "value": "1"}]})").find("definitions[]"),
      std::string::npos);
  EXPECT_NE(error_of(R"({"definitions": [{"name": "x"}]})").find("needs a 'value'"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"definitions": [{"name": "requests_total", "value": "1"}]})")
                .find("already a metric"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"definitions": [{"name": "x", "value": "1", "type": "SUMMARY"}]})")
                .find("COUNTER, GAUGE or HISTOGRAM"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"max_series_per_metric": 0})").find("at least 1"), std::string::npos);
  EXPECT_NE(error_of(R"({"max_series_per_metric": -1})").find("integer"), std::string::npos);
}

TEST(TelemetryConfig, Durations) {
  EXPECT_EQ(parse_duration_ms("15s"), 15000u);
  EXPECT_EQ(parse_duration_ms("0.5s"), 500u);
  EXPECT_EQ(parse_duration_ms("1.250s"), 1250u);
  EXPECT_EQ(parse_duration_ms("250ms"), 250u);
  EXPECT_EQ(parse_duration_ms("2m"), 120000u);
  EXPECT_EQ(parse_duration_ms("1h"), 3600000u);
  EXPECT_EQ(parse_duration_ms("15"), std::nullopt);
  EXPECT_EQ(parse_duration_ms("s"), std::nullopt);
  EXPECT_EQ(parse_duration_ms("1.s"), std::nullopt);
  EXPECT_EQ(parse_duration_ms("-1s"), std::nullopt);
}

std::vector<StructField> sample_metadata() {
  std::vector<StructField> fields;
  auto str = [](std::string name, std::string text) {
    StructField f{std::move(name), {}};
    f.value.kind = StructValue::Kind::String;
    f.value.text = std::move(text);
    return f;
  };
  fields.push_back(str("NAME", "productpage-v1-123"));
  fields.push_back(str("NAMESPACE", "default"));
  fields.push_back(str("WORKLOAD_NAME", "productpage-v1"));
  fields.push_back(str("CLUSTER_ID", "Kubernetes"));
  StructField labels{"LABELS", {}};
  labels.value.kind = StructValue::Kind::Struct;
  labels.value.fields.push_back(str("app", "productpage"));
  labels.value.fields.push_back(str("version", "v1"));
  fields.push_back(std::move(labels));
  return fields;
}

TEST(TelemetryPeerMetadata, StructWireFormat) {
  // {"NAME": "a"}: one map entry (field 1) holding the key (1) and a Value (2) whose
  // string_value is field 3.
  std::vector<StructField> one;
  one.push_back(StructField{"NAME", {}});
  one[0].value.kind = StructValue::Kind::String;
  one[0].value.text = "a";
  EXPECT_EQ(encode_struct(one), std::string("\x0a\x0b\x0a\x04NAME\x12\x03\x1a\x01"
                                            "a",
                                            13));

  // Round trip of every kind.
  std::vector<StructField> all = sample_metadata();
  StructField number{"N", {}};
  number.value.kind = StructValue::Kind::Number;
  number.value.number = 2.5;
  StructField flag{"B", {}};
  flag.value.kind = StructValue::Kind::Bool;
  flag.value.flag = true;
  StructField list{"L", {}};
  list.value.kind = StructValue::Kind::List;
  list.value.list.resize(2);
  list.value.list[1].kind = StructValue::Kind::String;
  list.value.list[1].text = "x";
  all.push_back(number);
  all.push_back(flag);
  all.push_back(list);
  auto back = decode_struct(encode_struct(all));
  ASSERT_TRUE(back);
  ASSERT_EQ(back->size(), all.size());
  EXPECT_EQ((*back)[4].value.fields[1].value.text, "v1");
  EXPECT_EQ((*back)[5].value.number, 2.5);
  EXPECT_TRUE((*back)[6].value.flag);
  ASSERT_EQ((*back)[7].value.list.size(), 2u);
  EXPECT_EQ((*back)[7].value.list[0].kind, StructValue::Kind::Null);
  EXPECT_EQ((*back)[7].value.list[1].text, "x");
}

TEST(TelemetryPeerMetadata, MalformedInputIsRefused) {
  const std::string good = encode_struct(sample_metadata());
  for (size_t cut = 1; cut < good.size(); ++cut) {
    // Every truncation either fails or decodes to fewer, intact fields; none reads past the end.
    auto partial = decode_struct(good.substr(0, cut));
    if (partial) {
      EXPECT_LT(partial->size(), 5u);
    }
  }
  EXPECT_FALSE(decode_struct(std::string("\x0b", 1)));  // a group
  EXPECT_FALSE(decode_struct(std::string("\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 11)));
  EXPECT_FALSE(decode_struct(std::string("\x0a\x05\x0a", 3)));  // length past the end
  // Nesting beyond the limit.
  std::vector<StructField> nested = sample_metadata();
  for (int i = 0; i < 20; ++i) {
    StructField wrapper{"k", {}};
    wrapper.value.kind = StructValue::Kind::Struct;
    wrapper.value.fields = std::move(nested);
    nested = {std::move(wrapper)};
  }
  EXPECT_FALSE(decode_struct(encode_struct(nested)));
  EXPECT_TRUE(decode_struct(encode_struct(nested), 32));
  // Unknown fields are skipped.
  EXPECT_TRUE(decode_struct(std::string("\x10\x01", 2)));
}

TEST(TelemetryPeerMetadata, WorkloadLabels) {
  WorkloadInfo w = workload_from_struct(sample_metadata());
  EXPECT_EQ(w.workload, "productpage-v1");
  EXPECT_EQ(w.namespace_, "default");
  EXPECT_EQ(w.cluster, "Kubernetes");
  EXPECT_EQ(w.app, "productpage");
  EXPECT_EQ(w.version, "v1");
  EXPECT_EQ(w.canonical_service, "productpage");
  EXPECT_EQ(w.canonical_revision, "v1");
  WorkloadInfo bare = workload_from_struct({});
  EXPECT_EQ(bare.canonical_revision, "");
  EXPECT_EQ(bare.canonical_service, "");

  // Through the header's base64, as a peer sends it.
  const std::string header = ext_common::base64_encode(encode_struct(sample_metadata()));
  auto bytes = ext_common::base64_decode(header);
  ASSERT_TRUE(bytes);
  auto fields = decode_struct(*bytes);
  ASSERT_TRUE(fields);
  EXPECT_EQ(workload_from_struct(*fields).workload, "productpage-v1");
  EXPECT_EQ(ext_common::base64_encode("ab"), "YWI=");
  EXPECT_EQ(ext_common::base64_encode("abc"), "YWJj");
  EXPECT_EQ(ext_common::base64_encode("a"), "YQ==");
}

}  // namespace
}  // namespace telemetry
