#include "cli/ext_command.h"
#include "cli/ext_project.h"

#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <set>

#include <curl/curl.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "common/files.h"
#include "common/sha256.h"
#include "common/strings.h"
#include "config/json.h"
#include "oci/credentials.h"
#include "oci/image_store.h"
#include "oci/json_fields.h"
#include "oci/reference.h"
#include "oci/registry_client.h"
#include "oci/wasm_image.h"
#include "wasm/module_check.h"
#include "wasm/plugin.h"
#include "wasm/vm/module_info.h"

namespace sluice::cli {
namespace {

namespace fs = std::filesystem;

constexpr size_t kMaxModuleBytes = 64 * 1024 * 1024;

// Exit codes: 0 done, 1 the operation failed (bad input, a registry's refusal), 2 usage.
int ext_failed(const std::string& message) {
  fprintf(stderr, "sluice ext: %s\n", message.c_str());
  return 1;
}

// Progress and results: results on stdout, steps on stderr (so `-o -`-like piping stays clean).
template <typename... Args>
void step(fmt::format_string<Args...> format, Args&&... args) {
  fprintf(stderr, "%s\n", fmt::format(format, std::forward<Args>(args)...).c_str());
}

std::string human_size(uint64_t bytes) {
  if (bytes < 10 * 1024) return fmt::format("{} B", bytes);
  if (bytes < 10 * 1024 * 1024) return fmt::format("{} KiB", bytes / 1024);
  return fmt::format("{} MiB", bytes / (1024 * 1024));
}

fs::path home_dir() {
  if (const char* h = std::getenv("HOME"); h && *h) return h;
  if (const passwd* pw = getpwuid(getuid()); pw && pw->pw_dir) return pw->pw_dir;
  return ".";
}
// ~/.sluice, or $SLUICE_HOME.
fs::path sluice_dir() {
  if (const char* d = std::getenv("SLUICE_HOME"); d && *d) return d;
  return home_dir() / ".sluice";
}
fs::path credentials_path() { return sluice_dir() / "credentials.json"; }

// Ours (~/.sluice/credentials.json) first, then Docker's (~/.docker/config.json).
Result<oci::CredentialStore> load_credentials() {
  oci::CredentialStore store;
  if (fs::exists(credentials_path())) {
    Result<oci::CredentialStore> ours = oci::CredentialStore::load(credentials_path().string());
    if (!ours) return ours;
    store = std::move(*ours);
  }
  const fs::path docker = home_dir() / ".docker" / "config.json";
  if (fs::exists(docker)) {
    Result<oci::CredentialStore> theirs = oci::CredentialStore::load(docker.string());
    if (!theirs) return theirs;
    store.merge_missing(*theirs);
  }
  return store;
}

Status save_credentials(const oci::CredentialStore& store) {
  const fs::path path = credentials_path();
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  const fs::path tmp = path.string() + ".tmp";
  // Created 0600 before a secret is written into it.
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) return Error{str_cat("cannot write ", tmp.string(), ": ", std::strerror(errno))};
  const std::string json = store.to_json();
  const bool ok = ::write(fd, json.data(), json.size()) == static_cast<ssize_t>(json.size());
  ::fchmod(fd, 0600);
  ::close(fd);
  if (!ok) return Error{str_cat("cannot write ", tmp.string())};
  fs::rename(tmp, path, ec);
  if (ec) return Error{str_cat("cannot write ", path.string(), ": ", ec.message())};
  return {};
}

struct Common {
  bool plain_http = false;
};

Result<std::unique_ptr<oci::RegistryClient>> client_for(const std::string& registry,
                                                        const Common& common) {
  Result<oci::CredentialStore> credentials = load_credentials();
  if (!credentials) return Error{credentials.error()};
  oci::ClientOptions options;
  options.plain_http = common.plain_http;
  options.timeout = std::chrono::seconds(60);
  options.credential = credentials->find(registry);
  if (!options.credential) {
    if (std::string note = credentials->helper_note(registry); !note.empty()) step("{}", note);
  }
  return std::make_unique<oci::RegistryClient>(registry, std::move(options));
}

// A registry error, with the hint a plain-HTTP registry needs.
std::string registry_error(const std::string& error, const Common& common) {
  if (!common.plain_http && error.find("SSL") != std::string::npos) {
    return error + " (a registry without TLS needs --plain-http)";
  }
  return error;
}

// --- verify ---------------------------------------------------------------------------------

struct Verdict {
  bool compatible = true;
  std::vector<std::string> problems;
};

Verdict report_module(std::string_view code, const std::string& configuration,
                      const std::string& root_id) {
  Verdict v;
  printf("size:        %s (%zu bytes)\n", human_size(code.size()).c_str(), code.size());
  printf("sha256:      %s\n", sha256_hex(code).c_str());
  Result<wasm::ModuleCheck> check = wasm::check_module(code);
  if (!check) {
    v.compatible = false;
    v.problems.push_back(check.error());
    return v;
  }
  const wasm::AbiVersion abi = check->abi_version;
  printf("ABI version: %s\n", abi == wasm::AbiVersion::Unknown
                                  ? "none (no proxy_abi_version_* export)"
                                  : std::string(wasm::abi_version_name(abi)).c_str());
  const std::vector<std::string>& wasi = check->wasi_functions;
  printf("imports:     %zu host function(s) Sluice has, %zu WASI function(s)%s\n",
         check->host_functions.size(), wasi.size(),
         wasi.empty() ? "" : str_cat(": ", fmt::format("{}", fmt::join(wasi, ", "))).c_str());
  v.compatible = check->compatible();
  v.problems = check->problems;
  v.problems.insert(v.problems.end(), check->warnings.begin(), check->warnings.end());
  if (check->memory) {
    const auto& m = *check->memory;
    printf("memory:      %s initial%s%s\n", human_size(uint64_t{m.initial_pages} * 65536).c_str(),
           m.max_pages
               ? str_cat(", ", human_size(uint64_t{*m.max_pages} * 65536), " maximum").c_str()
               : ", no maximum",
           m.imported ? " (imported)" : "");
  } else {
    printf("memory:      none\n");
  }
  printf("callbacks:   %s\n", check->callbacks.empty()
                                  ? "none"
                                  : fmt::format("{}", fmt::join(check->callbacks, ", ")).c_str());
  if (!v.compatible) return v;

  // Loaded for real, in a sandboxed VM (V8, Sluice's default limits), with no traffic: start-up
  // callbacks run, as a configuration load would run them.
  wasm::PluginSpec spec;
  spec.name = "verify";
  spec.root_id = root_id;
  spec.runtime = "envoy.wasm.runtime.v8";
  spec.code = std::string(code);
  spec.code_origin = "the module";
  spec.configuration = configuration;
  Result<std::shared_ptr<wasm::Plugin>> plugin = wasm::Plugin::load(std::move(spec));
  if (plugin) {
    printf("load:        ok (instantiated; on_vm_start and on_configure accepted)\n");
  } else if (plugin.error().find("returned false") != std::string::npos) {
    // The module works; it did not like the configuration given (pass one with --config).
    printf("load:        ok, but %s\n", plugin.error().c_str());
  } else {
    v.compatible = false;
    v.problems.push_back(str_cat(
        "it does not load: ", plugin.error(),
        root_id.empty() ? " (a module whose SDK needs its root id, as AssemblyScript's does, loads "
                          "with --root-id)"
                        : ""));
  }
  return v;
}

// The module of an image, for verify and pull.
struct Fetched {
  oci::Manifest manifest;
  oci::WasmLayer layer;
  std::string layer_blob;
  std::string config_blob;
  std::string code;
};

Result<Fetched> fetch_image(oci::RegistryClient& client, const oci::Reference& ref) {
  Fetched f;
  step("resolving {}", ref.to_string());
  Result<oci::Manifest> manifest = oci::resolve_image_manifest(client, ref);
  if (!manifest) return Error{manifest.error()};
  f.manifest = std::move(*manifest);
  Result<oci::WasmLayer> layer = oci::find_wasm_layer(f.manifest.body);
  if (!layer) return Error{str_cat(ref.to_string(), ": ", layer.error())};
  f.layer = *layer;
  nlohmann::json doc = nlohmann::json::parse(f.manifest.body, nullptr, false);
  const std::string config_digest = oci::string_field(oci::json_field(doc, "config"), "digest");
  step("fetching layer {} ({} variant)", f.layer.digest.substr(0, 19), f.layer.variant);
  Result<std::string> blob = client.get_blob(ref.repository, f.layer.digest,
                                             kMaxModuleBytes + (f.layer.tar ? 1024 * 1024 : 0));
  if (!blob) return Error{blob.error()};
  f.layer_blob = std::move(*blob);
  if (!config_digest.empty()) {
    Result<std::string> config = client.get_blob(ref.repository, config_digest, 1024 * 1024);
    if (!config) return Error{config.error()};
    f.config_blob = std::move(*config);
  }
  if (f.layer.tar) {
    Result<std::string> code = oci::extract_plugin_wasm(f.layer_blob, kMaxModuleBytes);
    if (!code) return Error{str_cat(ref.to_string(), ": ", code.error())};
    f.code = std::move(*code);
  } else {
    f.code = f.layer_blob;
  }
  return f;
}

// The first of an image config's rootIds (WebAssembly Hub's, and what push writes), or "".
std::string first_root_id(std::string_view config_blob) {
  nlohmann::json config = nlohmann::json::parse(config_blob, nullptr, false);
  const nlohmann::json& ids = oci::json_field(config, "rootIds");
  return ids.is_array() && !ids.empty() && ids[0].is_string() ? ids[0].get<std::string>() : "";
}

// An image by its reference text: parsed, its registry's client made, its module fetched.
struct Image {
  oci::Reference ref;
  Fetched fetched;
};
Result<Image> fetch_reference(const std::string& text, const Common& common) {
  Result<oci::Reference> ref = oci::parse_reference(text);
  if (!ref) return Error{ref.error()};
  Result<std::unique_ptr<oci::RegistryClient>> client = client_for(ref->registry, common);
  if (!client) return Error{client.error()};
  Result<Fetched> fetched = fetch_image(**client, *ref);
  if (!fetched) return Error{registry_error(fetched.error(), common)};
  return Image{std::move(*ref), std::move(*fetched)};
}

// A module named on the command line: a .wasm file, or an image fetched from its registry.
struct Module {
  std::string code;
  std::optional<Image> image;  // set when it came from a registry (its code moved to `code`)
};
Result<Module> load_module(const std::string& target, const Common& common) {
  Module m;
  if (fs::is_regular_file(target)) {
    Result<std::string> bytes = read_file(target);
    if (!bytes) return Error{str_cat("cannot read ", target, ": ", bytes.error())};
    m.code = std::move(*bytes);
    return m;
  }
  if (Result<oci::Reference> ref = oci::parse_reference(target); !ref) {
    return Error{str_cat(target, " is neither a file nor an image reference: ", ref.error())};
  }
  Result<Image> image = fetch_reference(target, common);
  if (!image) return Error{image.error()};
  m.code = std::move(image->fetched.code);
  m.image = std::move(*image);
  return m;
}

void print_problems(const Verdict& v) {
  for (const auto& p : v.problems) {
    printf("%s %s\n", v.compatible ? "note:" : "problem:", p.c_str());
  }
}

int verify(const std::string& target, const std::string& configuration, std::string root_id,
           const Common& common) {
  Result<Module> module = load_module(target, common);
  if (!module) return ext_failed(module.error());
  if (const std::optional<Image>& image = module->image) {
    if (root_id.empty()) root_id = first_root_id(image->fetched.config_blob);
    printf("image:       %s@%s (%s variant)\n", image->ref.to_string().c_str(),
           image->fetched.manifest.digest.c_str(), image->fetched.layer.variant.c_str());
  } else {
    printf("module:      %s\n", target.c_str());
  }
  Verdict v = report_module(module->code, configuration, root_id);
  print_problems(v);
  printf("verdict:     %s\n", v.compatible ? "compatible with Sluice" : "NOT compatible");
  return v.compatible ? 0 : 1;
}

// --- push, pull, tag ------------------------------------------------------------------------

// What a hub shows of a project's image: its sluice-ext.yaml fields and README.md, as the
// standard OCI annotations (and two of Sluice's for what they lack).
constexpr size_t kMaxReadme = 64 * 1024;  // manifests are small documents

std::map<std::string, std::string> project_annotations(const std::string& dir,
                                                       const ProjectManifest& project) {
  std::map<std::string, std::string> a;
  const auto set = [&](const char* key, const std::string& value) {
    if (!value.empty()) a[key] = value;
  };
  set("org.opencontainers.image.title", project.name);
  set("org.opencontainers.image.version", project.version);
  set("org.opencontainers.image.description", project.description);
  set("org.opencontainers.image.licenses", project.license);
  set("org.opencontainers.image.source", project.repository);
  set("io.sluice.extension.language", project.language);
  if (Result<std::string> readme = read_file((fs::path(dir) / "README.md").string())) {
    if (readme->size() > kMaxReadme) {
      step("README.md is {} bytes: only its first {} go into the image", readme->size(),
           kMaxReadme);
      readme->resize(kMaxReadme);
    }
    set("io.sluice.extension.readme", *readme);
  }
  return a;
}

// What `push` says of the image besides the module (the flags win over a project's files).
struct PushMetadata {
  std::vector<std::string> root_ids;
  std::string description, license, source, readme_path;
};

int push(const std::string& source, const std::string& target, const PushMetadata& metadata,
         const Common& common) {
  std::string module_path = source;
  std::vector<std::string> ids = metadata.root_ids;
  std::map<std::string, std::string> annotations;
  if (fs::is_directory(source)) {
    // A built project: its module, and the root ids its sluice-ext.yaml declares.
    Result<ProjectManifest> project = load_project(source);
    if (!project) return ext_failed(project.error());
    module_path = built_wasm_path(source, *project).string();
    if (!fs::exists(module_path)) {
      return ext_failed(
          str_cat(module_path, " is not built yet: run `sluice ext build ", source, "`"));
    }
    for (const auto& id : project->root_ids) {
      if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
    }
    annotations = project_annotations(source, *project);
  }
  const auto set = [&](const char* key, const std::string& value) {
    if (!value.empty()) annotations[key] = value;
  };
  set("org.opencontainers.image.description", metadata.description);
  set("org.opencontainers.image.licenses", metadata.license);
  set("org.opencontainers.image.source", metadata.source);
  if (!metadata.readme_path.empty()) {
    Result<std::string> readme = read_file(metadata.readme_path);
    if (!readme)
      return ext_failed(str_cat("cannot read ", metadata.readme_path, ": ", readme.error()));
    if (readme->size() > kMaxReadme) {
      return ext_failed(str_cat(metadata.readme_path, " is ", readme->size(),
                                " bytes: a README in an image is at most ", kMaxReadme));
    }
    annotations["io.sluice.extension.readme"] = *readme;
  }
  Result<std::string> code = read_file(module_path);
  if (!code) return ext_failed(str_cat("cannot read ", module_path, ": ", code.error()));
  Result<wasm::ModuleInfo> info = wasm::ModuleInfo::parse(*code);
  if (!info)
    return ext_failed(str_cat(source, " is not a valid WebAssembly module: ", info.error()));
  if (info->abi_version == wasm::AbiVersion::Unknown) {
    return ext_failed(
        str_cat(source, " has no proxy_abi_version_* export: not a Proxy-Wasm module"));
  }
  Result<oci::Reference> ref = oci::parse_reference(target);
  if (!ref) return ext_failed(ref.error());
  if (!ref->digest.empty()) return ext_failed("push to a tag, not to a digest");
  const oci::BuiltImage image =
      oci::build_wasm_image(*code, wasm::abi_version_name(info->abi_version), ids, annotations);
  Result<std::unique_ptr<oci::RegistryClient>> client = client_for(ref->registry, common);
  if (!client) return ext_failed(client.error());
  step("pushing {} ({}, ABI {}) to {}", module_path, human_size(code->size()),
       wasm::abi_version_name(info->abi_version), ref->to_string());
  if (Status s = (*client)->push_blob(ref->repository, *code); !s) {
    return ext_failed(registry_error(s.error(), common));
  }
  if (Status s = (*client)->push_blob(ref->repository, image.config); !s) {
    return ext_failed(registry_error(s.error(), common));
  }
  Result<std::string> digest =
      (*client)->push_manifest(ref->repository, ref->tag, oci::kOciManifest, image.manifest);
  if (!digest) return ext_failed(registry_error(digest.error(), common));
  printf("%s@%s\n", ref->to_string().c_str(), digest->c_str());
  return 0;
}

int pull(const std::string& source, const std::string& output, const Common& common) {
  Result<Image> image = fetch_reference(source, common);
  if (!image) return ext_failed(image.error());
  const oci::Reference* ref = &image->ref;
  const Fetched* f = &image->fetched;
  if (Result<wasm::ModuleInfo> info = wasm::ModuleInfo::parse(f->code); !info) {
    return ext_failed(
        str_cat(ref->to_string(), ": the module is not valid WebAssembly: ", info.error()));
  }
  // Into the local store, as fetched (digests unchanged).
  oci::ImageStore store((sluice_dir() / "store").string());
  for (const std::string* blob : {&f->layer_blob, &f->config_blob, &f->manifest.body}) {
    if (blob->empty()) continue;
    if (Status s = store.put_blob(*blob); !s) return ext_failed(s.error());
  }
  std::string name = str_cat(ref->registry, "/", ref->repository);
  name += ref->tag.empty() ? str_cat("@", f->manifest.digest) : str_cat(":", ref->tag);
  if (Status s =
          store.tag(name, f->manifest.digest, f->manifest.media_type, f->manifest.body.size());
      !s) {
    return ext_failed(s.error());
  }
  if (!output.empty()) {
    if (Status s = write_file_atomically(output, f->code); !s) return ext_failed(s.error());
    step("wrote {} ({})", output, human_size(f->code.size()));
  }
  printf("%s@%s %s sha256:%s\n", name.c_str(), f->manifest.digest.c_str(), f->layer.variant.c_str(),
         sha256_hex(f->code).c_str());
  return 0;
}

// Copies an image (as it is: same manifest, same digest) to another reference, across
// repositories and registries.
int tag(const std::string& from, const std::string& to, const Common& common) {
  Result<oci::Reference> src = oci::parse_reference(from);
  if (!src) return ext_failed(src.error());
  Result<oci::Reference> dst = oci::parse_reference(to);
  if (!dst) return ext_failed(dst.error());
  if (!dst->digest.empty()) return ext_failed("the new reference must be a tag, not a digest");
  Result<std::unique_ptr<oci::RegistryClient>> src_client = client_for(src->registry, common);
  if (!src_client) return ext_failed(src_client.error());
  Result<oci::Manifest> manifest =
      (*src_client)->get_manifest(src->repository, src->manifest_ref());
  if (!manifest) return ext_failed(registry_error(manifest.error(), common));
  std::unique_ptr<oci::RegistryClient> dst_owned;
  oci::RegistryClient* dst_client = src_client->get();
  if (dst->registry != src->registry) {
    Result<std::unique_ptr<oci::RegistryClient>> c = client_for(dst->registry, common);
    if (!c) return ext_failed(c.error());
    dst_owned = std::move(*c);
    dst_client = dst_owned.get();
  }
  if (dst->registry != src->registry || dst->repository != src->repository) {
    nlohmann::json doc = nlohmann::json::parse(manifest->body, nullptr, false);
    const nlohmann::json& layers = oci::json_field(doc, "layers");
    if (!layers.is_array()) {
      return ext_failed("only image manifests are copied between repositories (not indexes)");
    }
    std::vector<std::string> digests;
    if (doc.contains("config")) {
      digests.push_back(oci::string_field(oci::json_field(doc, "config"), "digest"));
    }
    for (const auto& l : layers) digests.push_back(oci::string_field(l, "digest"));
    for (const auto& d : digests) {
      if (!oci::is_sha256_digest(d)) {
        return ext_failed(
            str_cat(src->to_string(), ": the manifest names a blob without a sha256 digest"));
      }
    }
    for (const auto& d : digests) {
      step("copying blob {}", d.substr(0, 19));
      Result<std::string> blob = (*src_client)->get_blob(src->repository, d, kMaxModuleBytes * 2);
      if (!blob) return ext_failed(registry_error(blob.error(), common));
      if (Status s = dst_client->push_blob(dst->repository, *blob); !s) {
        return ext_failed(registry_error(s.error(), common));
      }
    }
  }
  Result<std::string> digest =
      dst_client->push_manifest(dst->repository, dst->tag, manifest->media_type, manifest->body);
  if (!digest) return ext_failed(registry_error(digest.error(), common));
  printf("%s@%s\n", dst->to_string().c_str(), digest->c_str());
  return 0;
}

// --- deploy --envoy | --istio ---------------------------------------------------------------

struct DeployOptions {
  std::string
      name;  // plugin name (config.name / WasmPlugin name); default: the repository's last part
  std::string configuration;  // plugin configuration (JSON for Istio's pluginConfig)
  std::string root_id;        // default: the image's first rootIds entry
  std::string wasm_path;      // Envoy: where the module file will be
  std::string phase;          // Istio: AUTHN, AUTHZ, STATS, or empty
  std::string namespace_ = "istio-system";
  bool fail_open = false;
};

// A YAML double-quoted scalar: a JSON string is one (YAML's escapes include JSON's).
std::string yaml_quote(std::string_view s) {
  std::string out;
  config::append_json_string(out, s);
  return out;
}

// Writes the fragment: Envoy's http_filters entry (Envoy reads no oci://, so the module is a
// local file, pulled beside it), or an Istio WasmPlugin pinned to the image's digest.
int deploy_fragment(const std::string& source, bool envoy, const std::string& out_path,
                    DeployOptions o, const Common& common) {
  Result<Image> image = fetch_reference(source, common);
  if (!image) return ext_failed(image.error());
  const oci::Reference* ref = &image->ref;
  const Fetched* f = &image->fetched;
  Result<wasm::ModuleInfo> info = wasm::ModuleInfo::parse(f->code);
  if (!info || info->abi_version == wasm::AbiVersion::Unknown) {
    return ext_failed(str_cat(ref->to_string(), " does not hold a Proxy-Wasm module",
                              info ? "" : str_cat(": ", info.error())));
  }
  if (o.name.empty()) o.name = ref->repository.substr(ref->repository.rfind('/') + 1);
  if (o.root_id.empty()) o.root_id = first_root_id(f->config_blob);
  const std::string module_sha = sha256_hex(f->code);
  std::string text;
  if (envoy) {
    if (o.wasm_path.empty()) o.wasm_path = str_cat("/etc/envoy/wasm/", o.name, ".wasm");
    text =
        str_cat("# ", ref->to_string(), "@", f->manifest.digest, " (module sha256 ", module_sha,
                ")\n", "# Envoy reads no OCI images: put the module at ", o.wasm_path, " first:\n",
                "#   sluice ext pull ", ref->registry, "/", ref->repository, "@",
                f->manifest.digest, " -o ", o.wasm_path, common.plain_http ? " --plain-http" : "",
                "\n", "# then add this entry to the listener's http_filters, before the router.\n",
                "- name: ", yaml_quote(o.name), "\n", "  typed_config:\n",
                "    \"@type\": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm\n",
                "    config:\n", "      name: ", yaml_quote(o.name), "\n",
                "      root_id: ", yaml_quote(o.root_id), "\n", "      configuration:\n",
                "        \"@type\": type.googleapis.com/google.protobuf.StringValue\n",
                "        value: ", yaml_quote(o.configuration), "\n",
                o.fail_open ? "      failure_policy: FAIL_OPEN\n" : "", "      vm_config:\n",
                "        runtime: envoy.wasm.runtime.v8\n",
                "        code: { local: { filename: ", yaml_quote(o.wasm_path), " } }\n");
  } else {
    nlohmann::json plugin_config;
    if (!o.configuration.empty()) {
      plugin_config = nlohmann::json::parse(o.configuration, nullptr, false);
      if (!plugin_config.is_object()) {
        return ext_failed("Istio's pluginConfig is a JSON object: --config must be one");
      }
    }
    text = str_cat(
        "# ", ref->to_string(), " (module sha256 ", module_sha, ")\n",
        "apiVersion: extensions.istio.io/v1alpha1\n", "kind: WasmPlugin\n", "metadata:\n",
        "  name: ", yaml_quote(o.name), "\n", "  namespace: ", yaml_quote(o.namespace_), "\n",
        "spec:\n", "  url: ",
        yaml_quote(str_cat("oci://", ref->registry, "/", ref->repository,
                           ref->tag.empty() ? "" : ":" + ref->tag, "@", f->manifest.digest)),
        "\n", "  sha256: ", f->manifest.digest.substr(7), "\n",
        o.root_id.empty() ? "" : str_cat("  pluginName: ", yaml_quote(o.root_id), "\n"),
        o.phase.empty() ? "" : str_cat("  phase: ", o.phase, "\n"),
        "  failStrategy: ", o.fail_open ? "FAIL_OPEN" : "FAIL_CLOSE", "\n",
        plugin_config.is_object() ? str_cat("  pluginConfig: ", plugin_config.dump(), "\n") : "");
  }
  if (out_path.empty() || out_path == "-") {
    fputs(text.c_str(), stdout);
    return 0;
  }
  if (Status s = write_file_atomically(out_path, text); !s) return ext_failed(s.error());
  step("wrote {} ({} fragment for {})", out_path, envoy ? "Envoy" : "Istio WasmPlugin",
       ref->to_string());
  return 0;
}

// --- deploy --to, undeploy: a running Sluice's admin API -------------------------------------

struct AdminTarget {
  std::string url;         // http://host:port of the admin listener
  std::string token_file;  // the token for Authorization: Bearer; else $SLUICE_ADMIN_TOKEN
};

struct AdminReply {
  long status = 0;
  std::string body;
};

size_t append_to_string(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

// One request to the admin API. Deploying an image waits for the proxy to pull it: minutes.
Result<AdminReply> admin_request(const AdminTarget& target, const char* method,
                                 const std::string& path, const std::string& body) {
  std::string token;
  if (!target.token_file.empty()) {
    Result<std::string> t = read_file(target.token_file);
    if (!t)
      return Error{str_cat("cannot read the token file ", target.token_file, ": ", t.error())};
    token = std::string(trim(*t));
  } else if (const char* env = std::getenv("SLUICE_ADMIN_TOKEN")) {
    token = std::string(trim(env));
  }
  std::string url = target.url;
  if (url.find("://") == std::string::npos) url = "http://" + url;
  while (!url.empty() && url.back() == '/') url.pop_back();
  url += path;
  CURL* curl = curl_easy_init();
  if (!curl) return Error{"cannot start libcurl"};
  AdminReply reply;
  curl_slist* headers = curl_slist_append(nullptr, "content-type: application/json");
  if (!token.empty()) {
    headers = curl_slist_append(headers, str_cat("authorization: Bearer ", token).c_str());
  }
  char error[CURL_ERROR_SIZE] = "";
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  if (!body.empty()) {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  }
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, append_to_string);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &reply.body);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 10L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 600L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  const CURLcode rc = curl_easy_perform(curl);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &reply.status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  if (rc != CURLE_OK) {
    return Error{str_cat(url, ": ", error[0] ? error : curl_easy_strerror(rc))};
  }
  return reply;
}

