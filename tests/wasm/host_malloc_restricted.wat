;; malloc calls proxy_log and wasi clock_time_get (allowed while the host allocates), then
;; proxy_get_property (forbidden: "restricted_callback"). probe_get_property makes the host
;; allocate a result.
(module
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_property" (func $get_property (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get"
    (func $clock (param i32 i64 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "plugin_name")
  (func (export "malloc") (param i32) (result i32)
    (drop (call $log (i32.const 1) (i32.const 16) (i32.const 11)))
    (drop (call $clock (i32.const 0) (i64.const 1) (i32.const 256)))
    (drop (call $get_property (i32.const 16) (i32.const 11) (i32.const 64) (i32.const 68)))
    (i32.const 1024))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "_initialize"))
  (func (export "probe_proxy_get_property") (param i32 i32 i32 i32) (result i32)
    (call $get_property (local.get 0) (local.get 1) (local.get 2) (local.get 3))))
