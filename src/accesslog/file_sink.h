// An access log file shared by every worker thread.
//
// The request path never touches the disk and never locks per line: a worker formats lines into a
// thread-local staging buffer (one per sink) and hands the whole buffer to the sink in one short
// locked swap/append when it reaches kBatchBytes, when its oldest line is kMaxStageAge old (checked
// on the next line), when the worker calls flush_thread(), or when the thread exits. A background
// flusher thread writes what was handed over every kFlushInterval, or sooner once kFlushBytes are
// pending.
//
// Workers should call FileSink::flush_thread() when their event loop goes idle (or from a timer of
// ~100 ms - 1 s) so an idle worker's last lines still reach the file promptly.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "common/stream_info.h"

namespace sluice::accesslog {

class Formatter;

class FileSink : public std::enable_shared_from_this<FileSink> {
 public:
  static constexpr size_t kBatchBytes = 16 * 1024;
  static constexpr auto kMaxStageAge = std::chrono::milliseconds(100);
  static constexpr size_t kFlushBytes = 64 * 1024;
  static constexpr auto kFlushInterval = std::chrono::seconds(1);
  // Beyond this much unwritten data (a stalled disk), batches are dropped rather than growing
  // memory without bound; see dropped_bytes().
  static constexpr size_t kMaxPendingBytes = 64 * 1024 * 1024;

  // The process-wide sink for `path`, opened on first use; listeners naming the same path share it.
  // Returns nullptr and sets *error (if non-null) when the file cannot be opened.
  static std::shared_ptr<FileSink> get(const std::string& path, std::string* error);
  // A sink outside the registry (tests, one-off files). Same error contract as get().
  static std::shared_ptr<FileSink> open(const std::string& path, std::string* error);
  // Reopens every live registered sink (log rotation, Envoy's POST /reopen_logs). Returns false
  // and describes the first failure in *error if any sink failed; the others are still reopened.
  static bool reopen_all(std::string* error);

  // Hands this thread's staged lines, for every sink, to their sinks.
  static void flush_thread();

  ~FileSink();
  FileSink(const FileSink&) = delete;
  FileSink& operator=(const FileSink&) = delete;

  // Request path: appends one formatted entry to this thread's staging buffer.
  void log(const Formatter& formatter, const StreamInfo& info);
  // Request path: stages a preformatted line (which should end in '\n').
  void log_line(std::string_view line);

  // Hands a batch of complete lines to the flusher: one short lock, no I/O. The string overload
  // may steal `batch`'s storage (leaving it empty, with some capacity) to avoid a copy.
  void write(std::string_view batch);
  void write(std::string& batch);

  // Writes everything handed over so far, now, on the calling thread (blocks on I/O). Lines still
  // staged in other threads are not included.
  void flush();
  // Flushes to the current file, then reopens the path (after a rotation moved the file). On
  // failure keeps writing to the old descriptor and returns false with *error set.
  bool reopen(std::string* error);

  const std::string& path() const { return path_; }
  // Bytes dropped because kMaxPendingBytes was exceeded or a write failed.
  uint64_t dropped_bytes() const { return dropped_bytes_.load(std::memory_order_relaxed); }

 private:
  struct PrivateTag {
    explicit PrivateTag() = default;
  };

 public:
  FileSink(PrivateTag, std::string path, int fd);

 private:
  static int open_fd(const std::string& path, std::string* error);

  struct StageEntry;
  struct ThreadStage;
  static ThreadStage& thread_stage();
  // This thread's staging entry for this sink, created on first use.
  StageEntry& stage();
  // Hands the entry's lines over once the batch is big or old enough.
  void maybe_hand_over(StageEntry& entry, std::chrono::steady_clock::time_point now);
  void flusher_main();
  // Writes `pending_` out. Caller holds io_mu_, which keeps batches in order across flushers.
  void flush_locked();
  void write_all(std::string_view data);

  const std::string path_;
  const uint64_t id_;  // identifies the sink in thread-local stages; never reused, unlike `this`

  std::mutex mu_;  // guards pending_ and stop_
  std::condition_variable cv_;
  std::string pending_;
  bool stop_ = false;

  std::mutex io_mu_;  // guards fd_ and writing_; serialises writes, flush() and reopen()
  int fd_;
  std::string writing_;

  std::atomic<uint64_t> dropped_bytes_{0};
  std::thread flusher_;
};

}  // namespace sluice::accesslog
