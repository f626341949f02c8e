#include "filters/http/wasm_filter.h"

#include "wasm/abi/capabilities.h"
#include "wasm/abi/host_functions.h"
#include "wasm/code_cache.h"

#include <spdlog/spdlog.h>

#include "common/strings.h"

namespace sluice::filters {

namespace {

using http::FilterDataStatus;
using http::FilterHeadersStatus;
using http::FilterTrailersStatus;
using wasm::Context;
using wasm::Phase;
using wasm::WasmInstance;

// A stream whose plugin could not run: closed policies answer 503, as Envoy's failStream.
class FailedStreamFilter : public http::StreamFilter {
 public:
  explicit FailedStreamFilter(http::StreamFilterCallbacks& cb) : cb_(cb) {}
  FilterHeadersStatus decode_headers(HeaderMap&, bool) override {
    cb_.send_local_reply(503, "", {}, "wasm_fail_stream");
    return FilterHeadersStatus::StopIteration;
  }
  FilterDataStatus decode_data(std::string&, bool) override {
    return FilterDataStatus::StopIterationNoBuffer;
  }
  FilterHeadersStatus encode_headers(HeaderMap&, bool) override {
    return FilterHeadersStatus::Continue;
  }
  FilterDataStatus encode_data(std::string&, bool) override { return FilterDataStatus::Continue; }
  void on_stream_complete() override {}

 private:
  http::StreamFilterCallbacks& cb_;
};

class WasmFilter : public http::StreamFilter, public wasm::StreamActions {
 public:
  WasmFilter(std::shared_ptr<WasmInstance> instance, Context* ctx, http::StreamFilterCallbacks& cb,
             wasm::FailurePolicy policy)
      : instance_(std::move(instance)), ctx_(ctx), cb_(cb), policy_(policy) {
    ctx_->set_stream(&cb_);
    ctx_->set_actions(this);
  }
  ~WasmFilter() override {
    if (alive_) *alive_ = false;
  }

  // wasm::StreamActions: what the module asked of this stream from a root callback (an
  // http_call response continuing or answering a paused request).
  void run_deferred_actions() override {
    if (ctx_) after_call(true);
  }

  FilterHeadersStatus decode_headers(HeaderMap& headers, bool end_stream) override {
    return on_headers(Phase::RequestHeaders, ctx_->stream_callbacks().on_request_headers,
                      headers.size(), end_stream);
  }
  FilterDataStatus decode_data(std::string& data, bool end_stream) override {
    return on_body(Phase::RequestBody, ctx_->stream_callbacks().on_request_body, data.size(),
                   end_stream);
  }
  FilterHeadersStatus encode_headers(HeaderMap& headers, bool end_stream) override {
    // What the module asked for earlier (sluice_edit_response_headers), with no call into it: a
    // skipped callback is as a declined one.
    if (ctx_->response_header_edits != 0 && !failed_open_ && !instance_->failed()) {
      wasm::apply_response_header_edits(*ctx_, headers);
    }
    if (ctx_->skip_response_headers_callback) return FilterHeadersStatus::Continue;
    return on_headers(Phase::ResponseHeaders,
                      ctx_->call_response_headers_callback
                          ? instance_->callbacks().on_response_headers
                          : ctx_->stream_callbacks().on_response_headers,
                      headers.size(), end_stream);
  }
  FilterDataStatus encode_data(std::string& data, bool end_stream) override {
    return on_body(Phase::ResponseBody, ctx_->stream_callbacks().on_response_body, data.size(),
                   end_stream);
  }
  FilterTrailersStatus decode_trailers(HeaderMap& trailers) override {
    return on_trailers(Phase::RequestTrailers, ctx_->stream_callbacks().on_request_trailers,
                       trailers.size());
  }
  FilterTrailersStatus encode_trailers(HeaderMap& trailers) override {
    return on_trailers(Phase::ResponseTrailers, ctx_->stream_callbacks().on_response_trailers,
                       trailers.size());
  }
  void on_stream_complete() override {
    if (!ctx_) return;
    ctx_->set_actions(nullptr);
    instance_->destroy_stream_context(ctx_, true);
    ctx_ = nullptr;
  }

