;; An ABI 0.2.1 module importing proxy_get_configuration, which only 0.1.0 offers (0.2.x reads
;; buffers 6/7 instead): linking fails.
(module
  (import "env" "proxy_get_configuration" (func $cfg (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "malloc") (param i32) (result i32) (i32.const 1024))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "_initialize")))
