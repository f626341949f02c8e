#include "accesslog/file_sink.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <unordered_map>
#include <utility>
#include <vector>

#include "accesslog/formatter.h"

namespace sluice::accesslog {
namespace {

std::atomic<uint64_t> g_next_sink_id{1};

// Set once this thread's ThreadStage is destroyed (thread exit), after which sinks released later
// in the exit sequence (static or thread_local owners) must not touch it. Trivially destructible,
// so it stays readable to the end.
thread_local bool t_stage_destroyed = false;

struct Registry {
  std::mutex mu;
  std::unordered_map<std::string, std::weak_ptr<FileSink>> sinks;
};

// Leaked so sinks released during static destruction never see a destroyed registry.
Registry& registry() {
  static auto* r = new Registry;
  return *r;
}

}  // namespace

struct FileSink::StageEntry {
  uint64_t sink_id = 0;
  std::weak_ptr<FileSink> sink;  // locked only off the per-line path (flush_thread, thread exit)
  std::string buf;
  std::chrono::steady_clock::time_point first_line{};  // when `buf` last became non-empty
};

struct FileSink::ThreadStage {
  std::vector<StageEntry> entries;

  void hand_over_all() {
    for (StageEntry& e : entries) {
      if (e.buf.empty()) continue;
      if (std::shared_ptr<FileSink> sink = e.sink.lock()) sink->write(e.buf);
      e.buf.clear();  // a dead sink's lines have nowhere to go
    }
    std::erase_if(entries, [](const StageEntry& e) { return e.sink.expired(); });
  }

  // Thread exit: nothing staged on this thread is lost while its sink lives.
  ~ThreadStage() {
    hand_over_all();
    t_stage_destroyed = true;
  }
};

FileSink::ThreadStage& FileSink::thread_stage() {
  thread_local ThreadStage stage;
  return stage;
}

FileSink::FileSink(PrivateTag, std::string path, int fd)
    : path_(std::move(path)), id_(g_next_sink_id.fetch_add(1)), fd_(fd) {
  flusher_ = std::thread([this] { flusher_main(); });
}

FileSink::~FileSink() {
  // Lines this thread staged but never handed over (e.g. a single-threaded user) still count.
  // The entry itself stays (pruned later): this may run inside ThreadStage's own loops.
  if (!t_stage_destroyed) {
    for (StageEntry& e : thread_stage().entries) {
      if (e.sink_id == id_) write(e.buf);
    }
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_one();
  flusher_.join();
  {
    std::lock_guard<std::mutex> io(io_mu_);
    flush_locked();
    ::close(fd_);
  }
}

int FileSink::open_fd(const std::string& path, std::string* error) {
  int fd;
  // Duplicate the standard streams rather than opening /dev/std*: that fails when they are
  // sockets, and a dup keeps working if the process later reassigns fd 1 or 2.
  if (path == "/dev/stdout") {
    fd = ::fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 0);
  } else if (path == "/dev/stderr") {
    fd = ::fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 0);
  } else {
    fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  }
  if (fd < 0 && error != nullptr) {
    *error = "cannot open access log file '" + path + "': " + std::strerror(errno);
  }
  return fd;
}

std::shared_ptr<FileSink> FileSink::open(const std::string& path, std::string* error) {
  if (path.empty()) {
    if (error != nullptr) *error = "access log path is empty";
    return nullptr;
  }
  const int fd = open_fd(path, error);
  if (fd < 0) return nullptr;
  return std::make_shared<FileSink>(PrivateTag{}, path, fd);
}

std::shared_ptr<FileSink> FileSink::get(const std::string& path, std::string* error) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  if (auto it = r.sinks.find(path); it != r.sinks.end()) {
    if (std::shared_ptr<FileSink> sink = it->second.lock()) return sink;
  }
  std::erase_if(r.sinks, [](const auto& kv) { return kv.second.expired(); });
  std::shared_ptr<FileSink> sink = open(path, error);
  if (sink) r.sinks[path] = sink;
  return sink;
}

