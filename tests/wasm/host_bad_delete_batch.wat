;; An ABI 0.2.1 module whose sluice_on_delete_batch returns a value: refused like a wrongly typed
;; fused export, rather than called as if it were the batched on_delete.
(module
  (memory (export "memory") 1)
  (func (export "malloc") (param i32) (result i32) (i32.const 1024))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "_initialize"))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_delete") (param i32))
  (func (export "sluice_on_delete_batch") (param i32) (result i32) (i32.const 0)))
