;; A hand-written ABI 0.2.1 filter that tries to take all the memory it can: on each request it
;; grows its memory a page (64 KiB) at a time until memory.grow refuses, then answers 200 with the memory
;; it ended with in MiB as the body's first byte ('0' + MiB / 10, then '0' + MiB % 10), so a test
;; can check the cap held. Its initial memory is 20 pages (1.25 MiB).
(module
  (import "env" "proxy_send_local_response"
    (func $local (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 20)
  (global $heap (mut i32) (i32.const 8192))
  (func (export "malloc") (param $n i32) (result i32) (local $p i32)
    global.get $heap
    local.set $p
    global.get $heap
    local.get $n
    i32.add
    global.set $heap
    local.get $p)
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "_initialize"))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) i32.const 1)
  (func (export "proxy_on_configure") (param i32 i32) (result i32) i32.const 1)
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (local $mib i32)
    block $refused
      loop $more
        i32.const 1
        memory.grow
        i32.const -1
        i32.eq
        br_if $refused
        br $more
      end
    end
    ;; MiB = pages / 16, as two digits at 100..101
    memory.size
    i32.const 16
    i32.div_u
    local.set $mib
    i32.const 100
    local.get $mib
    i32.const 10
    i32.div_u
    i32.const 48
    i32.add
    i32.store8
    i32.const 101
    local.get $mib
    i32.const 10
    i32.rem_u
    i32.const 48
    i32.add
    i32.store8
    ;; 200, no details, body = the two digits, no headers, no gRPC status
    i32.const 200
    i32.const 0
    i32.const 0
    i32.const 100
    i32.const 2
    i32.const 0
    i32.const 0
    i32.const -1
    call $local
    drop
    i32.const 1))
