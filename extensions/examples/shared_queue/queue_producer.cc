// queue_producer: puts "<method> <path>" of every request on a Proxy-Wasm shared queue, for a
// consumer plugin (queue_consumer) to process off the request path, on whichever worker it runs.
//
//   queue = events   # the queue's name (registered by the consumer)
//   vm_id =          # the consumer's vm_id (empty, the default: this plugin's own)
//
// Request headers: x-queue names another queue for this request; x-enqueue-copies (1..100000)
// enqueues the entry that many times (load tests). The response carries x-queue-status: Ok, or
// NotFound while no consumer has registered the queue.
#include <string>

#include "sluice/sdk.h"

namespace {

class ProducerRoot : public sluice::RootContext {
 public:
  using RootContext::RootContext;

  bool on_configure(size_t) override {
    for (auto& [key, value] : sluice::parse_key_value_lines(sluice::plugin_configuration())) {
      if (key == "queue") {
        queue_ = value;
      } else if (key == "vm_id") {
        vm_id_ = value;
      } else {
        sluice::log_error("queue_producer: unknown configuration key '{}'", key);
        return false;
      }
    }
    if (queue_.empty()) {
      sluice::log_error("queue_producer: configuration needs a 'queue'");
      return false;
    }
    return true;
  }

  // The token of `name`, resolved on first use: the consumer may register after we start.
  std::optional<uint32_t> token(const std::string& name) {
    if (name == queue_ && token_) return token_;
    auto t = sluice::resolve_shared_queue(vm_id_, name);
    if (name == queue_) token_ = t;
    return t;
  }
  const std::string& queue() const { return queue_; }

 private:
  std::string queue_, vm_id_;
  std::optional<uint32_t> token_;
};

class ProducerStream : public sluice::HttpContext {
 public:
  ProducerStream(uint32_t id, ProducerRoot* root) : HttpContext(id, root), root_(root) {}

  sluice::FilterHeadersStatus on_request_headers(uint32_t, bool) override {
    const sluice::HeaderMap headers = sluice::request_headers();
    const std::string name = headers.get("x-queue").value_or(root_->queue());
    uint64_t copies =
        sluice::parse_uint64(headers.get("x-enqueue-copies").value_or("1")).value_or(1);
    if (copies < 1 || copies > 100000) copies = 1;
    const std::string entry =
        headers.get(":method").value_or("?") + " " + headers.get(":path").value_or("?");
    status_ = sluice::Status::NotFound;
    if (auto token = root_->token(name)) {
      for (uint64_t i = 0; i < copies; ++i) status_ = sluice::enqueue_shared_queue(*token, entry);
    }
    return sluice::FilterHeadersStatus::Continue;
  }

  sluice::FilterHeadersStatus on_response_headers(uint32_t, bool) override {
    sluice::response_headers().replace("x-queue-status", sluice::status_name(status_));
    return sluice::FilterHeadersStatus::Continue;
  }

 private:
  ProducerRoot* root_;
  sluice::Status status_ = sluice::Status::NotFound;
};

sluice::RegisterContextFactory<ProducerRoot, ProducerStream> registration("queue_producer");

}  // namespace
