// The bootstrap's node.metadata (a google.protobuf.Struct, kept as JSON) as proxy_get_property
// answers it under `node.metadata...` and `xds.node.metadata...`. Every key path's answer is
// computed once, when the configuration is loaded: a read is then one hash lookup. Plugins may
// read node metadata on every request (Istio's `node.metadata['X']` attributes), and parsing
// the JSON for each read cost ~200k instructions.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <absl/container/flat_hash_map.h>
#include <absl/strings/string_view.h>

#include "wasm/wasm_result.h"

namespace sluice::wasm {

class NodeMetadata {
 public:
  // JSON that does not parse answers every read with SerializationFailure.
  static std::shared_ptr<const NodeMetadata> from_json(std::string json);
  // "{}": the default of a plugin whose bootstrap has no node.metadata.
  static const std::shared_ptr<const NodeMetadata>& empty();

  const std::string& json() const { return json_; }

  // The value under `keys`, the path's segments after "metadata" joined with NUL bytes ("" for
  // the whole struct): a scalar as its text, a struct as pairs of its scalar members. NotFound
  // for a path that names nothing; SerializationFailure for a list or a null.
  WasmResult lookup(std::string_view keys, bool whole_struct, std::string& out) const;

 private:
  struct Answer {
    WasmResult result;
    std::string value;
  };

  std::string json_;
  bool parsed_ = false;
  Answer whole_;                                      // the struct itself
  absl::flat_hash_map<std::string, Answer> by_path_;  // every member, at any depth
};

}  // namespace sluice::wasm
