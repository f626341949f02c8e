;; ModuleInfo test: a 64-bit memory without a maximum.
(module
  (memory (export "memory") i64 3)
  (func (export "proxy_abi_version_0_2_1")))
