// rate_limit: one token bucket for the whole process, shared by every worker through Proxy-Wasm
// shared data (compare-and-swap), so N tokens let exactly N requests through however many
// workers serve them.
//
//   tokens = 100            # bucket size, full at start
//   refill_per_second = 10  # tokens added per second, up to the size (0, the default: never)
//
// A request that finds the bucket empty gets 429. Responses carry x-ratelimit-remaining (tokens
// left after this request) and x-ratelimit-vm (which VM answered: 1 is the host's canary, then
// one per worker). Metrics, named after the plugin (its `name`):
//   rate_limit.<name>.allowed_total, .denied_total   counters
//   rate_limit.<name>.tokens_remaining                gauge (the bucket as last seen)
//   rate_limit.<name>.cas_attempts                    histogram (reads per decision: >1 means
//                                                     another worker raced us)
//
// The bucket is one shared-data key, "<tokens> <last refill, ms since epoch>", under the key
// rate_limit.<name>.bucket. Refill is computed from the time that passed, when a request looks
// at the bucket, so it does not depend on how many VMs run.
#include <memory>
#include <optional>
#include <string>

#include "sluice/sdk.h"

namespace {

uint64_t now_ms() { return sluice::current_time_nanoseconds() / 1000000; }

struct Bucket {
  uint64_t tokens = 0;
  uint64_t stamp_ms = 0;  // the time up to which refill has been counted
};

std::optional<Bucket> parse_bucket(std::string_view s) {
  const size_t space = s.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  auto tokens = sluice::parse_uint64(s.substr(0, space));
  auto stamp = sluice::parse_uint64(s.substr(space + 1));
  if (!tokens || !stamp) return std::nullopt;
  return Bucket{*tokens, *stamp};
}

std::string format_bucket(const Bucket& b) { return sluice::format("{} {}", b.tokens, b.stamp_ms); }

class RateLimitRoot : public sluice::RootContext {
 public:
  using RootContext::RootContext;

  bool on_configure(size_t) override {
    for (auto& [key, value] : sluice::parse_key_value_lines(sluice::plugin_configuration())) {
      auto n = sluice::parse_uint64(value);
      if (!n) {
        sluice::log_error("rate_limit: '{}' needs a non-negative integer, not '{}'", key, value);
        return false;
      }
      if (key == "tokens") {
        capacity_ = *n;
      } else if (key == "refill_per_second") {
        refill_per_second_ = *n;
      } else {
        sluice::log_error("rate_limit: unknown configuration key '{}'", key);
        return false;
      }
    }
    const std::string name = sluice::plugin_name_or("rate_limit");
    key_ = "rate_limit." + name + ".bucket";
    allowed_ = std::make_unique<sluice::Counter>("rate_limit." + name + ".allowed_total");
    denied_ = std::make_unique<sluice::Counter>("rate_limit." + name + ".denied_total");
    remaining_ = std::make_unique<sluice::Gauge>("rate_limit." + name + ".tokens_remaining");
    attempts_ = std::make_unique<sluice::Histogram>("rate_limit." + name + ".cas_attempts");

    // The first VM to get here fills the bucket: the host's canary, before any worker starts.
    // Workers find it filled, so a worker starting late cannot hand out a second bucket.
    if (!sluice::get_shared_data(key_)) {
      sluice::set_shared_data(key_, format_bucket(Bucket{capacity_, now_ms()}));
      remaining_->set(capacity_);
    }
    // Number this VM, for x-ratelimit-vm.
    sluice::update_shared_data(
        "rate_limit." + name + ".vms",
        [](const std::optional<std::string>& n) {
          return std::optional<std::string>(
              std::to_string(sluice::parse_uint64(n.value_or("0")).value_or(0) + 1));
        },
        100, &vm_number_);
    sluice::log_info("rate_limit: {} tokens, {} per second, vm {}", capacity_, refill_per_second_,
                     vm_number_);
    return true;
  }

  // Takes a token. True when there was one; *left is what remains either way.
  bool take(uint64_t* left) {
    int attempts = 0;
    const sluice::Status s = sluice::update_shared_data(
        key_,
        [&](const std::optional<std::string>& current) -> std::optional<std::string> {
          ++attempts;
          std::optional<Bucket> b = current ? parse_bucket(*current) : std::nullopt;
          if (!b) b = Bucket{capacity_, now_ms()};  // absent or unreadable: a full bucket
          refill(*b);
          *left = b->tokens;
          if (b->tokens == 0) return std::nullopt;  // declined: nothing written
          --b->tokens;
          *left = b->tokens;
          return format_bucket(*b);
        },
        1000);
    attempts_->record(static_cast<uint64_t>(attempts));
    remaining_->set(*left);
    if (s == sluice::Status::Ok) {
      allowed_->increment();
      return true;
    }
    if (s != sluice::Status::Empty) {
      // Lost 1000 races in a row, or the host refused: deny rather than hand out a token twice.
      sluice::log_warn("rate_limit: bucket update failed ({}): request denied",
                       sluice::status_name(s));
    }
    denied_->increment();
    return false;
  }

  const std::string& vm_number() const { return vm_number_; }

 private:
  void refill(Bucket& b) const {
    const uint64_t now = now_ms();
    if (refill_per_second_ == 0 || now <= b.stamp_ms) return;
    const uint64_t added = (now - b.stamp_ms) * refill_per_second_ / 1000;
    if (added == 0) return;
    if (b.tokens + added >= capacity_) {
      b.tokens = capacity_;
      b.stamp_ms = now;
    } else {
      b.tokens += added;
      b.stamp_ms += added * 1000 / refill_per_second_;  // the fraction of a token carries over
    }
  }

  uint64_t capacity_ = 100;
  uint64_t refill_per_second_ = 0;
  std::string key_;
  std::string vm_number_ = "?";
  std::unique_ptr<sluice::Counter> allowed_, denied_;
  std::unique_ptr<sluice::Gauge> remaining_;
  std::unique_ptr<sluice::Histogram> attempts_;
};

class RateLimitStream : public sluice::HttpContext {
 public:
  RateLimitStream(uint32_t id, RateLimitRoot* root) : HttpContext(id, root), root_(root) {}

  sluice::FilterHeadersStatus on_request_headers(uint32_t, bool) override {
    if (root_->take(&left_)) return sluice::FilterHeadersStatus::Continue;
    sluice::send_local_response(429, "rate limited\n",
                                {{"x-ratelimit-remaining", "0"},
                                 {"x-ratelimit-vm", root_->vm_number()},
                                 {"content-type", "text/plain"}},
                                "rate_limited");
    return sluice::FilterHeadersStatus::StopIteration;
  }

  sluice::FilterHeadersStatus on_response_headers(uint32_t, bool) override {
    sluice::response_headers().replace("x-ratelimit-remaining", std::to_string(left_));
    sluice::response_headers().replace("x-ratelimit-vm", root_->vm_number());
    return sluice::FilterHeadersStatus::Continue;
  }

 private:
  RateLimitRoot* root_;
  uint64_t left_ = 0;
};

sluice::RegisterContextFactory<RateLimitRoot, RateLimitStream> registration("rate_limit");

}  // namespace
