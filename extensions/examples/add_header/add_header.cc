// add_header: adds, sets and removes request and response headers listed in the plugin
// configuration, one operation per line, applied in order:
//
//   request.add.x-added = yes        # append a value (keeps existing ones)
//   request.set.x-forwarded-by = sluice  # replace (or add) the header
//   request.remove.x-internal         # remove it
//   response.set.server = sluice
//
// Keys are <request|response>.<add|set|remove>.<header name>. Blank lines and '#' lines are
// ignored; an unknown key rejects the configuration.
#include <string>
#include <vector>

#include "sluice/sdk.h"

namespace {

enum class Op { Add, Set, Remove };

struct HeaderOp {
  Op op;
  std::string name;
  std::string value;
};

struct Rules {
  std::vector<HeaderOp> request;
  std::vector<HeaderOp> response;
};

bool parse_rules(std::string_view text, Rules* rules) {
  for (auto& [key, value] : sluice::parse_key_value_lines(text)) {
    std::string_view k = key;
    std::vector<HeaderOp>* list = nullptr;
    if (k.substr(0, 8) == "request.") {
      list = &rules->request;
      k.remove_prefix(8);
    } else if (k.substr(0, 9) == "response.") {
      list = &rules->response;
      k.remove_prefix(9);
    }
    size_t dot = k.find('.');
    std::string_view verb = k.substr(0, dot);
    std::string_view name = dot == std::string_view::npos ? "" : k.substr(dot + 1);
    Op op;
    if (verb == "add") {
      op = Op::Add;
    } else if (verb == "set") {
      op = Op::Set;
    } else if (verb == "remove") {
      op = Op::Remove;
    } else {
      list = nullptr;
    }
    if (!list || name.empty()) {
      sluice::log_error("add_header: bad configuration key '{}'", key);
      return false;
    }
    list->push_back(HeaderOp{op, std::string(name), value});
  }
  return true;
}

void apply_ops(const sluice::HeaderMap& map, const std::vector<HeaderOp>& ops) {
  for (const auto& op : ops) {
    switch (op.op) {
      case Op::Add:
        map.add(op.name, op.value);
        break;
      case Op::Set:
        map.replace(op.name, op.value);
        break;
      case Op::Remove:
        map.remove(op.name);
        break;
    }
  }
}

class AddHeaderRoot : public sluice::RootContext {
 public:
  using RootContext::RootContext;

  bool on_configure(size_t) override {
    Rules rules;
    if (!parse_rules(sluice::plugin_configuration(), &rules)) return false;
    rules_ = std::move(rules);
    sluice::log_info("add_header: {} request and {} response operations", rules_.request.size(),
                     rules_.response.size());
    return true;
  }

  const Rules& rules() const { return rules_; }
  sluice::Counter& requests() { return requests_; }

 private:
  Rules rules_;
  sluice::Counter requests_{"add_header.requests"};
};

class AddHeaderStream : public sluice::HttpContext {
 public:
  AddHeaderStream(uint32_t id, AddHeaderRoot* root) : HttpContext(id, root), root_(root) {}

  sluice::FilterHeadersStatus on_request_headers(uint32_t, bool) override {
    root_->requests().increment();
    apply_ops(sluice::request_headers(), root_->rules().request);
    return sluice::FilterHeadersStatus::Continue;
  }

  sluice::FilterHeadersStatus on_response_headers(uint32_t, bool) override {
    apply_ops(sluice::response_headers(), root_->rules().response);
    return sluice::FilterHeadersStatus::Continue;
  }

 private:
  AddHeaderRoot* root_;
};

sluice::RegisterContextFactory<AddHeaderRoot, AddHeaderStream> registration("add_header");

}  // namespace
