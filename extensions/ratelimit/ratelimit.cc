// ratelimit: local rate limiting with a token bucket per key (a header's value or the client's
// address), shared by every worker through Proxy-Wasm shared data, so a limit of N holds for the
// whole proxy however many workers serve the requests. A request that finds its bucket empty
// gets 429 with Retry-After (the seconds until a token is back).
//
// Configuration (key = value lines):
//   tokens = 20               bucket size: the burst a key may send at once (required)
//   refill_per_second = 5     tokens added per second...
//   refill_per_minute = 60    ...or per minute (one of the two; without either, none come back)
//   key = client_address      or header:NAME (a request without that header is keyed by its
//                             client address)
//   slots = 4096              how many buckets exist (1 to 65536): keys are hashed into them,
//                             which bounds memory whatever clients send; two keys that share a
//                             slot share its limit
//
// A configuration change (a reload) applies at once to every bucket: the new size caps what a
// bucket holds, the new rate refills it. Buckets live in shared data under
// "ratelimit.<plugin name>.<slot>" as "<millitokens> <ms of the last refill>", updated by
// compare-and-swap; refill is computed from the time that passed when a request looks at one.
//
// Response headers on every answer: x-ratelimit-limit (the size), x-ratelimit-remaining.
// Metrics: ratelimit.<name>.allowed, ratelimit.<name>.limited (counters).
#include <memory>
#include <optional>
#include <string>

#include "../common/address.h"
#include "sluice/sdk.h"

