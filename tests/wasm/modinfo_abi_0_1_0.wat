;; ModuleInfo test: ABI 0.1.0 marker, exported after a non-marker function.
(module
  (memory (export "memory") 1 1)
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) i32.const 1)
  (func (export "proxy_abi_version_0_1_0")))
