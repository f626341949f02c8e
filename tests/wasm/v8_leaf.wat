;; Leaf host functions (HostFunction::leaf), which V8 calls straight from compiled code
;; (tests/unit/v8_vm_test.cc): their arguments and results, a trap from inside one, and an
;; ordinary host function next to them.
(module
  (import "env" "leaf_add" (func $leaf_add (param i32 i32) (result i32)))
  (import "env" "leaf_wide" (func $leaf_wide (param i32 i64) (result i32)))
  (import "env" "leaf_trap" (func $leaf_trap (param i32) (result i32)))
  (import "env" "slow_add" (func $slow_add (param i32 i32) (result i32)))
  (import "env" "leaf_none" (func $leaf_none (result i32)))
  (memory (export "memory") 1)

  ;; leaf_add(i, 1000) for i = 0..n-1, summed.
  (func (export "sum") (param $n i32) (result i32)
    (local $i i32) (local $acc i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $acc (i32.add (local.get $acc) (call $leaf_add (local.get $i) (i32.const 1000))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.get $acc))

  (func (export "wide") (param $a i32) (param $b i64) (result i32)
    (call $leaf_wide (local.get $a) (local.get $b)))

  (func (export "none") (result i32) (call $leaf_none))

  ;; Both kinds of host function in one call.
  (func (export "mixed") (param $a i32) (result i32)
    (call $slow_add (call $leaf_add (local.get $a) (i32.const 1)) (i32.const 10)))

  ;; A trap from a leaf, then: an endless loop / a normal return / more host calls and a loop.
  (func (export "trap_then_spin") (param $x i32) (result i32)
    (drop (call $leaf_trap (local.get $x)))
    (loop $forever (br $forever))
    (i32.const 0))
  (func (export "trap_then_return") (param $x i32) (result i32)
    (drop (call $leaf_trap (local.get $x)))
    (i32.const 42))
  (func (export "trap_then_call") (param $x i32) (result i32)
    (drop (call $leaf_trap (local.get $x)))
    (drop (call $leaf_add (i32.const 1) (i32.const 2)))
    (drop (call $slow_add (i32.const 1) (i32.const 2)))
    (loop $forever (br $forever))
    (i32.const 0))
)
