// `sluice ext ...`: the extension CLI (verify, push, pull, tag, list, login, logout) over any
// OCI distribution registry. Runs instead of the proxy when the first argument is "ext".
#pragma once

namespace sluice::cli {

// argv[0] is "ext". Returns the process's exit code.
int run_ext(int argc, char** argv);

}  // namespace sluice::cli
