;; ModuleInfo test: an exported function taking v128 cannot be described by a Signature.
(module
  (func (export "splat") (param v128) (result v128) local.get 0))
