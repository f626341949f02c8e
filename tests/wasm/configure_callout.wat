;; A hand-written ABI 0.2.1 plugin whose on_configure calls out: proxy_http_call (GET / with
;; :authority x) to the cluster its configuration names, accepting the configuration only when
;; the host answers Ok. As Envoy lets a plugin call out from on_configure, its canary must be
;; able to; a cluster that does not exist gives BadArgument, and the configuration is refused.
(module
  (import "env" "proxy_get_buffer_bytes" (func $get_buffer (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_http_call"
    (func $http_call (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
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
  ;; pairs {":method": "GET", ":path": "/", ":authority": "x"}: 61 bytes
  (data (i32.const 1024)
    "\03\00\00\00"
    "\07\00\00\00\03\00\00\00" "\05\00\00\00\01\00\00\00" "\0a\00\00\00\01\00\00\00"
    ":method\00GET\00:path\00/\00:authority\00x\00")
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) i32.const 1)
  (func (export "proxy_on_http_call_response") (param i32 i32 i32 i32 i32))
  (func (export "proxy_on_configure") (param $root i32) (param $size i32) (result i32)
    ;; the configuration (a cluster name): pointer at 256, length at 260
    i32.const 7
    i32.const 0
    local.get $size
    i32.const 256
    i32.const 260
    call $get_buffer
    if
      i32.const 0
      return
    end
    i32.const 256
    i32.load
    i32.const 260
    i32.load
    i32.const 1024
    i32.const 61
    i32.const 0
    i32.const 0
    i32.const 0
    i32.const 0
    i32.const 1000
    i32.const 264
    call $http_call
    i32.eqz))
