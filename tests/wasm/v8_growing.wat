;; A memory without a maximum that grows inside one call, with the host reading it between the
;; grows (tests/unit/v8_vm_test.cc: the host's cached view of memory must follow every grow).
(module
  (import "env" "host_memory_size" (func $host_memory_size (result i32)))
  (import "env" "host_load_u32" (func $host_load_u32 (param i32) (result i32)))
  (memory (export "memory") 1)

  ;; `steps` times: write a marker at the top, grow by `pages`, then the host must read the marker
  ;; and see the new size. Returns the final size in pages, or 0xffffffff / 0xfffffffe when the
  ;; host read a wrong marker / size.
  (func (export "grow_loop") (param $steps i32) (param $pages i32) (result i32)
    (local $i i32) (local $top i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $steps)))
        (local.set $top (i32.sub (i32.mul (memory.size) (i32.const 65536)) (i32.const 4)))
        (i32.store (local.get $top) (i32.add (local.get $i) (i32.const 1000)))
        (drop (memory.grow (local.get $pages)))
        (if (i32.ne (call $host_load_u32 (local.get $top)) (i32.add (local.get $i) (i32.const 1000)))
          (then (return (i32.const -1))))
        (if (i32.ne (call $host_memory_size) (i32.mul (memory.size) (i32.const 65536)))
          (then (return (i32.const -2))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (memory.size))
)
