// Loads Envoy v3 bootstrap YAML (or JSON) into a validated config::Bootstrap.
// Every problem is collected (not just the first) with its field path and source line, so a user
// fixes a config in one pass. Fields Sluice does not implement are errors, except a short
// documented list of operational fields that are accepted with a warning.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/bootstrap.h"

namespace sluice::config {

struct Diagnostic {
  std::string path;  // e.g. "static_resources.clusters[1].foo"
  int line = 0;      // 1-based source line; 0 when unknown
  std::string message;

  // "path (line N): message"
  std::string to_string() const;
};

struct LoadResult {
  std::shared_ptr<const Bootstrap> bootstrap;  // null when errors is non-empty
  std::vector<Diagnostic> errors;
  std::vector<Diagnostic> warnings;

  bool ok() const { return errors.empty(); }
};

struct LoadOptions {
  // Merged instead of the file sluice.overlay_path names: a deploy tries the overlay it would
  // write before writing it.
  std::optional<std::string> overlay_text;
};

// `source_name` names the input in messages (a file path, or "--config-yaml"). The overlay of
// deployed plugins (sluice.overlay_path, config/overlay.h) is merged before anything is parsed.
LoadResult load_from_string(std::string_view text, std::string_view source_name = "<string>",
                            const LoadOptions& options = {});
LoadResult load_from_file(const std::string& path, const LoadOptions& options = {});

// A whole file, or nullopt with `error` saying why (the path and errno's message). DataSource
// `filename`s are read with it, at load and when certificates are reloaded.
std::optional<std::string> read_file(const std::string& path, std::string& error);

}  // namespace sluice::config