// What the admin API said went wrong: its "error", or the reload's errors.
std::string admin_failure(const AdminReply& reply) {
  nlohmann::json j = nlohmann::json::parse(reply.body, nullptr, false);
  std::string message = oci::string_field(j, "error");
  const nlohmann::json& errors = oci::json_field(oci::json_field(j, "reload"), "errors");
  if (errors.is_array()) {
    for (const auto& e : errors) {
      if (e.is_string()) str_append(&message, message.empty() ? "" : "\n  ", e.get<std::string>());
    }
  }
  if (message.empty()) message = std::string(trim(reply.body));
  return str_cat("the proxy answered ", reply.status, ": ", message);
}

// A plugin name from an image's repository or a file's stem, in the characters a filter name
// may have.
std::string plugin_name_from(std::string_view text) {
  std::string name;
  for (char c : text) {
    name.push_back(
        std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-' ? c : '-');
  }
  return name.substr(0, 128);
}

struct ProxyDeployOptions {
  std::string name;           // default: the repository's last part, or the file's stem
  std::string listener;       // default: the proxy's only HTTP listener
  std::string before, after;  // a filter to place it beside; default: before the router
  bool first = false;
  std::string configuration;
  std::string root_id;  // default: the image's first rootIds entry
  bool fail_open = false;
};

// Verifies the module here (as `verify` does), then has the proxy load it: a local file by its
// absolute path (the proxy must see the same file), an image pinned to the digest verified.
int deploy_to_proxy(const std::string& source, const AdminTarget& target, ProxyDeployOptions o,
                    const Common& common) {
  Result<Module> module = load_module(source, common);
  if (!module) return ext_failed(module.error());
  std::string code;  // what the proxy loads: a path, or a reference pinned to the digest
  if (!module->image) {
    std::error_code ec;
    code = fs::absolute(source, ec).lexically_normal().string();
    if (o.name.empty()) o.name = plugin_name_from(fs::path(source).stem().string());
  } else {
    const std::optional<Image>& image = module->image;
    const oci::Reference& ref = image->ref;
    code = str_cat("oci://", ref.registry, "/", ref.repository,
                   ref.tag.empty() ? "" : ":" + ref.tag, "@", image->fetched.manifest.digest);
    if (o.root_id.empty()) o.root_id = first_root_id(image->fetched.config_blob);
    if (o.name.empty())
      o.name = plugin_name_from(ref.repository.substr(ref.repository.rfind('/') + 1));
  }
  step("verifying {}", source);
  Verdict v = report_module(module->code, o.configuration, o.root_id);
  print_problems(v);
  if (!v.compatible)
    return ext_failed(str_cat(source, " is not compatible with Sluice: not deployed"));

  nlohmann::json body{{"name", o.name}, {"code", code}, {"configuration", o.configuration}};
  if (!o.listener.empty()) body["listener"] = o.listener;
  if (!o.root_id.empty()) body["root_id"] = o.root_id;
  if (o.fail_open) body["failure_policy"] = "FAIL_OPEN";
  if (!o.before.empty()) body["position"] = {{"before", o.before}};
  if (!o.after.empty()) body["position"] = {{"after", o.after}};
  if (o.first) body["position"] = "first";
  step("deploying '{}' to {}{}", o.name, target.url,
       code.rfind("oci://", 0) == 0 ? " (the proxy pulls the image)" : "");
  Result<AdminReply> reply =
      admin_request(target, "POST", "/wasm/plugins",
                    body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  if (!reply) return ext_failed(reply.error());
  if (reply->status != 200 && reply->status != 201) return ext_failed(admin_failure(*reply));
  nlohmann::json answer = nlohmann::json::parse(reply->body, nullptr, false);
  const nlohmann::json& plugin = oci::json_field(answer, "plugin");
  const nlohmann::json& reload = oci::json_field(answer, "reload");
  printf("%s '%s' on listener '%s' (configuration version %s)\n",
         reply->status == 201 ? "deployed" : "replaced", o.name.c_str(),
         oci::string_field(plugin, "listener").c_str(),
         oci::uint_field(reload, "version")
             ? std::to_string(*oci::uint_field(reload, "version")).c_str()
             : "?");
  return 0;
}

int undeploy(const std::string& name, const AdminTarget& target) {
  step("undeploying '{}' from {}", name, target.url);
  Result<AdminReply> reply = admin_request(target, "DELETE", "/wasm/plugins/" + name, "");
  if (!reply) return ext_failed(reply.error());
  if (reply->status != 200) return ext_failed(admin_failure(*reply));
  printf("undeployed '%s'\n", name.c_str());
  return 0;
}

// --- init, build ----------------------------------------------------------------------------

int init(const std::string& dir, const std::string& language, const std::string& kind) {
  Result<std::vector<std::string>> files = init_project(dir, language, kind);
  if (!files) return ext_failed(files.error());
  for (const auto& f : *files) printf("wrote %s\n", (fs::path(dir) / f).c_str());
  printf("next: sluice ext build %s\n", dir.c_str());
  return 0;
}

// Compiles, verifies (as `verify` does, with the project's root id and configuration), and
// writes build/runtime-config.json: the image config `push` will publish.
int build(const std::string& dir, bool native) {
  BuildOptions options;
  options.native = native;
  options.progress = [](const std::string& line) { step("{}", line); };
  Result<BuiltProject> built = build_project(dir, options);
  if (!built) return ext_failed(built.error());
  const ProjectManifest& m = built->manifest;
  Result<std::string> code = read_file(built->wasm.string());
  if (!code) return ext_failed(str_cat("cannot read ", built->wasm.string(), ": ", code.error()));
  printf("module:      %s\n", built->wasm.c_str());
  if (!built->native_so.empty()) printf("native:      %s\n", built->native_so.c_str());
  Verdict v = report_module(*code, m.configuration, m.root_ids.front());
  print_problems(v);
  if (!v.compatible)
    return ext_failed(str_cat(built->wasm.string(), " is not compatible with Sluice"));
  Result<wasm::ModuleInfo> info = wasm::ModuleInfo::parse(*code);
  const oci::BuiltImage image =
      oci::build_wasm_image(*code, wasm::abi_version_name(info->abi_version), m.root_ids);
  const fs::path config = fs::path(dir) / "build" / "runtime-config.json";
  if (Status s = write_file_atomically(config.string(), image.config); !s) {
    return ext_failed(s.error());
  }
  printf("metadata:    %s\n", config.c_str());
  printf("built %s %s: push it with `sluice ext push %s REF`\n", m.name.c_str(), m.version.c_str(),
         dir.c_str());
  return 0;
}

// --- list, login, logout --------------------------------------------------------------------

// A hub's search answer, a line per extension: REF (latest tag), ABI versions, description.
int print_hub_results(const std::string& remote, const std::string& body) {
  const nlohmann::json doc = nlohmann::json::parse(body, nullptr, false);
  const nlohmann::json& results = oci::json_field(doc, "results");
  if (!results.is_array())
    return ext_failed(str_cat(remote, " answered its search with no results list"));
  for (const nlohmann::json& r : results) {
    const std::string tag = oci::string_field(r, "latest_tag");
    std::vector<std::string> abi;
    for (const nlohmann::json& v : oci::json_field(r, "abi_versions")) {
      if (v.is_string()) abi.push_back(v.get<std::string>());
    }
    printf("%s/%s%s\tABI %s\t%s\n", remote.c_str(), oci::string_field(r, "name").c_str(),
           tag.empty() ? "" : (":" + tag).c_str(),
           abi.empty() ? "?" : fmt::format("{}", fmt::join(abi, ",")).c_str(),
           oci::string_field(r, "description").c_str());
  }
  const auto total = oci::uint_field(doc, "total").value_or(results.size());
  if (total > results.size()) {
    step("{} of {} matches shown", results.size(), total);
  }
  return 0;
}

int list(const std::string& remote, const std::string& search, const Common& common) {
  const auto matches = [&](std::string_view name) {
    return search.empty() || name.find(search) != std::string_view::npos;
  };
  if (remote.empty()) {
    oci::ImageStore store((sluice_dir() / "store").string());
    for (const auto& e : store.list()) {
      if (matches(e.reference)) printf("%s\t%s\n", e.reference.c_str(), e.digest.c_str());
    }
    return 0;
  }
  Result<std::unique_ptr<oci::RegistryClient>> client = client_for(remote, common);
  if (!client) return ext_failed(client.error());
  if (!search.empty()) {
    // A Sluice hub searches descriptions and READMEs too; any other registry: names only.
    Result<std::optional<std::string>> found = (*client)->search_hub(search, 100);
    if (!found) return ext_failed(registry_error(found.error(), common));
    if (found->has_value()) return print_hub_results(remote, **found);
  }
  Result<std::vector<std::string>> repos = (*client)->list_repositories();
  if (!repos) return ext_failed(registry_error(repos.error(), common));
  for (const auto& repo : *repos) {
    if (!matches(repo)) continue;
    Result<std::vector<std::string>> tags = (*client)->list_tags(repo);
    if (!tags) return ext_failed(registry_error(tags.error(), common));
    for (const auto& t : *tags) printf("%s/%s:%s\n", remote.c_str(), repo.c_str(), t.c_str());
  }
  return 0;
}

std::string read_password(bool from_stdin) {
  std::string password;
  if (from_stdin || !isatty(STDIN_FILENO)) {
    std::getline(std::cin, password);
    return password;
  }
  fprintf(stderr, "Password: ");
  termios old{};
  tcgetattr(STDIN_FILENO, &old);
  termios quiet = old;
  quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
  tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
  std::getline(std::cin, password);
  tcsetattr(STDIN_FILENO, TCSANOW, &old);
  fprintf(stderr, "\n");
  return password;
}

int login(const std::string& server, std::string user, bool password_stdin, const Common& common) {
  if (Result<oci::Reference> r = oci::parse_reference(str_cat(server, "/x")); !r) {
    return ext_failed(str_cat("'", server, "' is not a registry host[:port]"));
  }
  if (user.empty()) {
    fprintf(stderr, "Username: ");
    std::getline(std::cin, user);
  }
  oci::ClientOptions options;
  options.plain_http = common.plain_http;
  options.timeout = std::chrono::seconds(30);
  options.credential = oci::Credential{user, read_password(password_stdin)};
  if (options.credential->password.empty()) return ext_failed("no password given");
  const oci::Credential credential = *options.credential;
  oci::RegistryClient client(server, std::move(options));
  if (Status s = client.check_access(); !s) {
    return ext_failed(str_cat("login to ", server, " failed: ", registry_error(s.error(), common)));
  }
  oci::CredentialStore store;
  if (fs::exists(credentials_path())) {
    Result<oci::CredentialStore> ours = oci::CredentialStore::load(credentials_path().string());
    if (!ours) return ext_failed(ours.error());
    store = std::move(*ours);
  }
  store.set(server, credential);
  if (Status s = save_credentials(store); !s) return ext_failed(s.error());
  printf("logged in to %s as %s (credentials in %s)\n", server.c_str(), credential.username.c_str(),
         credentials_path().c_str());
  return 0;
}

int logout(const std::string& server) {
  Result<oci::CredentialStore> store = fs::exists(credentials_path())
                                           ? oci::CredentialStore::load(credentials_path().string())
                                           : Result<oci::CredentialStore>(oci::CredentialStore());
  if (!store) return ext_failed(store.error());
  if (!store->erase(server)) {
    return ext_failed(str_cat("not logged in to ", server, " (", credentials_path().string(), ")"));
  }
  if (Status s = save_credentials(*store); !s) return ext_failed(s.error());
  printf("logged out of %s\n", server.c_str());
  return 0;
}

}  // namespace

int run_ext(int argc, char** argv) {
  CLI::App app{
      "sluice ext: build, verify, push, pull and share Proxy-Wasm extensions over OCI "
      "registries. REF is [oci://]host[:port]/repository[:tag|@sha256:digest]."};
  app.name("sluice ext");
  app.require_subcommand(1);
  Common common;
  const auto plain = [&](CLI::App* c) {
    c->add_flag("--plain-http", common.plain_http, "Speak HTTP, not HTTPS, to the registry");
  };
  std::string a, b, configuration, root_id, output, remote, search, user;
  bool password_stdin = false;

  CLI::App* verify_cmd = app.add_subcommand(
      "verify", "Load a module (a file or an image) in a sandboxed VM and report what it needs");
  verify_cmd->add_option("TARGET", a, "A .wasm file or an image REF")->required();
  verify_cmd->add_option("--config", configuration, "Plugin configuration for on_configure");
  verify_cmd->add_option("--root-id", root_id, "The root id to start");
  plain(verify_cmd);
  std::string language = "cpp", kind = "http-filter";
  bool no_native = false;
  CLI::App* init_cmd = app.add_subcommand("init", "Start an extension project in a new folder");
  init_cmd->add_option("DIR", a, "The project folder (its name is the project's)")->required();
  init_cmd->add_option("--lang", language, "cpp or assemblyscript")
      ->check(CLI::IsMember({"cpp", "assemblyscript"}));
  init_cmd->add_option("--template", kind, "http-filter, network-filter or singleton")
      ->check(CLI::IsMember({"http-filter", "network-filter", "singleton"}));
  CLI::App* build_cmd =
      app.add_subcommand("build", "Compile a project to .wasm, verify it, write its metadata");
  build_cmd->add_option("DIR", a, "The project folder (default: .)");
  build_cmd->add_flag("--no-native", no_native, "C++: skip the null runtime's .so");
  CLI::App* push_cmd = app.add_subcommand("push", "Push a .wasm module as an OCI image");
  push_cmd->add_option("SOURCE", a, "The .wasm file, or a built project folder")->required();
  push_cmd->add_option("REF", b, "Where to push it (a tag)")->required();
  PushMetadata push_metadata;
  push_cmd->add_option("--root-id", push_metadata.root_ids,
                       "Root ids the module offers (image metadata)");
  push_cmd->add_option("--description", push_metadata.description,
                       "A one-line description (annotation; a project's is its sluice-ext.yaml's)");
  push_cmd->add_option("--license", push_metadata.license, "An SPDX license expression");
  push_cmd->add_option("--source", push_metadata.source, "Where the sources are (a URL)");
  push_cmd->add_option("--readme", push_metadata.readme_path,
                       "A markdown file a hub shows (a project's README.md by default)");
  plain(push_cmd);
  CLI::App* pull_cmd = app.add_subcommand("pull", "Pull an image into the local store");
  pull_cmd->add_option("REF", a, "The image")->required();
  pull_cmd->add_option("-o,--output", output, "Also write the module to this file");
  plain(pull_cmd);
  CLI::App* tag_cmd = app.add_subcommand("tag", "Give an image another reference (copying it)");
  tag_cmd->add_option("SRC_REF", a, "The image")->required();
  tag_cmd->add_option("DST_REF", b, "Its new reference (a tag)")->required();
  plain(tag_cmd);
  CLI::App* list_cmd = app.add_subcommand("list", "List the local store, or a registry's images");
  list_cmd->add_option("--remote", remote, "A registry host[:port] to list");
  list_cmd->add_option("--search", search, "Only names containing this text");
  plain(list_cmd);
  CLI::App* login_cmd = app.add_subcommand("login", "Store credentials for a registry");
  login_cmd->add_option("SERVER", a, "The registry host[:port]")->required();
  login_cmd->add_option("-u,--username", user, "User name");
  login_cmd->add_flag("--password-stdin", password_stdin, "Read the password from stdin");
  plain(login_cmd);
  DeployOptions deploy_options;
  ProxyDeployOptions proxy_options;
  AdminTarget admin_target;
  bool envoy = false, istio = false;
  std::string out_path;
  CLI::App* deploy_cmd = app.add_subcommand(
      "deploy",
      "Deploy into a running Sluice (--to ADMIN_URL), or write an Envoy filter fragment "
      "(--envoy) or an Istio WasmPlugin (--istio)");
  deploy_cmd->add_option("REF", a, "The image (or, with --to, a .wasm file)")->required();
  auto* to_option =
      deploy_cmd->add_option("--to", admin_target.url, "A running Sluice's admin URL");
  auto* envoy_flag = deploy_cmd->add_flag("--envoy", envoy, "An Envoy http_filters entry");
  auto* istio_flag = deploy_cmd->add_flag("--istio", istio, "An Istio WasmPlugin manifest");
  envoy_flag->excludes(istio_flag);
  to_option->excludes(envoy_flag)->excludes(istio_flag);
  deploy_cmd->add_option("--listener", proxy_options.listener,
                         "--to: the listener (default: the only HTTP one)");
  auto* before = deploy_cmd->add_option("--before", proxy_options.before,
                                        "--to: place it before this HTTP filter");
  auto* after = deploy_cmd->add_option("--after", proxy_options.after,
                                       "--to: place it after this HTTP filter");
  auto* first = deploy_cmd->add_flag("--first", proxy_options.first, "--to: place it first");
  before->excludes(after)->excludes(first);
  after->excludes(first);
  const auto token_file = [&](CLI::App* c) {
    c->add_option("--token-file", admin_target.token_file,
                  "The admin token (default: $SLUICE_ADMIN_TOKEN)");
  };
  token_file(deploy_cmd);
  deploy_cmd->add_option("--out", out_path, "The file to write (default: stdout)");
  deploy_cmd->add_option("--name", deploy_options.name, "Plugin name (default: the repository's)");
  deploy_cmd->add_option("--config", deploy_options.configuration,
                         "Plugin configuration (Istio: a JSON object)");
  deploy_cmd->add_option("--root-id", deploy_options.root_id,
                         "Root id (default: the image's first rootIds entry)");
  deploy_cmd->add_option("--wasm-path", deploy_options.wasm_path,
                         "Envoy: where the module file will be");
  deploy_cmd->add_option("--phase", deploy_options.phase, "Istio: AUTHN, AUTHZ or STATS")
      ->check(CLI::IsMember({"AUTHN", "AUTHZ", "STATS"}));
  deploy_cmd->add_option("--namespace", deploy_options.namespace_, "Istio: the namespace");
  deploy_cmd->add_flag("--fail-open", deploy_options.fail_open, "Skip the plugin if it fails");
  plain(deploy_cmd);
  CLI::App* undeploy_cmd =
      app.add_subcommand("undeploy", "Remove a deployed plugin from a running Sluice");
  undeploy_cmd->add_option("NAME", a, "The plugin's name")->required();
  undeploy_cmd->add_option("--to", admin_target.url, "The proxy's admin URL")->required();
  token_file(undeploy_cmd);
  CLI::App* logout_cmd = app.add_subcommand("logout", "Forget a registry's credentials");
  logout_cmd->add_option("SERVER", a, "The registry host[:port]")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  // The Wasm host logs through spdlog; a CLI shows only what went wrong.
  spdlog::set_level(spdlog::level::err);
  if (*init_cmd) return init(a, language, kind);
  if (*build_cmd) return build(a.empty() ? "." : a, !no_native);
  if (*verify_cmd) return verify(a, configuration, root_id, common);
  if (*push_cmd) return push(a, b, push_metadata, common);
  if (*pull_cmd) return pull(a, output, common);
  if (*tag_cmd) return tag(a, b, common);
  if (*list_cmd) return list(remote, search, common);
  if (*login_cmd) return login(a, user, password_stdin, common);
  if (*logout_cmd) return logout(a);
  if (*undeploy_cmd) return undeploy(a, admin_target);
  if (*deploy_cmd) {
    if (!admin_target.url.empty()) {
      proxy_options.name = deploy_options.name;
      proxy_options.configuration = deploy_options.configuration;
      proxy_options.root_id = deploy_options.root_id;
      proxy_options.fail_open = deploy_options.fail_open;
      return deploy_to_proxy(a, admin_target, proxy_options, common);
    }
    if (!envoy && !istio) return ext_failed("deploy needs --to ADMIN_URL, --envoy or --istio");
    return deploy_fragment(a, envoy, out_path, deploy_options, common);
  }
  return 2;
}

}  // namespace sluice::cli
