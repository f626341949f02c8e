#include "cli/ext_project.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include <yaml-cpp/yaml.h>

#include "common/files.h"
#include "common/strings.h"

extern char** environ;

namespace sluice::cli {
namespace {

namespace fs = std::filesystem;

// The versions our tests build against (tests/assemblyscript/package.json).
constexpr std::string_view kProxyRuntimeVersion = "0.1.8";
constexpr std::string_view kAssemblyScriptVersion = "0.14.9";
// A compile that takes longer than this is stuck.
constexpr int kCompileTimeoutSeconds = 300;

bool valid_project_name(std::string_view name) {
  return !name.empty() && name.size() <= 64 && std::isalnum(static_cast<unsigned char>(name[0])) &&
         std::all_of(name.begin(), name.end(), [](char c) {
           return (std::islower(static_cast<unsigned char>(c)) ||
                   std::isdigit(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-');
         });
}

// "my-filter.v2" -> "my_filter_v2": for C++ namespaces and root ids.
std::string identifier(std::string_view name) {
  std::string out;
  for (char c : name) out.push_back(std::isalnum(static_cast<unsigned char>(c)) ? c : '_');
  if (out.empty() || std::isdigit(static_cast<unsigned char>(out[0]))) out.insert(0, "x");
  return out;
}

std::string replace_all(std::string text, std::string_view from, std::string_view to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

// ---- templates (@NAME@: the project name, @ROOT_ID@: its root id) ------------------------------

constexpr std::string_view kCppHttpFilter =
    R"(// @NAME@: an HTTP filter built with the Sluice C++ SDK (docs/sdk-cpp.md in Sluice).
// Its configuration is lines of "header: value"; each is set on every response.
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sluice/sdk.h"

namespace {

class Root : public sluice::RootContext {
 public:
  using RootContext::RootContext;

  bool on_configure(size_t) override {
    headers_.clear();
    const std::string config = sluice::plugin_configuration();
    size_t start = 0;
    while (start < config.size()) {
      size_t end = config.find('\n', start);
      if (end == std::string::npos) end = config.size();
      const std::string_view line = std::string_view(config).substr(start, end - start);
      start = end + 1;
      const size_t colon = line.find(':');
      if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
      if (colon == std::string_view::npos || colon == 0) {
        sluice::log_error("@NAME@: expected 'header: value', got '{}'", line);
        return false;  // the proxy refuses this configuration
      }
      headers_.emplace_back(trim(line.substr(0, colon)), trim(line.substr(colon + 1)));
    }
    sluice::log_info("@NAME@: {} response header(s) configured", headers_.size());
    return true;
  }

  const std::vector<std::pair<std::string, std::string>>& headers() const { return headers_; }
  sluice::Counter responses{"@ROOT_ID@.responses"};

 private:
  static std::string trim(std::string_view s) {
    const size_t b = s.find_first_not_of(" \t\r");
    const size_t e = s.find_last_not_of(" \t\r");
    return b == std::string_view::npos ? std::string() : std::string(s.substr(b, e - b + 1));
  }
  std::vector<std::pair<std::string, std::string>> headers_;
};

class Stream : public sluice::HttpContext {
 public:
  Stream(uint32_t id, Root* root) : HttpContext(id, root), root_(root) {}

  sluice::FilterHeadersStatus on_response_headers(uint32_t, bool) override {
    for (const auto& [name, value] : root_->headers()) {
      sluice::response_headers().replace(name, value);
    }
    root_->responses.increment();
    return sluice::FilterHeadersStatus::Continue;
  }

 private:
  Root* root_;
};

sluice::RegisterContextFactory<Root, Stream> registration("@ROOT_ID@");

}  // namespace
)";

constexpr std::string_view kCppNetworkFilter =
    R"(// @NAME@: a network (TCP) filter built with the Sluice C++ SDK (docs/sdk-cpp.md in Sluice).
// Counts each connection's bytes both ways and logs them when the connection closes.
#include "sluice/sdk.h"

namespace {

class Root : public sluice::RootContext {
 public:
  using RootContext::RootContext;
  sluice::Counter downstream_bytes{"@ROOT_ID@.downstream_bytes"};
  sluice::Counter upstream_bytes{"@ROOT_ID@.upstream_bytes"};
};

class Connection : public sluice::NetworkContext {
 public:
  Connection(uint32_t id, Root* root) : NetworkContext(id, root), root_(root) {}

  sluice::FilterStatus on_downstream_data(size_t size, bool) override {
    in_ += size;
    root_->downstream_bytes.increment(size);
    return sluice::FilterStatus::Continue;
  }
  sluice::FilterStatus on_upstream_data(size_t size, bool) override {
    out_ += size;
    root_->upstream_bytes.increment(size);
    return sluice::FilterStatus::Continue;
  }
  void on_downstream_connection_close(sluice::PeerType) override {
    sluice::log_info("@NAME@: connection {}: {} bytes in, {} bytes out", id(), in_, out_);
  }

 private:
  Root* root_;
  size_t in_ = 0, out_ = 0;
};

sluice::RegisterContextFactory<Root, Connection> registration("@ROOT_ID@");

}  // namespace
)";

constexpr std::string_view kCppSingleton =
    R"(// @NAME@: a singleton service built with the Sluice C++ SDK (docs/sdk-cpp.md in Sluice): one
// root context, no traffic. It ticks every N milliseconds (its configuration; default 1000) and
// counts the ticks. Run it as a bootstrap_extensions WasmService with singleton: true.
#include <cstdlib>
#include <string>

#include "sluice/sdk.h"

namespace {

class Service : public sluice::RootContext {
 public:
  using RootContext::RootContext;

  bool on_configure(size_t) override {
    const std::string config = sluice::plugin_configuration();
    const long period = config.empty() ? 1000 : std::strtol(config.c_str(), nullptr, 10);
    if (period <= 0) {
      sluice::log_error("@NAME@: the configuration must be a tick period in ms, got '{}'", config);
      return false;
    }
    set_tick_period_milliseconds(static_cast<uint32_t>(period));
    return true;
  }

  void on_tick() override {
    ticks_.increment();
    sluice::log_debug("@NAME@: tick");
  }

 private:
  sluice::Counter ticks_{"@ROOT_ID@.ticks"};
};

sluice::RegisterContextFactory<Service> registration("@ROOT_ID@");

}  // namespace
)";

constexpr std::string_view kAsHttpFilter =
    R"(// @NAME@: an HTTP filter built with the AssemblyScript SDK (@solo-io/proxy-runtime).
// Its configuration is lines of "header: value"; each is set on every response.
export * from "@solo-io/proxy-runtime/proxy";
import {
  RootContext, Context, registerRootContext, FilterHeadersStatusValues, stream_context,
  log, LogLevelValues,
} from "@solo-io/proxy-runtime";

class Root extends RootContext {
  names: Array<string> = new Array<string>();
  values: Array<string> = new Array<string>();

