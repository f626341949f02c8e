#!/usr/bin/env bash
# Instructions per proxied request, counted by callgrind (part of `make bench`; alone:
# bench/instructions.sh <build dir>). The wall-clock scripts measure what a request costs on
# this machine, whose noise (a request's system time alone swings by 20 % from one 3 s run to
# the next) is as big as a filter's whole cost; the instructions a worker executes in user space
# for a request are the same from run to run (within about 1 %), so a change of a few hundred
# shows. What they leave out: the kernel's share (about two thirds of a request's CPU here, the
# same with or without a filter), cache misses and how many requests one event-loop turn
# serves.
#
# Two loads, each without a filter (none), with the extension on the null runtime and on V8,
# one worker under `valgrind --tool=callgrind`, driven by wrk -c8:
#   add_header: bench/filter.sh's filter (a request and a response header set);
#   telemetry:  bench/telemetry.sh's stats_inbound with a client's peer metadata on every request.
# The counters are zeroed after a warm-up (V8 tiers the module up, caches fill), then counted for
# BENCH_INSTRUCTIONS_SECONDS (15) of load and divided by the requests wrk completed. Writes
# bench/results/<stamp>-instructions.md and .json.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH_NAME=sluice-bench-instructions
source "$ROOT/bench/lib.sh"
bench_build "${1:-build}"
source "$ROOT/bench/telemetry_lib.sh"
ADD_HEADER_WASM="$BUILD_DIR/extensions/add_header.wasm"
need_built "$ADD_HEADER_WASM"
need_built "$TELEMETRY_WASM"
for tool in valgrind callgrind_control; do
  command -v "$tool" > /dev/null || { echo "bench: $tool is missing (make deps installs it)" >&2; exit 1; }
done
COUNTED_SECONDS=${BENCH_INSTRUCTIONS_SECONDS:-15}
WARMUP_SECONDS=${BENCH_INSTRUCTIONS_WARMUP:-5}
VARIANTS="none null v8"
LOADS="add_header telemetry"

port UP
telemetry_upstream
telemetry_peer_headers
TELEMETRY_HEADERS=("${HEADERS[@]}")

# config LOAD VARIANT FILE ADMIN PORT
config() {
  if [[ $1 == telemetry ]]; then
    local runtime=$2
    [[ $2 == none ]] && runtime=""
    telemetry_config "$3" "$4" "$5" stats_inbound "$runtime"
    return
  fi
  local filters=""
  [[ $2 == v8 ]] && filters=$(wasm_filter_yaml v8 "filename: $ADD_HEADER_WASM")
  [[ $2 == null ]] && filters=$(wasm_filter_yaml null "inline_string: sluice.add_header")
  bench_proxy_yaml "$4" "$5" up "$filters" > "$3"
}

# check LOAD VARIANT URL: the extension really runs.
check() {
  [[ $2 == none ]] && return
  local h
  if [[ $1 == telemetry ]]; then
    h=$(curl -fsS -D - -o /dev/null "${TELEMETRY_HEADERS[@]}" "$3")
    [[ $h == *"x-envoy-peer-metadata-id: sidecar~10.0.0.1~reviews"* ]] ||
      { echo "bench: telemetry on $2 did not answer with its metadata: $h" >&2; exit 1; }
  else
    h=$(curl -fsS -D - -o /dev/null "$3")
    [[ $h == *"x-bench: 1"* ]] || { echo "bench: add_header on $2 did not run: $h" >&2; exit 1; }
  fi
}

