#include "wasm/abi/node_metadata.h"

#include <utility>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "wasm/abi/pairs.h"

namespace sluice::wasm {

namespace {

// What a read of `node` answers (see NodeMetadata::lookup).
WasmResult answer_of(const YAML::Node& node, std::string& out) {
  if (node.IsScalar()) {
    out = node.Scalar();
    return WasmResult::Ok;
  }
  if (node.IsMap()) {
    std::vector<std::pair<std::string, std::string>> items;
    for (const auto& kv : node) {
      if (kv.second.IsScalar()) items.emplace_back(kv.first.Scalar(), kv.second.Scalar());
    }
    Pairs pairs;
    for (const auto& [k, v] : items) pairs.emplace_back(k, v);
    encode_pairs(pairs, out);
    return WasmResult::Ok;
  }
  return WasmResult::SerializationFailure;
}

}  // namespace

std::shared_ptr<const NodeMetadata> NodeMetadata::from_json(std::string json) {
  auto m = std::make_shared<NodeMetadata>();
  m->json_ = std::move(json);
  YAML::Node root;
  try {
    root = YAML::Load(m->json_);
  } catch (const YAML::Exception&) {
    return m;
  }
  m->parsed_ = true;
  m->whole_.result = answer_of(root, m->whole_.value);
  // Depth first over the structs; a path is its keys joined with NUL bytes. The first of two
  // equal keys wins, as a lookup by key would find it.
  struct Pending {
    YAML::Node node;
    std::string path;
    bool top;  // the struct itself: its members' paths are their keys alone
  };
  std::vector<Pending> worklist;
  if (root.IsMap()) worklist.push_back({root, "", true});
  while (!worklist.empty()) {
    Pending p = std::move(worklist.back());
    worklist.pop_back();
    for (const auto& kv : p.node) {
      if (!kv.first.IsScalar()) continue;
      std::string path = p.path;
      if (!p.top) path.push_back('\0');
      path += kv.first.Scalar();
      Answer a;
      a.result = answer_of(kv.second, a.value);
      if (!m->by_path_.emplace(path, std::move(a)).second) continue;
      if (kv.second.IsMap()) worklist.push_back({kv.second, std::move(path), false});
    }
  }
  return m;
}

const std::shared_ptr<const NodeMetadata>& NodeMetadata::empty() {
  static const auto* empty = new std::shared_ptr<const NodeMetadata>(from_json("{}"));
  return *empty;
}

WasmResult NodeMetadata::lookup(std::string_view keys, bool whole_struct, std::string& out) const {
  if (!parsed_) return WasmResult::SerializationFailure;
  const Answer* a = &whole_;
  if (!whole_struct) {
    // (absl::string_view: this Abseil is built with its own, not std::string_view)
    auto it = by_path_.find(absl::string_view(keys.data(), keys.size()));
    if (it == by_path_.end()) return WasmResult::NotFound;
    a = &it->second;
  }
  if (a->result == WasmResult::Ok) out = a->value;
  return a->result;
}

}  // namespace sluice::wasm