  onConfigure(configuration_size: u32): bool {
    this.names = new Array<string>();
    this.values = new Array<string>();
    // proxy-runtime 0.1.8 faults reading an empty configuration: none means no headers.
    if (configuration_size == 0) return true;
    if (!super.onConfigure(configuration_size)) return false;
    this.names = new Array<string>();
    this.values = new Array<string>();
    const lines = this.getConfiguration().split("\n");
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i].trim();
      if (line.length == 0) continue;
      const colon = line.indexOf(":");
      if (colon <= 0) {
        log(LogLevelValues.error, "@NAME@: expected 'header: value', got '" + line + "'");
        return false;
      }
      this.names.push(line.substring(0, colon).trim());
      this.values.push(line.substring(colon + 1).trim());
    }
    log(LogLevelValues.info, "@NAME@: " + this.names.length.toString() + " response header(s) configured");
    return true;
  }

  createContext(context_id: u32): Context {
    return new Stream(context_id, this);
  }
}

class Stream extends Context {
  root: Root;

  constructor(context_id: u32, root: Root) {
    super(context_id, root);
    this.root = root;
  }

  onResponseHeaders(headers: u32, end_of_stream: bool): FilterHeadersStatusValues {
    for (let i = 0; i < this.root.names.length; i++) {
      stream_context.headers.response.replace(this.root.names[i], this.root.values[i]);
    }
    return FilterHeadersStatusValues.Continue;
  }
}

registerRootContext((context_id: u32) => { return new Root(context_id); }, "@ROOT_ID@");
)";

