// Runs a connection's network filters (connection_filter.h) between its socket and the terminal
// filter that owns its callbacks. The Connection calls it for every read, write, end of stream
// and close once filters are installed; without filters none of this is on the path.
//
// Each filter has its own held bytes per direction, like an HTTP filter's buffered body: a filter
// that stops keeps what it saw, sees it again (with the new bytes appended) on the next read or
// write, and passes it on when it continues. Held bytes count against the connection's buffer
// limit: past it, reading stops (read side) or the writer hears the high watermark (write side).
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/stream_info.h"
#include "net/connection_filter.h"

namespace sluice::net {

class Connection;

// A StreamInfo for a connection that starts now: its addresses, TLS and start time.
StreamInfo connection_stream_info(Connection& connection);

class FilterManager {
 public:
  FilterManager(Connection& connection, std::vector<std::unique_ptr<ConnectionFilter>> filters,
                uint32_t buffer_limit);
  ~FilterManager();

  // Runs on_new_connection through the chain; once every filter let it through (now or on a
  // later continue_reading), `start_terminal` runs: it sets the connection's callbacks and starts
  // reading. If the connection closes first, `abandon` runs instead (from inside the close).
  void start(std::function<void()> start_terminal, std::function<void()> abandon);
  bool terminal_started() const { return terminal_started_; }
  StreamInfo& stream_info() { return info_; }
  size_t held_write_bytes() const { return held_write_total_; }

  // From the Connection.
  void on_read(std::string_view data, bool end_stream);
  void on_write(std::string_view data, bool end_stream);
  void on_close(bool local);

 private:
  struct Slot;
  // Runs the read side from filter `index` (which already holds its input) to the terminal.
  // `call_first`: false when `index` itself continued (it is not called again).
  void pump_read(size_t index, bool call_first);
  // The write side, from filter `index` down to filter 0, then the socket.
  void pump_write(size_t index, bool call_first);
  void continue_start(size_t after);
  void continue_reading(size_t index);
  void continue_writing(size_t index);
  void update_holds();

  Connection& conn_;
  std::vector<std::unique_ptr<Slot>> slots_;
  const uint32_t buffer_limit_;
  StreamInfo info_;
  std::function<void()> start_terminal_, abandon_;
  static constexpr size_t kNotPaused = static_cast<size_t>(-1);
  size_t start_paused_at_ = kNotPaused;  // the filter that stopped on_new_connection
  bool terminal_started_ = false;
  bool closed_ = false;
  size_t held_read_total_ = 0, held_write_total_ = 0;
  // A continue asked for while the same direction is already being run (a filter's deferred
  // action reaching a sibling filter): run once the outer pass is done.
  int read_depth_ = 0, write_depth_ = 0;
  std::vector<size_t> queued_read_continues_, queued_write_continues_;
};

}  // namespace sluice::net
