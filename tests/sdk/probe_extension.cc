// A test-only extension that exercises the SDK surface the examples do not: http_call from a
// stream, typed properties, shared data, pairs, all metric types, ticks and a deferred on_done.
// It is driven by sdk_native_test.cc (native) and checked by module_compat_test.sh (.wasm).
// The request header x-probe selects what a stream does; results go back as response headers
// of a local reply, so the fake host can read them.
#include <cstring>
#include <string>

#include "sluice/sdk.h"

namespace {

class ProbeRoot : public sluice::RootContext {
 public:
  using RootContext::RootContext;

  bool on_vm_start(size_t size) override {
    sluice::log_info("probe: vm_start size={} config={}", size, sluice::vm_configuration());
    return sluice::vm_configuration() != "fail";
  }
  bool on_configure(size_t) override {
    std::string config = sluice::plugin_configuration();
    if (config == "tick") set_tick_period_milliseconds(10);
    return config != "reject";
  }
  void on_tick() override {
    ++ticks_;
    sluice::log_info("probe: tick {}", ticks_);
    if (finishing_) done();
  }
  bool on_done() override {
    finishing_ = true;  // finish later, from on_tick
    return false;
  }

  sluice::Gauge gauge{"probe.gauge"};
  sluice::Histogram histogram{"probe.histogram"};
  sluice::Counter counter{"probe.counter"};

 private:
  int ticks_ = 0;
  bool finishing_ = false;
};

class ProbeStream : public sluice::HttpContext {
 public:
  ProbeStream(uint32_t id, ProbeRoot* root) : HttpContext(id, root), root_(root) {}

