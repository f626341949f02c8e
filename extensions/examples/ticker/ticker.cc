// ticker: work on a timer, without traffic. Each VM ticks every `period_ms` and, on each tick,
// refreshes its copy of a value other VMs publish in shared data; responses show the copy. A
// request carrying x-ticker-set publishes a new value: every worker serves it after its next tick.
//
//   period_ms = 1000   # tick period
//   stop_after = 0     # stop ticking after this many ticks (0: never)
//
// Response headers: x-ticker-value (this VM's copy; empty until set), x-ticker-ticks (ticks of
// this VM so far). Metrics, named after the plugin (its `name`):
//   ticker.<name>.ticks_total     counter
//   ticker.<name>.interval-ms     histogram of the time between two ticks
//   ticker.<name>.value_length    gauge (the length of the value as last refreshed)
#include <memory>
#include <string>

#include "sluice/sdk.h"

namespace {

class TickerRoot : public sluice::RootContext {
 public:
  using RootContext::RootContext;

  bool on_configure(size_t) override {
    for (auto& [key, value] : sluice::parse_key_value_lines(sluice::plugin_configuration())) {
      auto n = sluice::parse_uint64(value);
      if (!n || *n > UINT32_MAX) {
        sluice::log_error("ticker: '{}' needs a 32-bit unsigned integer, not '{}'", key, value);
        return false;
      }
      if (key == "period_ms") {
        period_ms_ = static_cast<uint32_t>(*n);
      } else if (key == "stop_after") {
        stop_after_ = *n;
      } else {
        sluice::log_error("ticker: unknown configuration key '{}'", key);
        return false;
      }
    }
    if (period_ms_ == 0) {
      sluice::log_error("ticker: period_ms must be positive");
      return false;
    }
    const std::string name = sluice::plugin_name_or("ticker");
    key_ = "ticker." + name + ".value";
    ticks_total_ = std::make_unique<sluice::Counter>("ticker." + name + ".ticks_total");
    interval_ = std::make_unique<sluice::Histogram>("ticker." + name + ".interval-ms");
    value_length_ = std::make_unique<sluice::Gauge>("ticker." + name + ".value_length");
    return set_tick_period_milliseconds(period_ms_) == sluice::Status::Ok;
  }

  void on_tick() override {
    const uint64_t now = sluice::current_time_nanoseconds();
    if (ticks_ > 0) interval_->record((now - last_tick_ns_) / 1000000);
    last_tick_ns_ = now;
    ++ticks_;
    ticks_total_->increment();
    if (auto shared = sluice::get_shared_data(key_)) {
      value_ = std::move(shared->value);
      value_length_->set(value_.size());
    }
    if (stop_after_ != 0 && ticks_ >= stop_after_) set_tick_period_milliseconds(0);
  }

  void publish(std::string_view value) { sluice::set_shared_data(key_, value); }
  const std::string& value() const { return value_; }
  uint64_t ticks() const { return ticks_; }

 private:
  uint32_t period_ms_ = 1000;
  uint64_t stop_after_ = 0;
  std::string key_;
  std::string value_;  // refreshed on each tick
  uint64_t ticks_ = 0;
  uint64_t last_tick_ns_ = 0;
  std::unique_ptr<sluice::Counter> ticks_total_;
  std::unique_ptr<sluice::Histogram> interval_;
  std::unique_ptr<sluice::Gauge> value_length_;
};

class TickerStream : public sluice::HttpContext {
 public:
  TickerStream(uint32_t id, TickerRoot* root) : HttpContext(id, root), root_(root) {}

  sluice::FilterHeadersStatus on_request_headers(uint32_t, bool) override {
    if (auto value = sluice::request_headers().get("x-ticker-set")) root_->publish(*value);
    return sluice::FilterHeadersStatus::Continue;
  }

  sluice::FilterHeadersStatus on_response_headers(uint32_t, bool) override {
    sluice::response_headers().replace("x-ticker-value", root_->value());
    sluice::response_headers().replace("x-ticker-ticks", std::to_string(root_->ticks()));
    return sluice::FilterHeadersStatus::Continue;
  }

 private:
  TickerRoot* root_;
};

sluice::RegisterContextFactory<TickerRoot, TickerStream> registration("ticker");

}  // namespace
