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

class AsyncClient::Request final : public AsyncRequest, public UpstreamRequestCallbacks {
 public:
  Request(AsyncClient& client, upstream::WorkerCluster& cluster, AsyncRequestCallbacks& callbacks,
          const Options& options)
      : client_(client),
        cluster_(cluster),
        callbacks_(callbacks),
        options_(options),
        timer_(client.loop_, [this] { fail(AsyncFailure::Timeout); }) {}

  ~Request() override { release_upstream(); }

  void start(const HeaderMap& headers, std::string_view body, const HeaderMap& trailers) {
    started_ = std::chrono::steady_clock::now();
    if (options_.timeout.count() > 0) timer_.expires_after(options_.timeout);
    auto& info = cluster_.info();
    const upstream::Host* host = cluster_.lb().choose();
    if (!host) {
      info.stats().upstream_cx_none_healthy.inc();
      fail_later(AsyncFailure::NoHost);
      return;
    }
    if (!info.try_acquire_request()) {
      info.stats().upstream_rq_pending_overflow.inc();
      fail_later(AsyncFailure::Overflow);
      return;
    }
    holds_request_slot_ = true;
    info.stats().upstream_rq_total.inc();
    info.stats().upstream_rq_active.inc();
    host_ = cluster_.host_ptr(host);
    cluster_.lb().request_started(host);

    // A Content-Length for a body; the codec chunks one with trailers (HTTP/1).
    HeaderMap h = headers;
    h.remove("transfer-encoding");
    h.remove("content-length");
    if (!body.empty() && trailers.empty()) h.set("content-length", str_cat(body.size()));
    upstream_ = UpstreamRequest::create(cluster_, host_, *this);
    UpstreamRequest& up = *upstream_;
    up.start(client_.loop_, h.method() == "HEAD");
    if (done_) return;  // failed synchronously (overflow): reported from the loop
    const bool end_at_headers = body.empty() && trailers.empty();
    up.encode_headers(h, end_at_headers);
    if (end_at_headers) return;
    if (!body.empty()) up.encode_data(body);
    up.encode_end(trailers.empty() ? nullptr : &trailers);
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

  // UpstreamRequestCallbacks
  void on_upstream_connected() override {}
  void on_upstream_headers(HeaderMap& headers, bool) override { response_.headers.swap(headers); }
  void on_upstream_data(std::string_view data) override {
    if (done_) return;
    if (response_.body.size() + data.size() > options_.max_response_body) {
      fail(AsyncFailure::ResponseTooLarge);
      return;
    }
    response_.body.append(data);
  }
  void on_upstream_trailers(HeaderMap& trailers) override { response_.trailers.swap(trailers); }
  void on_upstream_complete() override {
    if (done_) return;
    done_ = true;
    auto& stats = cluster_.info().stats();
    uint32_t code = 0;
    for (char c : response_.headers.status()) code = code * 10 + static_cast<uint32_t>(c - '0');
    if (code >= 100 && code < 600) stats.upstream_rq_xx[code / 100 - 1].inc();
    cluster_.count_response_code(code);
    stats.upstream_rq_completed.inc();
    stats.upstream_rq_time.record(
        static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                  std::chrono::steady_clock::now() - started_)
                                  .count()));
    release_upstream();
    AsyncClient& client = client_;
    AsyncRequestCallbacks& cb = callbacks_;
    client.finished(this);  // deferred delete: `this` stays valid through the callback
    cb.on_async_success(response_);
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
  // Failures found inside send() or inside the upstream's own callbacks are reported from a
  // later loop turn (callbacks never run inside send(), nor re-enter the upstream request).
  void fail_later(AsyncFailure f) {
    if (done_) return;
    done_ = true;
    failure_pending_ = true;
    asio::post(client_.loop_, [this, f, alive = client_.alive_] {
      if (!*alive || cancelled_) return;  // (a cancelled request is already unlisted)
      failure_pending_ = false;
      release_upstream();
      AsyncRequestCallbacks& cb = callbacks_;
      client_.finished(this);
      cb.on_async_failure(f);
    });
  }
  void fail(AsyncFailure f) {
    if (done_) return;
    if (f == AsyncFailure::Timeout) cluster_.info().stats().upstream_rq_timeout.inc();
    done_ = true;
    release_upstream();
    AsyncRequestCallbacks& cb = callbacks_;
    client_.finished(this);
    cb.on_async_failure(f);
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
  AsyncRequestCallbacks& callbacks_;
  const Options options_;
  net::LazyTimer timer_;
  std::shared_ptr<const upstream::Host> host_;
  std::unique_ptr<UpstreamRequest> upstream_, retired_;
  AsyncResponse response_;
  std::chrono::steady_clock::time_point started_;
  bool holds_request_slot_ = false;
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

AsyncRequest* AsyncClient::send(std::string_view cluster_name, const HeaderMap& headers,
                                std::string_view body, const HeaderMap& trailers,
                                const Options& options, AsyncRequestCallbacks& callbacks,
                                std::string* error) {
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
  requests_.push_back(std::make_unique<Request>(*this, *cluster, callbacks, options));
  Request* r = requests_.back().get();
  r->start(headers, body, trailers);
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
