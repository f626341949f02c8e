// Defaults for AddressSanitizer builds (make test SANITIZE=address,undefined), linked into the
// binaries that load V8 under it: sluice and the unit and integration tests. ASAN_OPTIONS from
// the environment still applies on top.
//
// intercept_tls_get_addr=0: the sanitizer runtime of GCC up to 13 (and LLVM up to 16) takes some
// dynamic TLS blocks of glibc >= 2.25 for glibc 2.19's layout and hands LeakSanitizer a bogus
// range; its scan at exit then dies ("Tracer caught signal 11", google/sanitizers#1322). libnode
// and the V8 glue are dlopen'ed, so their TLS is dynamic: `sluice ext build` hit it every time.
// Without the interceptor LeakSanitizer still scans static TLS, stacks, globals and the heap.
#if defined(__SANITIZE_ADDRESS__)
#define SLUICE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SLUICE_ASAN 1
#endif
#endif

#ifdef SLUICE_ASAN
extern "C" const char* __asan_default_options() { return "intercept_tls_get_addr=0"; }
#endif
