// libFuzzer target: the HTTP/2 server session (Http2ServerConnection on nghttp2) fed arbitrary
// frames after a valid client preface, as a downstream client would send them: floods, resets,
// bad HPACK, windows, trailers, bodies for streams already answered. Requests are answered by
// direct responses (no upstream), on a socketpair whose other end is never read.
//
// Checked after every input, once the connection is closed and the loop has run dry: no stream,
// request or connection is still counted active (a leaked stream would stay in these gauges),
// and nothing crashed or leaked under ASan/UBSan.
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <random>
#include <string>

#include <asio.hpp>

#include "config/loader.h"
#include "fuzz_check.h"
#include "http/conn_manager.h"
#include "http/http2_server.h"
#include "upstream/cluster_manager.h"

namespace {

constexpr char kConfig[] = R"(static_resources:
  listeners:
  - address: {socket_address: {address: 127.0.0.1, port_value: 1}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: h2fuzz
          codec_type: HTTP2
          max_request_headers_kb: 8
          http2_protocol_options: {max_concurrent_streams: 8, initial_stream_window_size: 65535}
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - {match: {prefix: /big}, direct_response: {status: 200, body: {inline_string: "0123456789012345678901234567890123456789012345678901234567890123456789"}}}
              - {match: {prefix: /}, direct_response: {status: 404}}
          http_filters: [{name: envoy.filters.http.router}]
)";

struct FuzzWorker final : sluice::http::WorkerContext {
  asio::io_context io;
  std::vector<std::unique_ptr<sluice::upstream::ClusterInfo>> no_clusters;
  sluice::upstream::ClusterManager cluster_manager{no_clusters, &io, 1};
  std::mt19937_64 random{1};
  bool closed = false;

  asio::io_context& loop() override { return io; }
  sluice::upstream::ClusterManager& clusters() override { return cluster_manager; }
  bool draining() const override { return false; }
  std::mt19937_64& rng() override { return random; }
  void connection_closed(sluice::http::DownstreamConnection*) override { closed = true; }
  void switch_to_http2(sluice::http::DownstreamConnection*,
                       std::shared_ptr<sluice::net::Connection>, std::string) override {}
};

struct Setup {
  sluice::config::LoadResult loaded = sluice::config::load_from_string(kConfig);
  std::shared_ptr<const sluice::http::HttpListenerConfig> config;
  Setup() {
    FUZZ_CHECK(loaded.bootstrap && loaded.errors.empty());
    const auto& hcm = std::get<sluice::config::HttpConnectionManager>(
        loaded.bootstrap->listeners[0].filter_chains[0].filters[0].config);
    config = std::make_shared<sluice::http::HttpListenerConfig>(hcm, 16384);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Setup setup;
  const auto& stats = setup.config->stats;
  const int64_t streams_before = sluice::http::Http2Stats::downstream().streams_active.value();
  {
    FuzzWorker worker;
    int fds[2];
    FUZZ_CHECK(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
    asio::ip::tcp::socket socket(worker.io);
    socket.assign(asio::ip::tcp::v4(), fds[0]);
    auto conn = std::make_shared<sluice::net::Connection>(std::move(socket), 16384);
    auto session =
        std::make_shared<sluice::http::Http2ServerConnection>(worker, setup.config, conn);
    session->start("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    // The first byte says where the rest is split into two reads.
    if (size > 0) {
      const char* rest = reinterpret_cast<const char*>(data) + 1;
      const size_t rest_size = size - 1;
      const size_t cut = data[0] % (rest_size + 1);
      if (cut > 0) session->on_read(rest, cut);
      worker.io.poll();
      if (rest_size > cut) session->on_read(rest + cut, rest_size - cut);
      worker.io.poll();
    }
    session->close_now();
    worker.io.poll();
    session.reset();
    worker.io.poll();
    ::close(fds[1]);
  }
  FUZZ_CHECK(sluice::http::Http2Stats::downstream().streams_active.value() == streams_before);
  FUZZ_CHECK(stats.downstream_rq_active.value() == 0);
  FUZZ_CHECK(stats.downstream_cx_active.value() == 0);
  return 0;
}
