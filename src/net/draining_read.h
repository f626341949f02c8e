// Socket reads that spare the event loop the recv() that would answer EAGAIN.
//
// Why: before it waits for epoll, asio's async_read_some always tries the recv() at once
// ("speculative read"). A proxy asks for the next read as soon as it has handed on the last
// bytes, and by then the socket is nearly always empty: a third of Sluice's syscalls per proxied
// request were recv()s failing with EAGAIN.
//
// Knowing the socket is empty needs care: "a short read emptied the queue" (nginx's rule) misses
// a FIN that came with the last bytes, which raises no further epoll edge. Linux's TCP_INQ
// socket option answers exactly this: each recvmsg() also reports how many bytes are left, and
// reports 1 when only the FIN is (its stated purpose: "tell user-space to continue reading").
//
// asio has the mechanism to skip the recv(): an operation that reports `done_and_exhausted` makes
// the reactor skip the speculative recv() until epoll delivers the descriptor's next edge
// (epoll_reactor's try_speculative_, set again by every edge, so no wake-up is lost, whoever is
// or is not waiting at that moment); asio itself uses it only for end of stream. Reading into a
// DrainingBuffer selects our receive operation below, which reads with recvmsg() and reports
// "nothing left" as exhausted. Everything else (queueing, cancellation, completion) stays asio's.
// Sockets without TCP_INQ (enable_receive_queue_hint failed) get no hint and behave as before.
//
// The operation is an explicit specialisation of an asio-internal template for our own buffer
// type, checked against the asio release it was written for (Debian 12's 1.22.1); with any other
// release DrainingBuffer is a plain mutable_buffer and reads behave as before.
#pragma once

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <utility>

#include <asio.hpp>

namespace sluice::net {

#if ASIO_VERSION >= 102200 && ASIO_VERSION < 102300
inline constexpr bool kShortReadsSkipSpeculativeRecv = true;

// A single mutable buffer, as a distinct type so that reading into it picks the operation below.
struct DrainingBuffer : asio::mutable_buffer {
  DrainingBuffer(void* data, size_t size) : asio::mutable_buffer(data, size) {}
  explicit DrainingBuffer(const asio::mutable_buffer& b) : asio::mutable_buffer(b) {}
};
#else
inline constexpr bool kShortReadsSkipSpeculativeRecv = false;
using DrainingBuffer = asio::mutable_buffer;
#endif

// Asks the kernel to report the bytes left after each read (TCP_INQ); false where it cannot.
inline bool enable_receive_queue_hint(asio::ip::tcp::socket& socket) {
  const int on = 1;
  return ::setsockopt(socket.native_handle(), IPPROTO_TCP, TCP_INQ, &on, sizeof on) == 0;
}

// The transport under asio's ssl::stream, so that TLS reads skip the EAGAIN recv() too.
class DrainingStream {
 public:
  using executor_type = asio::ip::tcp::socket::executor_type;
  using lowest_layer_type = asio::ip::tcp::socket::lowest_layer_type;

  explicit DrainingStream(asio::ip::tcp::socket& socket) : socket_(&socket) {}

  executor_type get_executor() noexcept { return socket_->get_executor(); }
  lowest_layer_type& lowest_layer() { return socket_->lowest_layer(); }
  const lowest_layer_type& lowest_layer() const { return socket_->lowest_layer(); }

  // asio's SSL stream reads into one buffer (its record buffer, or an empty one to post).
  template <typename Handler>
  void async_read_some(const asio::mutable_buffer& buffer, Handler&& handler) {
    socket_->async_read_some(DrainingBuffer(buffer), std::forward<Handler>(handler));
  }
  template <typename ConstBuffers, typename Handler>
  void async_write_some(const ConstBuffers& buffers, Handler&& handler) {
    socket_->async_write_some(buffers, std::forward<Handler>(handler));
  }
  template <typename MutableBuffers>
  size_t read_some(const MutableBuffers& buffers, asio::error_code& ec) {
    return socket_->read_some(buffers, ec);
  }
  template <typename ConstBuffers>
  size_t write_some(const ConstBuffers& buffers, asio::error_code& ec) {
    return socket_->write_some(buffers, ec);
  }

 private:
  asio::ip::tcp::socket* socket_;
};

}  // namespace sluice::net

#if ASIO_VERSION >= 102200 && ASIO_VERSION < 102300
namespace asio::detail {

// asio's receive operation (reactive_socket_recv_op_base in
// asio/detail/reactive_socket_recv_op.hpp) for a DrainingBuffer: the same recv(), reporting a short
// read as exhausted as well as EOF.
template <>
class reactive_socket_recv_op_base<sluice::net::DrainingBuffer> : public reactor_op {
 public:
  reactive_socket_recv_op_base(const asio::error_code& success_ec, socket_type socket,
                               socket_ops::state_type state,
                               const sluice::net::DrainingBuffer& buffer,
                               socket_base::message_flags flags, func_type complete_func)
      : reactor_op(success_ec, &reactive_socket_recv_op_base::do_perform, complete_func),
        socket_(socket),
        state_(state),
        buffer_(buffer),
        flags_(flags) {}

  static status do_perform(reactor_op* base) {
    auto* o = static_cast<reactive_socket_recv_op_base*>(base);
    iovec iov{o->buffer_.data(), o->buffer_.size()};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
    for (;;) {
      msghdr msg{};
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      msg.msg_control = control;
      msg.msg_controllen = sizeof control;
      const ssize_t n = ::recvmsg(o->socket_, &msg, o->flags_);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return not_done;  // wait for epoll
        o->ec_ = asio::error_code(errno, asio::error::get_system_category());
        o->bytes_transferred_ = 0;
        return done;
      }
      o->bytes_transferred_ = static_cast<size_t>(n);
      const bool stream = (o->state_ & socket_ops::stream_oriented) != 0;
      if (n == 0 && stream && o->buffer_.size() > 0) {
        o->ec_ = asio::error::eof;
        return done_and_exhausted;
      }
      o->ec_ = asio::error_code();
      for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_TCP && c->cmsg_type == TCP_CM_INQ) {
          int left = 0;
          std::memcpy(&left, CMSG_DATA(c), sizeof left);
          // Nothing left (and no FIN, which counts as 1): the next bytes raise an edge.
          return left == 0 ? done_and_exhausted : done;
        }
      }
      return done;  // no hint on this socket: asio's behaviour
    }
  }

 private:
  socket_type socket_;
  socket_ops::state_type state_;
  sluice::net::DrainingBuffer buffer_;
  socket_base::message_flags flags_;
};

}  // namespace asio::detail
#endif
