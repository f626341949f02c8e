// The subset of CEL (the Common Expression Language Istio's telemetry configuration uses) that
// the telemetry extension evaluates: attribute paths (`request.host`, `request.headers['x-id']`,
// `node.metadata['MESH_ID']`), string and integer literals, `true`/`false`, `string(x)`,
// `has(path)`, `==`, `!=`, `&&`, `||`, `c ? a : b`, `+` and parentheses. Anything else is a parse
// error that names the expression and the byte where it stops, so a configuration written for
// Istio's full CEL is refused at load rather than half-understood.
//
// Expressions are parsed once (at configuration) into a flat node list; evaluation walks it with
// no allocation beyond the values it produces. Attributes come from a resolver the caller
// supplies, so the evaluator runs the same in a test as in a plugin.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "../common/extension_namespace.h"

namespace telemetry {
inline namespace SLUICE_SDK_NS {

struct Value {
  enum class Kind : uint8_t { Absent, String, Int, Bool };
  Kind kind = Kind::Absent;
  std::string text;    // String
  int64_t number = 0;  // Int; Bool as 0/1

  static Value string(std::string s) { return Value{Kind::String, std::move(s), 0}; }
  static Value integer(int64_t n) { return Value{Kind::Int, {}, n}; }
  static Value boolean(bool b) { return Value{Kind::Bool, {}, b ? 1 : 0}; }
  bool present() const { return kind != Kind::Absent; }
  // As a metric label: strings as they are, integers in decimal, booleans as true/false;
  // nullopt when absent (the caller's "unknown").
  std::optional<std::string> to_label() const;
};

// Resolves an attribute path, e.g. {"request", "headers", "x-id"}; Absent when it has no value.
using Resolver = std::function<Value(const std::vector<std::string>& path)>;

class Expression {
 public:
  // nullopt with `*error` set ("unsupported '<' at byte 12 in 'response.code < 500'").
  static std::optional<Expression> parse(std::string_view text, std::string* error);

  // Absent when the expression has no value (a missing attribute, mismatched operand types).
  // `&&` and `||` absorb an absent side when the other decides, as CEL does.
  Value evaluate(const Resolver& resolve) const;

  const std::string& text() const { return text_; }
  // Every attribute path the expression reads (for documentation and tests).
  std::vector<std::vector<std::string>> paths() const;

 private:
  enum class Op : uint8_t { Literal, Path, Has, ToString, Eq, Ne, And, Or, Cond, Add };
  struct Node {
    explicit Node(Op o) : op(o) {}
    Op op;
    int a = -1, b = -1, c = -1;  // operands (node indices)
    Value literal;
    std::vector<std::string> path;
  };
  friend class ExpressionParser;
  Value eval(int node, const Resolver& resolve) const;

  std::string text_;
  std::vector<Node> nodes_;
  int root_ = -1;
};

}  // namespace SLUICE_SDK_NS
}  // namespace telemetry