constexpr std::string_view kAsNetworkFilter =
    R"(// @NAME@: a network (TCP) filter built with the AssemblyScript SDK (@solo-io/proxy-runtime).
// Counts each connection's bytes both ways and logs them when the connection closes.
export * from "@solo-io/proxy-runtime/proxy";
import {
  RootContext, Context, registerRootContext, FilterStatusValues, Counter, log, LogLevelValues,
} from "@solo-io/proxy-runtime";

// This module's connections by context id (see the exports at the end).
const connections = new Map<u32, Connection>();

class Root extends RootContext {
  downstream_bytes: Counter = new Counter("@ROOT_ID@.downstream_bytes");
  upstream_bytes: Counter = new Counter("@ROOT_ID@.upstream_bytes");

  // No configuration to read (proxy-runtime 0.1.8 faults reading an empty one).
  onConfigure(configuration_size: u32): bool {
    return true;
  }

  createContext(context_id: u32): Context {
    const c = new Connection(context_id, this);
    connections.set(context_id, c);
    return c;
  }
}

class Connection extends Context {
  root: Root;
  bytes_in: usize = 0;
  bytes_out: usize = 0;

  constructor(context_id: u32, root: Root) {
    super(context_id, root);
    this.root = root;
  }

  onDownstreamData(size: usize, end: bool): FilterStatusValues {
    this.bytes_in += size;
    this.root.downstream_bytes.increment(<u32>size);
    return FilterStatusValues.Continue;
  }

  onUpstreamData(size: usize, end: bool): FilterStatusValues {
    this.bytes_out += size;
    this.root.upstream_bytes.increment(<u32>size);
    return FilterStatusValues.Continue;
  }

  onClose(): void {
    log(LogLevelValues.info, "@NAME@: connection " + this.context_id.toString() + ": " +
        this.bytes_in.toString() + " bytes in, " + this.bytes_out.toString() + " bytes out");
  }
}

registerRootContext((context_id: u32) => { return new Root(context_id); }, "@ROOT_ID@");

// proxy-runtime 0.1.8 does not export the network callbacks itself: the module does, calling its
// own class (the same module runs in Envoy).
export function proxy_on_new_connection(context_id: u32): u32 { return 0; }
export function proxy_on_downstream_data(context_id: u32, size: u32, end: u32): u32 {
  return connections.has(context_id) ? <u32>connections.get(context_id).onDownstreamData(size, end != 0) : 0;
}
export function proxy_on_upstream_data(context_id: u32, size: u32, end: u32): u32 {
  return connections.has(context_id) ? <u32>connections.get(context_id).onUpstreamData(size, end != 0) : 0;
}
export function proxy_on_downstream_connection_close(context_id: u32, peer: u32): void {
  if (connections.has(context_id)) {
    connections.get(context_id).onClose();
    connections.delete(context_id);
  }
}
export function proxy_on_upstream_connection_close(context_id: u32, peer: u32): void {}
)";

constexpr std::string_view kAsSingleton =
    R"(// @NAME@: a singleton service built with the AssemblyScript SDK (@solo-io/proxy-runtime): one
// root context, no traffic. It ticks every N milliseconds (its configuration; default 1000) and
// counts the ticks. Run it as a bootstrap_extensions WasmService with singleton: true.
export * from "@solo-io/proxy-runtime/proxy";
import { RootContext, registerRootContext, Counter, log, LogLevelValues } from "@solo-io/proxy-runtime";
import { set_tick_period_milliseconds } from "@solo-io/proxy-runtime/runtime";

class Service extends RootContext {
  ticks: Counter = new Counter("@ROOT_ID@.ticks");

  onConfigure(configuration_size: u32): bool {
    // proxy-runtime 0.1.8 faults reading an empty configuration: none means the default.
    if (configuration_size == 0) {
      set_tick_period_milliseconds(1000);
      return true;
    }
    if (!super.onConfigure(configuration_size)) return false;
    const config = this.getConfiguration().trim();
    const period = config.length == 0 ? 1000 : <i32>parseInt(config);
    if (period <= 0) {
      log(LogLevelValues.error, "@NAME@: the configuration must be a tick period in ms, got '" + config + "'");
      return false;
    }
    set_tick_period_milliseconds(<u32>period);
    return true;
  }

