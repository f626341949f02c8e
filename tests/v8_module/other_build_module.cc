// A stand-in for libsluice-v8.so from another build of Sluice: the right entry points, another
// interface hash. The loader must refuse it before calling anything else (e2e.v8_module).
#include <cstdlib>

extern "C" {
__attribute__((visibility("default"))) const char* sluice_v8_interface() {
  return "0000000000000000";
}
__attribute__((visibility("default"))) void* sluice_v8_make_runtime() { std::abort(); }
__attribute__((visibility("default"))) bool sluice_v8_trap_handler_enabled() { std::abort(); }
}
