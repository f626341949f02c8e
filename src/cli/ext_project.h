// Extension projects for `sluice ext init` and `sluice ext build`: a folder with sluice-ext.yaml
// (name, version, language, kind, root ids, default configuration, ...) next to its sources. The
// root ids cannot be read from a module, so the image metadata takes them from here.
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace sluice::cli {

inline constexpr std::string_view kProjectFile = "sluice-ext.yaml";

struct ProjectManifest {
  std::string name;  // lower case letters, digits, '.', '_', '-': also the image's repository
  std::string version;
  std::string description;
  std::string license;
  std::string language;  // cpp | assemblyscript
  std::string kind;      // http-filter | network-filter | singleton
  std::vector<std::string> root_ids;
  std::string configuration;  // the plugin configuration a deploy uses unless told otherwise
  std::string repository;     // where the sources live (a URL), for people
};

// Reads and checks DIR/sluice-ext.yaml; errors name the file and the field.
Result<ProjectManifest> load_project(const std::filesystem::path& dir);

// Writes a project that builds out of the box: `language` cpp (our SDK) or assemblyscript
// (@solo-io/proxy-runtime from npm), `kind` http-filter, network-filter or singleton. DIR must
// not exist or be empty. Returns the files written, relative to DIR.
Result<std::vector<std::string>> init_project(const std::filesystem::path& dir,
                                              std::string_view language, std::string_view kind);

struct BuildOptions {
  bool native = true;  // C++: also the null runtime's .so
  std::function<void(const std::string&)> progress;
};
struct BuiltProject {
  ProjectManifest manifest;
  std::filesystem::path wasm;       // DIR/build/<name>.wasm
  std::filesystem::path native_so;  // DIR/build/<name>.so, or empty
};

// Compiles DIR: C++ with clang++ --target=wasm32-wasi (and g++ for the .so), AssemblyScript with
// the project's asc (npm install first when node_modules is missing). Compiler output goes to
// DIR/build/*.log; a failure quotes its end.
Result<BuiltProject> build_project(const std::filesystem::path& dir, const BuildOptions& options);

// Where a built project's module is.
std::filesystem::path built_wasm_path(const std::filesystem::path& dir,
                                      const ProjectManifest& manifest);

}  // namespace sluice::cli
