;; No memory at all.
(module
  (func (export "one") (result i32)
    (i32.const 1))
)
