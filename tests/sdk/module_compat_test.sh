#!/usr/bin/env bash
# "Ours run in Envoy", proven statically: every module the C++ SDK builds must
#   - export exactly one ABI marker, proxy_abi_version_0_2_1 () -> nil;
#   - export memory, malloc (i32) -> i32 and _initialize () -> nil (a WASI reactor, no _start);
#   - export callbacks only with the signatures of ABI 0.2.1 (3-argument on_*_headers);
#   - import only "env" host functions of ABI 0.2.1 (not 0.1.0 ones such as
#     proxy_get_configuration) and only WASI functions Envoy provides, all with the right types;
#   - import no memory, table or global.
# Usage: module_compat_test.sh <module.wasm>...   (WASM_OBJDUMP overrides the tool)
set -uo pipefail

OBJDUMP=${WASM_OBJDUMP:-wasm-objdump}
if [[ $# -eq 0 ]]; then
  echo "usage: $0 <module.wasm>..." >&2
  exit 2
fi

I=i32
L=i64
sig() {  # sig <result|nil> <param>... -> "(p, p) -> r"
  local r=$1
  shift
  local IFS=,
  local p="$*"
  echo "(${p//,/, }) -> $r"
}
i32s() {  # i32s N -> N copies of i32
  local out=() k
  for ((k = 0; k < $1; k++)); do out+=(i32); done
  echo "${out[@]}"
}

# ABI 0.2.1 host functions (shared/proxy-wasm-abi.md §2.1): all i32 in, i32 out, except metrics.
declare -A HOST
for spec in proxy_log:3 proxy_get_log_level:1 proxy_get_current_time_nanoseconds:1 \
  proxy_set_tick_period_milliseconds:1 proxy_get_status:3 proxy_get_property:4 \
  proxy_set_property:4 proxy_get_buffer_bytes:5 proxy_get_buffer_status:3 \
  proxy_set_buffer_bytes:5 proxy_get_header_map_pairs:3 proxy_set_header_map_pairs:3 \
  proxy_get_header_map_size:2 proxy_get_header_map_value:5 proxy_add_header_map_value:5 \
  proxy_replace_header_map_value:5 proxy_remove_header_map_value:3 proxy_continue_stream:1 \
  proxy_close_stream:1 proxy_send_local_response:8 proxy_http_call:10 proxy_grpc_call:12 \
  proxy_grpc_stream:9 proxy_grpc_send:4 proxy_grpc_cancel:1 proxy_grpc_close:1 \
  proxy_get_shared_data:5 proxy_set_shared_data:5 proxy_register_shared_queue:3 \
  proxy_resolve_shared_queue:5 proxy_enqueue_shared_queue:3 proxy_dequeue_shared_queue:3 \
  proxy_define_metric:4 proxy_get_metric:2 proxy_set_effective_context:1 proxy_done:0 \
  proxy_call_foreign_function:6; do
  # shellcheck disable=SC2046
  HOST[${spec%%:*}]=$(sig i32 $(i32s "${spec##*:}"))
done
HOST[proxy_increment_metric]=$(sig i32 $I $L)
HOST[proxy_record_metric]=$(sig i32 $I $L)

# WASI preview1 functions Envoy (proxy-wasm-cpp-host) provides (§7), with the WASI types.
# path_link/path_symlink are left out: cpp-host declares them with the wrong arity, so a module
# importing them fails to link in Envoy.
declare -A WASI
WASI[fd_write]=$(sig i32 $I $I $I $I)
WASI[fd_read]=$(sig i32 $I $I $I $I)
WASI[fd_pwrite]=$(sig i32 $I $I $I $L $I)
WASI[fd_pread]=$(sig i32 $I $I $I $L $I)
WASI[fd_seek]=$(sig i32 $I $L $I $I)
WASI[fd_close]=$(sig i32 $I)
WASI[fd_advise]=$(sig i32 $I $L $L $I)
WASI[fd_allocate]=$(sig i32 $I $L $L)
WASI[fd_datasync]=$(sig i32 $I)
WASI[fd_sync]=$(sig i32 $I)
WASI[fd_fdstat_get]=$(sig i32 $I $I)
WASI[fd_fdstat_set_flags]=$(sig i32 $I $I)
WASI[fd_fdstat_set_rights]=$(sig i32 $I $L $L)
WASI[fd_filestat_get]=$(sig i32 $I $I)
WASI[fd_filestat_set_size]=$(sig i32 $I $L)
WASI[fd_filestat_set_times]=$(sig i32 $I $L $L $I)
WASI[fd_prestat_get]=$(sig i32 $I $I)
WASI[fd_prestat_dir_name]=$(sig i32 $I $I $I)
WASI[fd_readdir]=$(sig i32 $I $I $I $L $I)
WASI[fd_renumber]=$(sig i32 $I $I)
WASI[fd_tell]=$(sig i32 $I $I)
WASI[environ_sizes_get]=$(sig i32 $I $I)
WASI[environ_get]=$(sig i32 $I $I)
WASI[args_sizes_get]=$(sig i32 $I $I)
WASI[args_get]=$(sig i32 $I $I)
WASI[clock_time_get]=$(sig i32 $I $L $I)
WASI[clock_res_get]=$(sig i32 $I $I)
WASI[random_get]=$(sig i32 $I $I)
WASI[poll_oneoff]=$(sig i32 $I $I $I $I)
WASI[sched_yield]=$(sig i32)
WASI[proc_exit]=$(sig nil $I)
WASI[path_open]=$(sig i32 $I $I $I $I $I $L $L $I $I)
WASI[path_filestat_get]=$(sig i32 $I $I $I $I $I)
WASI[path_filestat_set_times]=$(sig i32 $I $I $I $I $L $L $I)
WASI[path_create_directory]=$(sig i32 $I $I $I)
WASI[path_remove_directory]=$(sig i32 $I $I $I)
WASI[path_unlink_file]=$(sig i32 $I $I $I)
WASI[path_rename]=$(sig i32 $I $I $I $I $I $I)
WASI[path_readlink]=$(sig i32 $I $I $I $I $I $I)
WASI[sock_accept]=$(sig i32 $I $I $I)
WASI[sock_recv]=$(sig i32 $I $I $I $I $I $I)
WASI[sock_send]=$(sig i32 $I $I $I $I $I)
WASI[sock_shutdown]=$(sig i32 $I $I)

# Callback exports of ABI 0.2.1 (§3.1/3.2); anything else exported must not look like one.
declare -A CALLBACK
CALLBACK[_initialize]=$(sig nil)
CALLBACK[malloc]=$(sig i32 $I)
CALLBACK[proxy_on_memory_allocate]=$(sig i32 $I)
CALLBACK[proxy_abi_version_0_2_1]=$(sig nil)
CALLBACK[proxy_on_context_create]=$(sig nil $I $I)
CALLBACK[proxy_on_vm_start]=$(sig i32 $I $I)
CALLBACK[proxy_validate_configuration]=$(sig i32 $I $I)
CALLBACK[proxy_on_configure]=$(sig i32 $I $I)
CALLBACK[proxy_on_tick]=$(sig nil $I)
CALLBACK[proxy_on_queue_ready]=$(sig nil $I $I)
CALLBACK[proxy_on_foreign_function]=$(sig nil $I $I $I)
CALLBACK[proxy_on_new_connection]=$(sig i32 $I)
CALLBACK[proxy_on_downstream_data]=$(sig i32 $I $I $I)
CALLBACK[proxy_on_upstream_data]=$(sig i32 $I $I $I)
CALLBACK[proxy_on_downstream_connection_close]=$(sig nil $I $I)
CALLBACK[proxy_on_upstream_connection_close]=$(sig nil $I $I)
CALLBACK[proxy_on_request_headers]=$(sig i32 $I $I $I)
CALLBACK[proxy_on_response_headers]=$(sig i32 $I $I $I)
CALLBACK[proxy_on_request_body]=$(sig i32 $I $I $I)
CALLBACK[proxy_on_response_body]=$(sig i32 $I $I $I)
CALLBACK[proxy_on_request_trailers]=$(sig i32 $I $I)
CALLBACK[proxy_on_response_trailers]=$(sig i32 $I $I)
CALLBACK[proxy_on_request_metadata]=$(sig i32 $I $I)
CALLBACK[proxy_on_response_metadata]=$(sig i32 $I $I)
CALLBACK[proxy_on_http_call_response]=$(sig nil $I $I $I $I $I)
CALLBACK[proxy_on_grpc_receive_initial_metadata]=$(sig nil $I $I $I)
CALLBACK[proxy_on_grpc_receive]=$(sig nil $I $I $I)
CALLBACK[proxy_on_grpc_receive_trailing_metadata]=$(sig nil $I $I $I)
CALLBACK[proxy_on_grpc_close]=$(sig nil $I $I $I)
CALLBACK[proxy_on_done]=$(sig i32 $I)
CALLBACK[proxy_on_log]=$(sig nil $I)
CALLBACK[proxy_on_delete]=$(sig nil $I)

# One line per import/export: "IMPORT <kind> <module> <name> <sig>", "EXPORT <kind> <name> <sig>".
parse() {
  "$OBJDUMP" -x "$1" | awk '
    /^[A-Za-z]+\[[0-9]+\]:$/ { section = $0; sub(/\[.*/, "", section); next }
    section == "Type" && match($0, /type\[[0-9]+\] /) {
      idx = substr($0, RSTART + 5, RLENGTH - 7); types[idx] = substr($0, RSTART + RLENGTH); next
    }
    section == "Import" {
      kind = $2; sub(/\[.*/, "", kind)
      from = $NF; dot = index(from, ".")
      s = "-"
      if (kind == "func" && match($0, /sig=[0-9]+/)) {
        t = substr($0, RSTART + 4, RLENGTH - 4)
        f = $2; gsub(/[^0-9]/, "", f); fsig[f] = types[t]; s = types[t]
      }
      printf "IMPORT\t%s\t%s\t%s\t%s\n", kind, substr(from, 1, dot - 1), substr(from, dot + 1), s
      next
    }
    section == "Function" && match($0, /sig=[0-9]+/) {
      t = substr($0, RSTART + 4, RLENGTH - 4); f = $2; gsub(/[^0-9]/, "", f); fsig[f] = types[t]
      next
    }
    section == "Export" && match($0, /-> "[^"]*"$/) {
      name = substr($0, RSTART + 4, RLENGTH - 5)
      kind = $2; f = kind; sub(/\[.*/, "", kind); gsub(/[^0-9]/, "", f)
      printf "EXPORT\t%s\t%s\t%s\n", kind, name, (kind == "func" ? fsig[f] : "-")
    }'
}

failures=0
fail() {
  echo "FAIL $module: $*"
  failures=$((failures + 1))
}

for module in "$@"; do
  if [[ ! -f $module ]]; then
    fail "missing (build the sluice_ext_*_wasm targets)"
    continue
  fi
  lines=$(parse "$module") || {
    fail "$OBJDUMP failed"
    continue
  }
  before=$failures
  markers=0
  has_memory=0
  declare -A exported=()
  while IFS=$'\t' read -r what kind a b c; do
    if [[ $what == IMPORT ]]; then
      mod=$a name=$b s=$c
      if [[ $kind != func ]]; then
        fail "imports a $kind ($mod.$name)"
      elif [[ $mod == env ]]; then
        if [[ -z ${HOST[$name]+x} ]]; then
          fail "imports env.$name, which ABI 0.2.1 does not define"
        elif [[ ${HOST[$name]} != "$s" ]]; then
          fail "imports env.$name as $s, expected ${HOST[$name]}"
        fi
      elif [[ $mod == wasi_snapshot_preview1 || $mod == wasi_unstable ]]; then
        if [[ -z ${WASI[$name]+x} ]]; then
          fail "imports $mod.$name, which Envoy does not provide"
        elif [[ ${WASI[$name]} != "$s" ]]; then
          fail "imports $mod.$name as $s, expected ${WASI[$name]}"
        fi
      else
        fail "imports from unknown module $mod ($name)"
      fi
    elif [[ $what == EXPORT ]]; then
      name=$a s=$b
      if [[ $kind == memory && $name == memory ]]; then has_memory=1; fi
      [[ $kind == func ]] || continue
      exported[$name]=1
      if [[ $name == proxy_abi_version_* ]]; then markers=$((markers + 1)); fi
      if [[ -n ${CALLBACK[$name]+x} ]]; then
        [[ ${CALLBACK[$name]} == "$s" ]] || fail "exports $name as $s, expected ${CALLBACK[$name]}"
      elif [[ $name == proxy_* ]]; then
        fail "exports $name, which is not an ABI 0.2.1 callback"
      fi
    fi
  done <<<"$lines"
  [[ $markers -eq 1 ]] || fail "exports $markers proxy_abi_version_* markers, expected exactly 1"
  [[ -n ${exported[proxy_abi_version_0_2_1]+x} ]] || fail "does not export proxy_abi_version_0_2_1"
  [[ $has_memory -eq 1 ]] || fail "does not export memory"
  [[ -n ${exported[malloc]+x} ]] || fail "does not export malloc"
  [[ -n ${exported[_initialize]+x} ]] || fail "does not export _initialize"
  [[ -z ${exported[_start]+x} ]] || fail "exports _start (must be a reactor, not a command)"
  [[ -n ${exported[proxy_on_context_create]+x} ]] || fail "does not export proxy_on_context_create"
  unset exported
  if [[ $failures -eq $before ]]; then echo "ok   $module ($(stat -c %s "$module") bytes)"; fi
done

if [[ $failures -ne 0 ]]; then
  echo "$failures failure(s)"
  exit 1
fi
echo "all $# module(s) compatible"
