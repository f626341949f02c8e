// The event loop of the thread that owns a Wasm instance, as the Proxy-Wasm host needs it:
// tick timers (proxy_set_tick_period_milliseconds) are armed on it, and work for the instance that
// starts on another thread (a shared-queue notification) is posted to it, so that a module is only
// ever called on its own thread.
//
// A worker registers its loop for its thread (ScopedThreadLoop) before it starts its plugins. A
// thread without one (the main thread, where the canary runs) gets no ticks and no queue
// notifications. Nothing here knows about workers: src/server depends on src/wasm, not back.
#pragma once

#include <functional>
#include <memory>
#include <mutex>

#include <asio/io_context.hpp>

namespace sluice::http {
class AsyncClient;
}

namespace sluice::wasm {

class ThreadLoop {
 public:
  ThreadLoop(asio::io_context& loop, http::AsyncClient* http_client)
      : loop_(&loop), http_client_(http_client) {}
  ThreadLoop(const ThreadLoop&) = delete;
  ThreadLoop& operator=(const ThreadLoop&) = delete;

  // The loop itself, for timers: only on the thread that registered it, while it is registered.
  asio::io_context& io() { return *loop_; }

  // The thread's HTTP client for proxy_http_call, or nullptr: only on the registering thread.
  http::AsyncClient* http_client() { return http_client_; }

  // Runs `fn` on the loop's thread on a later turn (never inline, also when called from that
  // thread). Any thread. False, and `fn` dropped, once the thread has unregistered its loop: a
  // handle may outlive the loop it names.
  bool post(std::function<void()> fn);

 private:
  friend class ScopedThreadLoop;
  void close();

  std::mutex mu_;  // orders post() against close(): the io_context may be destroyed after close
  asio::io_context* loop_;  // nullptr once closed
  http::AsyncClient* const http_client_;
};

// The calling thread's loop, or nullptr.
std::shared_ptr<ThreadLoop> this_thread_loop();

// The HTTP client for Proxy-Wasm callouts made on this thread: its loop's, else the one a
// ScopedLoadingClient set, else nullptr.
http::AsyncClient* this_thread_http_client();

// While plugins load on the main thread, their canaries (thrown away after on_configure) may call
// out as Envoy lets them, through `client`: the calls are sent and then cancelled with the
// canary, unanswered. The thread gets no loop from this: no ticks, no queue notifications.
class ScopedLoadingClient {
 public:
  explicit ScopedLoadingClient(http::AsyncClient* client);
  ~ScopedLoadingClient();
  ScopedLoadingClient(const ScopedLoadingClient&) = delete;
  ScopedLoadingClient& operator=(const ScopedLoadingClient&) = delete;

 private:
  http::AsyncClient* previous_;
};

// Makes `loop` (and `http_client`, if given: the worker's client for Proxy-Wasm HTTP callouts) the
// calling thread's for the lifetime of this object (which must end on the same thread, before the
// io_context and the client are destroyed). Work posted afterwards is dropped.
class ScopedThreadLoop {
 public:
  explicit ScopedThreadLoop(asio::io_context& loop, http::AsyncClient* http_client = nullptr);
  ~ScopedThreadLoop();
  ScopedThreadLoop(const ScopedThreadLoop&) = delete;
  ScopedThreadLoop& operator=(const ScopedThreadLoop&) = delete;

 private:
  std::shared_ptr<ThreadLoop> loop_;
  std::shared_ptr<ThreadLoop> previous_;
};

}  // namespace sluice::wasm
