#include "http/async_client.h"

#include <algorithm>

#include "common/strings.h"
#include "http/http1_parser.h"
#include "http/upstream_request.h"
#include "net/lazy_timer.h"

namespace sluice::http {

std::string_view async_failure_name(AsyncFailure f) {
  switch (f) {
    case AsyncFailure::NoHost:
      return "no healthy upstream";
    case AsyncFailure::ConnectFailure:
      return "connection failure";
    case AsyncFailure::Reset:
      return "reset";
    case AsyncFailure::ProtocolError:
      return "protocol error";
    case AsyncFailure::Overflow:
      return "overflow";
    case AsyncFailure::Timeout:
      return "timeout";
    case AsyncFailure::ResponseTooLarge:
      return "response too large";
  }
  return "unknown";
}

// One request, buffered (AsyncRequestCallbacks) or streamed (AsyncStreamCallbacks).
class AsyncClient::Request final : public AsyncRequest,
                                   public AsyncStream,
                                   public UpstreamRequestCallbacks {
 public:
  Request(AsyncClient& client, upstream::WorkerCluster& cluster, const Options& options)
      : client_(client),
        cluster_(cluster),
        options_(options),
        timer_(client.loop_, [this] { fail(AsyncFailure::Timeout); }) {}

  ~Request() override { release_upstream(); }

  void start_buffered(const HeaderMap& headers, std::string_view body, const HeaderMap& trailers,
                      AsyncRequestCallbacks& callbacks) {
    buffered_ = &callbacks;
    // A Content-Length for a body; the codec chunks one with trailers (HTTP/1).
    HeaderMap h = headers;
    h.remove("transfer-encoding");
    h.remove("content-length");
    if (!body.empty() && trailers.empty()) h.set("content-length", str_cat(body.size()));
    const bool end_at_headers = body.empty() && trailers.empty();
    if (!begin(h, end_at_headers) || end_at_headers) return;
    if (!body.empty()) upstream_->encode_data(body);
    request_ended_ = true;
    upstream_->encode_end(trailers.empty() ? nullptr : &trailers);
  }

  void start_streaming(const HeaderMap& headers, bool end_stream, AsyncStreamCallbacks& callbacks) {
    streaming_ = &callbacks;
    HeaderMap h = headers;
    h.remove("transfer-encoding");  // the codec frames the body (chunked on HTTP/1)
    if (!end_stream) h.remove("content-length");
    begin(h, end_stream);
  }

  // AsyncRequest
  void cancel() override {
    if (cancelled_) return;
    cancelled_ = true;
    const bool reported = done_ && !failure_pending_;
    done_ = true;
    release_upstream();
    if (!reported) client_.finished(this);
  }

  // AsyncStream
  void send_data(std::string_view data, bool end_stream) override {
    if (done_ || request_ended_ || !upstream_) return;
    if (!data.empty()) upstream_->encode_data(data);
    if (end_stream) {
      request_ended_ = true;
      upstream_->encode_end(nullptr);
    }
  }
  void reset() override { cancel(); }

  // UpstreamRequestCallbacks
  void on_upstream_connected() override {}
  void on_upstream_headers(HeaderMap& headers, bool end_stream) override {
    if (done_) return;
    status_code_ = 0;
    for (char c : headers.status())
      status_code_ = status_code_ * 10 + static_cast<uint32_t>(c - '0');
    if (streaming_) {
      streaming_->on_stream_headers(headers, end_stream);
    } else {
      response_.headers.swap(headers);
    }
  }
  void on_upstream_data(std::string_view data) override {
    if (done_) return;
    if (streaming_) {
      streaming_->on_stream_data(data);
      return;
    }
    if (response_.body.size() + data.size() > options_.max_response_body) {
      fail(AsyncFailure::ResponseTooLarge);
      return;
    }
    response_.body.append(data);
  }
  void on_upstream_trailers(HeaderMap& trailers) override {
    if (done_) return;
    if (streaming_) {
      streaming_->on_stream_trailers(trailers);
    } else {
      response_.trailers.swap(trailers);
    }
  }
  void on_upstream_complete() override {
    if (done_) return;
    done_ = true;
    auto& stats = cluster_.info().stats();
    if (status_code_ >= 100 && status_code_ < 600)
      stats.upstream_rq_xx[status_code_ / 100 - 1].inc();
    cluster_.count_response_code(status_code_);
    stats.upstream_rq_completed.inc();
    stats.upstream_rq_time.record(
        static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                  std::chrono::steady_clock::now() - started_)
                                  .count()));
    release_upstream();
    AsyncClient& client = client_;
    client.finished(this);  // deferred delete: `this` stays valid through the callback
    if (streaming_) {
      streaming_->on_stream_complete();
    } else {
      buffered_->on_async_success(response_);
    }
  }
  void on_upstream_failure(UpstreamFailure f, bool) override {
    switch (f) {
      case UpstreamFailure::ConnectFailure:
      case UpstreamFailure::ConnectTimeout:
        fail_later(AsyncFailure::ConnectFailure);
        return;
      case UpstreamFailure::Reset:
        fail_later(AsyncFailure::Reset);
        return;
      case UpstreamFailure::ProtocolError:
        fail_later(AsyncFailure::ProtocolError);
        return;
      case UpstreamFailure::Overflow:
        fail_later(AsyncFailure::Overflow);
        return;
    }
  }

 private:
  // Picks a host and sends the headers. False when the request already failed (reported later).
  bool begin(const HeaderMap& headers, bool end_stream) {
    started_ = std::chrono::steady_clock::now();
    if (options_.timeout.count() > 0) timer_.expires_after(options_.timeout);
    auto& info = cluster_.info();
    const upstream::Host* host = cluster_.lb().choose();
    if (!host) {
      info.stats().upstream_cx_none_healthy.inc();
      fail_later(AsyncFailure::NoHost);
      return false;
    }
    if (!info.try_acquire_request()) {
      info.stats().upstream_rq_pending_overflow.inc();
      fail_later(AsyncFailure::Overflow);
      return false;
    }
    holds_request_slot_ = true;
    info.stats().upstream_rq_total.inc();
    info.stats().upstream_rq_active.inc();
    host_ = cluster_.host_ptr(host);
    cluster_.lb().request_started(host);
    upstream_ = UpstreamRequest::create(cluster_, host_, *this);
    upstream_->start(client_.loop_, headers.method() == "HEAD");
    if (done_) return false;  // failed synchronously (overflow): reported from the loop
    request_ended_ = end_stream;
    upstream_->encode_headers(headers, end_stream);
    return !done_;
  }

  void report_failure(AsyncFailure f) {
    if (streaming_) {
      streaming_->on_stream_failure(f);
    } else {
      buffered_->on_async_failure(f);
    }
  }

  // Failures found inside start or inside the upstream's own callbacks are reported from a
  // later loop turn (callbacks never run inside send(), nor re-enter the upstream request).
  void fail_later(AsyncFailure f) {
    if (done_) return;
    done_ = true;
    failure_pending_ = true;
    asio::post(client_.loop_, [this, f, alive = client_.alive_] {
      if (!*alive || cancelled_) return;  // (a cancelled request is already unlisted)
      failure_pending_ = false;
      release_upstream();
      client_.finished(this);
      report_failure(f);
    });
  }
  void fail(AsyncFailure f) {
    if (done_) return;
    if (f == AsyncFailure::Timeout) cluster_.info().stats().upstream_rq_timeout.inc();
    done_ = true;
    release_upstream();
    client_.finished(this);
    report_failure(f);
  }
  void release_upstream() {
    timer_.cancel();
    if (upstream_) {
      upstream_->cancel();
      // The upstream request may be on the call stack: freed with this request, later.
      retired_ = std::move(upstream_);
    }
    if (host_) {
      cluster_.lb().request_finished(host_.get());
      host_.reset();
    }
    if (holds_request_slot_) {
      holds_request_slot_ = false;
      cluster_.info().release_request();
      cluster_.info().stats().upstream_rq_active.dec();
    }
  }

  AsyncClient& client_;
  upstream::WorkerCluster& cluster_;
  AsyncRequestCallbacks* buffered_ = nullptr;
  AsyncStreamCallbacks* streaming_ = nullptr;
  const Options options_;
  net::LazyTimer timer_;
  std::shared_ptr<const upstream::Host> host_;
  std::unique_ptr<UpstreamRequest> upstream_, retired_;
  AsyncResponse response_;
  uint32_t status_code_ = 0;
  std::chrono::steady_clock::time_point started_;
  bool holds_request_slot_ = false;
  bool request_ended_ = false;
  bool done_ = false;             // the outcome is known (reported, or about to be)
  bool failure_pending_ = false;  // a failure waits for its loop turn
  bool cancelled_ = false;
};

