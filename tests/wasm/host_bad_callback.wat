;; An ABI 0.2.1 module whose proxy_on_request_headers has the 0.1.0 type (two params): the host
;; must refuse it rather than call it with three arguments.
(module
  (memory (export "memory") 1)
  (func (export "malloc") (param i32) (result i32) (i32.const 1024))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "_initialize"))
  (func (export "proxy_on_request_headers") (param i32 i32) (result i32) (i32.const 0)))