namespace {

constexpr uint64_t kMilli = 1000;  // tokens are counted in thousandths, so slow rates refill

uint64_t now_ms() { return sluice::current_time_nanoseconds() / 1000000; }

struct Bucket {
  uint64_t millitokens = 0;
  uint64_t stamp_ms = 0;
};

std::optional<Bucket> parse_bucket(std::string_view s) {
  const size_t space = s.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  auto tokens = sluice::parse_uint64(s.substr(0, space));
  auto stamp = sluice::parse_uint64(s.substr(space + 1));
  if (!tokens || !stamp) return std::nullopt;
  return Bucket{*tokens, *stamp};
}

// FNV-1a: a stable spread of keys over the slots (the same in every VM and after a reload).
uint64_t hash(std::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

class RateLimitRoot : public sluice::RootContext {
 public:
  using RootContext::RootContext;

  bool on_configure(size_t) override {
    bool have_tokens = false, have_rate = false;
    for (auto& [key, value] : sluice::parse_key_value_lines(sluice::plugin_configuration())) {
      if (key == "key") {
        if (value == "client_address") {
          header_.clear();
        } else if (value.rfind("header:", 0) == 0 && value.size() > 7) {
          header_ = value.substr(7);
        } else {
          sluice::log_error("ratelimit: key is client_address or header:NAME, not '{}'", value);
          return false;
        }
        continue;
      }
      auto n = sluice::parse_uint64(value);
      if (!n) {
        sluice::log_error("ratelimit: '{}' needs a non-negative integer, not '{}'", key, value);
        return false;
      }
      if (key == "tokens") {
        if (*n == 0 || *n > 1000000000) {
          sluice::log_error("ratelimit: tokens must be 1 to 1000000000");
          return false;
        }
        capacity_ = *n * kMilli;
        have_tokens = true;
      } else if (key == "refill_per_second" || key == "refill_per_minute") {
        if (have_rate) {
          sluice::log_error("ratelimit: give refill_per_second or refill_per_minute, not both");
          return false;
        }
        if (*n > 1000000000) {
          sluice::log_error("ratelimit: {} is at most 1000000000", key);
          return false;
        }
        have_rate = true;
        // millitokens per second
        refill_ = key == "refill_per_second" ? *n * kMilli : *n * kMilli / 60;
      } else if (key == "slots") {
        if (*n == 0 || *n > 65536) {
          sluice::log_error("ratelimit: slots must be 1 to 65536");
          return false;
        }
        slots_ = *n;
      } else {
        sluice::log_error("ratelimit: unknown configuration key '{}'", key);
        return false;
      }
    }
    if (!have_tokens) {
      sluice::log_error("ratelimit: 'tokens' is required");
      return false;
    }
    name_ = sluice::plugin_name_or("ratelimit");
    allowed_ = std::make_unique<sluice::Counter>("ratelimit." + name_ + ".allowed");
    limited_ = std::make_unique<sluice::Counter>("ratelimit." + name_ + ".limited");
    limit_text_ = std::to_string(capacity_ / kMilli);
    sluice::log_info("ratelimit: {} tokens per key, refill {} per second, keyed by {}, {} slots",
                     limit_text_, static_cast<double>(refill_) / kMilli,
                     header_.empty() ? "client address" : "header " + header_, slots_);
    return true;
  }

  struct Decision {
    bool allowed = false;
    uint64_t remaining = 0;      // whole tokens left
    uint64_t retry_after_s = 0;  // when limited: seconds until a token is back (0: never)
  };

  Decision take(const std::string& key) {
    Decision d;
    const std::string shared_key = sluice::format("ratelimit.{}.{}", name_, hash(key) % slots_);
    const sluice::Status s = sluice::update_shared_data(
        shared_key,
        [&](const std::optional<std::string>& current) -> std::optional<std::string> {
          std::optional<Bucket> b = current ? parse_bucket(*current) : std::nullopt;
          if (!b) b = Bucket{capacity_, now_ms()};  // a key seen first: a full bucket
          refill(*b);
          if (b->millitokens < kMilli) {
            d.remaining = 0;
            d.retry_after_s =
                refill_ == 0 ? 0 : ((kMilli - b->millitokens) * 1000 / refill_ + 999) / 1000;
            return std::nullopt;  // declined: nothing written
          }
          b->millitokens -= kMilli;
          d.remaining = b->millitokens / kMilli;
          return sluice::format("{} {}", b->millitokens, b->stamp_ms);
        },
        1000);
    d.allowed = s == sluice::Status::Ok;
    if (!d.allowed && s != sluice::Status::Empty) {
      // Lost 1000 races in a row, or the host refused: deny rather than hand out a token twice.
      sluice::log_warn("ratelimit: bucket update failed ({}): request limited",
                       sluice::status_name(s));
    }
    (d.allowed ? allowed_ : limited_)->increment();
    return d;
  }

  const std::string& header() const { return header_; }
  const std::string& limit_text() const { return limit_text_; }

 private:
  // Adds what the time since the last refill earned, capped at the (current) size.
  void refill(Bucket& b) const {
    const uint64_t now = now_ms();
    if (b.millitokens > capacity_) b.millitokens = capacity_;  // a smaller size after a reload
    if (refill_ == 0 || now <= b.stamp_ms) {
      if (refill_ == 0) b.stamp_ms = now;
      return;
    }
    const uint64_t added = (now - b.stamp_ms) * refill_ / 1000;
    if (added == 0) return;
    if (b.millitokens + added >= capacity_) {
      b.millitokens = capacity_;
      b.stamp_ms = now;
    } else {
      b.millitokens += added;
      b.stamp_ms += added * 1000 / refill_;  // the fraction of a millitoken carries over
    }
  }

  uint64_t capacity_ = 0, refill_ = 0, slots_ = 4096;
  std::string header_, name_, limit_text_;
  std::unique_ptr<sluice::Counter> allowed_, limited_;
};

class RateLimitStream : public sluice::HttpContext {
 public:
  RateLimitStream(uint32_t id, RateLimitRoot* root) : HttpContext(id, root), root_(root) {}

  sluice::FilterHeadersStatus on_request_headers(uint32_t, bool) override {
    std::optional<std::string> key;
    if (!root_->header().empty()) key = sluice::request_headers().get(root_->header());
    if (!key) {
      key = ext_common::address_without_port(
          sluice::get_property_string({"source", "address"}).value_or("unknown"));
    }
    const RateLimitRoot::Decision d = root_->take(*key);
    remaining_ = d.remaining;
    if (d.allowed) return sluice::FilterHeadersStatus::Continue;
    sluice::Pairs headers = {{"x-ratelimit-limit", root_->limit_text()},
                             {"x-ratelimit-remaining", "0"},
                             {"content-type", "text/plain"}};
    if (d.retry_after_s > 0) headers.emplace_back("retry-after", std::to_string(d.retry_after_s));
    sluice::send_local_response(429, "rate limited\n", headers, "rate_limited");
    return sluice::FilterHeadersStatus::StopIteration;
  }

  sluice::FilterHeadersStatus on_response_headers(uint32_t, bool) override {
    sluice::response_headers().replace("x-ratelimit-limit", root_->limit_text());
    sluice::response_headers().replace("x-ratelimit-remaining", std::to_string(remaining_));
    return sluice::FilterHeadersStatus::Continue;
  }

 private:
  RateLimitRoot* root_;
  uint64_t remaining_ = 0;
};

sluice::RegisterContextFactory<RateLimitRoot, RateLimitStream> registration("ratelimit");

}  // namespace