AsyncClient::AsyncClient(asio::io_context& loop, upstream::ClusterManager& clusters)
    : loop_(loop), clusters_(clusters) {}

AsyncClient::~AsyncClient() {
  *alive_ = false;
  // Nothing is reported any more; the requests close their upstream connections.
  requests_.clear();
}

AsyncClient::Request* AsyncClient::create(std::string_view cluster_name, const HeaderMap& headers,
                                          const Options& options, std::string* error) {
  upstream::WorkerCluster* cluster = clusters_.get(cluster_name);
  if (!cluster) {
    *error = str_cat("unknown cluster '", cluster_name, "'");
    return nullptr;
  }
  for (std::string_view required : {":method", ":path", ":authority"}) {
    if (headers.get_or_empty(required).empty()) {
      *error = str_cat("missing ", required);
      return nullptr;
    }
  }
  requests_.push_back(std::make_unique<Request>(*this, *cluster, options));
  return requests_.back().get();
}

AsyncRequest* AsyncClient::send(std::string_view cluster, const HeaderMap& headers,
                                std::string_view body, const HeaderMap& trailers,
                                const Options& options, AsyncRequestCallbacks& callbacks,
                                std::string* error) {
  Request* r = create(cluster, headers, options, error);
  if (r) r->start_buffered(headers, body, trailers, callbacks);
  return r;
}

AsyncStream* AsyncClient::start_stream(std::string_view cluster, const HeaderMap& headers,
                                       const Options& options, AsyncStreamCallbacks& callbacks,
                                       std::string* error, bool end_stream) {
  Request* r = create(cluster, headers, options, error);
  if (r) r->start_streaming(headers, end_stream, callbacks);
  return r;
}

void AsyncClient::finished(Request* r) {
  auto it = std::find_if(requests_.begin(), requests_.end(),
                         [r](const std::unique_ptr<Request>& p) { return p.get() == r; });
  if (it == requests_.end()) return;
  // Freed on a later loop turn: it may be on the call stack (its own callback runs next).
  asio::post(loop_, [keep = std::shared_ptr<Request>(std::move(*it))] {});
  requests_.erase(it);
}

size_t AsyncClient::in_flight() const { return requests_.size(); }

}  // namespace sluice::http
