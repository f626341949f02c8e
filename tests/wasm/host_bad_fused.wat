;; An ABI 0.2.1 module whose sluice_on_stream_start lacks end_of_stream: the host must refuse it,
;; as it refuses a wrongly typed proxy_on_* callback, rather than call it with four arguments.
(module
  (memory (export "memory") 1)
  (func (export "malloc") (param i32) (result i32) (i32.const 1024))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "_initialize"))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (i32.const 0))
  (func (export "sluice_on_stream_start") (param i32 i32 i32) (result i32) (i32.const 0)))
