;; A hostile HTTP filter (ABI 0.2.1), for the sandbox's end-to-end tests. What it does depends on
;; the second character of the request's :path:
;;   /r...  unbounded recursion in on_request_headers (V8 stops it: a stack overflow trap)
;;   /l...  one log line of 1 MiB, made of "x" with a forged log line ("\n[error] forged") in it
;;   /p...  10,000 host calls with out-of-bounds pointers (each answers InvalidMemoryAccess)
;;   /o...  a trap in on_log, after the response went out
;;   /b...  an endless loop in on_request_body (the CPU watchdog stops it)
;;   /q...  an endless loop in on_log
;;   /t...  an endless loop in the root's next on_tick (the VM ticks every 50 ms)
;;   /h...  an endless loop in on_response_headers
;;   /s...  an endless loop in on_response_body
;;   anything else: passes the request on untouched.
;; And at start: a VM configuration starting with "T" traps in on_vm_start; a plugin
;; configuration starting with "L" loops forever in on_configure.
(module
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_tick_period_milliseconds" (func $tick_period (param i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes" (func $get_buffer (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 20)  ;; 1.25 MiB: the 1 MiB log line lives at 64 KiB
  (global $heap (mut i32) (i32.const 8192))
  (global $trap_in_log (mut i32) (i32.const 0))
  (global $loop_in_body (mut i32) (i32.const 0))
  (global $loop_in_log (mut i32) (i32.const 0))
  (global $loop_in_tick (mut i32) (i32.const 0))
  (global $loop_in_response_headers (mut i32) (i32.const 0))
  (global $loop_in_response_body (mut i32) (i32.const 0))
  (func (export "malloc") (param $n i32) (result i32) (local $p i32)
    global.get $heap
    local.set $p
    (global.set $heap (i32.add (global.get $heap) (local.get $n)))
    (if (i32.gt_u (global.get $heap) (i32.const 60000)) (then (global.set $heap (i32.const 8192))))
    local.get $p)
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "_initialize")
    ;; the 1 MiB log line: "x" * 1 MiB, with a forged line in the middle
    (memory.fill (i32.const 65536) (i32.const 120) (i32.const 1048576))
    (i32.store8 (i32.const 100000) (i32.const 10))
    (memory.copy (i32.const 100001) (i32.const 32) (i32.const 14)))
  (data (i32.const 16) ":path")
  (data (i32.const 32) "[error] forged")

  (func $recurse (param $n i32) (result i32)
    (i32.add (call $recurse (i32.add (local.get $n) (i32.const 1))) (i32.const 1)))

  (func (export "proxy_on_context_create") (param i32 i32))
  ;; The first byte of a buffer (6: VM configuration, 7: plugin configuration), or 0.
  (func $first_byte (param $buffer i32) (result i32)
    (if (call $get_buffer (local.get $buffer) (i32.const 0) (i32.const 1) (i32.const 248)
          (i32.const 252))
      (then (return (i32.const 0))))
    (if (i32.eqz (i32.load (i32.const 252))) (then (return (i32.const 0))))
    (i32.load8_u (i32.load (i32.const 248))))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32)
    (if (i32.eq (call $first_byte (i32.const 6)) (i32.const 84)) (then unreachable))  ;; 'T'
    i32.const 1)
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (if (i32.eq (call $first_byte (i32.const 7)) (i32.const 76)) (then (call $spin)))  ;; 'L'
    (drop (call $tick_period (i32.const 50)))
    i32.const 1)
  (func $spin (loop $forever (br $forever)))
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32)
    (if (global.get $loop_in_response_headers) (then (call $spin)))
    i32.const 0)
  (func (export "proxy_on_response_body") (param i32 i32 i32) (result i32)
    (if (global.get $loop_in_response_body) (then (call $spin)))
    i32.const 0)
  (func (export "proxy_on_tick") (param i32)
    (if (global.get $loop_in_tick) (then (call $spin))))
  (func (export "proxy_on_request_body") (param i32 i32 i32) (result i32)
    (if (global.get $loop_in_body) (then (call $spin)))
    i32.const 0)

  (func (export "proxy_on_request_headers") (param $ctx i32) (param $n i32) (param $eos i32)
    (result i32) (local $c i32) (local $i i32)
    (drop (call $get (i32.const 0) (i32.const 16) (i32.const 5) (i32.const 240) (i32.const 244)))
    (if (i32.lt_u (i32.load (i32.const 244)) (i32.const 2)) (then (return (i32.const 0))))
    (local.set $c (i32.load8_u (i32.add (i32.load (i32.const 240)) (i32.const 1))))
    (if (i32.eq (local.get $c) (i32.const 114))  ;; 'r'
      (then (drop (call $recurse (i32.const 0)))))
    (if (i32.eq (local.get $c) (i32.const 108))  ;; 'l'
      (then (drop (call $log (i32.const 2) (i32.const 65536) (i32.const 1048576)))))
    (if (i32.eq (local.get $c) (i32.const 112))  ;; 'p'
      (then
        (block $done
          (loop $next
            (br_if $done (i32.ge_u (local.get $i) (i32.const 10000)))
            (drop (call $get (i32.const 0) (i32.const -16) (i32.const 5) (i32.const -8)
              (i32.const -4)))
            (drop (call $log (i32.const 2) (i32.const -100) (i32.const 1000)))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $next)))))
    (if (i32.eq (local.get $c) (i32.const 111))  ;; 'o'
      (then (global.set $trap_in_log (i32.const 1))))
    (if (i32.eq (local.get $c) (i32.const 98))  ;; 'b'
      (then (global.set $loop_in_body (i32.const 1))))
    (if (i32.eq (local.get $c) (i32.const 113))  ;; 'q'
      (then (global.set $loop_in_log (i32.const 1))))
    (if (i32.eq (local.get $c) (i32.const 116))  ;; 't'
      (then (global.set $loop_in_tick (i32.const 1))))
    (if (i32.eq (local.get $c) (i32.const 104))  ;; 'h'
      (then (global.set $loop_in_response_headers (i32.const 1))))
    (if (i32.eq (local.get $c) (i32.const 115))  ;; 's'
      (then (global.set $loop_in_response_body (i32.const 1))))
    i32.const 0)

  (func (export "proxy_on_log") (param i32)
    (if (global.get $loop_in_log) (then (call $spin)))
    (if (global.get $trap_in_log)
      (then (global.set $trap_in_log (i32.const 0)) unreachable)))
)
