// queue_consumer: registers a Proxy-Wasm shared queue and processes what producers (e.g.
// queue_producer, on any worker) put on it. It has no per-request work: the host calls its root
// context, on the worker that registered last, once per entry enqueued.
//
//   queue = events   # the queue to register
//   drain = true     # false: count the notifications, leave the entries (they pile up to the
//                    # host's bound, then the oldest are dropped)
//
// Metrics, named after the plugin (its `name`):
//   queue_consumer.<name>.notifications_total   on_queue_ready calls
//   queue_consumer.<name>.received_total        entries dequeued
//   queue_consumer.<name>.received_bytes_total  their bytes
// The last entry dequeued is kept in shared data under queue_consumer.<name>.last.
#include <memory>
#include <string>

#include "sluice/sdk.h"

namespace {

class ConsumerRoot : public sluice::RootContext {
 public:
  using RootContext::RootContext;

  bool on_configure(size_t) override {
    std::string queue;
    for (auto& [key, value] : sluice::parse_key_value_lines(sluice::plugin_configuration())) {
      if (key == "queue") {
        queue = value;
      } else if (key == "drain" && (value == "true" || value == "false")) {
        drain_ = value == "true";
      } else {
        sluice::log_error("queue_consumer: bad configuration line '{} = {}'", key, value);
        return false;
      }
    }
    if (queue.empty()) {
      sluice::log_error("queue_consumer: configuration needs a 'queue'");
      return false;
    }
    const std::string name = sluice::plugin_name_or("consumer");
    prefix_ = "queue_consumer." + name;
    notifications_ = std::make_unique<sluice::Counter>(prefix_ + ".notifications_total");
    received_ = std::make_unique<sluice::Counter>(prefix_ + ".received_total");
    received_bytes_ = std::make_unique<sluice::Counter>(prefix_ + ".received_bytes_total");
    // Defined now rather than on first use, so /stats shows them at 0.
    for (sluice::Metric* m : {notifications_.get(), received_.get(), received_bytes_.get()})
      m->id();
    // Every VM registers: the one that registers last (the last worker to start) is notified.
    token_ = sluice::register_shared_queue(queue);
    if (!token_) {
      sluice::log_error("queue_consumer: cannot register queue '{}'", queue);
      return false;
    }
    return true;
  }

  void on_queue_ready(uint32_t token) override {
    notifications_->increment();
    if (!drain_ || token != token_) return;
    std::string entry, last;
    uint64_t count = 0, bytes = 0;
    while (sluice::dequeue_shared_queue(token, &entry) == sluice::Status::Ok) {
      ++count;
      bytes += entry.size();
      last = std::move(entry);
    }
    if (count == 0) return;  // an earlier call took this entry already
    received_->increment(count);
    received_bytes_->increment(bytes);
    sluice::set_shared_data(prefix_ + ".last", last);
  }

 private:
  bool drain_ = true;
  std::optional<uint32_t> token_;
  std::string prefix_;
  std::unique_ptr<sluice::Counter> notifications_, received_, received_bytes_;
};

sluice::RegisterContextFactory<ConsumerRoot> registration("queue_consumer");

}  // namespace
