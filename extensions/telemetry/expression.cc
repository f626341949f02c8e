#include "expression.h"

namespace telemetry {
inline namespace SLUICE_SDK_NS {

std::optional<std::string> Value::to_label() const {
  switch (kind) {
    case Kind::String:
      return text;
    case Kind::Int:
      return std::to_string(number);
    case Kind::Bool:
      return std::string(number ? "true" : "false");
    case Kind::Absent:
      break;
  }
  return std::nullopt;
}

// Recursive descent, lowest precedence first:
//   cond := or ('?' cond ':' cond)?     or := and ('||' and)*     and := eq ('&&' eq)*
//   eq := add (('==' | '!=') add)*      add := primary ('+' primary)*
//   primary := literal | path | 'has(' path ')' | 'string(' cond ')' | '(' cond ')'
class ExpressionParser {
 public:
  ExpressionParser(std::string_view text, Expression& out) : s_(text), out_(out) {}

  bool parse() {
    out_.root_ = cond(0);
    if (out_.root_ < 0) return false;
    skip_space();
    if (pos_ != s_.size()) return unsupported();
    return true;
  }
  const std::string& error() const { return error_; }

 private:
  static constexpr int kMaxDepth = 32;

  int add_node(Expression::Node n) {
    out_.nodes_.push_back(std::move(n));
    return static_cast<int>(out_.nodes_.size() - 1);
  }
  int binary(Expression::Op op, int a, int b) {
    Expression::Node n(op);
    n.a = a, n.b = b;
    return add_node(std::move(n));
  }

  bool fail(std::string why) {
    if (error_.empty()) {
      error_ = why + " at byte " + std::to_string(pos_) + " in '" + std::string(s_) + "'";
    }
    return false;
  }
  bool unsupported() {
    skip_space();
    if (pos_ >= s_.size()) return fail("unexpected end");
    // Name the construct: an identifier-like word or the operator character(s) found.
    size_t end = pos_ + 1;
    if (ident_start(s_[pos_])) {
      while (end < s_.size() && ident_char(s_[end])) ++end;
    } else {
      while (end < s_.size() && end < pos_ + 2 &&
             std::string_view("=!<>&|").find(s_[end]) != std::string_view::npos) {
        ++end;
      }
    }
    return fail("unsupported '" + std::string(s_.substr(pos_, end - pos_)) + "'");
  }

  static bool ident_start(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  }
  static bool ident_char(char c) { return ident_start(c) || (c >= '0' && c <= '9'); }

  void skip_space() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n')) ++pos_;
  }
  bool eat(std::string_view token) {
    skip_space();
    if (s_.substr(pos_, token.size()) != token) return false;
    pos_ += token.size();
    return true;
  }
  // `token` is one of the two-character operators (||, &&, ==, !=).
  bool eat_operator(std::string_view token) {
    skip_space();
    if (s_.substr(pos_, token.size()) != token) return false;
    pos_ += token.size();
    return true;
  }

  int cond(int depth) {
    if (depth > kMaxDepth) return fail("nested too deep"), -1;
    int c = or_expr(depth);
    if (c < 0) return -1;
    if (!eat("?")) return c;
    int a = cond(depth + 1);
    if (a < 0) return -1;
    if (!eat(":")) return fail("expected ':'"), -1;
    int b = cond(depth + 1);
    if (b < 0) return -1;
    Expression::Node n(Expression::Op::Cond);
    n.a = c, n.b = a, n.c = b;
    return add_node(std::move(n));
  }
  int or_expr(int depth) {
    int left = and_expr(depth);
    while (left >= 0 && eat_operator("||")) {
      int right = and_expr(depth);
      if (right < 0) return -1;
      left = binary(Expression::Op::Or, left, right);
    }
    return left;
  }
  int and_expr(int depth) {
    int left = eq_expr(depth);
    while (left >= 0 && eat_operator("&&")) {
      int right = eq_expr(depth);
      if (right < 0) return -1;
      left = binary(Expression::Op::And, left, right);
    }
    return left;
  }
  int eq_expr(int depth) {
    int left = add_expr(depth);
    for (;;) {
      if (left < 0) return -1;
      Expression::Op op;
      if (eat_operator("==")) {
        op = Expression::Op::Eq;
      } else if (eat_operator("!=")) {
        op = Expression::Op::Ne;
      } else {
        return left;
      }
      int right = add_expr(depth);
      if (right < 0) return -1;
      left = binary(op, left, right);
    }
  }
  int add_expr(int depth) {
    int left = primary(depth);
    while (left >= 0 && eat("+")) {
      int right = primary(depth);
      if (right < 0) return -1;
      left = binary(Expression::Op::Add, left, right);
    }
    return left;
  }

  int primary(int depth) {
    skip_space();
    if (pos_ >= s_.size()) return fail("unexpected end"), -1;
    const char c = s_[pos_];
    if (c == '(') {
      ++pos_;
      int inner = cond(depth + 1);
      if (inner < 0) return -1;
      if (!eat(")")) return fail("expected ')'"), -1;
      return inner;
    }
    if (c == '\'' || c == '"') {
      std::string text;
      if (!string_literal(&text)) return -1;
      Expression::Node n(Expression::Op::Literal);
      n.literal = Value::string(std::move(text));
      return add_node(std::move(n));
    }
    if ((c >= '0' && c <= '9') || c == '-') return integer_literal();
    if (!ident_start(c)) return unsupported(), -1;

    const size_t word_start = pos_;
    size_t end = pos_;
    while (end < s_.size() && ident_char(s_[end])) ++end;
    const std::string_view word = s_.substr(pos_, end - pos_);
    size_t after = end;
    while (after < s_.size() && s_[after] == ' ') ++after;
    const bool call = after < s_.size() && s_[after] == '(';
    if (call && (word == "has" || word == "string")) {
      pos_ = after + 1;
      Expression::Node n(word == "has" ? Expression::Op::Has : Expression::Op::ToString);
      if (word == "has") {
        skip_space();
        if (!path(&n.path)) return -1;
      } else {
        n.a = cond(depth + 1);
        if (n.a < 0) return -1;
      }
      if (!eat(")")) return fail("expected ')'"), -1;
      return add_node(std::move(n));
    }
    if (call) return unsupported(), -1;  // size(), int(), matches()...
    if (word == "true" || word == "false") {
      pos_ = end;
      Expression::Node n(Expression::Op::Literal);
      n.literal = Value::boolean(word == "true");
      return add_node(std::move(n));
    }
    if (word == "null" || word == "in") return unsupported(), -1;
    pos_ = word_start;
    Expression::Node n(Expression::Op::Path);
    if (!path(&n.path)) return -1;
    return add_node(std::move(n));
  }

  // ident ('.' ident | '[' string ']')*
  bool path(std::vector<std::string>* out) {
    if (pos_ >= s_.size() || !ident_start(s_[pos_])) return fail("expected an attribute");
    for (;;) {
      const size_t start = pos_;
      while (pos_ < s_.size() && ident_char(s_[pos_])) ++pos_;
      out->emplace_back(s_.substr(start, pos_ - start));
      for (;;) {
        if (pos_ < s_.size() && s_[pos_] == '[') {
          ++pos_;
          skip_space();
          if (pos_ >= s_.size() || (s_[pos_] != '\'' && s_[pos_] != '"')) {
            return fail("an index must be a string literal");
          }
          std::string key;
          if (!string_literal(&key)) return false;
          if (!eat("]")) return fail("expected ']'");
          out->push_back(std::move(key));
          continue;
        }
        break;
      }
      if (pos_ < s_.size() && s_[pos_] == '.') {
        ++pos_;
        if (pos_ >= s_.size() || !ident_start(s_[pos_])) return fail("expected a field name");
        continue;
      }
      return true;
    }
  }

  bool string_literal(std::string* out) {
    const char quote = s_[pos_++];
    for (;;) {
      if (pos_ >= s_.size()) return fail("unterminated string");
      const char c = s_[pos_++];
      if (c == quote) return true;
      if (c != '\\') {
        out->push_back(c);
        continue;
      }
      if (pos_ >= s_.size()) return fail("unterminated string");
      const char e = s_[pos_++];
      if (e == '\\' || e == '\'' || e == '"') {
        out->push_back(e);
      } else if (e == 'n') {
        out->push_back('\n');
      } else if (e == 't') {
        out->push_back('\t');
      } else {
        --pos_;
        return fail("unsupported escape");
      }
    }
  }

  int integer_literal() {
    const size_t start = pos_;
    bool negative = false;
    if (s_[pos_] == '-') negative = true, ++pos_;
    uint64_t n = 0;
    const size_t digits = pos_;
    while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') {
      n = n * 10 + static_cast<uint64_t>(s_[pos_] - '0');
      if (n > (uint64_t{1} << 62)) return fail("integer too large"), -1;
      ++pos_;
    }
    if (pos_ == digits) {
      pos_ = start;
      return unsupported(), -1;
    }
    if (pos_ < s_.size() && (s_[pos_] == '.' || s_[pos_] == 'u' || s_[pos_] == 'e')) {
      return fail("only integer literals are supported"), -1;
    }
    Expression::Node node(Expression::Op::Literal);
    node.literal = Value::integer(negative ? -static_cast<int64_t>(n) : static_cast<int64_t>(n));
    return add_node(std::move(node));
  }

