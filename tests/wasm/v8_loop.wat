;; An endless loop, reached directly or through a host function calling back into the module.
(module
  (import "env" "call_spin" (func $call_spin))
  (func $spin (export "spin")
    (loop $forever (br $forever)))
  (func (export "spin_via_host")
    (call $call_spin))
  (func (export "answer") (result i32)
    (i32.const 42))
)
