// Istio's peer metadata exchange over HTTP: each side sends its node metadata as the base64 of a
// protobuf-serialized google.protobuf.Struct in `x-envoy-peer-metadata`, and its node id in
// `x-envoy-peer-metadata-id`. This file holds the wire format (a small protobuf Struct writer and
// reader: the Wasm build has no protobuf library) and the workload facts telemetry takes from it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "../common/extension_namespace.h"

namespace telemetry {
inline namespace SLUICE_SDK_NS {

inline constexpr std::string_view kPeerMetadataHeader = "x-envoy-peer-metadata";
inline constexpr std::string_view kPeerMetadataIdHeader = "x-envoy-peer-metadata-id";

// google.protobuf.Value, the kinds metadata uses. Numbers are doubles on the wire.
struct StructField;
struct StructValue {
  enum class Kind : uint8_t { Null, Number, String, Bool, Struct, List };
  Kind kind = Kind::Null;
  double number = 0;
  std::string text;
  bool flag = false;
  std::vector<StructField> fields;  // Struct
  std::vector<StructValue> list;    // List
};
struct StructField {
  std::string name;
  StructValue value;
};

// A Struct's serialized bytes (fields in the order given).
std::string encode_struct(const std::vector<StructField>& fields);
// nullopt on malformed input or nesting deeper than `max_depth`. Unknown fields are skipped, as
// protobuf readers do.
std::optional<std::vector<StructField>> decode_struct(std::string_view bytes, int max_depth = 16);

// What the labels need from one workload's metadata (NAME, NAMESPACE, WORKLOAD_NAME, CLUSTER_ID,
// LABELS). Empty strings are unknown.
struct WorkloadInfo {
  std::string name;  // the pod name
  std::string namespace_;
  std::string workload;            // WORKLOAD_NAME
  std::string cluster;             // CLUSTER_ID
  std::string app;                 // LABELS app (or app.kubernetes.io/name)
  std::string version;             // LABELS version (or app.kubernetes.io/version)
  std::string canonical_service;   // service.istio.io/canonical-name, else app, else workload
  std::string canonical_revision;  // service.istio.io/canonical-revision, else version,
                                   // else "latest" for a known workload
};

WorkloadInfo workload_from_struct(const std::vector<StructField>& fields);

}  // namespace SLUICE_SDK_NS
}  // namespace telemetry