# measure LOAD VARIANT: sets MEASURED_IPR (instructions a request) and MEASURED_REQUESTS.
measure() {
  local load=$1 v=$2 admin proxy pid out requests total dump i
  port admin; port proxy
  config "$load" "$v" "$WORK/$load-$v.yaml" "$admin" "$proxy"
  local -a headers=()
  [[ $load == telemetry ]] && headers=("${TELEMETRY_HEADERS[@]}")
  valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.$load.$v" \
    "$SLUICE" -c "$WORK/$load-$v.yaml" --concurrency 1 -l warning 2> "$WORK/valgrind.$load.$v.log" &
  pid=$!
  PIDS+=($pid)
  # V8 under valgrind takes a while to start (tens of seconds).
  for i in $(seq 600); do
    curl -fs -o /dev/null "http://127.0.0.1:$proxy/" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || { echo "bench: sluice under valgrind exited:" >&2; tail "$WORK/valgrind.$load.$v.log" >&2; exit 1; }
    (( i < 600 )) || { echo "bench: sluice under valgrind ($load, $v) never answered" >&2; exit 1; }
    sleep 0.2
  done
  check "$load" "$v" "http://127.0.0.1:$proxy/"
  wrk -t 1 -c 8 -d "${WARMUP_SECONDS}s" "${headers[@]}" "http://127.0.0.1:$proxy/" > /dev/null
  callgrind_control -z "$pid" > /dev/null 2>&1
  out=$(wrk -t 1 -c 8 -d "${COUNTED_SECONDS}s" "${headers[@]}" "http://127.0.0.1:$proxy/")
  callgrind_control -d "$pid" > /dev/null 2>&1
  requests=$(awk '/ requests in / {print $1}' <<<"$out")
  # The dump is written by the process itself: wait for its totals line.
  for i in $(seq 100); do
    dump=$(ls -t "$WORK/cg.$load.$v".* 2>/dev/null | head -1 || true)
    [[ -n $dump ]] && grep -qE '^(summary|totals):' "$dump" && break
    sleep 0.1
  done
  total=$(grep -E '^(summary|totals):' "$dump" | head -1 | awk '{print $2}')
  stop_pid "$pid"
  [[ -n $total && ${requests:-0} -gt 0 ]] || { echo "bench: no count for $load on $v" >&2; exit 1; }
  MEASURED_IPR=$((total / requests))
  MEASURED_REQUESTS=$requests
}

declare -A IPR REQS
for load in $LOADS; do
  for v in $VARIANTS; do
    measure "$load" "$v"
    IPR[$load,$v]=$MEASURED_IPR
    REQS[$load,$v]=$MEASURED_REQUESTS
    echo "bench: instructions $load $v: ${IPR[$load,$v]} a request (${REQS[$load,$v]} requests counted)" >&2
  done
done

thousands() { awk -v n="$1" 'BEGIN { printf "%.1fk", n / 1000 }'; }
STAMP=${BENCH_STAMP:-$(date -u +%Y-%m-%dT%H%M%SZ)}
mkdir -p "$ROOT/bench/results"
BASE="$ROOT/bench/results/$STAMP-instructions"
{
  echo "# Instructions per request $STAMP"
  echo
  echo "sluice $("$SLUICE" --version | awk '{print $3}') ($(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'))."
  echo "callgrind, one worker, wrk -t1 -c8; counted over ${COUNTED_SECONDS}s after a ${WARMUP_SECONDS}s warm-up; user-space"
  echo "instructions of the whole process (every thread) / requests wrk completed. add_header:"
  echo "\`${ADD_HEADER_CONFIG//\\n/; }\`; telemetry: stats_inbound \`{}\` with a client's peer metadata."
  echo
  echo "| load | none | null | v8 | null adds | v8 adds | v8 / null |"
  echo "|---|---|---|---|---|---|---|"
  for load in $LOADS; do
    n=${IPR[$load,none]} z=${IPR[$load,null]} e=${IPR[$load,v8]}
    echo "| $load | $(thousands "$n") | $(thousands "$z") | $(thousands "$e") |" \
      "$(thousands $((z - n))) | $(thousands $((e - n))) | $(ratio "$e" "$z") |"
  done
} > "$BASE.md"
{
  printf '{"timestamp":"%s","seconds":%s,"results":[' "$STAMP" "$COUNTED_SECONDS"
  sep=""
  for load in $LOADS; do
    for v in $VARIANTS; do
      printf '%s{"load":"%s","variant":"%s","instructions_per_request":%s,"requests":%s}' \
        "$sep" "$load" "$v" "${IPR[$load,$v]}" "${REQS[$load,$v]}"
      sep=","
    done
  done
  echo "]}"
} > "$BASE.json"
cat "$BASE.md"
echo
echo "bench: wrote $BASE.md and $BASE.json"
