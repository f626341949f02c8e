#include "net/connection.h"

#include <sched.h>

#include <algorithm>
#include <atomic>

#include "common/strings.h"

namespace sluice::net {
namespace {

// Reads are handled a loop turn at a time. When several sockets are ready at once, each one's
// bytes are read as Asio reports it, but what they mean (parsing, filters, Wasm, routing) is
// worked out only once every ready socket was read, and everything that work wrote leaves after
// it, in one send() per socket. The proxy's code then runs back to back instead of between
// system calls: where a system call flushes the TLB and cools the caches (PTI without PCID, as
// on many VMs), code run right after one costs two to four times as much; a V8 filter most.
//
// Deferring costs the loop one more epoll_wait per turn (the posted drain queues behind the
// reactor), which pays only when a turn has more than one read: a drain that found a single
// read switches the thread to handling reads at once for the next kInlineReadsAfterLoneDrain,
// then it tries again. Under load turns carry many reads; at a trickle, one.
struct ReadDispatch {
  static constexpr uint32_t kInlineReadsAfterLoneDrain = 64;
  bool active = false;        // a read is being handled: writes wait for its end
  bool drain_posted = false;  // a drain_ready_reads is queued on this thread's loop
  uint32_t inline_reads_left = 0;
  Connection::ReadBatching counts;
  std::vector<std::shared_ptr<Connection>> dirty;  // written to while `active`
  // Connections whose read completed with `n` bytes not handed on yet.
  std::vector<std::pair<std::shared_ptr<Connection>, size_t>> ready;
  // Core sharing (share_core_if_busy): when this thread's busy stretch began, and when it last
  // finished handling reads.
  std::chrono::steady_clock::time_point busy_since{};
  std::chrono::steady_clock::time_point last_work_end{};
};
thread_local ReadDispatch tls_read_dispatch;

// Workers that share a core (more workers than cores, or a proxy beside other busy work) and
// always have work never block, so the scheduler switches between them only at its tick: every
// 4 ms at Linux's common HZ=250, whatever the time slice asks for. A request that arrives for the
// worker just put aside waits that long, and the 2-worker p99 follows the tick. So a thread that
// has handled reads for kDefaultCoreYieldInterval without a pause offers the core (sched_yield,
// which returns at once when nothing else waits for it) once its writes are out; the threads then
// alternate at that interval. Its own share does not shrink: the scheduler still divides the
// core by the time each has run. 0 turns it off (sluice --worker-yield-us).
std::atomic<int64_t> core_yield_interval_ns{
    std::chrono::nanoseconds(Connection::kDefaultCoreYieldInterval).count()};

// Called as a unit of read handling starts: after a pause longer than the interval (the thread
// slept, or was put aside), a new busy stretch begins.
inline void note_read_work_start(ReadDispatch& d) {
  const int64_t interval = core_yield_interval_ns.load(std::memory_order_relaxed);
  if (interval <= 0) return;
  const auto now = std::chrono::steady_clock::now();
  if (now - d.last_work_end > std::chrono::nanoseconds(interval)) d.busy_since = now;
}

// Called as a unit of read handling ends, its writes sent and the next reads asked for.
inline void share_core_if_busy(ReadDispatch& d) {
  const int64_t interval = core_yield_interval_ns.load(std::memory_order_relaxed);
  if (interval <= 0) return;
  auto now = std::chrono::steady_clock::now();
  if (now - d.busy_since >= std::chrono::nanoseconds(interval)) {
    sched_yield();
    ++d.counts.core_yields;
    now = std::chrono::steady_clock::now();
    d.busy_since = now;
  }
  d.last_work_end = now;
}

}  // namespace

void Connection::deliver_read_buffer(size_t n) {
  if (filters_) {
    filters_->on_read(std::string_view(read_buffer_.get(), n), false);
  } else if (callbacks_) {
    callbacks_->on_read(read_buffer_.get(), n);
  }
}

// Runs `handle` with writes held back, then sends what it wrote. Nested (a handler that runs
// a loop of its own, as a worker's shutdown does), the outermost one sends.
template <typename Handle>
void Connection::with_writes_held(Handle&& handle) {
  ReadDispatch& d = tls_read_dispatch;
  const bool outermost = !d.active;
  d.active = true;
  handle();
  if (!outermost) return;
  d.active = false;
  std::vector<std::shared_ptr<Connection>> dirty;
  dirty.swap(d.dirty);
  for (auto& c : dirty) c->flush_now();
  dirty.clear();
  if (d.dirty.capacity() == 0) d.dirty.swap(dirty);  // keep the capacity: no allocation
}

Connection::ReadBatching Connection::thread_read_batching() { return tls_read_dispatch.counts; }

void Connection::reset_thread_read_batching() {
  tls_read_dispatch.counts = {};
  tls_read_dispatch.inline_reads_left = 0;
}

void Connection::set_core_yield_interval(std::chrono::microseconds interval) {
  core_yield_interval_ns.store(std::chrono::nanoseconds(interval).count(),
                               std::memory_order_relaxed);
}

void Connection::drain_ready_reads() {
  ReadDispatch& d = tls_read_dispatch;
  d.drain_posted = false;
  note_read_work_start(d);
  std::vector<std::pair<std::shared_ptr<Connection>, size_t>> batch;
  batch.swap(d.ready);
  ++d.counts.drains;
  d.counts.batched_reads += batch.size();
  if (batch.size() == 1) d.inline_reads_left = ReadDispatch::kInlineReadsAfterLoneDrain;
  with_writes_held([&] {
    for (auto& [c, n] : batch) {
      c->read_waiting_ = false;
      // Closed meanwhile (by another's handling, say): what it sent is of no interest.
      if (c->closed_ || c->close_after_flush_) continue;
      c->deliver_read_buffer(n);
    }
  });
  for (auto& [c, n] : batch) c->do_read();
  batch.clear();
  if (d.ready.capacity() == 0) d.ready.swap(batch);  // keep the capacity: no allocation
  share_core_if_busy(d);
}

uint64_t Connection::next_id() {
  static std::atomic<uint64_t> counter{0};
  return counter.fetch_add(1, std::memory_order_relaxed) + 1;
}

std::string endpoint_to_string(const asio::ip::tcp::endpoint& ep) {
  if (ep.address().is_v6()) return str_cat("[", ep.address().to_string(), "]:", ep.port());
  return str_cat(ep.address().to_string(), ":", ep.port());
}

Connection::Connection(asio::ip::tcp::socket socket, uint32_t buffer_limit)
    : socket_(std::move(socket)),
      connect_timer_(socket_.get_executor()),
      high_watermark_(buffer_limit == 0 ? 1024 * 1024 : buffer_limit),
      low_watermark_(high_watermark_ / 2),
      read_buffer_(new char[kReadBufferSize]) {
  if (socket_.is_open()) update_addresses();
}

Connection::~Connection() {
  asio::error_code ec;
  socket_.close(ec);
}

std::shared_ptr<Connection> Connection::create(asio::io_context& loop, uint32_t buffer_limit) {
  return std::make_shared<Connection>(asio::ip::tcp::socket(loop), buffer_limit);
}

void Connection::update_addresses() {
  asio::error_code ec;
  auto remote = socket_.remote_endpoint(ec);
  if (!ec) remote_address_ = endpoint_to_string(remote);
  auto local = socket_.local_endpoint(ec);
  if (!ec) local_address_ = endpoint_to_string(local);
  socket_.set_option(asio::ip::tcp::no_delay(true), ec);
  enable_receive_queue_hint(socket_);
}

void Connection::connect(const asio::ip::tcp::endpoint& endpoint, std::chrono::milliseconds timeout,
                         std::function<void(const asio::error_code&)> done) {
  auto self = shared_from_this();
  connect_timer_.expires_after(timeout);
  connect_timer_.async_wait([self](const asio::error_code& ec) {
    if (!ec && !self->closed_) {
      asio::error_code ignored;
      self->socket_.cancel(ignored);
      self->socket_.close(ignored);
    }
  });
  socket_.async_connect(endpoint, [self, done = std::move(done)](const asio::error_code& ec) {
    self->connect_timer_.cancel();
    if (!ec) self->update_addresses();
    done(ec ? (ec == asio::error::operation_aborted ? asio::error::timed_out : ec) : ec);
  });
}

void Connection::connect(const asio::ip::tcp::endpoint& endpoint, std::chrono::milliseconds timeout,
                         std::shared_ptr<TlsClientContext> tls,
                         std::function<void(const asio::error_code&, bool in_tls)> done) {
  const auto started = std::chrono::steady_clock::now();
  auto self = shared_from_this();
  connect(endpoint, timeout,
          [self, timeout, started, tls = std::move(tls),
           done = std::move(done)](const asio::error_code& ec) mutable {
            if (ec || !tls) {
              done(ec, false);
              return;
            }
            const auto left =
                std::max(std::chrono::milliseconds(1),
                         timeout - std::chrono::duration_cast<std::chrono::milliseconds>(
                                       std::chrono::steady_clock::now() - started));
            self->start_tls_client(
                std::move(tls), left,
                [done = std::move(done)](const asio::error_code& ec) { done(ec, true); });
          });
}

void Connection::start_reading() {
  reading_started_ = true;
  read_disabled_ = false;
  do_read();
}

void Connection::read_disable(bool disable) {
  read_disabled_ = disable;
  if (!disable && reading_started_) do_read();
}

long Connection::tls_verify_result() const {
  return tls_ ? SSL_get_verify_result(tls_->native_handle()) : X509_V_OK;
}

void Connection::do_read() {
  if (read_in_flight_ || read_waiting_ || read_disabled_ || reads_held_ || closed_ ||
      close_after_flush_ || read_closed_) {
    return;
  }
  read_in_flight_ = true;
  auto self = shared_from_this();
  auto on_read = [self](const asio::error_code& ec, size_t n) mutable {
    self->read_in_flight_ = false;
    // Closing after a flush: what the peer sends now is of no interest.
    if (self->closed_ || self->close_after_flush_) return;
    if (ec) {
      if (ec == asio::error::operation_aborted) return;
      if (ec == asio::error::eof && self->half_close_ && !self->tls_) {
        self->read_closed_ = true;  // no more reads; writing goes on
        if (self->filters_) {
          self->filters_->on_read({}, true);
        } else if (self->callbacks_) {
          self->callbacks_->on_end_of_stream();
        }
        return;
      }
      // A TLS peer that closes without close_notify: still its close.
      const CloseReason reason = ec == asio::error::eof || ec == asio::ssl::error::stream_truncated
                                     ? CloseReason::RemoteClose
                                     : CloseReason::Error;
      self->close_now(true, reason);
      return;
    }
    if (!self->callbacks_ && !self->filters_) {
      self->do_read();
      return;
    }
    ReadDispatch& d = tls_read_dispatch;
    if (d.inline_reads_left > 0) {
      --d.inline_reads_left;
      ++d.counts.inline_reads;
      note_read_work_start(d);
      with_writes_held([&] { self->deliver_read_buffer(n); });
      self->do_read();
      share_core_if_busy(d);
      return;
    }
    self->read_waiting_ = true;  // read_buffer_ holds unhandled bytes: no new read until then
    d.ready.emplace_back(std::move(self), n);  // the list keeps it alive now
    if (!d.drain_posted) {
      d.drain_posted = true;
      // Only on the thread that posted it: a worker's leftover handlers may run on the main
      // thread once the worker has stopped (its list went with it).
      asio::post(d.ready.back().first->socket_.get_executor(), [&d] {
        if (&d == &tls_read_dispatch) drain_ready_reads();
      });
    }
  };
  if (tls_) {
    tls_->async_read_some(
        asio::buffer(read_buffer_.get(), kReadBufferSize),
        asio::bind_allocator(HandlerAllocator<void>(read_memory_), std::move(on_read)));
  } else {
    socket_.async_read_some(
        DrainingBuffer(read_buffer_.get(), kReadBufferSize),
        asio::bind_allocator(HandlerAllocator<void>(read_memory_), std::move(on_read)));
  }
}

void Connection::write(std::string_view data) {
  if (closed_ || write_shut_ || shutdown_after_flush_ || tls_shutdown_started_ || data.empty()) {
    return;
  }
  if (filters_) {
    filters_->on_write(data, false);
    return;
  }
  write_unfiltered(data);
}

void Connection::write_unfiltered(std::string_view data) {
  if (closed_ || write_shut_ || shutdown_after_flush_ || tls_shutdown_started_ || data.empty()) {
    return;
  }
  pending_.append(data);
  after_append();
}

void Connection::install_filters(std::vector<std::unique_ptr<ConnectionFilter>> filters) {
  filters_ = std::make_unique<FilterManager>(*this, std::move(filters), high_watermark_);
}

void Connection::deliver_read(std::string_view data, bool end_stream) {
  if (!data.empty() && callbacks_ && !closed_) callbacks_->on_read(data.data(), data.size());
  if (end_stream && callbacks_ && !closed_) callbacks_->on_end_of_stream();
}

void Connection::write_to_socket(std::string_view data, bool end_stream) {
  write_unfiltered(data);
  if (end_stream) shutdown_write_unfiltered();
}

void Connection::hold_reads(bool hold) {
  if (reads_held_ == hold) return;
  reads_held_ = hold;
  if (!hold && reading_started_) do_read();
}

void Connection::update_watermarks() {
  if (closed_) return;
  if (!above_high_ && watermark_bytes() > high_watermark_) {
    above_high_ = true;
    if (callbacks_) callbacks_->on_above_write_high_watermark();
  } else if (above_high_ && watermark_bytes() < low_watermark_) {
    above_high_ = false;
    if (callbacks_) callbacks_->on_below_write_low_watermark();
  }
}

void Connection::close_from_filter() {
  if (closed_ || close_after_flush_) return;
  ConnectionCallbacks* cb = callbacks_;
  callbacks_ = nullptr;
  close(true);
  if (cb) cb->on_close(CloseReason::LocalClose);
}

void Connection::after_append() {
  if (!above_high_ && watermark_bytes() > high_watermark_) {
    above_high_ = true;
    if (callbacks_) callbacks_->on_above_write_high_watermark();
  }
  // Flush at the end of this loop turn, not now: a response head and its body (or several
  // pipelined responses) written in one turn leave in one send().
  if (!write_in_flight_ && !flush_scheduled_) {
    flush_scheduled_ = true;
    if (tls_read_dispatch.active) {
      tls_read_dispatch.dirty.push_back(shared_from_this());
    } else {
      asio::post(socket_.get_executor(), [self = shared_from_this()] { self->flush_now(); });
    }
  }
}

void Connection::flush_now() {
  flush_scheduled_ = false;
  do_write();
}

void Connection::do_write() {
  if (write_in_flight_ || closed_ || tls_shutdown_started_) return;
  if (pending_.empty()) {
    if (close_after_flush_) finish_close();
    if (shutdown_after_flush_) finish_shutdown_write();
    return;
  }
  writing_.swap(pending_);
  write_in_flight_ = true;
  auto self = shared_from_this();
  auto on_written = [self](const asio::error_code& ec, size_t) {
    self->write_in_flight_ = false;
    self->writing_.clear();
    if (self->closed_) return;
    if (ec) {
      self->close_now(true, CloseReason::Error);
      return;
    }
    if (self->close_after_flush_) self->arm_close_flush_timer();
    if (self->above_high_ && self->watermark_bytes() < self->low_watermark_) {
      self->above_high_ = false;
      if (self->callbacks_) self->callbacks_->on_below_write_low_watermark();
    }
    self->do_write();
  };
  if (tls_) {
    asio::async_write(
        *tls_, asio::buffer(writing_),
        asio::bind_allocator(HandlerAllocator<void>(write_memory_), std::move(on_written)));
  } else {
    asio::async_write(
        socket_, asio::buffer(writing_),
        asio::bind_allocator(HandlerAllocator<void>(write_memory_), std::move(on_written)));
  }
}

void Connection::start_tls_server(std::shared_ptr<const TlsFilterChains> chains,
                                  std::chrono::milliseconds timeout,
                                  std::function<void(const asio::error_code&)> done) {
  // Any chain's context starts the handshake; the ClientHello callback moves it to its own.
  std::shared_ptr<TlsServerContext> first;
  for (const auto& c : chains->chains) {
    if (!c.plaintext) {
      first = c.context;
      break;
    }
  }
  tls_ = std::make_unique<asio::ssl::stream<DrainingStream>>(DrainingStream(socket_),
                                                             first->context());
  tls_context_ = first;
  server_handshake_ = std::make_unique<TlsServerHandshake>();
  server_handshake_->chains = std::move(chains);
  attach_server_handshake(tls_->native_handle(), server_handshake_.get());
  start_tls(asio::ssl::stream_base::server, timeout, std::move(done));
}

void Connection::start_tls_client(std::shared_ptr<TlsClientContext> context,
                                  std::chrono::milliseconds timeout,
                                  std::function<void(const asio::error_code&)> done) {
  tls_ = std::make_unique<asio::ssl::stream<DrainingStream>>(DrainingStream(socket_),
                                                             context->context());
  context->prepare(tls_->native_handle());
  tls_context_ = std::move(context);
  start_tls(asio::ssl::stream_base::client, timeout, std::move(done));
}

void Connection::start_tls(asio::ssl::stream_base::handshake_type side,
                           std::chrono::milliseconds timeout,
                           std::function<void(const asio::error_code&)> done) {
  auto self = shared_from_this();
  // A peer that never finishes its handshake is cut off (slowloris over TLS).
  connect_timer_.expires_after(timeout);
  connect_timer_.async_wait([self](const asio::error_code& ec) {
    if (!ec && !self->closed_) {
      asio::error_code ignored;
      self->socket_.cancel(ignored);
    }
  });
  tls_->async_handshake(side, [self, done = std::move(done)](const asio::error_code& ec) {
    self->connect_timer_.cancel();
    if (!ec) {
      self->tls_info_ = tls_info_of(self->tls_->native_handle());
      // The ClientHello callback's state is not needed past the handshake.
      if (self->server_handshake_) self->server_handshake_->chains.reset();
    }
    done(ec == asio::error::operation_aborted ? asio::error::timed_out : ec);
  });
}

void Connection::shutdown_write() {
  if (closed_ || write_shut_ || shutdown_after_flush_) return;
  if (filters_) {
    filters_->on_write({}, true);  // the filters see the end of the stream first
    return;
  }
  shutdown_write_unfiltered();
}

void Connection::shutdown_write_unfiltered() {
  if (closed_ || write_shut_ || shutdown_after_flush_) return;
  if (tls_) {
    close(true);
    return;
  }
  shutdown_after_flush_ = true;
  if (!write_in_flight_ && pending_.empty()) finish_shutdown_write();
}

void Connection::finish_shutdown_write() {
  shutdown_after_flush_ = false;
  write_shut_ = true;
  asio::error_code ec;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_send, ec);
}

