// tcp_rewrite: a network filter (envoy.filters.network.wasm, in front of tcp_proxy or
// http_connection_manager) that counts the bytes of each connection and rewrites strings in
// them. Optionally it asks an HTTP service whether to let a new connection in at all.
//
//   from = ping                 # replaced in bytes from the client...
//   to = PING                   # ...by this (may be empty)
//   upstream_from = pong        # replaced in bytes toward the client
//   upstream_to = PONG
//   check_cluster = auth        # GET check_path on this cluster for each new connection:
//   check_path = /allow         #   200 lets it in, anything else (or no answer) closes it
//
// A string may straddle two reads, so a direction with a rewrite holds its bytes
// (StopIteration) until they end with a newline or the stream ends, then rewrites and passes
// them on: right for line protocols, and the host bounds what is held by the listener's buffer
// limit. Bytes are counted when they pass (metrics tcp_rewrite.*_bytes), and each connection's
// totals are logged when it closes.
#include <string>

#include "sluice/sdk.h"

namespace {

struct Rewrite {
  std::string from, to;
  bool active() const { return !from.empty(); }
};

class TcpRewriteRoot : public sluice::RootContext {
 public:
  using RootContext::RootContext;

  bool on_configure(size_t) override {
    Rewrite down, up;
    std::string check_cluster, check_path = "/";
    for (auto& [key, value] : sluice::parse_key_value_lines(sluice::plugin_configuration())) {
      if (key == "from") {
        down.from = value;
      } else if (key == "to") {
        down.to = value;
      } else if (key == "upstream_from") {
        up.from = value;
      } else if (key == "upstream_to") {
        up.to = value;
      } else if (key == "check_cluster") {
        check_cluster = value;
      } else if (key == "check_path") {
        check_path = value;
      } else {
        sluice::log_error("tcp_rewrite: unknown configuration key '{}'", key);
        return false;
      }
    }
    if ((down.from.empty() && !down.to.empty()) || (up.from.empty() && !up.to.empty())) {
      sluice::log_error("tcp_rewrite: a 'to' needs its 'from'");
      return false;
    }
    if (check_path.empty() || check_path[0] != '/') {
      sluice::log_error("tcp_rewrite: check_path must start with '/'");
      return false;
    }
    downstream_ = std::move(down);
    upstream_ = std::move(up);
    check_cluster_ = std::move(check_cluster);
    check_path_ = std::move(check_path);
    return true;
  }

  const Rewrite& downstream() const { return downstream_; }
  const Rewrite& upstream() const { return upstream_; }
  const std::string& check_cluster() const { return check_cluster_; }
  const std::string& check_path() const { return check_path_; }

  sluice::Counter connections{"tcp_rewrite.connections"};
  sluice::Counter refused{"tcp_rewrite.refused"};
  sluice::Counter downstream_bytes{"tcp_rewrite.downstream_bytes"};
  sluice::Counter upstream_bytes{"tcp_rewrite.upstream_bytes"};
  sluice::Counter replacements{"tcp_rewrite.replacements"};

 private:
  Rewrite downstream_, upstream_;
  std::string check_cluster_, check_path_;
};

class TcpRewriteConnection : public sluice::NetworkContext {
 public:
  TcpRewriteConnection(uint32_t id, TcpRewriteRoot* root) : NetworkContext(id, root), root_(root) {}

  sluice::FilterStatus on_new_connection() override {
    root_->connections.increment();
    if (root_->check_cluster().empty()) return sluice::FilterStatus::Continue;
    const std::string client = sluice::get_property_string({"source", "address"}).value_or("");
    sluice::Status s = http_call(
        root_->check_cluster(),
        {{":method", "GET"},
         {":path", root_->check_path()},
         {":authority", "tcp-check"},
         {"x-client-address", client}},
        "", {}, 5000, [this](const sluice::HttpCallResponse& r) {
          if (r.status() == 200u) {
            sluice::continue_downstream();
          } else {
            root_->refused.increment();
            sluice::log_info(
                "tcp_rewrite: connection {} refused (check answered {})", id(),
                r.failed() ? std::string("nothing") : std::to_string(r.status().value_or(0)));
            sluice::close_downstream();
          }
        });
    if (s != sluice::Status::Ok) {
      sluice::log_warn("tcp_rewrite: cannot reach '{}': closing", root_->check_cluster());
      sluice::close_downstream();
    }
    return sluice::FilterStatus::StopIteration;  // held until the check answers
  }

  sluice::FilterStatus on_downstream_data(size_t size, bool end_of_stream) override {
    return pass(sluice::downstream_data(), root_->downstream(), size, end_of_stream,
                root_->downstream_bytes, bytes_in_);
  }

  sluice::FilterStatus on_upstream_data(size_t size, bool end_of_stream) override {
    return pass(sluice::upstream_data(), root_->upstream(), size, end_of_stream,
                root_->upstream_bytes, bytes_out_);
  }

  void on_downstream_connection_close(sluice::PeerType peer) override {
    sluice::log_info("tcp_rewrite: connection {} closed by {}: {} bytes in, {} bytes out", id(),
                     peer == sluice::PeerType::Remote ? "the client" : "the proxy", bytes_in_,
                     bytes_out_);
  }

 private:
  sluice::FilterStatus pass(sluice::Buffer buffer, const Rewrite& rewrite, size_t size,
                            bool end_of_stream, sluice::Counter& counter, uint64_t& total) {
    if (rewrite.active()) {
      std::string data = buffer.get(0, size);
      if (!end_of_stream && (data.empty() || data.back() != '\n')) {
        return sluice::FilterStatus::StopIteration;  // the rest of the line may follow
      }
      if (size_t n = sluice::replace_substrings(data, rewrite.from, rewrite.to); n > 0) {
        buffer.replace_all(data);
        root_->replacements.increment(n);
        size = data.size();
      }
    }
    counter.increment(size);
    total += size;
    return sluice::FilterStatus::Continue;
  }

  TcpRewriteRoot* root_;
  uint64_t bytes_in_ = 0, bytes_out_ = 0;
};

sluice::RegisterContextFactory<TcpRewriteRoot, TcpRewriteConnection> registration("tcp_rewrite");

}  // namespace
