#include "accesslog/access_log.h"

#include "accesslog/file_sink.h"
#include "accesslog/formatter.h"

namespace sluice::accesslog {

std::shared_ptr<AccessLog> AccessLog::create(const config::AccessLog& config, std::string* error) {
  auto formatter =
      Formatter::parse(config.format.empty() ? kDefaultFormat : std::string_view(config.format), error);
  if (!formatter) return nullptr;
  auto sink = FileSink::get(config.path, error);
  if (!sink) return nullptr;
  std::shared_ptr<AccessLog> log(new AccessLog());
  log->formatter_ = std::make_unique<Formatter>(std::move(*formatter));
  log->sink_ = std::move(sink);
  return log;
}

AccessLog::~AccessLog() = default;

void AccessLog::log(const StreamInfo& info) { sink_->log(*formatter_, info); }

}  // namespace sluice::accesslog
