#include "filters/network/wasm_filter.h"

#include <spdlog/spdlog.h>

#include "filters/http/wasm_filter.h"
#include "net/connection.h"
#include "wasm/context.h"

namespace sluice::filters {

namespace {

using net::FilterStatus;
using wasm::Context;
using wasm::WasmInstance;

// A connection whose plugin could not run, under FAIL_CLOSED or FAIL_RELOAD: closed before the
// terminal filter sees it (Envoy's failStream closes the connection too).
class FailedConnectionFilter : public net::ConnectionFilter {
 public:
  void set_callbacks(net::ConnectionFilterCallbacks& cb) override { cb_ = &cb; }
  FilterStatus on_new_connection() override {
    cb_->close_connection();
    return FilterStatus::StopIteration;
  }
  FilterStatus on_read(std::string&, bool) override { return FilterStatus::StopIteration; }
  FilterStatus on_write(std::string&, bool) override { return FilterStatus::StopIteration; }
  void on_close(bool) override {}

 private:
  net::ConnectionFilterCallbacks* cb_ = nullptr;
};

// Peer types of the close callbacks (the ABI's PeerType).
constexpr uint64_t kPeerUnknown = 0, kPeerLocal = 1, kPeerRemote = 2;

class NetworkWasmFilter : public net::ConnectionFilter,
                          public wasm::StreamActions,
                          public wasm::NetworkStream {
 public:
  NetworkWasmFilter(std::shared_ptr<WasmInstance> instance, Context* ctx,
                    wasm::FailurePolicy policy)
      : instance_(std::move(instance)), ctx_(ctx), policy_(policy) {}
  ~NetworkWasmFilter() override {
    *alive_ = false;
    end_context();
  }

  void set_callbacks(net::ConnectionFilterCallbacks& cb) override {
    cb_ = &cb;
    ctx_->set_network(this);
    ctx_->set_actions(this);
  }

  // wasm::NetworkStream
  std::string& downstream_data() override { return cb_->held_read(); }
  std::string& upstream_data() override { return cb_->held_write(); }
  const StreamInfo& stream_info() override { return cb_->stream_info(); }
  uint64_t connection_id() const override { return cb_->connection().id(); }

  // wasm::StreamActions: what the module asked of this connection from a root callback (an
  // http_call's answer resuming a held connection, say).
  void run_deferred_actions() override { after_call(); }

  FilterStatus on_new_connection() override {
    if (failed_open_ || !ctx_) return FilterStatus::Continue;
    const auto& fn = ctx_->stream_callbacks().on_new_connection;
    if (!fn) return FilterStatus::Continue;
    return verdict(instance_->call(ctx_, fn, {ctx_->id()}));
  }

  FilterStatus on_read(std::string& data, bool end_stream) override {
    if (failed_open_ || !ctx_) return FilterStatus::Continue;
    const auto& fn = ctx_->stream_callbacks().on_downstream_data;
    if (!fn) return FilterStatus::Continue;
    return verdict(instance_->call(ctx_, fn, {ctx_->id(), data.size(), end_stream ? 1u : 0u}));
  }

  FilterStatus on_write(std::string& data, bool end_stream) override {
    if (failed_open_ || !ctx_) return FilterStatus::Continue;
    const auto& fn = ctx_->stream_callbacks().on_upstream_data;
    FilterStatus status = FilterStatus::Continue;
    if (fn) {
      status = verdict(instance_->call(ctx_, fn, {ctx_->id(), data.size(), end_stream ? 1u : 0u}));
    }
    // The upstream side is finished: Envoy reports it here too (it has no upstream connection
    // events to offer a network filter), with an unknown peer.
    if (end_stream && ctx_ && !upstream_close_reported_ && !failed_open_) {
      upstream_close_reported_ = true;
      instance_->call(ctx_, ctx_->stream_callbacks().on_upstream_connection_close,
                      {ctx_->id(), kPeerUnknown});
      if (!after_call()) return FilterStatus::StopIteration;
    }
    return status;
  }

  void on_close(bool local) override {
    if (!ctx_) return;
    if (!failed_open_ && !instance_->failed()) {
      instance_->call(ctx_, ctx_->stream_callbacks().on_downstream_connection_close,
                      {ctx_->id(), local ? kPeerLocal : kPeerRemote});
    }
    end_context();
  }

 private:
  // The module's answer to a data or new-connection callback, after what it asked for ran.
  FilterStatus verdict(std::optional<uint64_t> r) {
    if (!after_call()) return FilterStatus::StopIteration;
    if (!r || failed_open_) return FilterStatus::Continue;
    return *r == 0 ? FilterStatus::Continue : FilterStatus::StopIteration;
  }

  // What the module asked for during the call, now that it returned. False when the connection
  // is closing (or this filter's context is gone): nothing may pass on.
  bool after_call() {
    if (!ctx_) return false;
    if (instance_->failed()) {
      if (policy_ == wasm::FailurePolicy::FailOpen) {
        failed_open_ = true;
        return true;
      }
      spdlog::debug("connection {}: Wasm plugin failed, closing", cb_->connection().id());
      cb_->close_connection();
      return false;
    }
    if (ctx_->want_close) {
      ctx_->want_close.reset();
      cb_->close_connection();
      return false;
    }
    // A continue runs through the filter manager, which holds it until a pass in the same
    // direction that is under way has finished. Either may end the connection, and this filter.
    const bool downstream = ctx_->want_continue_downstream;
    const bool upstream = ctx_->want_continue_upstream;
    ctx_->want_continue_downstream = ctx_->want_continue_upstream = false;
    const std::shared_ptr<bool> alive = alive_;
    if (downstream) {
      cb_->continue_reading();
      if (!*alive || !ctx_) return false;
    }
    if (upstream) {
      cb_->continue_writing();
      if (!*alive || !ctx_) return false;
    }
    return true;
  }

  // on_log, on_done, on_delete (as Envoy at the end of a TCP connection); then the context is
  // gone and the instance is let go, here on its own thread (the connection object may die on
  // another one).
  void end_context() {
    if (!ctx_) return;
    Context* ctx = ctx_;
    ctx_ = nullptr;
    ctx->set_actions(nullptr);
    ctx->set_network(nullptr);
    instance_->destroy_stream_context(ctx, true);
    instance_.reset();
  }

  std::shared_ptr<WasmInstance> instance_;  // keeps ctx_ alive; null once it ended
  Context* ctx_;
  net::ConnectionFilterCallbacks* cb_ = nullptr;
  wasm::FailurePolicy policy_;
  bool failed_open_ = false;
  bool upstream_close_reported_ = false;
  // False once this filter is destroyed: a continue may end the connection under it.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace

std::unique_ptr<net::ConnectionFilter> NetworkWasmFilterConfig::create_filter() {
  const wasm::FailurePolicy policy = plugin_->spec().failure_policy;
  wasm::Plugin::NewStream stream = plugin_->new_stream_on_this_thread();
  if (!stream.context) {
    if (policy == wasm::FailurePolicy::FailOpen) return nullptr;
    return std::make_unique<FailedConnectionFilter>();
  }
  return std::make_unique<NetworkWasmFilter>(std::move(stream.instance), stream.context, policy);
}

Result<std::shared_ptr<NetworkWasmFilterConfig>> make_network_wasm_filter_config(
    const config::NetworkFilter& filter, const config::Bootstrap& bootstrap) {
  const auto* plugin_config = std::get_if<config::WasmPlugin>(&filter.config);
  if (!plugin_config) return Error{"not a Wasm network filter"};
  auto plugin = load_wasm_plugin(*plugin_config, bootstrap);
  if (!plugin) return std::move(plugin).take_error();
  return std::make_shared<NetworkWasmFilterConfig>(filter.name, std::move(*plugin));
}

}  // namespace sluice::filters
