;; A hand-written ABI 0.2.1 network filter that misbehaves on request, for end-to-end tests of
;; envoy.filters.network.wasm. It looks at the first byte of what the client sent:
;;   't' -> executes `unreachable` (a crashing plugin)
;;   'w' -> returns StopIteration for good (a plugin that holds every byte and never resumes)
;;   'o' -> asks for buffer 2 with out-params outside its memory: must get InvalidMemoryAccess
;;          (6), else it traps; then lets the bytes through
;;   'c' -> proxy_close_stream(Downstream), then Continue (nothing may pass after the close)
;;   anything else passes.
(module
  (import "env" "proxy_get_buffer_bytes" (func $get_buffer (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_close_stream" (func $close_stream (param i32) (result i32)))
  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 8192))
  ;; A bump allocator that wraps around: each call copies at most one byte.
  (func (export "malloc") (param $n i32) (result i32) (local $p i32)
    global.get $heap
    local.set $p
    global.get $heap
    local.get $n
    i32.add
    global.set $heap
    global.get $heap
    i32.const 120000
    i32.gt_u
    if
      i32.const 8192
      global.set $heap
    end
    local.get $p)
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "_initialize"))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) i32.const 1)
  (func (export "proxy_on_configure") (param i32 i32) (result i32) i32.const 1)
  (func (export "proxy_on_new_connection") (param i32) (result i32) i32.const 0)
  (func (export "proxy_on_upstream_data") (param i32 i32 i32) (result i32) i32.const 0)

  (func (export "proxy_on_downstream_data") (param $ctx i32) (param $size i32) (param $eos i32)
    (result i32) (local $c i32)
    local.get $size
    i32.eqz
    if
      i32.const 0
      return
    end
    ;; the first byte: (ptr, len) written at 256 / 260
    i32.const 2
    i32.const 0
    i32.const 1
    i32.const 256
    i32.const 260
    call $get_buffer
    drop
    i32.const 256
    i32.load
    i32.load8_u
    local.set $c
    local.get $c
    i32.const 116 ;; 't'
    i32.eq
    if
      unreachable
    end
    local.get $c
    i32.const 119 ;; 'w'
    i32.eq
    if
      i32.const 1
      return
    end
    local.get $c
    i32.const 111 ;; 'o'
    i32.eq
    if
      i32.const 2
      i32.const 0
      i32.const 1
      i32.const 0xfffffff0
      i32.const 0xfffffff8
      call $get_buffer
      i32.const 6
      i32.ne
      if
        unreachable
      end
    end
    local.get $c
    i32.const 99 ;; 'c'
    i32.eq
    if
      i32.const 2
      call $close_stream
      drop
    end
    i32.const 0))
