;; malloc calls proxy_get_header_map_size, a leaf on V8 (HostFunction::leaf) that Proxy-Wasm
;; forbids while the host allocates: the leaf's trap must fail the allocation and the call that
;; asked for it, from inside a nested call. probe_get_property makes the host allocate a result.
(module
  (import "env" "proxy_get_header_map_size" (func $map_size (param i32 i32) (result i32)))
  (import "env" "proxy_get_property" (func $get_property (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "malloc") (param i32) (result i32)
    (drop (call $map_size (i32.const 0) (i32.const 64)))
    (i32.const 1024))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "_initialize"))
  (func (export "probe_proxy_get_property") (param i32 i32 i32 i32) (result i32)
    (call $get_property (local.get 0) (local.get 1) (local.get 2) (local.get 3))))
