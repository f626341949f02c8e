#include "wasm/thread_loop.h"

#include <asio/post.hpp>

namespace sluice::wasm {

namespace {
thread_local std::shared_ptr<ThreadLoop> tls_loop;
thread_local http::AsyncClient* tls_loading_client = nullptr;
}  // namespace

bool ThreadLoop::post(std::function<void()> fn) {
  std::lock_guard lock(mu_);
  if (!loop_) return false;
  asio::post(*loop_, std::move(fn));
  return true;
}

void ThreadLoop::close() {
  std::lock_guard lock(mu_);
  loop_ = nullptr;
}

std::shared_ptr<ThreadLoop> this_thread_loop() { return tls_loop; }

http::AsyncClient* this_thread_http_client() {
  if (tls_loop) return tls_loop->http_client();
  return tls_loading_client;
}

ScopedLoadingClient::ScopedLoadingClient(http::AsyncClient* client)
    : previous_(tls_loading_client) {
  tls_loading_client = client;
}

ScopedLoadingClient::~ScopedLoadingClient() { tls_loading_client = previous_; }

ScopedThreadLoop::ScopedThreadLoop(asio::io_context& loop, http::AsyncClient* http_client)
    : loop_(std::make_shared<ThreadLoop>(loop, http_client)), previous_(std::move(tls_loop)) {
  tls_loop = loop_;
}

ScopedThreadLoop::~ScopedThreadLoop() {
  loop_->close();
  tls_loop = std::move(previous_);
}

}  // namespace sluice::wasm