  sluice::FilterHeadersStatus on_request_headers(uint32_t num_headers, bool eos) override {
    std::string action = sluice::request_headers().get("x-probe").value_or("");
    if (action == "http_call") {
      sluice::Pairs h = {{":method", "GET"}, {":path", "/callout"}, {":authority", "svc"}};
      auto s = http_call("callout_cluster", h, "ping", {}, 500, [](const auto& r) {
        std::string status = r.status() ? std::to_string(*r.status()) : "none";
        sluice::send_local_response(200, "callout " + status + " " + r.body(),
                                    {{"x-callout-failed", r.failed() ? "yes" : "no"}});
      });
      return s == sluice::Status::Ok ? sluice::FilterHeadersStatus::StopIteration
                                     : sluice::FilterHeadersStatus::Continue;
    }
    if (action == "props") {
      auto size = sluice::get_property_int64({"request", "size"});
      auto mtls = sluice::get_property_bool({"connection", "mtls"});
      auto name = sluice::get_property_string({"plugin_name"});
      auto missing = sluice::get_property({"no", "such"});
      reply(sluice::format("size={} mtls={} name={} missing={}", size.value_or(-1),
                           mtls.value_or(false), name.value_or("?"), missing.has_value()));
      return sluice::FilterHeadersStatus::StopIteration;
    }
    if (action == "named") {  // the plugin's name, with a fallback for an unnamed plugin
      reply(sluice::plugin_name_or("fallback"));
      return sluice::FilterHeadersStatus::StopIteration;
    }
    if (action == "views") {
      // The same reads in place: each view is used (copied or printed) before the next one.
      using namespace std::string_view_literals;
      const std::string header(sluice::request_headers().get_view("x-probe").value_or("?"));
      const auto size = sluice::get_property_int64_joined("request\0size"sv);
      const auto mtls = sluice::get_property_bool_joined("connection\0mtls"sv);
      const std::string name(sluice::get_property_view("plugin_name").value_or("?"));
      const bool missing = sluice::get_property_view("no\0such"sv).has_value();
      const bool absent = sluice::request_headers().get_view("x-absent").has_value();
      reply(sluice::format("header={} size={} mtls={} name={} missing={} absent={}", header,
                           size.value_or(-1), mtls.value_or(false), name, missing, absent));
      return sluice::FilterHeadersStatus::StopIteration;
    }
    if (action == "batch") {
      // The views' reads in one PropertyBatch; every view is used before the next host call.
      using namespace std::string_view_literals;
      static sluice::PropertyBatch batch = {"request\0size"sv, "connection\0mtls"sv,
                                            "plugin_name"sv, "no\0such"sv};
      const auto v = batch.read();
      int64_t size = -1;
      if (v[0] && v[0]->size() == 8) std::memcpy(&size, v[0]->data(), 8);
      const bool mtls = v[1] && v[1]->size() == 1 && (*v[1])[0] != 0;
      reply(sluice::format("count={} size={} mtls={} name={} missing={}", batch.size(), size, mtls,
                           v[2].value_or("?"), v[3].has_value()));
      return sluice::FilterHeadersStatus::StopIteration;
    }
    if (action == "shared") {
      sluice::set_shared_data("k", "v1");
      auto got = sluice::get_shared_data("k");
      auto stale = sluice::set_shared_data("k", "v2", got->cas + 100);
      auto fresh = sluice::set_shared_data("k", "v3", got->cas);
      reply(sluice::format("{} {} {} {}", got->value, sluice::status_name(stale),
                           sluice::status_name(fresh), sluice::get_shared_data("k")->value));
      return sluice::FilterHeadersStatus::StopIteration;
    }
    if (action == "update") {
      // A counter through update_shared_data: created, incremented, then an update declined.
      const auto add_one = [](const std::optional<std::string>& current) {
        uint64_t n = current ? sluice::parse_uint64(*current).value_or(0) : 0;
        return std::optional<std::string>(std::to_string(n + 1));
      };
      std::string first, second;
      auto s1 = sluice::update_shared_data("counter", add_one, 100, &first);
      auto s2 = sluice::update_shared_data("counter", add_one, 100, &second);
      auto declined = sluice::update_shared_data(
          "counter", [](const auto&) { return std::optional<std::string>(); });
      reply(sluice::format("{}={} {}={} {}", sluice::status_name(s1), first,
                           sluice::status_name(s2), second, sluice::status_name(declined)));
      return sluice::FilterHeadersStatus::StopIteration;
    }
    if (action == "update_race") {
      // The host makes the first reads lose their race: the update retries, then gives up.
      const auto add_one = [](const std::optional<std::string>& current) {
        return std::optional<std::string>(
            std::to_string(sluice::parse_uint64(current.value_or("0")).value_or(0) + 1));
      };
      std::string written;
      auto won = sluice::update_shared_data("racy", add_one, 5, &written);
      auto lost = sluice::update_shared_data("racy", add_one, 2);
      reply(
          sluice::format("{}={} {}", sluice::status_name(won), written, sluice::status_name(lost)));
      return sluice::FilterHeadersStatus::StopIteration;
    }
    if (action == "zlib") {
      sluice::Status bad = sluice::Status::Ok;
      auto packed = sluice::zlib_compress("abc");
      auto unpacked = sluice::zlib_uncompress(packed.value_or(""));
      auto failed = sluice::zlib_uncompress("not packed", &bad);
      reply(sluice::format("{} {} {} {}", packed.value_or("-"), unpacked.value_or("-"),
                           failed.has_value(), sluice::status_name(bad)));
      return sluice::FilterHeadersStatus::StopIteration;
    }
    if (action == "edits-copy") {  // a copy is defined on its own; assignment keeps the id
      sluice::HeaderEdits a;
      a.replace("x-a", "1");
      edit_response_headers(&a);
      sluice::HeaderEdits b(a);
      edit_response_headers(&b);
      a = b;
      a.remove("x-b");
      edit_response_headers(&a);
      edit_response_headers(nullptr);  // (a and b end here)
      // A refused redefinition (an LF in a value) keeps a's set for the next one.
      sluice::HeaderEdits bad;
      bad.replace("x-a", "1\n2");
      a = bad;
      edit_response_headers(&a);
      a = b;
      edit_response_headers(&a);
      reply("edits");
      return sluice::FilterHeadersStatus::StopIteration;
    }
    if (action == "zlib-big") {  // answers far bigger than any return buffer kept
      auto packed = sluice::zlib_compress(std::string(100000, 'x'));
      auto unpacked = sluice::zlib_uncompress(packed.value_or(""));
      reply(sluice::format("{} {}", packed ? packed->size() : 0, unpacked ? unpacked->size() : 0));
      return sluice::FilterHeadersStatus::StopIteration;
    }
    if (action == "pairs") {
      sluice::Pairs pairs = sluice::request_headers().pairs();
      pairs.emplace_back("x-count", std::to_string(num_headers));
      sluice::request_headers().set_pairs(pairs);
      return sluice::FilterHeadersStatus::Continue;
    }
    if (action == "hidden") {
      // Everything a plugin could try to see or change of hidden headers (sluice.wasm hiding):
      // what it saw goes upstream in x-probe-saw; its writes must not reach the upstream.
      auto h = sluice::request_headers();
      const sluice::Pairs pairs = h.pairs();
      bool in_pairs = false;
      for (const auto& [k, v] : pairs) in_pairs |= k == "authorization" || k == "cookie";
      const size_t visible_bytes = h.byte_size().value_or(0);
      size_t pair_bytes = 0;
      for (const auto& [k, v] : pairs) pair_bytes += k.size() + v.size();
      const auto prop = sluice::get_property_string({"request", "headers", "authorization"});
      const auto all = sluice::get_property({"request", "headers"}).value_or("");
      const auto src = sluice::get_property_string({"source", "address"});
      h.add("authorization", "evil");
      h.replace("cookie", "evil");
      h.remove("x-forwarded-for");
      sluice::Pairs rewritten;
      for (const auto& [k, v] : pairs) rewritten.emplace_back(k, v);
      rewritten.emplace_back("cookie", "evil-too");
      h.set_pairs(rewritten);
      h.add("x-probe-saw",
            sluice::format("get={} pairs={} size_matches={} prop={} map={} src={} xff={}",
                           h.get("authorization").value_or("absent"), in_pairs,
                           visible_bytes == pair_bytes, prop.value_or("absent"),
                           all.find("authorization") != std::string::npos, src.value_or("absent"),
                           h.get("x-forwarded-for").value_or("absent")));
      return sluice::FilterHeadersStatus::Continue;
    }
    if (action == "metrics") {
      root_->gauge.add(5);
      root_->gauge.add(-2);
      root_->histogram.record(42);
      root_->counter.increment(3);
      reply(sluice::format("gauge={} counter={}", root_->gauge.value().value_or(0),
                           root_->counter.value().value_or(0)));
      return sluice::FilterHeadersStatus::StopIteration;
    }
    return sluice::FilterHeadersStatus::Continue;
  }

