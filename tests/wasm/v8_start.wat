;; A start function that writes to its imported memory, then tells the host where.
(module
  (import "env" "memory" (memory 1))
  (import "env" "on_start" (func $on_start (param i32)))
  (func $start
    (i32.store (i32.const 8) (i32.const 1234))
    (call $on_start (i32.const 8)))
  (start $start)
)
