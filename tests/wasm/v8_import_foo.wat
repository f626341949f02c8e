;; Imports env.foo (i32) -> i32, for the link-error tests.
(module
  (import "env" "foo" (func $foo (param i32) (result i32)))
  (func (export "call_foo") (param i32) (result i32)
    (call $foo (local.get 0)))
)
