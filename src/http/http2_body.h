// What the HTTP/2 server and client sessions (http2_server.h, http2_client.h) share: header
// fields for nghttp2, and one outgoing message body that nghttp2 pulls as the peer's
// flow-control window allows.
#pragma once

#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "common/header_map.h"

namespace sluice::http {

// A header field for nghttp2; it copies name and value when the frame is submitted.
nghttp2_nv make_nghttp2_nv(std::string_view name, std::string_view value);

class Http2OutgoingBody {
 public:
  size_t pending() const { return out_.size() - offset_; }
  bool ended() const { return end_; }

  // Body bytes (ignored once the message ended).
  void append(std::string_view data);
  // The message ends, with `trailers` when given and not empty.
  void end(const HeaderMap* trailers = nullptr);
  // After append() or end(): wakes nghttp2 if it found nothing to send earlier.
  void resume(nghttp2_session* session, int32_t stream_id);

  // nghttp2's data source read callback: copies what fits in `length`; at the end sets EOF (and
  // submits the trailers); with nothing to send yet, returns NGHTTP2_ERR_DEFERRED.
  ssize_t read(nghttp2_session* session, int32_t stream_id, uint8_t* buf, size_t length,
               uint32_t* flags);

 private:
  std::string out_;
  size_t offset_ = 0;  // bytes of out_ already handed to nghttp2
  bool end_ = false;
  bool deferred_ = false;
  HeaderMap trailers_;
};

// The receiving side of flow control for one stream: the connection's window reopens as soon as
// DATA arrives (one stream that is not read cannot stall the others), the stream's only as its
// bytes are taken, so a paused stream holds at most its window.
class Http2IncomingWindow {
 public:
  // `len` DATA bytes arrived on stream `id`; `window` null: nobody wants them (discarded).
  static void received(nghttp2_session* session, int32_t id, size_t len,
                       Http2IncomingWindow* window);
  // Stop (true) or resume taking bytes; true when resuming queued a WINDOW_UPDATE to send.
  bool set_paused(nghttp2_session* session, int32_t id, bool paused);

 private:
  bool paused_ = false;
  size_t unconsumed_ = 0;  // bytes received while paused, not yet given back to the peer
};

}  // namespace sluice::http
