;; A small ABI 0.2.1 filter written by hand, for end-to-end and host tests:
;;   - request "/deny..." -> local reply 403 "denied by wasm" with header x-denied: yes
;;   - request header x-from-wasm: <plugin configuration> added to every request
;;   - response header x-wasm: hello added to every response
;;   - request "/trap..." -> executes `unreachable` (a crashing plugin)
;;   - request "/loop..." -> spins forever (a looping plugin: the CPU watchdog stops it)
;;   - request bodies are buffered whole (paused until end_of_stream), then passed on
(module
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_send_local_response"
    (func $local (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes" (func $get_buffer (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 8192))
  ;; A bump allocator: enough for tests (each stream allocates a few small strings).
  (func (export "malloc") (param $n i32) (result i32) (local $p i32)
    global.get $heap
    local.set $p
    global.get $heap
    local.get $n
    i32.add
    global.set $heap
    ;; wrap around well before the end of the 2 pages
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
  (data (i32.const 16) "x-wasm")
  (data (i32.const 32) "hello")
  (data (i32.const 48) "/deny")
  (data (i32.const 64) ":path")
  (data (i32.const 80) "denied by wasm")
  (data (i32.const 112) "access_denied")
  ;; pairs: {x-denied: yes}: count 1, klen 8, vlen 3, "x-denied\0yes\0"
  (data (i32.const 128) "\01\00\00\00\08\00\00\00\03\00\00\00x-denied\00yes\00")
  (data (i32.const 160) "/trap")
  (data (i32.const 176) "/loop")
  (data (i32.const 192) "x-from-wasm")
  (data (i32.const 208) "configured")
  ;; 400..: plugin configuration copy (ptr at 300, len at 304)

  (func $starts_with (param $p i32) (param $plen i32) (param $lit i32) (param $n i32) (result i32)
    (local $i i32)
    local.get $plen
    local.get $n
    i32.lt_u
    if
      i32.const 0
      return
    end
    block $done
      loop $next
        local.get $i
        local.get $n
        i32.ge_u
        br_if $done
        local.get $p
        local.get $i
        i32.add
        i32.load8_u
        local.get $lit
        local.get $i
        i32.add
        i32.load8_u
        i32.ne
        if
          i32.const 0
          return
        end
        local.get $i
        i32.const 1
        i32.add
        local.set $i
        br $next
      end
    end
    i32.const 1)

  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) i32.const 1)
  (func (export "proxy_on_configure") (param $root i32) (param $size i32) (result i32)
    ;; keep the plugin configuration (buffer 7) for x-from-wasm
    (call $get_buffer (i32.const 7) (i32.const 0) (local.get $size) (i32.const 300) (i32.const 304))
    drop
    (call $log (i32.const 2) (i32.const 208) (i32.const 10))
    drop
    i32.const 1)

  (func (export "proxy_on_request_headers") (param $ctx i32) (param $n i32) (param $eos i32)
    (result i32)
    (call $get (i32.const 0) (i32.const 64) (i32.const 5) (i32.const 240) (i32.const 244))
    drop
    (call $starts_with (i32.load (i32.const 240)) (i32.load (i32.const 244)) (i32.const 48)
      (i32.const 5))
    if
      (call $local (i32.const 403) (i32.const 112) (i32.const 13) (i32.const 80) (i32.const 14)
        (i32.const 128) (i32.const 25) (i32.const -1))
      drop
      i32.const 1
      return
    end
    (call $starts_with (i32.load (i32.const 240)) (i32.load (i32.const 244)) (i32.const 160)
      (i32.const 5))
    if
      unreachable
    end
    (call $starts_with (i32.load (i32.const 240)) (i32.load (i32.const 244)) (i32.const 176)
      (i32.const 5))
    if
      loop $forever
        br $forever
      end
    end
    (call $add (i32.const 0) (i32.const 192) (i32.const 11) (i32.load (i32.const 300))
      (i32.load (i32.const 304)))
    drop
    i32.const 0)

  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32)
    (call $add (i32.const 2) (i32.const 16) (i32.const 6) (i32.const 32) (i32.const 5))
    drop
    i32.const 0)

  ;; Pause (StopIterationAndBuffer) until the whole request body is in, then continue with it.
  (func (export "proxy_on_request_body") (param $ctx i32) (param $size i32) (param $eos i32)
    (result i32)
    local.get $eos
    i32.eqz)
)