  onTick(): void {
    this.ticks.increment(1);
    log(LogLevelValues.debug, "@NAME@: tick");
  }
}

registerRootContext((context_id: u32) => { return new Service(context_id); }, "@ROOT_ID@");
)";

std::string default_configuration(std::string_view kind, std::string_view name) {
  if (kind == "http-filter") return str_cat("x-", name, ": hello\n");
  if (kind == "singleton") return "1000";
  return "";
}

std::string manifest_yaml(const ProjectManifest& m) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value << m.name;
  out << YAML::Key << "version" << YAML::Value << m.version;
  out << YAML::Key << "description" << YAML::Value << m.description;
  out << YAML::Key << "license" << YAML::Value << m.license;
  out << YAML::Key << "language" << YAML::Value << m.language;
  out << YAML::Key << "kind" << YAML::Value << m.kind;
  out << YAML::Key << "root_ids" << YAML::Value << YAML::Flow << m.root_ids;
  out << YAML::Key << "configuration" << YAML::Value << YAML::Literal << m.configuration;
  out << YAML::Key << "repository" << YAML::Value << m.repository;
  out << YAML::EndMap;
  return str_cat(
      "# A Sluice extension project. `sluice ext build` compiles it into build/; `sluice ext push\n"
      "# . REF` publishes it; `sluice ext deploy REF --to ADMIN_URL` runs it in a proxy.\n",
      out.c_str(), "\n");
}

std::string readme(const ProjectManifest& m) {
  const bool cpp = m.language == "cpp";
  const bool singleton = m.kind == "singleton";
  return str_cat(
      "# ", m.name, "\n\n", m.description, "\n\n", "## Build\n\n", "```sh\n",
      "sluice ext build            # -> build/", m.name, ".wasm",
      cpp ? str_cat(" (and build/", m.name, ".so for the null runtime)") : "", "\n",
      "sluice ext verify build/", m.name, ".wasm --root-id ", m.root_ids[0], "\n```\n\n",
      cpp ? "The C++ SDK comes from Sluice's source tree (`$SLUICE_SDK_DIR`, default: the tree "
            "sluice was built from).\n\n"
          : "The AssemblyScript SDK comes from npm (`npm install` runs on the first build).\n\n",
      "## Publish and run\n\n", "```sh\n", "sluice ext push . registry.example/", m.name, ":",
      m.version, "\n",
      singleton ? str_cat("# a singleton runs as a bootstrap_extensions WasmService (singleton: "
                          "true) with root_id ",
                          m.root_ids[0], "\n")
                : str_cat("sluice ext deploy registry.example/", m.name, ":", m.version,
                          " --to http://127.0.0.1:9901\n"),
      "```\n");
}

// Runs `argv` in `dir` with stdout and stderr to `log`, bounded by `timeout` (coreutils).
Status run(const fs::path& dir, std::vector<std::string> argv, const fs::path& log) {
  argv.insert(argv.begin(), {"timeout", std::to_string(kCompileTimeoutSeconds)});
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addchdir_np(&actions, dir.c_str());
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, "timeout", &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return Error{str_cat("cannot run ", argv[2], ": ", std::strerror(rc))};
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return {};
  // The end of the compiler's output says what went wrong.
  Result<std::string> text = read_file(log.string());
  std::string tail = text ? *text : "";
  if (tail.size() > 3000) tail = "...\n" + tail.substr(tail.size() - 3000);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 124) {
    return Error{
        str_cat(argv[2], " took over ", kCompileTimeoutSeconds, " s (", log.string(), ")")};
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
    return Error{str_cat(argv[2], " is not installed (make deps installs the toolchain)")};
  }
  return Error{str_cat(argv[2], " failed (", log.string(), "):\n", tail)};
}

// Sluice's source tree: the C++ SDK and, for the native build, the null runtime's ABI header.
fs::path source_tree() {
  if (const char* dir = std::getenv("SLUICE_SOURCE_DIR"); dir && *dir) return dir;
  return SLUICE_SOURCE_DIR_DEFAULT;
}
fs::path sdk_dir() {
  if (const char* dir = std::getenv("SLUICE_SDK_DIR"); dir && *dir) return dir;
  return source_tree() / "sdk" / "cpp";
}