  sluice::FilterDataStatus on_request_body(size_t size, bool eos) override {
    if (!eos) return sluice::FilterDataStatus::StopIterationAndBuffer;
    sluice::request_body().append("!");
    sluice::request_body().prepend("<");
    return sluice::FilterDataStatus::Continue;
  }

  void on_log() override { sluice::log_info("probe: log {}", id()); }
  void on_done() override { sluice::log_info("probe: done {}", id()); }
  void on_delete() override { sluice::log_info("probe: delete {}", id()); }

 private:
  void reply(const std::string& result) {
    sluice::send_local_response(200, "", {{"x-probe-result", result}}, "probe reply");
  }
  ProbeRoot* root_;
};

class OtherRoot : public sluice::RootContext {
 public:
  using RootContext::RootContext;
  bool on_vm_start(size_t) override {
    sluice::log_info("other: vm_start root_id={}", root_id());
    return true;
  }
};

// For a root that makes both kinds of context (as telemetry's): its streams and connections.
class ProbeConnection : public sluice::NetworkContext {
 public:
  ProbeConnection(uint32_t id, ProbeRoot* root) : NetworkContext(id, root) {}
  sluice::FilterStatus on_new_connection() override {
    sluice::log_info("probe: connection {}", id());
    return sluice::FilterStatus::Continue;
  }
  void on_log() override { sluice::log_info("probe: connection log {}", id()); }
  void on_delete() override { sluice::log_info("probe: connection delete {}", id()); }
};

// A stream that keeps every default, on_delete's included: Sluice may delete it later, with
// others (sluice_on_delete_batch). Its destructor says when.
class QuietStream : public sluice::HttpContext {
 public:
  using HttpContext::HttpContext;
  ~QuietStream() override { sluice::log_info("probe: quiet gone {}", id()); }
};

sluice::RegisterContextFactory<ProbeRoot, ProbeStream> probe("probe");
sluice::RegisterContextFactory<ProbeRoot, QuietStream> quiet("probe_quiet");
sluice::RegisterContextFactory<OtherRoot> other("probe_other");
sluice::RegisterContextFactory<ProbeRoot, ProbeStream, ProbeConnection> both("probe_both");

}  // namespace
