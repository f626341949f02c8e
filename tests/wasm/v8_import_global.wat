;; Imports a global, which Sluice never provides.
(module
  (import "env" "g" (global i32))
  (func (export "get") (result i32)
    (global.get 0))
)
