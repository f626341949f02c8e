#include "net/filter_manager.h"

#include "net/connection.h"

namespace sluice::net {

struct FilterManager::Slot final : ConnectionFilterCallbacks {
  Slot(FilterManager& m, size_t i, std::unique_ptr<ConnectionFilter> f)
      : manager(m), index(i), filter(std::move(f)) {}

  Connection& connection() override { return manager.conn_; }
  StreamInfo& stream_info() override { return manager.info_; }
  std::string& held_read() override { return read; }
  std::string& held_write() override { return write; }
  void continue_reading() override { manager.continue_reading(index); }
  void continue_writing() override { manager.continue_writing(index); }
  void close_connection() override { manager.conn_.close_from_filter(); }

  FilterManager& manager;
  const size_t index;
  std::unique_ptr<ConnectionFilter> filter;
  // This filter's input in each direction: bytes it has not passed on yet, and whether the end
  // of the stream is among them.
  std::string read, write;
  bool read_end = false, write_end = false;
};

namespace {

// Moves `from`'s bytes (and end of stream) after `to`'s.
void pass_on(std::string& from, bool& from_end, std::string& to, bool& to_end) {
  if (to.empty()) {
    to.swap(from);
  } else {
    to.append(from);
  }
  from.clear();
  if (from_end) to_end = true;
  from_end = false;
}

}  // namespace

StreamInfo connection_stream_info(Connection& c) {
  StreamInfo info;
  info.start_time = std::chrono::system_clock::now();
  info.start_mono = std::chrono::steady_clock::now();
  info.downstream_direct_remote_address = c.remote_address();
  info.downstream_remote_address = c.remote_address();
  info.downstream_local_address = c.local_address();
  if (c.tls()) info.tls = &c.tls_info();
  return info;
}

FilterManager::FilterManager(Connection& connection,
                             std::vector<std::unique_ptr<ConnectionFilter>> filters,
                             uint32_t buffer_limit)
    : conn_(connection), buffer_limit_(buffer_limit == 0 ? 1024 * 1024 : buffer_limit) {
  slots_.reserve(filters.size());
  for (size_t i = 0; i < filters.size(); ++i) {
    slots_.push_back(std::make_unique<Slot>(*this, i, std::move(filters[i])));
  }
  for (auto& s : slots_) s->filter->set_callbacks(*s);
  info_ = connection_stream_info(conn_);
}

FilterManager::~FilterManager() = default;

void FilterManager::start(std::function<void()> start_terminal, std::function<void()> abandon) {
  start_terminal_ = std::move(start_terminal);
  abandon_ = std::move(abandon);
  continue_start(0);
}

void FilterManager::continue_start(size_t from) {
  for (size_t k = from; k < slots_.size(); ++k) {
    const FilterStatus status = slots_[k]->filter->on_new_connection();
    if (closed_ || conn_.closing()) return;
    if (status == FilterStatus::StopIteration) {
      start_paused_at_ = k;
      return;
    }
  }
  terminal_started_ = true;
  abandon_ = nullptr;
  if (start_terminal_) {
    auto start = std::move(start_terminal_);
    start_terminal_ = nullptr;
    start();
  }
}

void FilterManager::on_read(std::string_view data, bool end_stream) {
  if (closed_ || slots_.empty()) return;
  Slot& first = *slots_.front();
  first.read.append(data);
  if (end_stream) first.read_end = true;
  pump_read(0, true);
}

void FilterManager::on_write(std::string_view data, bool end_stream) {
  if (closed_ || slots_.empty()) return;
  Slot& last = *slots_.back();
  last.write.append(data);
  if (end_stream) last.write_end = true;
  pump_write(slots_.size() - 1, true);
}

void FilterManager::pump_read(size_t index, bool call_first) {
  ++read_depth_;
  bool call = call_first;
  for (size_t k = index; k < slots_.size(); ++k) {
    Slot& s = *slots_[k];
    if (s.read.empty() && !s.read_end) break;  // nothing to look at or pass on
    if (call) {
      const FilterStatus status = s.filter->on_read(s.read, s.read_end);
      if (closed_ || conn_.closing()) break;
      if (status == FilterStatus::StopIteration) break;
    }
    call = true;
    if (k + 1 < slots_.size()) {
      Slot& next = *slots_[k + 1];
      pass_on(s.read, s.read_end, next.read, next.read_end);
      continue;
    }
    // Past the last filter: the terminal filter's turn. The bytes leave the slot first, so a
    // filter called again from inside the terminal's callback sees only new bytes.
    std::string bytes;
    bytes.swap(s.read);
    const bool end = s.read_end;
    s.read_end = false;
    if (terminal_started_) conn_.deliver_read(bytes, end);
  }
  --read_depth_;
  update_holds();
  while (read_depth_ == 0 && !queued_read_continues_.empty() && !closed_) {
    const size_t k = queued_read_continues_.front();
    queued_read_continues_.erase(queued_read_continues_.begin());
    pump_read(k, false);
  }
}

void FilterManager::pump_write(size_t index, bool call_first) {
  ++write_depth_;
  bool call = call_first;
  for (size_t k = index + 1; k-- > 0;) {
    Slot& s = *slots_[k];
    if (s.write.empty() && !s.write_end) break;
    if (call) {
      const FilterStatus status = s.filter->on_write(s.write, s.write_end);
      if (closed_) break;
      if (status == FilterStatus::StopIteration) break;
    }
    call = true;
    if (k > 0) {
      Slot& next = *slots_[k - 1];
      pass_on(s.write, s.write_end, next.write, next.write_end);
      continue;
    }
    std::string bytes;
    bytes.swap(s.write);
    const bool end = s.write_end;
    s.write_end = false;
    conn_.write_to_socket(bytes, end);
  }
  --write_depth_;
  update_holds();
  while (write_depth_ == 0 && !queued_write_continues_.empty() && !closed_) {
    const size_t k = queued_write_continues_.front();
    queued_write_continues_.erase(queued_write_continues_.begin());
    pump_write(k, false);
  }
}

void FilterManager::continue_reading(size_t index) {
  if (closed_) return;
  if (start_paused_at_ == index) {
    start_paused_at_ = kNotPaused;
    continue_start(index + 1);
    return;
  }
  if (read_depth_ > 0) {
    queued_read_continues_.push_back(index);
    return;
  }
  pump_read(index, false);
}

void FilterManager::continue_writing(size_t index) {
  if (closed_) return;
  if (write_depth_ > 0) {
    queued_write_continues_.push_back(index);
    return;
  }
  pump_write(index, false);
}

// Held bytes are bounded by the connection's buffer limit: reading stops while the read side
// holds more, and the write side's count takes part in the connection's watermarks.
void FilterManager::update_holds() {
  if (closed_) return;
  size_t read = 0, write = 0;
  for (const auto& s : slots_) {
    read += s->read.size();
    write += s->write.size();
  }
  held_read_total_ = read;
  held_write_total_ = write;
  conn_.hold_reads(read > buffer_limit_);
  conn_.update_watermarks();
}

void FilterManager::on_close(bool local) {
  if (closed_) return;
  closed_ = true;
  for (auto& s : slots_) s->filter->on_close(local);
  if (!terminal_started_ && abandon_) {
    auto abandon = std::move(abandon_);
    abandon_ = nullptr;
    abandon();
  }
}

}  // namespace sluice::net
