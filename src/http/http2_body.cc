#include "http/http2_body.h"

#include <algorithm>
#include <cstring>
#include <vector>

namespace sluice::http {

nghttp2_nv make_nghttp2_nv(std::string_view name, std::string_view value) {
  nghttp2_nv nv{};
  nv.name = reinterpret_cast<uint8_t*>(const_cast<char*>(name.data()));
  nv.namelen = name.size();
  nv.value = reinterpret_cast<uint8_t*>(const_cast<char*>(value.data()));
  nv.valuelen = value.size();
  nv.flags = NGHTTP2_NV_FLAG_NONE;
  return nv;
}

void Http2OutgoingBody::append(std::string_view data) {
  if (end_ || data.empty()) return;
  if (offset_ == out_.size()) {
    out_.clear();
    offset_ = 0;
  }
  out_.append(data);
}

void Http2OutgoingBody::end(const HeaderMap* trailers) {
  if (end_) return;
  end_ = true;
  if (trailers) trailers_ = *trailers;
}

void Http2OutgoingBody::resume(nghttp2_session* session, int32_t stream_id) {
  if (!deferred_) return;
  deferred_ = false;
  nghttp2_session_resume_data(session, stream_id);
}

ssize_t Http2OutgoingBody::read(nghttp2_session* session, int32_t stream_id, uint8_t* buf,
                                size_t length, uint32_t* flags) {
  const size_t n = std::min(length, pending());
  std::memcpy(buf, out_.data() + offset_, n);
  offset_ += n;
  if (offset_ == out_.size()) {
    out_.clear();
    offset_ = 0;
  } else if (offset_ > 65536) {
    out_.erase(0, offset_);  // keep the buffer from growing at the front
    offset_ = 0;
  }
  if (pending() > 0) return static_cast<ssize_t>(n);
  if (end_) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (!trailers_.empty()) {
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      std::vector<nghttp2_nv> nva;
      nva.reserve(trailers_.size());
      for (const auto& e : trailers_) nva.push_back(make_nghttp2_nv(e.key, e.value));
      nghttp2_submit_trailer(session, stream_id, nva.data(), nva.size());
    }
  } else if (n == 0) {
    deferred_ = true;
    return NGHTTP2_ERR_DEFERRED;
  }
  return static_cast<ssize_t>(n);
}

void Http2IncomingWindow::received(nghttp2_session* session, int32_t id, size_t len,
                                   Http2IncomingWindow* window) {
  nghttp2_session_consume_connection(session, len);
  if (window && window->paused_) {
    window->unconsumed_ += len;
  } else {
    nghttp2_session_consume_stream(session, id, len);
  }
}

bool Http2IncomingWindow::set_paused(nghttp2_session* session, int32_t id, bool paused) {
  paused_ = paused;
  if (paused || unconsumed_ == 0) return false;
  nghttp2_session_consume_stream(session, id, unconsumed_);
  unconsumed_ = 0;
  return true;
}

}  // namespace sluice::http
