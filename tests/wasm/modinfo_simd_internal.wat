;; ModuleInfo test: a v128 function that is neither imported nor exported is fine.
(module
  (memory (export "memory") 1)
  (func $splat (param v128) (result v128) local.get 0)
  (func (export "proxy_abi_version_0_2_1")))
