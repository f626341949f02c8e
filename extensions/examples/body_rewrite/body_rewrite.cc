// body_rewrite: replaces every occurrence of one string in response bodies.
//
//   from = hello
//   to = goodbye
//
// The body is buffered (StopIterationAndBuffer) until end_of_stream, rewritten in one piece
// with set_buffer_bytes, and content-length is dropped in on_response_headers because the
// length may change. Responses with a content-encoding other than identity pass untouched
// (rewriting compressed bytes would corrupt them).
#include <string>

#include "sluice/sdk.h"

namespace {

class BodyRewriteRoot : public sluice::RootContext {
 public:
  using RootContext::RootContext;

  bool on_configure(size_t) override {
    std::string from, to;
    for (auto& [key, value] : sluice::parse_key_value_lines(sluice::plugin_configuration())) {
      if (key == "from") {
        from = value;
      } else if (key == "to") {
        to = value;
      } else {
        sluice::log_error("body_rewrite: unknown configuration key '{}'", key);
        return false;
      }
    }
    if (from.empty()) {
      sluice::log_error("body_rewrite: configuration needs a non-empty 'from'");
      return false;
    }
    from_ = std::move(from);
    to_ = std::move(to);
    return true;
  }

  const std::string& from() const { return from_; }
  const std::string& to() const { return to_; }
  sluice::Counter& rewritten() { return rewritten_; }

 private:
  std::string from_, to_;
  sluice::Counter rewritten_{"body_rewrite.replacements"};
};

class BodyRewriteStream : public sluice::HttpContext {
 public:
  BodyRewriteStream(uint32_t id, BodyRewriteRoot* root) : HttpContext(id, root), root_(root) {}

  sluice::FilterHeadersStatus on_response_headers(uint32_t, bool end_of_stream) override {
    auto encoding = sluice::response_headers().get("content-encoding");
    active_ = !end_of_stream && (!encoding || *encoding == "identity");
    if (active_) sluice::response_headers().remove("content-length");
    return sluice::FilterHeadersStatus::Continue;
  }

  sluice::FilterDataStatus on_response_body(size_t, bool end_of_stream) override {
    if (!active_) return sluice::FilterDataStatus::Continue;
    if (!end_of_stream) return sluice::FilterDataStatus::StopIterationAndBuffer;
    rewrite();
    return sluice::FilterDataStatus::Continue;
  }

  // A body followed by trailers never sees end_of_stream in on_response_body.
  sluice::FilterTrailersStatus on_response_trailers(uint32_t) override {
    if (active_) rewrite();
    return sluice::FilterTrailersStatus::Continue;
  }

 private:
  void rewrite() {
    active_ = false;
    sluice::Buffer body = sluice::response_body();
    std::string data = body.get_all();
    size_t n = sluice::replace_substrings(data, root_->from(), root_->to());
    if (n == 0) return;
    body.replace_all(data);
    root_->rewritten().increment(n);
  }

  BodyRewriteRoot* root_;
  bool active_ = false;
};

sluice::RegisterContextFactory<BodyRewriteRoot, BodyRewriteStream> registration("body_rewrite");

}  // namespace
