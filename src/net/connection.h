// A TCP connection on a worker's event loop: reads into a fixed buffer and hands bytes to its
// owner; writes are queued and flushed in order, with high/low watermarks so the owner can apply
// back-pressure (stop reading the other side) instead of buffering without bound.
//
// Single-threaded: every method is called on the owning worker's loop. Async operations hold a
// shared_ptr to the connection, so it outlives its pending I/O; the owner detaches itself with
// set_callbacks(nullptr) before it goes away.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <asio.hpp>
#include <asio/ssl.hpp>

#include "net/draining_read.h"
#include "net/filter_manager.h"
#include "net/handler_memory.h"
#include "net/tls.h"

namespace sluice::net {

enum class CloseReason { LocalClose, RemoteClose, Error };

class ConnectionCallbacks {
 public:
  virtual ~ConnectionCallbacks() = default;
  virtual void on_read(const char* data, size_t len) = 0;
  // The peer closed or an error happened. Not called for a close() the owner asked for.
  virtual void on_close(CloseReason reason) = 0;
  // The write buffer fell below the low watermark after being above the high one.
  virtual void on_below_write_low_watermark() {}
  virtual void on_above_write_high_watermark() {}
  // With half-close enabled: the peer finished sending (FIN); writing may go on.
  virtual void on_end_of_stream() {}
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(asio::ip::tcp::socket socket, uint32_t buffer_limit);
  ~Connection();

  static std::shared_ptr<Connection> create(asio::io_context& loop, uint32_t buffer_limit);

  void set_callbacks(ConnectionCallbacks* callbacks) { callbacks_ = callbacks; }
  // Connects (client side) with a timeout; `done(error)` runs on the loop.
  void connect(const asio::ip::tcp::endpoint& endpoint, std::chrono::milliseconds timeout,
               std::function<void(const asio::error_code&)> done);

  // Server side of TLS: the handshake, with the filter chain picked by SNI, bounded by
  // `timeout`; `done(error)` runs on the loop. Afterwards every read and write goes through TLS.
  void start_tls_server(std::shared_ptr<const TlsFilterChains> chains,
                        std::chrono::milliseconds timeout,
                        std::function<void(const asio::error_code&)> done);
  // The chain the handshake chose (-1 before), and whether it failed for want of one.
  int tls_chain() const { return server_handshake_ ? server_handshake_->chain : -1; }
  bool tls_no_chain_match() const { return server_handshake_ && server_handshake_->no_match; }
  // OpenSSL's verdict on the peer's certificate (X509_V_OK when none was checked).
  long tls_verify_result() const;
  // Connects and, with `tls`, runs the client handshake, both within `timeout` (as Envoy's
  // connect_timeout covers the TLS handshake). `done(error, in_tls)`: `in_tls` tells a failed
  // handshake from a failed connect, for the ssl.* stats.
  void connect(const asio::ip::tcp::endpoint& endpoint, std::chrono::milliseconds timeout,
               std::shared_ptr<TlsClientContext> tls,
               std::function<void(const asio::error_code&, bool in_tls)> done);
  // Client side of TLS on a connected socket, bounded by `timeout`.
  void start_tls_client(std::shared_ptr<TlsClientContext> context,
                        std::chrono::milliseconds timeout,
                        std::function<void(const asio::error_code&)> done);
  bool tls() const { return tls_ != nullptr; }
  const TlsInfo& tls_info() const { return tls_info_; }

  // Starts or resumes reading (enabled by default once started).
  void start_reading();
  void read_disable(bool disable);
  bool reading_disabled() const { return read_disabled_; }

  // Half-close (the TCP proxy): the peer's FIN is reported by on_end_of_stream() instead of
  // closing, and shutdown_write() sends ours once pending writes are out. Over TLS there is no
  // half-close: the peer's close_notify closes, and shutdown_write() closes after the flush.
  void enable_half_close() { half_close_ = true; }
  void shutdown_write();
  bool read_closed() const { return read_closed_; }

  void write(std::string_view data);
  // Appends what `fill(std::string& buffer)` writes straight into the write buffer (no
  // temporary string); returns how many bytes it added.
  template <typename Fill>
  size_t write_with(Fill&& fill) {
    if (closed_ || tls_shutdown_started_) return 0;
    if (filters_) {
      // Network filters see (and may hold or edit) every written byte: fill a scratch buffer.
      std::string bytes;
      fill(bytes);
      write(bytes);
      return bytes.size();
    }
    const size_t before = pending_.size();
    fill(pending_);
    const size_t added = pending_.size() - before;
    if (added > 0) after_append();
    return added;
  }
  size_t write_buffered() const { return pending_.size() + writing_.size(); }
  // Reads and writes whose operation did not fit the connection's own memory for it (tests).
  size_t io_heap_allocations() const {
    return read_memory_.heap_allocations() + write_memory_.heap_allocations();
  }
  bool above_high_watermark() const { return above_high_; }

  // Closes the socket. With `flush`, pending writes go out first (and reads stop now); a peer
  // that stops reading for kCloseFlushTimeout is cut off.
  void close(bool flush);
  // Runs once when the socket is really closed (after a flush, an error or close()).
  void set_close_hook(std::function<void()> hook) { close_hook_ = std::move(hook); }
  static constexpr std::chrono::seconds kCloseFlushTimeout{10};
  // Closes with a flush like close(true), and tells the callbacks (as a LocalClose): a network
  // filter closing the connection under its terminal filter.
  void close_from_filter();

