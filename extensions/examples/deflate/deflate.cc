// deflate: HTTP "deflate" content coding (the zlib format) both ways, through the host's
// "compress" and "uncompress" foreign functions (Envoy and Sluice provide them).
//   - A request body sent with content-encoding: deflate is inflated before it goes upstream
//     (400 if it is not valid zlib data).
//   - A response to a client that accepts deflate is compressed, unless it is already encoded.
// Both directions buffer the whole body. No configuration. Metric, per plugin `name`:
//   deflate.<name>.saved_bytes_total   bytes compression saved on responses
#include <memory>
#include <string>

#include "sluice/sdk.h"

namespace {

bool accepts_deflate(std::string_view accept_encoding) {
  // A token list such as "gzip, deflate;q=0.5": enough for a demo (q=0 is not honoured).
  for (size_t start = 0; start < accept_encoding.size();) {
    size_t end = accept_encoding.find(',', start);
    if (end == std::string_view::npos) end = accept_encoding.size();
    std::string_view token = sluice::trim(accept_encoding.substr(start, end - start));
    token = token.substr(0, token.find(';'));
    if (sluice::trim(token) == "deflate") return true;
    start = end + 1;
  }
  return false;
}

class DeflateRoot : public sluice::RootContext {
 public:
  using RootContext::RootContext;
  bool on_configure(size_t) override {
    const std::string name = sluice::plugin_name_or("deflate");
    saved_ = std::make_unique<sluice::Counter>("deflate." + name + ".saved_bytes_total");
    return true;
  }
  sluice::Counter& saved() { return *saved_; }

 private:
  std::unique_ptr<sluice::Counter> saved_;
};

class DeflateStream : public sluice::HttpContext {
 public:
  DeflateStream(uint32_t id, DeflateRoot* root) : HttpContext(id, root), root_(root) {}

  sluice::FilterHeadersStatus on_request_headers(uint32_t, bool end_of_stream) override {
    auto headers = sluice::request_headers();
    compress_response_ = accepts_deflate(headers.get("accept-encoding").value_or(""));
    if (headers.get("content-encoding") == "deflate" && !end_of_stream) {
      inflate_request_ = true;
      headers.remove("content-encoding");
      headers.remove("content-length");  // the length changes: sent chunked
    }
    return sluice::FilterHeadersStatus::Continue;
  }

  sluice::FilterDataStatus on_request_body(size_t, bool end_of_stream) override {
    if (!inflate_request_) return sluice::FilterDataStatus::Continue;
    if (!end_of_stream) return sluice::FilterDataStatus::StopIterationAndBuffer;
    inflate_request_ = false;
    sluice::Buffer body = sluice::request_body();
    sluice::Status status = sluice::Status::Ok;
    auto plain = sluice::zlib_uncompress(body.get_all(), &status);
    if (!plain) {
      sluice::send_local_response(400, "request body is not valid deflate data\n",
                                  {{"content-type", "text/plain"}}, "deflate_bad_request_body");
      return sluice::FilterDataStatus::StopIterationNoBuffer;
    }
    body.replace_all(*plain);
    return sluice::FilterDataStatus::Continue;
  }

  sluice::FilterHeadersStatus on_response_headers(uint32_t, bool end_of_stream) override {
    auto headers = sluice::response_headers();
    if (!compress_response_ || end_of_stream || headers.contains("content-encoding")) {
      compress_response_ = false;
      return sluice::FilterHeadersStatus::Continue;
    }
    headers.remove("content-length");
    headers.replace("content-encoding", "deflate");
    headers.add("vary", "accept-encoding");
    return sluice::FilterHeadersStatus::Continue;
  }

  sluice::FilterDataStatus on_response_body(size_t, bool end_of_stream) override {
    if (!compress_response_) return sluice::FilterDataStatus::Continue;
    if (!end_of_stream) return sluice::FilterDataStatus::StopIterationAndBuffer;
    compress_response_ = false;
    sluice::Buffer body = sluice::response_body();
    const std::string plain = body.get_all();
    auto packed = sluice::zlib_compress(plain);
    if (!packed) {
      // The headers already say deflate: a plain body would be misread. Fail the stream.
      sluice::log_error("deflate: compress failed for a {} byte body", plain.size());
      sluice::close_stream(sluice::StreamType::Response);
      return sluice::FilterDataStatus::StopIterationNoBuffer;
    }
    body.replace_all(*packed);
    if (packed->size() < plain.size()) root_->saved().increment(plain.size() - packed->size());
    return sluice::FilterDataStatus::Continue;
  }

 private:
  DeflateRoot* root_;
  bool compress_response_ = false;
  bool inflate_request_ = false;
};

sluice::RegisterContextFactory<DeflateRoot, DeflateStream> registration("deflate");

}  // namespace
