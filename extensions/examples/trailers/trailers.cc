// trailers: works with HTTP trailers in both directions (they reach plugins over HTTP/1 when the
// listener and the cluster set http_protocol_options.enable_trailers).
//
// - A request trailer named by `request_trailer` (default x-checksum) is copied to the upstream
//   as x-checksum-seen-by-plugin: yes alongside it, and remembered.
// - The response ends with two trailers the plugin adds in its last body callback:
//   x-response-bytes (the body size it counted) and x-request-checksum (the remembered value,
//   or "none"). If the upstream already sent trailers, they are added to those instead.
//
// Configuration (optional): `request_trailer = <name>`.
#include <string>

#include "sluice/sdk.h"

namespace {

class TrailersRoot : public sluice::RootContext {
 public:
  using RootContext::RootContext;
  bool on_configure(size_t) override {
    for (auto& [key, value] : sluice::parse_key_value_lines(sluice::plugin_configuration())) {
      if (key != "request_trailer" || value.empty()) {
        sluice::log_error("trailers: bad configuration key '{}'", key);
        return false;
      }
      request_trailer = value;
    }
    return true;
  }
  std::string request_trailer = "x-checksum";
};

class TrailersStream : public sluice::HttpContext {
 public:
  TrailersStream(uint32_t id, TrailersRoot* root) : HttpContext(id, root), root_(root) {}

  sluice::FilterTrailersStatus on_request_trailers(uint32_t) override {
    if (auto v = sluice::request_trailers().get(root_->request_trailer)) {
      checksum_ = *v;
      sluice::request_trailers().add("x-checksum-seen-by-plugin", "yes");
    }
    return sluice::FilterTrailersStatus::Continue;
  }

  sluice::FilterDataStatus on_response_body(size_t body_size, bool end_of_stream) override {
    // body_size is what is buffered for this call: count as it streams through.
    bytes_ += body_size;
    if (end_of_stream) add_response_trailers();
    return sluice::FilterDataStatus::Continue;
  }

  sluice::FilterTrailersStatus on_response_trailers(uint32_t) override {
    add_response_trailers();
    return sluice::FilterTrailersStatus::Continue;
  }

 private:
  void add_response_trailers() {
    if (added_) return;
    added_ = true;
    sluice::response_trailers().replace("x-response-bytes", std::to_string(bytes_));
    sluice::response_trailers().replace("x-request-checksum",
                                        checksum_.empty() ? "none" : checksum_);
  }

  TrailersRoot* root_;
  std::string checksum_;
  size_t bytes_ = 0;
  bool added_ = false;
};

sluice::RegisterContextFactory<TrailersRoot, TrailersStream> registration("trailers");

}  // namespace
