;; ModuleInfo test: no ABI marker. A global carries a marker's name, which must not count.
(module
  (global (export "proxy_abi_version_0_2_1") i32 (i32.const 0))
  (func (export "proxy_abi_version_9_9_9"))
  (func (export "proxy_on_tick") (param i32)))
