;; ModuleInfo test: a shared memory (cannot be capped).
(module
  (memory (export "memory") 1 16 shared)
  (func (export "proxy_abi_version_0_2_1")))
