// An access log as configured on an HCM: a parsed format plus the file it writes to. Workers call
// log() on the request path; formatting goes into a thread-local batch and disk I/O happens on the
// sink's flusher thread.
#pragma once

#include <memory>
#include <string>

#include "common/stream_info.h"
#include "config/bootstrap.h"

namespace sluice::accesslog {

class Formatter;
class FileSink;

class AccessLog {
 public:
  // Returns null and sets `error` when the format does not parse or the file cannot be opened.
  static std::shared_ptr<AccessLog> create(const config::AccessLog& config, std::string* error);
  ~AccessLog();
  void log(const StreamInfo& info);

 private:
  AccessLog() = default;
  std::unique_ptr<Formatter> formatter_;
  std::shared_ptr<FileSink> sink_;
};

}  // namespace sluice::accesslog
