;; ModuleInfo test: ABI 0.2.0 marker; memory with a maximum.
(module
  (memory (export "memory") 2 100)
  (func (export "proxy_abi_version_0_2_0"))
  (func (export "malloc") (param i32) (result i32) i32.const 0))
