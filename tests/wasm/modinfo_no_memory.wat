;; ModuleInfo test: no memory at all.
(module
  (func (export "proxy_abi_version_0_2_1")))