 private:
  // What the module asked for during the call, now that it returned (Envoy defers these too).
  // False when the stream was answered or failed: the filter must stop.
  bool after_call(bool request_side) {
    if (instance_->failed()) {
      if (policy_ == wasm::FailurePolicy::FailOpen) {
        failed_open_ = true;
        return true;
      }
      cb_.send_local_reply(503, "", {}, "wasm_fail_stream");
      return false;
    }
    if (ctx_->local_response) {
      Context::LocalResponse r = std::move(*ctx_->local_response);
      ctx_->local_response.reset();
      HeaderMap extra;
      for (auto& [k, v] : r.headers) extra.add(k, v);
      cb_.send_local_reply(r.status, std::move(r.body), std::move(extra), std::move(r.details));
      return false;
    }
    if (ctx_->want_close) {
      std::string details = std::move(*ctx_->want_close);
      ctx_->want_close.reset();
      cb_.reset_stream(std::move(details));  // may end the stream, and this filter: last
      return false;
    }
    // A continue asked for inside the call: the connection manager resumes once we return. From
    // run_deferred_actions (a callout's answer) it resumes at once, and the stream may finish
    // right there (a direct response, a local reply), destroying this filter: nothing of ours
    // is touched after a resume unless `alive` says we still exist.
    const bool continue_request = ctx_->want_continue_request;
    const bool continue_response = ctx_->want_continue_response;
    if (!continue_request && !continue_response) return true;
    ctx_->want_continue_request = ctx_->want_continue_response = false;
    if (!alive_) alive_ = std::make_shared<bool>(true);  // (only streams that resume pay for it)
    const std::shared_ptr<bool> alive = alive_;
    if (continue_request) {
      cb_.continue_decoding();
      if (!*alive || !ctx_) return false;
    }
    if (continue_response) {
      cb_.continue_encoding();
      if (!*alive || !ctx_) return false;
    }
    (void)request_side;
    return true;
  }

  FilterHeadersStatus on_headers(Phase phase, const wasm::WasmFunction& fn, size_t count,
                                 bool end_stream) {
    if (failed_open_ || !fn) return FilterHeadersStatus::Continue;
    ctx_->set_phase(phase);
    std::optional<uint64_t> r =
        phase == Phase::RequestHeaders ? instance_->start_stream(ctx_, count, end_stream)
        : instance_->abi_version() == wasm::AbiVersion::V0_1_0
            ? instance_->call(ctx_, fn, {ctx_->id(), count})
            : instance_->call(ctx_, fn, {ctx_->id(), count, end_stream ? 1u : 0u});
    if (!after_call(phase == Phase::RequestHeaders)) return FilterHeadersStatus::StopIteration;
    if (!r || failed_open_) return FilterHeadersStatus::Continue;
    // 0 Continue; 2 ContinueAndEndStream is treated as Continue (as Envoy); anything else stops
    // the whole stream (Envoy's StopAllIterationAndWatermark).
    return *r == 0 || *r == 2 ? FilterHeadersStatus::Continue : FilterHeadersStatus::StopIteration;
  }

  FilterDataStatus on_body(Phase phase, const wasm::WasmFunction& fn, size_t size,
                           bool end_stream) {
    if (failed_open_ || !fn) return FilterDataStatus::Continue;
    ctx_->set_phase(phase);
    std::optional<uint64_t> r = instance_->call(ctx_, fn, {ctx_->id(), size, end_stream ? 1u : 0u});
    if (!after_call(phase == Phase::RequestBody)) return FilterDataStatus::StopIterationNoBuffer;
    if (!r || failed_open_) return FilterDataStatus::Continue;
    switch (*r) {
      case 0:
        return FilterDataStatus::Continue;
      case 1:
      case 2:
        return FilterDataStatus::StopIterationAndBuffer;  // watermark: buffer as well
      default:
        return FilterDataStatus::StopIterationNoBuffer;
    }
  }

  FilterTrailersStatus on_trailers(Phase phase, const wasm::WasmFunction& fn, size_t count) {
    if (failed_open_ || !fn) return FilterTrailersStatus::Continue;
    ctx_->set_phase(phase);
    std::optional<uint64_t> r = instance_->call(ctx_, fn, {ctx_->id(), count});
    if (!after_call(phase == Phase::RequestTrailers)) return FilterTrailersStatus::StopIteration;
    if (!r || failed_open_) return FilterTrailersStatus::Continue;
    return *r == 0 ? FilterTrailersStatus::Continue : FilterTrailersStatus::StopIteration;
  }

