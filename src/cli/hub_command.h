// `sluice hub ...`: the hub server (serve) and its offline administration (user add, user list).
// Runs instead of the proxy when the first argument is "hub".
#pragma once

namespace sluice::cli {

// argv[0] is "hub". Returns the process's exit code.
int run_hub(int argc, char** argv);

}  // namespace sluice::cli