  std::string_view s_;
  Expression& out_;
  size_t pos_ = 0;
  std::string error_;
};

std::optional<Expression> Expression::parse(std::string_view text, std::string* error) {
  Expression e;
  e.text_ = std::string(text);
  ExpressionParser p(e.text_, e);
  if (!p.parse()) {
    *error = p.error();
    return std::nullopt;
  }
  return e;
}

Value Expression::evaluate(const Resolver& resolve) const { return eval(root_, resolve); }

Value Expression::eval(int index, const Resolver& resolve) const {
  const Node& n = nodes_[index];
  switch (n.op) {
    case Op::Literal:
      return n.literal;
    case Op::Path:
      return resolve(n.path);
    case Op::Has:
      return Value::boolean(resolve(n.path).present());
    case Op::ToString: {
      Value v = eval(n.a, resolve);
      auto label = v.to_label();
      return label ? Value::string(std::move(*label)) : Value{};
    }
    case Op::Eq:
    case Op::Ne: {
      Value a = eval(n.a, resolve), b = eval(n.b, resolve);
      if (!a.present() || !b.present()) return Value{};
      // Values of different types are unequal (CEL's heterogeneous equality).
      const bool equal = a.kind == b.kind && a.number == b.number && a.text == b.text;
      return Value::boolean(n.op == Op::Eq ? equal : !equal);
    }
    case Op::And:
    case Op::Or: {
      // The side that decides wins even when the other has no value.
      const bool decisive = n.op == Op::Or;
      Value a = eval(n.a, resolve);
      if (a.kind == Value::Kind::Bool && (a.number != 0) == decisive) return a;
      Value b = eval(n.b, resolve);
      if (b.kind == Value::Kind::Bool && (b.number != 0) == decisive) return b;
      if (a.kind != Value::Kind::Bool || b.kind != Value::Kind::Bool) return Value{};
      return Value::boolean(!decisive);
    }
    case Op::Cond: {
      Value c = eval(n.a, resolve);
      if (c.kind != Value::Kind::Bool) return Value{};
      return eval(c.number ? n.b : n.c, resolve);
    }
    case Op::Add: {
      Value a = eval(n.a, resolve), b = eval(n.b, resolve);
      if (a.kind == Value::Kind::String && b.kind == Value::Kind::String) {
        a.text += b.text;
        return a;
      }
      if (a.kind == Value::Kind::Int && b.kind == Value::Kind::Int) {
        return Value::integer(a.number + b.number);
      }
      return Value{};
    }
  }
  return Value{};
}

std::vector<std::vector<std::string>> Expression::paths() const {
  std::vector<std::vector<std::string>> out;
  for (const Node& n : nodes_) {
    if (n.op == Op::Path || n.op == Op::Has) out.push_back(n.path);
  }
  return out;
}

}  // namespace SLUICE_SDK_NS
}  // namespace telemetry