Status build_cpp(const fs::path& dir, const ProjectManifest& m, const BuildOptions& options,
                 BuiltProject& out) {
  const fs::path sdk = sdk_dir();
  if (!fs::exists(sdk / "include" / "sluice" / "sdk.h")) {
    return Error{str_cat("the Sluice C++ SDK is not at ", sdk.string(),
                         " (set SLUICE_SDK_DIR to sluice's sdk/cpp)")};
  }
  std::vector<std::string> sources;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir / "src", ec)) {
    if (e.path().extension() == ".cc" || e.path().extension() == ".cpp") {
      sources.push_back(fs::relative(e.path(), dir).string());
    }
  }
  std::sort(sources.begin(), sources.end());
  if (sources.empty()) return Error{str_cat("no C++ sources (src/*.cc) in ", dir.string())};
  const std::string ns = "-DSLUICE_SDK_NS=ext_" + identifier(m.name);
  const char* wasm_cxx = std::getenv("SLUICE_WASM_CXX");
  std::vector<std::string> wasm = {wasm_cxx && *wasm_cxx ? wasm_cxx : "clang++-14",
                                   "--target=wasm32-wasi",
                                   "-mexec-model=reactor",
                                   "-std=c++20",
                                   "-O2",
                                   "-flto",  // as SluiceExtension.cmake: SDK and plugin as one
                                   "-fno-exceptions",
                                   "-fno-rtti",
                                   "-Wall",
                                   "-Wextra",
                                   "-Wno-unused-parameter",
                                   ns,
                                   "-I" + (sdk / "include").string()};
  wasm.insert(wasm.end(), sources.begin(), sources.end());
  for (const char* f : {"sdk.cc", "dispatch.cc", "wasm_exports.cc"}) {
    wasm.push_back((sdk / "src" / f).string());
  }
  wasm.insert(wasm.end(), {"-Wl,--strip-debug", "-Wl,--gc-sections", "-o", out.wasm.string()});
  if (options.progress)
    options.progress(str_cat("compiling ", m.name, ".wasm (", wasm[0], ", wasm32-wasi)"));
  if (Status s = run(dir, wasm, dir / "build" / "wasm.log"); !s) return s;
  if (!options.native) return {};

  out.native_so = dir / "build" / (m.name + ".so");
  std::vector<std::string> native = {"c++",
                                     "-std=c++20",
                                     "-O2",
                                     "-fPIC",
                                     "-shared",
                                     "-fvisibility=hidden",
                                     "-fvisibility-inlines-hidden",
                                     "-Wall",
                                     "-Wextra",
                                     "-Wno-unused-parameter",
                                     "-DSLUICE_NATIVE_PLUGIN",
                                     "-DSLUICE_NULL_PLUGIN_SHARED",
                                     ns,
                                     "-DSLUICE_EXTENSION_NAME=\"" + identifier(m.name) + "\"",
                                     "-I" + (sdk / "include").string(),
                                     "-I" + (sdk / "src").string(),
                                     "-I" + (source_tree() / "src").string()};
  native.insert(native.end(), sources.begin(), sources.end());
  for (const char* f : {"sdk.cc", "dispatch.cc", "native_plugin.cc"}) {
    native.push_back((sdk / "src" / f).string());
  }
  native.insert(native.end(), {"-o", out.native_so.string()});
  if (options.progress)
    options.progress(str_cat("compiling ", out.native_so.filename().string(),
                             " (native, for the null runtime)"));
  return run(dir, native, dir / "build" / "native.log");
}

