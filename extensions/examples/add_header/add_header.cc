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

// The response edits go to the host once (sluice::HeaderEdits): on Sluice it applies them to
// every response with no call into the plugin, so a stream costs two crossings instead of three.
struct Rules {
  sluice::HeaderEdits request;
  sluice::HeaderEdits response;
};

bool parse_rules(std::string_view text, Rules* rules) {
  for (auto& [key, value] : sluice::parse_key_value_lines(text)) {
    std::string_view k = key;
    sluice::HeaderEdits* edits = nullptr;
    if (k.substr(0, 8) == "request.") {
      edits = &rules->request;
      k.remove_prefix(8);
    } else if (k.substr(0, 9) == "response.") {
      edits = &rules->response;
      k.remove_prefix(9);
    }
    size_t dot = k.find('.');
    std::string_view verb = k.substr(0, dot);
    std::string_view name = dot == std::string_view::npos ? "" : k.substr(dot + 1);
    if (!edits || name.empty() || (verb != "add" && verb != "set" && verb != "remove")) {
      sluice::log_error("add_header: bad configuration key '{}'", key);
      return false;
    }
    if (verb == "add") {
      edits->add(name, value);
    } else if (verb == "set") {
      edits->replace(name, value);
    } else {
      edits->remove(name);
    }
  }
  return true;
}

class AddHeaderRoot : public sluice::RootContext {
 public:
  using RootContext::RootContext;

  bool on_configure(size_t) override {
    Rules rules;
    if (!parse_rules(sluice::plugin_configuration(), &rules)) return false;
    // Taken over edit by edit: the objects (and the host's ids for them) stay.
    rules_.request.assign(rules.request);
    rules_.response.assign(rules.response);
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
    root_->rules().request.apply_to(sluice::request_headers());
    // No on_response_headers of our own: the response edits are all it would do.
    if (!root_->rules().response.empty()) {
      edit_response_headers(&root_->rules().response, /*skip_on_response_headers=*/true);
    }
    return sluice::FilterHeadersStatus::Continue;
  }

 private:
  AddHeaderRoot* root_;
};

sluice::RegisterContextFactory<AddHeaderRoot, AddHeaderStream> registration("add_header");

}  // namespace
