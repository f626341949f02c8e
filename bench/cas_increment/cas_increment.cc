// A benchmark plugin (bench/wasm_call_bench.cc, BM_SharedDataCasIncrement): each tick adds 1 to a
// shared-data counter `increments` times, each time as plugins do it: get the value and its cas,
// parse, set it back with the cas, and start over when another VM won the race.
//
//   increments = 100
#include <string>

#include "sluice/sdk.h"

namespace {

class CasRoot : public sluice::RootContext {
 public:
  using RootContext::RootContext;

  bool on_configure(size_t) override {
    for (auto& [key, value] : sluice::parse_key_value_lines(sluice::plugin_configuration())) {
      if (key == "increments") increments_ = sluice::parse_uint64(value).value_or(0);
    }
    return increments_ > 0;
  }

  void on_tick() override {
    for (uint64_t i = 0; i < increments_; ++i) {
      while (true) {
        auto current = sluice::get_shared_data("bench.counter");
        const uint64_t n = current ? sluice::parse_uint64(current->value).value_or(0) : 0;
        const auto s = sluice::set_shared_data("bench.counter", std::to_string(n + 1),
                                               current ? current->cas : 0);
        if (s != sluice::Status::CasMismatch) break;
      }
    }
  }

 private:
  uint64_t increments_ = 100;
};

sluice::RegisterContextFactory<CasRoot> registration("cas_increment");

}  // namespace
