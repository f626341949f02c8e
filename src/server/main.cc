// sluice: a Proxy-Wasm-first proxy configured with Envoy's v3 YAML.
// Flags follow Envoy's so that Envoy users feel at home.
#include <chrono>
#include <cstdio>
#include <thread>

#include <fmt/ranges.h>
#include <re2/re2.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "cli/ext_command.h"
#include "cli/hub_command.h"
#include "common/stats.h"
#include "config/loader.h"
#include "net/connection.h"
#include "server/server.h"
#include "wasm/context.h"

namespace {

int report(const sluice::config::LoadResult& r, std::string_view source) {
  for (const auto& w : r.warnings)
    fprintf(stderr, "%s: warning: %s\n", std::string(source).c_str(), w.to_string().c_str());
  for (const auto& e : r.errors)
    fprintf(stderr, "%s: error: %s\n", std::string(source).c_str(), e.to_string().c_str());
  return r.ok() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  // `sluice ext ...`: the extension CLI, not the proxy.
  if (argc > 1 && std::string_view(argv[1]) == "ext")
    return sluice::cli::run_ext(argc - 1, argv + 1);
  // `sluice hub ...`: the extension hub server and its administration.
  if (argc > 1 && std::string_view(argv[1]) == "hub")
    return sluice::cli::run_hub(argc - 1, argv + 1);
  CLI::App app{"sluice: an Envoy-compatible proxy built for Proxy-Wasm extensions"};
  std::string config_path, config_yaml, log_level = "info", mode = "serve";
  int concurrency = 0;
  int drain_time_s = 5;
  bool version = false;
  app.add_option("-c,--config-path", config_path, "Path to an Envoy v3 bootstrap (YAML or JSON)");
  app.add_option("--config-yaml", config_yaml, "Bootstrap given inline as YAML");
  app.add_option("--concurrency", concurrency, "Worker threads (default: number of cores)")
      ->check(CLI::Range(0, 256));
  app.add_option("-l,--log-level", log_level, "trace, debug, info, warning, error, critical, off")
      ->check(
          CLI::IsMember({"trace", "debug", "info", "warn", "warning", "error", "critical", "off"}));
  app.add_option("--mode", mode, "serve (default) or validate (check the config and exit)")
      ->check(CLI::IsMember({"serve", "validate"}));
  app.add_option("--drain-time-s", drain_time_s,
                 "Seconds to drain connections on SIGTERM/SIGINT (default 5; Envoy's is 600)")
      ->check(CLI::Range(0, 3600));
  uint32_t max_http_calls = 1024;
  app.add_option("--wasm-max-outstanding-http-calls", max_http_calls,
                 "Proxy-Wasm http_call requests in flight per VM before calls fail "
                 "(InternalFailure; counted in wasm.http_call_overflow). Default 1024")
      ->check(CLI::Range(1u, 1000000u));
  int worker_yield_us =
      static_cast<int>(sluice::net::Connection::kDefaultCoreYieldInterval.count());
  app.add_option("--worker-yield-us", worker_yield_us,
                 "Microseconds a worker handles traffic without a pause before it offers its core "
                 "to another thread waiting for it (default 500; 0: never)")
      ->check(CLI::Range(0, 1000000));
  app.add_flag("--version", version, "Print the version and exit");
  CLI11_PARSE(app, argc, argv);

  if (version) {
    printf("sluice version %s\n", SLUICE_VERSION);
    return 0;
  }
  auto logger = spdlog::stderr_color_mt("sluice");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("[%Y-%m-%d %T.%e][%t][%l] %v");
  spdlog::set_level(spdlog::level::from_str(log_level == "warn" ? "warning" : log_level));

  if (config_path.empty() && config_yaml.empty()) {
    fprintf(stderr, "sluice: no configuration: give -c FILE or --config-yaml STRING\n");
    return 1;
  }
  sluice::config::LoadResult result;
  std::string source;
  if (!config_path.empty()) {
    source = config_path;
    result = sluice::config::load_from_file(config_path);
  } else {
    source = "--config-yaml";
    result = sluice::config::load_from_string(config_yaml, source);
  }
  if (report(result, source) != 0) {
    fprintf(stderr, "%s: %zu error(s); configuration rejected\n", source.c_str(),
            result.errors.size());
    return 1;
  }
  if (mode == "validate") {
    printf("configuration '%s' OK\n", source.c_str());
    return 0;
  }

  sluice::wasm::set_max_outstanding_http_calls(max_http_calls);
  sluice::net::Connection::set_core_yield_interval(std::chrono::microseconds(worker_yield_us));
  sluice::server::Options options;
  options.concurrency = concurrency;
  options.drain_time = std::chrono::seconds(drain_time_s);
  options.config_path = config_path;
  options.config_yaml = config_yaml;
  std::vector<std::string> args(argv, argv + argc);
  options.command_line = fmt::format("{}", fmt::join(args, " "));
  // stats_config.stats_tags: in force before the first metric is defined. A reload does not
  // change them (metrics keep the names they were defined with): a restart does.
  std::vector<sluice::stats::TagSpecifier> tags;
  for (const auto& t : result.bootstrap->stats_tags) {
    tags.push_back(
        {t.name, t.regex.empty() ? nullptr : std::make_shared<const RE2>(t.regex), t.fixed_value});
  }
  sluice::stats::Store::instance().set_tag_specifiers(std::move(tags));
  sluice::server::Server server(result.bootstrap, options);
  if (std::string err = server.init(); !err.empty()) {
    spdlog::critical("cannot start: {}", err);
    return 1;
  }
  server.run();
  return 0;
}
