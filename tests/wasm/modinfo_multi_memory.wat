;; ModuleInfo test: two defined memories; capping applies to both.
(module
  (memory $a (export "memory") 1)
  (memory $b 2 1000)
  (func (export "proxy_abi_version_0_2_1")))
