// Whole files: read in one go, written so that a reader sees all of the new content or none.
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"

namespace sluice {

// The file's bytes; the error is the reason alone (strerror), for the caller's message.
Result<std::string> read_file(const std::string& path);

// Writes `content` to `path`.tmp, then renames it over `path` (creating missing parent folders).
// The error names the file and the reason.
Status write_file_atomically(const std::string& path, std::string_view content);

}  // namespace sluice
