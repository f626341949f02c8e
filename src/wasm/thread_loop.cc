#include "wasm/thread_loop.h"

#include <asio/post.hpp>

namespace sluice::wasm {

namespace {
thread_local std::shared_ptr<ThreadLoop> tls_loop;
}

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

ScopedThreadLoop::ScopedThreadLoop(asio::io_context& loop, http::AsyncClient* http_client)
    : loop_(std::make_shared<ThreadLoop>(loop, http_client)), previous_(std::move(tls_loop)) {
  tls_loop = loop_;
}

ScopedThreadLoop::~ScopedThreadLoop() {
  loop_->close();
  tls_loop = std::move(previous_);
}

}  // namespace sluice::wasm
