#!/usr/bin/env bash
# `make fuzz`: runs each libFuzzer target for a bounded time and prints one line per target.
#   tests/fuzz/run.sh <fuzz build dir> <seconds per target> [target...]
# Each target starts from a scratch copy of tests/fuzz/corpus/<target>/ (new inputs go there, never
# into the source tree) plus, read-only, tests/fuzz/regressions/<target>/ (inputs that once crashed:
# they are replayed first on every run). Crash reproducers and full logs are kept under
# <build dir>/fuzz-out/. Exits non-zero if any target crashed, leaked, timed out or ran out of
# memory.
set -uo pipefail
BUILD_DIR=${1:?usage: run.sh <fuzz build dir> <seconds> [target...]}
SECONDS_PER_TARGET=${2:-60}
shift 2 || shift $#
TARGETS=("$@")
[[ ${#TARGETS[@]} -gt 0 ]] ||
  TARGETS=(http1_request_fuzz http1_response_fuzz config_fuzz wasm_module_fuzz http2_server_fuzz)

SRC=$(cd "$(dirname "$0")" && pwd)
BUILD_DIR=$(cd "$BUILD_DIR" && pwd)
OUT="$BUILD_DIR/fuzz-out"
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/sluice-fuzz.XXXXXX")
trap 'rm -rf "$SCRATCH"' EXIT
mkdir -p "$OUT"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# Per-target options: the dictionary and the largest input worth trying.
target_args() {
  case $1 in
    http1_*) echo "-dict=$SRC/http1.dict -max_len=4096" ;;
    config_fuzz) echo "-dict=$SRC/config.dict -max_len=16384" ;;
    wasm_module_fuzz) echo "-dict=$SRC/wasm.dict -max_len=4096" ;;
    http2_server_fuzz) echo "-max_len=8192" ;;
    hub_fuzz) echo "-dict=$SRC/hub.dict -max_len=8192" ;;
  esac
}

failed=0
for t in "${TARGETS[@]}"; do
  bin="$BUILD_DIR/tests/fuzz/$t"
  if [[ ! -x $bin ]]; then
    echo "fuzz: $t: FAILED (no binary at $bin)"
    failed=1
    continue
  fi
  corpus="$SCRATCH/$t"
  mkdir -p "$corpus" "$OUT/$t"
  [[ -d $SRC/corpus/$t ]] && cp -R "$SRC/corpus/$t/." "$corpus/"
  seeds=$(find "$corpus" -type f | wc -l)
  dirs=("$corpus")
  [[ -d $SRC/regressions/$t ]] && dirs+=("$SRC/regressions/$t")
  log="$OUT/$t.log"
  # -timeout: one input taking this long is a hang; -rss_limit_mb: a runaway allocation.
  # shellcheck disable=SC2046
  (cd "$OUT/$t" && "$bin" $(target_args "$t") -max_total_time="$SECONDS_PER_TARGET" \
      -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$OUT/$t/" \
      "${dirs[@]}") >"$log" 2>&1
  rc=$?

  final_stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -n1; }
  execs=$(final_stat number_of_executed_units)
  rate=$(final_stat average_exec_per_sec)
  rss=$(final_stat peak_rss_mb)
  # The last status line: "#N DONE cov: C ft: F corp: U/S exec/s: R rss: M".
  last=$(grep -E '^#[0-9]+' "$log" | tail -n1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p' <<<"$last")
  if [[ $rc -eq 0 ]]; then
    printf 'fuzz: %-20s OK     %s s, %s execs (%s/s), cov %s, ft %s, corpus %s -> %s, rss %s MB\n' \
      "$t" "$SECONDS_PER_TARGET" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$seeds" \
      "${corp:-?}" "${rss:-?}"
  else
    failed=1
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n1)
    what=$(grep -m1 -oE 'ERROR: (AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|libFuzzer): [^ ]+( [^ ]+)?|runtime error: .*|invariant violated: .*' "$log")
    printf 'fuzz: %-20s FAILED (exit %s) after %s execs: %s; reproducer: %s; log: %s\n' \
      "$t" "$rc" "${execs:-?}" "${what:-see log}" "${artifact:-none}" "$log"
    # The gist of the report, for CI logs: the failed check or sanitizer error, then the Sluice
    # frames of the stack (recursion folded).
    grep -m1 -A2 'invariant violated' "$log" | sed 's/^/    /'
    grep -m1 -E 'ERROR: (Address|Leak|UndefinedBehavior)Sanitizer|runtime error|libFuzzer: (timeout|out-of-memory)' "$log" | sed 's/^/    /'
    grep -E '^ +#[0-9]+ 0x[0-9a-f]+ in .* [^ ]*/(src|tests/fuzz)/[^ ]+\.(cc|h):[0-9]+' "$log" |
      sed -E 's/^ +#[0-9]+ 0x[0-9a-f]+ in //' | uniq -c |
      sed -E 's/^ *1 /      /; s/^ *([0-9]+) /      (x\1) /' | head -n 12
    echo "    reproduce: $bin $artifact"
  fi
done
exit $failed
