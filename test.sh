#!/usr/bin/env bash
# Runs every livecache test suite: Rust, C, Python, Node — and installs what they need first
# (cbindgen pinned, valgrind, cmake, a Python venv with maturin/pytest/websockets/jsonpatch, npm
# packages), runs the fuzz targets briefly (fuzz/), then builds every package once and installs each
# outside the checkout (tests/packaging).
# Everything it builds or installs stays inside this checkout (target/, .tools/, .venv/, node_modules/).
set -uo pipefail
cd "$(dirname "$0")"
ROOT="$PWD"
export ROOT CARGO_TERM_COLOR=never
PASSED=()
FAILED=()
TIMES=()

stage() { printf '\n==== %s ====\n' "$*"; }
run() { # name command...
  local name="$1" start=$SECONDS; shift
  if "$@"; then PASSED+=("$name"); echo "[ok] $name"; else FAILED+=("$name"); echo "[FAILED] $name"; fi
  TIMES+=("$name $((SECONDS - start)) s")
}

# Packages that are not plain Rust libraries are tested by their own suites below.
EXCLUDES=()
for pkg in livecache-python livecache-node; do
  if cargo metadata --no-deps --format-version 1 2>/dev/null | grep -q "\"name\":\"$pkg\""; then
    EXCLUDES+=(--exclude "$pkg")
  fi
done

stage "Rust (cargo test)"
run rust cargo test --workspace "${EXCLUDES[@]}"

if [ -x tests/c/run.sh ]; then
  stage "C (liblivecache, header drift, valgrind)"
  run c tests/c/run.sh
fi

if [ -x bindings-python/run_tests.sh ]; then
  stage "Python (pytest, mypy)"
  run python bindings-python/run_tests.sh
fi

if [ -x bindings-node/run_tests.sh ]; then
  stage "Node (node --test, tsc)"
  run node bindings-node/run_tests.sh
fi

if [ -x fuzz/run.sh ]; then
  stage "Fuzz (libFuzzer + ASan, ${FUZZ_SECONDS:-10} s a target; fuzz/README.md)"
  run fuzz fuzz/run.sh "${FUZZ_SECONDS:-10}"
fi

if [ -x tests/packaging/run.sh ]; then
  stage "Packages (C install, abi3 wheel and sdist, npm tarball, cargo package)"
  run packaging tests/packaging/run.sh
fi

stage "Summary"
echo "times: $(IFS=,; echo "${TIMES[*]}" | sed 's/,/, /g')"
echo "suites passed: ${PASSED[*]:-none}"
echo "suites failed: ${FAILED[*]:-none}"
echo "suites: ${#PASSED[@]} passed, ${#FAILED[@]} failed"
[ "${#FAILED[@]}" -eq 0 ]
