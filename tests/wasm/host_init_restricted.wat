;; _initialize calls proxy_get_property, which Proxy-Wasm forbids while a module initializes:
;; the host traps the call ("restricted_callback"). proxy_log, allowed there, is called first.
(module
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_property" (func $get_property (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "plugin_name")
  (func (export "malloc") (param i32) (result i32) (i32.const 1024))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "_initialize")
    (drop (call $log (i32.const 2) (i32.const 16) (i32.const 11)))
    (drop (call $get_property (i32.const 16) (i32.const 11) (i32.const 64) (i32.const 68)))))