void Connection::close(bool flush) {
  if (closed_) return;
  // The filters are done now, not when the last bytes are out: a connection left to flush is no
  // longer tracked by its worker, and its plugins must end on their own thread.
  if (filters_) filters_->on_close(/*local=*/true);
  if (flush && write_buffered() > 0) {
    close_after_flush_ = true;
    arm_close_flush_timer();
    return;
  }
  if (flush) {
    close_after_flush_ = true;
    finish_close();
    return;
  }
  close_now(false, CloseReason::LocalClose);
}

// Everything is written: a TLS connection says close_notify first, so the peer can tell our
// close from a truncation (OpenSSL 3 clients report "unexpected eof" otherwise).
void Connection::finish_close() {
  if (!tls_ || tls_info_.version.empty() || tls_shutdown_started_) {
    if (!tls_shutdown_started_) close_now(false, CloseReason::LocalClose);
    return;
  }
  tls_shutdown_started_ = true;
  // A read may be in flight, and the shutdown reads the peer's answer: one reader at a time.
  asio::error_code ignored;
  socket_.cancel(ignored);
  auto self = shared_from_this();
  // The peer need not answer: it gets a moment to, then the socket closes anyway.
  connect_timer_.expires_after(kTlsShutdownTimeout);
  connect_timer_.async_wait([self](const asio::error_code& ec) {
    if (!ec) self->close_now(false, CloseReason::LocalClose);
  });
  tls_->async_shutdown(
      [self](const asio::error_code&) { self->close_now(false, CloseReason::LocalClose); });
}

void Connection::arm_close_flush_timer() {
  // Progress re-arms it: only a peer that stopped reading altogether is cut off.
  connect_timer_.expires_after(kCloseFlushTimeout);
  connect_timer_.async_wait([self = shared_from_this()](const asio::error_code& ec) {
    if (!ec) self->close_now(false, CloseReason::LocalClose);
  });
}

void Connection::close_now(bool notify, CloseReason reason) {
  if (closed_) return;
  closed_ = true;
  asio::error_code ec;
  connect_timer_.cancel();
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  socket_.close(ec);
  // The filters first: a closed connection's plugins end before its owner goes away.
  if (filters_) filters_->on_close(/*local=*/!notify);
  if (notify && callbacks_) {
    ConnectionCallbacks* cb = callbacks_;
    callbacks_ = nullptr;
    cb->on_close(reason);
  }
  if (close_hook_) {
    auto hook = std::move(close_hook_);
    close_hook_ = nullptr;
    hook();
  }
}

}  // namespace sluice::net
