;; A module whose memory the host creates (2 pages, at most 3).
(module
  (import "env" "memory" (memory 2 3))
  (func (export "load") (param i32) (result i32)
    (i32.load (local.get 0)))
  (func (export "store") (param i32 i32)
    (i32.store (local.get 0) (local.get 1)))
  (func (export "grow") (param i32) (result i32)
    (memory.grow (local.get 0)))
)