Status build_assemblyscript(const fs::path& dir, const ProjectManifest& m,
                            const BuildOptions& options, BuiltProject& out) {
  const fs::path asc = dir / "node_modules" / ".bin" / "asc";
  if (!fs::exists(asc)) {
    if (!fs::exists(dir / "package.json")) {
      return Error{str_cat("no package.json in ", dir.string(), " (sluice ext init writes one)")};
    }
    if (options.progress) {
      options.progress("installing the AssemblyScript SDK and compiler from npm (npm install)");
    }
    if (Status s =
            run(dir, {"npm", "install", "--no-audit", "--no-fund"}, dir / "build" / "npm.log");
        !s) {
      return s;
    }
    if (!fs::exists(asc)) return Error{"npm install did not install asc (assemblyscript)"};
  }
  if (!fs::exists(dir / "assembly" / "index.ts")) {
    return Error{str_cat("no assembly/index.ts in ", dir.string())};
  }
  if (options.progress) options.progress(str_cat("compiling ", m.name, ".wasm (asc)"));
  // abort() goes to the SDK's abort_proc_exit (logs, then WASI proc_exit), as the SDK documents.
  return run(dir,
             {asc.string(), "assembly/index.ts", "-b", out.wasm.string(), "--use",
              "abort=abort_proc_exit", "-O"},
             dir / "build" / "asc.log");
}

}  // namespace

Result<ProjectManifest> load_project(const fs::path& dir) {
  const fs::path file = dir / kProjectFile;
  Result<std::string> text = read_file(file.string());
  if (!text) {
    return Error{str_cat("cannot read ", file.string(), ": ", text.error(),
                         " (not an extension project? `sluice ext init` makes one)")};
  }
  YAML::Node root;
  try {
    root = YAML::Load(*text);
  } catch (const YAML::Exception& e) {
    return Error{str_cat(file.string(), ": invalid YAML: ", e.msg)};
  }
  if (!root.IsMap()) return Error{str_cat(file.string(), ": expected a mapping")};
  ProjectManifest m;
  static constexpr std::string_view kFields[] = {"name",     "version",       "description",
                                                 "license",  "language",      "kind",
                                                 "root_ids", "configuration", "repository"};
  for (const auto& entry : root) {
    const std::string key = entry.first.as<std::string>("");
    if (std::find(std::begin(kFields), std::end(kFields), key) == std::end(kFields)) {
      return Error{str_cat(file.string(), ": unknown field '", key, "'")};
    }
    if (key == "root_ids") {
      if (!entry.second.IsSequence()) {
        return Error{str_cat(file.string(), ": root_ids must be a list")};
      }
      for (const auto& id : entry.second) {
        if (!id.IsScalar() || id.Scalar().empty()) {
          return Error{str_cat(file.string(), ": root_ids must be non-empty strings")};
        }
        m.root_ids.push_back(id.Scalar());
      }
      continue;
    }
    if (!entry.second.IsScalar() && !entry.second.IsNull()) {
      return Error{str_cat(file.string(), ": ", key, " must be a string")};
    }
    const std::string value = entry.second.IsNull() ? "" : entry.second.Scalar();
    if (key == "name") m.name = value;
    if (key == "version") m.version = value;
    if (key == "description") m.description = value;
    if (key == "license") m.license = value;
    if (key == "language") m.language = value;
    if (key == "kind") m.kind = value;
    if (key == "configuration") m.configuration = value;
    if (key == "repository") m.repository = value;
  }
  if (!valid_project_name(m.name)) {
    return Error{str_cat(file.string(), ": name '", m.name,
                         "' must be 1 to 64 lower-case letters, digits, '.', '_' or '-' "
                         "(it names the image too)")};
  }
  if (m.language != "cpp" && m.language != "assemblyscript") {
    return Error{
        str_cat(file.string(), ": language '", m.language, "' is not cpp or assemblyscript")};
  }
  if (!m.kind.empty() && m.kind != "http-filter" && m.kind != "network-filter" &&
      m.kind != "singleton") {
    return Error{str_cat(file.string(), ": kind '", m.kind,
                         "' is not http-filter, network-filter or singleton")};
  }
  if (m.root_ids.empty()) {
    return Error{str_cat(file.string(),
                         ": root_ids is empty (the root ids the module registers: a module "
                         "cannot tell them)")};
  }
  return m;
}

