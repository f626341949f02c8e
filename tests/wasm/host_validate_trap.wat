;; proxy_validate_configuration traps: start_root must say so (not blame on_configure).
(module
  (memory (export "memory") 1)
  (func (export "malloc") (param i32) (result i32) (i32.const 1024))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "_initialize"))
  (func (export "proxy_validate_configuration") (param i32 i32) (result i32) (unreachable))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1)))
