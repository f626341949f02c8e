/* The contract between the null runtime and a natively compiled plugin (trusted native code, no
 * sandbox). The SDK's native build fills a SluiceNullPlugin: its exports are the same callbacks a
 * .wasm module exports, as thunks taking the plugin instance and the arguments as uint64_t (in
 * signature order); the host functions it calls are the C functions of
 * sdk/cpp/include/sluice/proxy_wasm_abi.h, defined by the sluice binary.
 *
 * Each VM (one per worker per plugin) is one instance: create_instance() gives the plugin its own
 * state (contexts, globals of the extension), as a fresh .wasm instance would. */
#ifndef SLUICE_NULL_PLUGIN_ABI_H_
#define SLUICE_NULL_PLUGIN_ABI_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SLUICE_NULL_PLUGIN_ABI_VERSION 1

typedef uint64_t (*SluiceNullExportFn)(void* instance, const uint64_t* args);

typedef struct {
  const char* name;      /* "proxy_on_request_headers", "malloc", "proxy_abi_version_0_2_1" */
  const char* signature; /* params ':' results, i = i32, I = i64: "iii:i", "i:", ":" */
  SluiceNullExportFn fn;
} SluiceNullExport;

typedef struct {
  uint32_t abi_version; /* SLUICE_NULL_PLUGIN_ABI_VERSION */
  const char* name;     /* registered name, e.g. "sluice.add_header" (code.local.inline_string) */
  void* (*create_instance)(void);
  void (*destroy_instance)(void* instance);
  const SluiceNullExport* exports;
  uint32_t num_exports;
} SluiceNullPlugin;

/* Plugins linked into the sluice binary register at static-initialization time. */
void sluice_register_null_plugin(const SluiceNullPlugin* plugin);

/* A plugin built as a shared library (code.local.filename: plugin.so) defines this symbol. */
typedef const SluiceNullPlugin* (*SluiceNullPluginEntry)(void);
#define SLUICE_NULL_PLUGIN_ENTRY "sluice_null_plugin"

/* The instance whose export is running on this thread (set by the host around every call), for
 * host-function shims and SDK code that needs it. */
void* sluice_null_current_instance(void);

#ifdef __cplusplus
}
#endif

#endif /* SLUICE_NULL_PLUGIN_ABI_H_ */
