// Network filters: what a listener's filter chain runs on a downstream connection before its
// terminal filter (http_connection_manager or tcp_proxy), as Envoy's ReadFilter/WriteFilter.
// Reads pass through the filters in config order, then reach the terminal filter; bytes the
// terminal filter writes pass through them in reverse order, then reach the socket. A filter may
// edit the bytes it sees, or hold them (StopIteration) until it continues.
#pragma once

#include <string>

namespace sluice {
struct StreamInfo;
}  // namespace sluice

namespace sluice::net {

class Connection;

enum class FilterStatus { Continue, StopIteration };

// What a filter may do to its connection. Given once, valid for the filter's life.
class ConnectionFilterCallbacks {
 public:
  virtual ~ConnectionFilterCallbacks() = default;
  virtual Connection& connection() = 0;
  // The connection's facts (addresses, TLS, the upstream a tcp_proxy picked), shared by the
  // chain's filters.
  virtual StreamInfo& stream_info() = 0;
  // The bytes held for this filter in each direction: what its last on_read/on_write saw (as it
  // left them), while it holds them. Empty once passed on.
  virtual std::string& held_read() = 0;
  virtual std::string& held_write() = 0;
  // Passes what this filter holds on, without calling it again: read bytes (and a stopped
  // on_new_connection) to the filters after it; written bytes toward the socket. Must not be
  // called from inside this filter's own on_* call (return Continue there instead).
  virtual void continue_reading() = 0;
  virtual void continue_writing() = 0;
  // Closes the connection once what is already queued for the socket is written; the terminal
  // filter hears it as a local close.
  virtual void close_connection() = 0;
};

class ConnectionFilter {
 public:
  virtual ~ConnectionFilter() = default;
  virtual void set_callbacks(ConnectionFilterCallbacks& callbacks) = 0;
  // Before the terminal filter starts. StopIteration holds it, and the connection is not read,
  // until continue_reading().
  virtual FilterStatus on_new_connection() { return FilterStatus::Continue; }
  // `data`: every read byte held for this filter, the new ones appended; it may edit it.
  // `end_stream`: the peer sent its FIN (connections with half-close only).
  virtual FilterStatus on_read(std::string& data, bool end_stream) = 0;
  // The same for bytes written toward the peer; `end_stream`: the writer shuts down its side.
  virtual FilterStatus on_write(std::string& data, bool end_stream) = 0;
  // The connection is closed (`local`: this side closed it). The last call; the connection may
  // not be used from here on.
  virtual void on_close(bool local) = 0;
};

}  // namespace sluice::net