Result<std::vector<std::string>> init_project(const fs::path& dir, std::string_view language,
                                              std::string_view kind) {
  if (language != "cpp" && language != "assemblyscript") {
    return Error{str_cat("--lang '", language, "' is not cpp or assemblyscript")};
  }
  if (kind != "http-filter" && kind != "network-filter" && kind != "singleton") {
    return Error{
        str_cat("--template '", kind, "' is not http-filter, network-filter or singleton")};
  }
  std::error_code ec;
  if (fs::exists(dir, ec) && !fs::is_empty(dir, ec)) {
    return Error{str_cat(dir.string(), " exists and is not empty: pick a new folder")};
  }
  ProjectManifest m;
  m.name = fs::absolute(dir, ec).lexically_normal().filename().string();
  if (m.name.empty()) {
    m.name = fs::absolute(dir, ec).lexically_normal().parent_path().filename().string();
  }
  std::transform(m.name.begin(), m.name.end(), m.name.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  if (!valid_project_name(m.name)) {
    return Error{str_cat("the folder's name '", m.name,
                         "' is the project's name and must be lower-case letters, digits, '.', "
                         "'_' or '-'")};
  }
  m.version = "0.1.0";
  m.description =
      str_cat("A Proxy-Wasm ", kind, " (", language == "cpp" ? "C++" : "AssemblyScript", ").");
  m.license = "Apache-2.0";
  m.language = std::string(language);
  m.kind = std::string(kind);
  m.root_ids = {identifier(m.name)};
  m.configuration = default_configuration(kind, m.name);

  std::vector<std::pair<std::string, std::string>> files;
  files.emplace_back(std::string(kProjectFile), manifest_yaml(m));
  files.emplace_back("README.md", readme(m));
  if (language == "cpp") {
    const std::string_view source = kind == "http-filter"      ? kCppHttpFilter
                                    : kind == "network-filter" ? kCppNetworkFilter
                                                               : kCppSingleton;
    files.emplace_back("src/plugin.cc", std::string(source));
    files.emplace_back(".gitignore", "build/\n");
  } else {
    const std::string_view source = kind == "http-filter"      ? kAsHttpFilter
                                    : kind == "network-filter" ? kAsNetworkFilter
                                                               : kAsSingleton;
    files.emplace_back("assembly/index.ts", std::string(source));
    files.emplace_back("package.json",
                       str_cat("{\n  \"name\": \"", m.name, "\",\n  \"version\": \"", m.version,
                               "\",\n  \"private\": true,\n  \"license\": \"", m.license,
                               "\",\n  \"dependencies\": {\n    \"@solo-io/proxy-runtime\": \"",
                               kProxyRuntimeVersion,
                               "\"\n  },\n  \"devDependencies\": {\n    \"assemblyscript\": \"",
                               kAssemblyScriptVersion, "\"\n  }\n}\n"));
    files.emplace_back(".gitignore", "build/\nnode_modules/\n");
  }
  std::vector<std::string> written;
  for (auto& [name, text] : files) {
    text = replace_all(replace_all(std::move(text), "@NAME@", m.name), "@ROOT_ID@", m.root_ids[0]);
    if (Status s = write_file_atomically((dir / name).string(), text); !s) return Error{s.error()};
    written.push_back(name);
  }
  return written;
}

fs::path built_wasm_path(const fs::path& dir, const ProjectManifest& manifest) {
  return dir / "build" / (manifest.name + ".wasm");
}

Result<BuiltProject> build_project(const fs::path& project_dir, const BuildOptions& options) {
  std::error_code ec;
  // The compilers run inside the project folder: every path handed to them is absolute.
  const fs::path dir = fs::absolute(project_dir, ec).lexically_normal();
  Result<ProjectManifest> manifest = load_project(dir);
  if (!manifest) return Error{manifest.error()};
  BuiltProject out;
  out.manifest = std::move(*manifest);
  fs::create_directories(dir / "build", ec);
  if (ec) return Error{str_cat("cannot create ", (dir / "build").string(), ": ", ec.message())};
  out.wasm = built_wasm_path(dir, out.manifest);
  const fs::path staging = out.wasm.string() + ".tmp";
  const fs::path final_wasm = out.wasm;
  out.wasm = staging;  // a failed build leaves the last good module in place
  Status s = out.manifest.language == "cpp" ? build_cpp(dir, out.manifest, options, out)
                                            : build_assemblyscript(dir, out.manifest, options, out);
  if (!s) {
    fs::remove(staging, ec);
    return Error{s.error()};
  }
  fs::rename(staging, final_wasm, ec);
  if (ec) return Error{str_cat("cannot write ", final_wasm.string(), ": ", ec.message())};
  out.wasm = final_wasm;
  return out;
}

}  // namespace sluice::cli