  // Network filters (envoy.filters.network.*) between the socket and the callbacks: installed
  // once, before the terminal filter starts (FilterManager::start).
  void install_filters(std::vector<std::unique_ptr<ConnectionFilter>> filters);
  FilterManager* filters() { return filters_.get(); }
  static constexpr std::chrono::milliseconds kTlsShutdownTimeout{1000};
  bool open() const { return !closed_; }
  bool closing() const { return close_after_flush_ || closed_; }

  // Unique in the process (Envoy's connection.id), for logs and Proxy-Wasm's connection_id.
  uint64_t id() const { return id_; }
  const std::string& remote_address() const { return remote_address_; }
  const std::string& local_address() const { return local_address_; }
  asio::ip::tcp::socket& socket() { return socket_; }
  asio::io_context& loop() {
    return static_cast<asio::io_context&>(socket_.get_executor().context());
  }

  // How this thread handled reads (connection.cc explains the batching): reads handed on after
  // the rest of their loop turn was read, the batches (drains) they came in, and reads handed
  // on at once (a quiet loop). For tests and benchmarks; reset_thread_read_batching() zeroes the
  // counts and starts over in batching mode.
  struct ReadBatching {
    uint64_t batched_reads = 0;
    uint64_t drains = 0;
    uint64_t inline_reads = 0;
    uint64_t core_yields = 0;  // times the thread offered its core (set_core_yield_interval)
  };
  static ReadBatching thread_read_batching();
  static void reset_thread_read_batching();

  // How long a thread handles reads without a pause before it offers its core to whoever waits
  // for it (connection.cc says why); process-wide, 0 turns it off. Set before workers start.
  static constexpr std::chrono::microseconds kDefaultCoreYieldInterval{500};
  static void set_core_yield_interval(std::chrono::microseconds interval);

  // Something that lives as long as the connection object (the worker's count of it, for one):
  // released when the connection is destroyed.
  void keep_until_destroyed(std::shared_ptr<void> token) { token_ = std::move(token); }

 private:
  std::shared_ptr<void> token_;
  friend class FilterManager;
  // The filter manager's ends of the chain: bytes that passed every filter.
  void deliver_read(std::string_view data, bool end_stream);
  void write_to_socket(std::string_view data, bool end_stream);
  // Filters hold more read bytes than the buffer limit: stop reading until they pass them on.
  void hold_reads(bool hold);
  // Held write bytes changed: the watermarks count them with the write buffer.
  void update_watermarks();
  size_t watermark_bytes() const {
    return write_buffered() + (filters_ ? filters_->held_write_bytes() : 0);
  }
  void write_unfiltered(std::string_view data);
  void shutdown_write_unfiltered();

  static uint64_t next_id();
  void do_read();
  // Reads of a loop turn are handled together (connection.cc): a read's bytes wait in
  // read_buffer_ for the turn's drain_ready_reads.
  static void drain_ready_reads();
  template <typename Handle>
  static void with_writes_held(Handle&& handle);
  void deliver_read_buffer(size_t n);
  void do_write();
  // Watermarks and flush scheduling after bytes were appended to pending_.
  void after_append();
  void flush_now();
  void finish_shutdown_write();
  void finish_close();
  void close_now(bool notify, CloseReason reason);
  void update_addresses();
  void arm_close_flush_timer();

  asio::ip::tcp::socket socket_;
  void start_tls(asio::ssl::stream_base::handshake_type side, std::chrono::milliseconds timeout,
                 std::function<void(const asio::error_code&)> done);

  std::shared_ptr<const void> tls_context_;  // the SSL_CTX's owner, kept alive for tls_
  std::unique_ptr<TlsServerHandshake> server_handshake_;
  std::unique_ptr<asio::ssl::stream<DrainingStream>> tls_;
  TlsInfo tls_info_;
  asio::steady_timer connect_timer_;
  ConnectionCallbacks* callbacks_ = nullptr;
  std::function<void()> close_hook_;
  uint64_t id_ = next_id();
  uint32_t high_watermark_;
  uint32_t low_watermark_;
  std::string pending_;
  std::string writing_;
  bool write_in_flight_ = false;
  bool flush_scheduled_ = false;
  bool read_in_flight_ = false;
  bool read_waiting_ = false;  // read_buffer_ holds bytes a drain has yet to hand on
  bool read_disabled_ = false;
  bool reads_held_ = false;  // by network filters
  bool reading_started_ = false;
  bool above_high_ = false;
  bool close_after_flush_ = false;
  bool half_close_ = false;
  bool read_closed_ = false;           // the peer's FIN arrived (half-close)
  bool shutdown_after_flush_ = false;  // shutdown_write() waits for pending writes
  bool write_shut_ = false;
  bool tls_shutdown_started_ = false;
  bool closed_ = false;
  std::string remote_address_;
  std::string local_address_;
  static constexpr size_t kReadBufferSize = 16 * 1024;
  std::unique_ptr<char[]> read_buffer_;
  // The memory of the read and the write in flight (handler_memory.h).
  HandlerMemory read_memory_, write_memory_;
  std::unique_ptr<FilterManager> filters_;
};

std::string endpoint_to_string(const asio::ip::tcp::endpoint& ep);

}  // namespace sluice::net