bool FileSink::reopen_all(std::string* error) {
  std::vector<std::shared_ptr<FileSink>> live;
  {
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mu);
    for (const auto& [path, weak] : r.sinks) {
      if (std::shared_ptr<FileSink> sink = weak.lock()) live.push_back(std::move(sink));
    }
  }
  bool ok = true;
  for (const auto& sink : live) {
    std::string e;
    if (!sink->reopen(&e) && ok) {
      ok = false;
      if (error != nullptr) *error = std::move(e);
    }
  }
  return ok;
}

void FileSink::flush_thread() {
  if (!t_stage_destroyed) thread_stage().hand_over_all();
}

FileSink::StageEntry& FileSink::stage() {
  std::vector<StageEntry>& entries = thread_stage().entries;
  for (StageEntry& e : entries) {
    if (e.sink_id == id_) return e;
  }
  // First line from this thread: a good moment to forget sinks that have gone away.
  std::erase_if(entries, [](const StageEntry& e) { return e.sink.expired(); });
  StageEntry& e = entries.emplace_back();
  e.sink_id = id_;
  e.sink = weak_from_this();
  e.buf.reserve(kBatchBytes);
  return e;
}

void FileSink::maybe_hand_over(StageEntry& entry, std::chrono::steady_clock::time_point now) {
  if (entry.buf.size() >= kBatchBytes || now - entry.first_line >= kMaxStageAge) write(entry.buf);
}

void FileSink::log(const Formatter& formatter, const StreamInfo& info) {
  if (t_stage_destroyed) {  // logging from the thread-exit sequence: no staging any more
    std::string line;
    formatter.format(info, line);
    write(line);
    return;
  }
  StageEntry& e = stage();
  const auto now = std::chrono::steady_clock::now();
  if (e.buf.empty()) e.first_line = now;
  formatter.format(info, e.buf);
  maybe_hand_over(e, now);
}

void FileSink::log_line(std::string_view line) {
  if (t_stage_destroyed) {
    write(line);
    return;
  }
  StageEntry& e = stage();
  const auto now = std::chrono::steady_clock::now();
  if (e.buf.empty()) e.first_line = now;
  e.buf.append(line);
  maybe_hand_over(e, now);
}

void FileSink::write(std::string_view batch) {
  if (batch.empty()) return;
  bool kick;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (pending_.size() + batch.size() > kMaxPendingBytes) {
      dropped_bytes_.fetch_add(batch.size(), std::memory_order_relaxed);
      return;
    }
    pending_.append(batch);
    kick = pending_.size() >= kFlushBytes;
  }
  if (kick) cv_.notify_one();
}

void FileSink::write(std::string& batch) {
  if (batch.empty()) return;
  bool kick;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (pending_.size() + batch.size() > kMaxPendingBytes) {
      dropped_bytes_.fetch_add(batch.size(), std::memory_order_relaxed);
    } else if (pending_.empty()) {
      pending_.swap(batch);  // no copy; the caller gets our spare capacity back
    } else {
      pending_.append(batch);
    }
    kick = pending_.size() >= kFlushBytes;
  }
  batch.clear();
  if (kick) cv_.notify_one();
}

void FileSink::flush() {
  std::lock_guard<std::mutex> io(io_mu_);
  flush_locked();
}

bool FileSink::reopen(std::string* error) {
  std::lock_guard<std::mutex> io(io_mu_);
  flush_locked();  // what was logged before the rotation belongs in the old file
  const int fd = open_fd(path_, error);
  if (fd < 0) return false;
  ::close(fd_);
  fd_ = fd;
  return true;
}

void FileSink::flusher_main() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait_for(lock, kFlushInterval, [this] { return stop_ || pending_.size() >= kFlushBytes; });
    const bool stopping = stop_;
    lock.unlock();
    {
      std::lock_guard<std::mutex> io(io_mu_);
      flush_locked();
    }
    if (stopping) return;
    lock.lock();
  }
}

void FileSink::flush_locked() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (pending_.empty()) return;
    writing_.swap(pending_);
  }
  write_all(writing_);
  writing_.clear();
  // Keep a normal batch's capacity, but give back what a burst grew.
  if (writing_.capacity() > 16 * kFlushBytes) std::string().swap(writing_);
}

void FileSink::write_all(std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd_, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      // Disk full, file gone, ...: drop this batch rather than retry forever on the flusher.
      dropped_bytes_.fetch_add(data.size(), std::memory_order_relaxed);
      return;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
}

}  // namespace sluice::accesslog