  std::shared_ptr<WasmInstance> instance_;  // keeps ctx_ alive
  Context* ctx_;
  // False once this filter is destroyed: see after_call. Made by the first resume.
  std::shared_ptr<bool> alive_;
  http::StreamFilterCallbacks& cb_;
  wasm::FailurePolicy policy_;
  bool failed_open_ = false;
};

}  // namespace

std::unique_ptr<http::StreamFilter> WasmFilterConfig::create_filter(
    http::StreamFilterCallbacks& callbacks) {
  const wasm::FailurePolicy policy = plugin_->spec().failure_policy;
  // Deferred: the module's on_context_create goes with on_request_headers, in one call.
  wasm::Plugin::NewStream stream = plugin_->new_stream_on_this_thread(/*defer_create=*/true);
  if (!stream.context) {
    if (policy == wasm::FailurePolicy::FailOpen) return nullptr;
    return std::make_unique<FailedStreamFilter>(callbacks);
  }
  return std::make_unique<WasmFilter>(std::move(stream.instance), stream.context, callbacks,
                                      policy);
}

Result<std::shared_ptr<wasm::Plugin>> load_wasm_plugin(const config::WasmPlugin& w,
                                                       const config::Bootstrap& bootstrap) {
  wasm::PluginSpec spec;
  spec.name = w.name;
  spec.root_id = w.root_id;
  spec.configuration = w.configuration;
  spec.vm_id = w.vm_id;
  spec.runtime = w.runtime;
  spec.vm_configuration = w.vm_configuration;
  spec.code = w.code;
  if (w.remote) {
    // Fetched (and its hash checked) by the server before this configuration is built.
    // An image configured without sha256 is known by what its reference resolved to.
    const std::string* sha256 = !w.remote->sha256.empty()
                                    ? &w.remote->sha256
                                    : wasm::CodeCache::instance().remembered(w.remote->uri);
    const std::string* fetched = sha256 ? wasm::CodeCache::instance().find(*sha256) : nullptr;
    if (!fetched) {
      return Error{str_cat("remote code ", w.remote->uri, " (sha256 ",
                           sha256 ? *sha256 : std::string("unknown"), ") has not been fetched")};
    }
    spec.code = *fetched;
  }
  spec.code_origin = w.code_origin;
  spec.env = w.env;
  spec.allowed_capabilities = w.allowed_capabilities;
  for (const auto& name : w.allowed_capabilities) {
    if (!wasm::is_known_capability(name)) {
      spdlog::warn(
          "plugin '{}': capability_restriction_config names '{}', which is not a host function or "
          "callback Sluice has; it allows nothing",
          w.name, name);
    }
  }
  switch (w.failure_policy) {
    case config::WasmPlugin::FailurePolicy::FailClosed:
      spec.failure_policy = wasm::FailurePolicy::FailClosed;
      break;
    case config::WasmPlugin::FailurePolicy::FailOpen:
      spec.failure_policy = wasm::FailurePolicy::FailOpen;
      break;
    case config::WasmPlugin::FailurePolicy::FailReload:
      spec.failure_policy = wasm::FailurePolicy::FailReload;
      break;
  }
  spec.heal = w.heal;
  spec.reload_base = w.reload_base_interval;
  spec.reload_max = w.reload_max_interval;
  spec.node_id = bootstrap.node.id;
  spec.node_cluster = bootstrap.node.cluster;
  spec.node_metadata = wasm::NodeMetadata::from_json(bootstrap.node.metadata_json);
  const config::WasmPluginSettings limits = bootstrap.sluice.wasm_settings_for(w.name);
  spec.memory_limit_mb = *limits.memory_limit_mb;
  spec.callback_cpu_ms = *limits.callback_cpu_ms;
  spec.startup_cpu_ms = *limits.startup_cpu_ms;
  spec.hide.request_headers = limits.hide_request_headers;
  spec.hide.response_headers = limits.hide_response_headers;
  spec.hide.client_address = limits.hide_client_address;
  if (spec.hide.any()) {
    spec.hide.writes = stats::Store::instance().counter(
        stats::MetricName{str_cat("sluice.wasm.", w.name, ".hidden_header_writes_total"),
                          "sluice.wasm.hidden_header_writes_total",
                          {{"plugin", w.name}}});
  }
  return wasm::Plugin::load(std::move(spec));
}

Result<std::shared_ptr<WasmFilterConfig>> make_wasm_filter_config(
    const config::HttpFilter& filter, const config::Bootstrap& bootstrap) {
  auto plugin = load_wasm_plugin(*filter.wasm, bootstrap);
  if (!plugin) return std::move(plugin).take_error();
  return std::make_shared<WasmFilterConfig>(filter.name, std::move(*plugin));
}

}  // namespace sluice::filters
