#!/usr/bin/env bash
# ./fuzz/run.sh [SECONDS] [TARGET...]: builds the coverage-guided fuzz targets (libFuzzer through
# libfuzzer-sys, AddressSanitizer) and runs each for SECONDS (default 60) from its committed seeds
# (fuzz/seeds/<target>) and its working corpus (fuzz/corpus/<target>, not committed, grown by
# every run). A crash or a failed check leaves its input in fuzz/artifacts/<target>/ and fails
# the run. Prints one line per target (execs, execs/s, coverage) and the summary line
# `fuzz: N passed, M failed`.
#
# The sanitizer flag (-Zsanitizer=address) is unstable: the stable toolchain accepts it with
# RUSTC_BOOTSTRAP=1, which this script sets for its own build only. The other flags are the ones
# cargo-fuzz passes (`cargo fuzz run <target>` works on the same layout).
set -uo pipefail
cd "$(dirname "$0")"
SECONDS_EACH="${1:-60}"
shift $(( $# > 0 ? 1 : 0 ))
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(config frames patch cache_key sse graphql_ws c_abi)

TRIPLE="$(rustc -vV | sed -n 's/^host: //p')"
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="$PWD/target"
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Zsanitizer=address -Cforce-frame-pointers"
# --target keeps build scripts and proc macros out of the instrumentation.
if ! cargo build --release --target "$TRIPLE" --bins; then
  echo "fuzz: build failed"
  echo "fuzz: 0 passed, ${#TARGETS[@]} failed"
  exit 1
fi
BIN="$CARGO_TARGET_DIR/$TRIPLE/release"

passed=0
failed=0
for t in "${TARGETS[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  log="artifacts/$t/last-run.log"
  # -timeout: one input may take at most 10 s (the C ABI target starts a client per input);
  # -rss_limit_mb bounds memory (a leak or an unbounded buffer is a failure).
  "$BIN/$t" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="artifacts/$t/" "corpus/$t" "seeds/$t" >"$log" 2>&1
  rc=$?
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)"
  cov="$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1)"
  if [ "$rc" -eq 0 ]; then
    passed=$((passed + 1))
    echo "[ok] fuzz $t: ${execs:-?} execs (${rate:-?}/s) in ${SECONDS_EACH}s, ${cov:-no coverage line}, corpus $(ls "corpus/$t" | wc -l) files"
  else
    failed=$((failed + 1))
    echo "[FAILED] fuzz $t (exit $rc): input saved in fuzz/artifacts/$t/"
    grep -E 'panicked|ERROR: AddressSanitizer|ERROR: libFuzzer|SUMMARY' "$log" | head -5 | sed 's/^/  /'
  fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
