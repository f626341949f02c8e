#include "common/files.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/strings.h"

namespace sluice {

Result<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error{std::strerror(errno)};
  std::ostringstream bytes;
  bytes << in.rdbuf();
  if (in.bad()) return Error{std::strerror(errno)};
  return bytes.str();
}

Status write_file_atomically(const std::string& path, std::string_view content) {
  std::error_code ec;
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  if (ec) return Error{str_cat("cannot create ", parent.string(), ": ", ec.message())};
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    if (!out) return Error{str_cat("cannot write ", tmp, ": ", std::strerror(errno))};
  }
  std::filesystem::rename(tmp, path, ec);
  if (ec) return Error{str_cat("cannot write ", path, ": ", ec.message())};
  return {};
}

}  // namespace sluice
