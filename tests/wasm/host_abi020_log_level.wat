;; An ABI 0.2.0 module importing proxy_get_log_level, which only 0.2.1 offers: linking fails.
(module
  (import "env" "proxy_get_log_level" (func $level (param i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "malloc") (param i32) (result i32) (i32.const 1024))
  (func (export "proxy_abi_version_0_2_0"))
  (func (export "_initialize")))
