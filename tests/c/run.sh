#!/usr/bin/env bash
# The C suite: builds liblivecache (ffi/), regenerates include/livecache.h with the pinned cbindgen
# and fails when it differs from the committed one, compiles every C test, the benchmark and
# examples/c/chat.c with -Wall -Wextra -Werror, runs the tests (the end-to-end ones against
# tests/chat_server.py on 127.0.0.1), then runs them again under valgrind memcheck.
# The last line is `c: N passed, N failed` (test cases, plus one per build / header / valgrind check).
#
# Environment: ROOT (the checkout; default: two folders up), LIVECACHE_PROFILE (debug | release).
set -uo pipefail
ROOT="${ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}"
cd "$ROOT" || exit 2
PROFILE="${LIVECACHE_PROFILE:-debug}"
LIBDIR="$ROOT/target/$PROFILE"
OUT="$ROOT/target/c"
CBINDGEN_VERSION=0.29.4
mkdir -p "$OUT"

PASSED=0
FAILED=0
pass() { PASSED=$((PASSED + 1)); echo "[ok] $*"; }
fail() { FAILED=$((FAILED + 1)); echo "[FAILED] $*"; }
finish() {
  echo "c: $PASSED passed, $FAILED failed"
  [ "$FAILED" -eq 0 ]
  exit
}

# ---- the library ----
cargo_flags=(-p livecache-ffi)
[ "$PROFILE" = release ] && cargo_flags+=(--release)
if cargo build "${cargo_flags[@]}"; then
  pass "cargo build -p livecache-ffi ($PROFILE): liblivecache.so and liblivecache.a"
else
  fail "cargo build -p livecache-ffi"
  finish
fi

# ---- the header, regenerated with the pinned cbindgen ----
CBINDGEN="$ROOT/.tools/bin/cbindgen"
if [ ! -x "$CBINDGEN" ] || ! "$CBINDGEN" --version | grep -qx "cbindgen $CBINDGEN_VERSION"; then
  cargo install cbindgen --version "$CBINDGEN_VERSION" --locked --root "$ROOT/.tools"
fi
if "$CBINDGEN" --config ffi/cbindgen.toml --crate livecache-ffi --output include/livecache.h ffi; then
  if ! git ls-files --error-unmatch include/livecache.h >/dev/null 2>&1; then
    fail "include/livecache.h is not committed"
  elif git diff --exit-code include/; then
    pass "include/livecache.h matches cbindgen $CBINDGEN_VERSION output"
  else
    fail "include/livecache.h differs from what cbindgen generates (diff above): commit the regenerated header"
  fi
else
  fail "cbindgen $CBINDGEN_VERSION could not generate include/livecache.h"
fi

# The header stands alone in strict C99 and in C++.
printf '#include "livecache.h"\nint main(void) { return LIVECACHE_RESULT_OK; }\n' >"$OUT/header_check.c"
if cc -std=c99 -pedantic -Wall -Wextra -Werror -I include -fsyntax-only "$OUT/header_check.c" &&
  { ! command -v c++ >/dev/null || c++ -x c++ -std=c++11 -pedantic -Wall -Wextra -Werror -I include -fsyntax-only "$OUT/header_check.c"; }; then
  pass "include/livecache.h compiles alone as C99 -pedantic and as C++11"
else
  fail "include/livecache.h does not compile alone"
fi

# ---- pkg-config file for this build ----
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
mkdir -p "$LIBDIR/pkgconfig"
sed -e "s|@PREFIX@|$ROOT|" -e "s|@LIBDIR@|$LIBDIR|" -e "s|@VERSION@|$VERSION|" ffi/livecache.pc.in >"$LIBDIR/pkgconfig/livecache.pc"
if command -v pkg-config >/dev/null; then
  export PKG_CONFIG_PATH="$LIBDIR/pkgconfig"
  read -r -a LC_CFLAGS <<<"$(pkg-config --cflags livecache)"
  read -r -a LC_LIBS <<<"$(pkg-config --libs livecache)"
else
  LC_CFLAGS=(-I"$ROOT/include")
  LC_LIBS=(-L"$LIBDIR" -llivecache)
fi

# ---- compile ----
CC="${CC:-cc}"
CFLAGS=(-std=gnu11 -Wall -Wextra -Werror -g -O1 -pthread -I"$ROOT/tests/c" "${LC_CFLAGS[@]}")
SUPPORT=(tests/c/support.c tests/c/json.c)
compile() { # name sources...
  local name="$1"; shift
  if "$CC" "${CFLAGS[@]}" "$@" "${LC_LIBS[@]}" -Wl,-rpath,"$LIBDIR" -o "$OUT/$name"; then
    pass "compile $name"
    return 0
  fi
  fail "compile $name"
  return 1
}
compile test_json tests/c/test_json.c "${SUPPORT[@]}"
compile test_api tests/c/test_api.c "${SUPPORT[@]}"
compile test_stress tests/c/test_stress.c "${SUPPORT[@]}"
compile scenarios tests/c/scenarios.c "${SUPPORT[@]}"
compile test_e2e tests/c/test_e2e.c tests/c/net.c "${SUPPORT[@]}"
compile test_slow_consumer tests/c/test_slow_consumer.c "${SUPPORT[@]}"
compile bench_events tests/c/bench_events.c "${SUPPORT[@]}"
# The example links the static library, to show that build works too.
if "$CC" -std=gnu11 -Wall -Wextra -Werror -g "${LC_CFLAGS[@]}" examples/c/chat.c "$LIBDIR/liblivecache.a" \
  -lpthread -ldl -lm -o "$OUT/chat"; then
  pass "compile examples/c/chat.c against liblivecache.a"
else
  fail "compile examples/c/chat.c against liblivecache.a"
fi

# ---- Python for the chat test server ----
PY="$ROOT/.venv/bin/python"
if ! "$PY" -c "import websockets" 2>/dev/null; then
  { [ -x "$PY" ] || python3 -m venv "$ROOT/.venv"; } && "$ROOT/.venv/bin/pip" install --quiet websockets
fi

# ---- the test programs: name | arguments ----
JSON_SUITE="$ROOT/../shared/testdata/json-patch-tests"
TESTS=(test_api test_stress scenarios test_e2e test_slow_consumer)
[ -d "$JSON_SUITE" ] && TESTS=(test_json "${TESTS[@]}") || echo "[note] $JSON_SUITE not found: test_json not run"
args_of() {
  case "$1" in
    test_json) echo "$JSON_SUITE" ;;
    scenarios) echo "$ROOT/tests/scenarios" ;;
    test_e2e) echo "$PY $ROOT/tests/chat_server.py" ;;
    *) echo "" ;;
  esac
}

# Adds the cases of a program's log to the totals: its RESULT line, and its exit code `rc`.
tally() { # label log rc
  local label="$1" log="$2" rc="$3"
  grep -E '^(ok|not ok) ' "$log" | sed "s/^/  [$label] /"
  grep -E 'check failed|^  ' "$log" | grep -v '^  \[' | head -n 40
  local result
  result=$(grep -E '^RESULT passed=[0-9]+ failed=[0-9]+' "$log" | tail -n1)
  if [ -z "$result" ]; then
    fail "$label: ended without a result (exit $rc), log $log"
    tail -n 20 "$log"
    return 1
  fi
  local p f
  p=$(sed 's/.*passed=\([0-9]*\).*/\1/' <<<"$result")
  f=$(sed 's/.*failed=\([0-9]*\).*/\1/' <<<"$result")
  PASSED=$((PASSED + p))
  FAILED=$((FAILED + f))
  echo "$label: $p passed, $f failed"
  return "$rc"
}

# Runs one program (optionally under a wrapper); adds its cases to the totals.
run_program() { # label log wrapper... -- program args...
  local label="$1" log="$2"; shift 2
  local cmd=()
  while [ "$1" != "--" ]; do cmd+=("$1"); shift; done
  shift
  timeout 900 "${cmd[@]}" "$@" >"$log" 2>&1
  tally "$label" "$log" $?
}

echo
echo "==== C tests ===="
for t in "${TESTS[@]}"; do
  [ -x "$OUT/$t" ] || continue
  read -r -a targs <<<"$(args_of "$t")"
  run_program "$t" "$OUT/$t.log" env -- "$OUT/$t" "${targs[@]}"
done

echo
echo "==== the example against the chat server ===="
if [ -x "$OUT/chat" ] && [ -x "$PY" ]; then
  "$PY" tests/chat_server.py --port 0 >"$OUT/chat_server.out" 2>&1 &
  server=$!
  for _ in $(seq 100); do grep -q '^ADMIN' "$OUT/chat_server.out" && break; sleep 0.1; done
  port=$(awk '/^PORT/{print $2}' "$OUT/chat_server.out")
  admin=$(awk '/^ADMIN/{print $2}' "$OUT/chat_server.out")
  # The example runs for 60 s at most: it is stopped once it printed what is checked. The post
  # goes out once its data and open stream are printed, and every wait has a 30 s ceiling.
  "$OUT/chat" "$port" 60 >"$OUT/chat.log" 2>&1 &
  example=$!
  for _ in $(seq 300); do grep -q '"type":"snapshot"' "$OUT/chat.log" && grep -q '"state":"open"' "$OUT/chat.log" && break; sleep 0.1; done
  "$PY" -c "import sys, urllib.request; urllib.request.urlopen(urllib.request.Request('http://127.0.0.1:$admin/post', data=b'{\"channel\":\"redux\",\"userName\":\"run.sh\",\"text\":\"hello from run.sh\"}', method='POST'))"
  for _ in $(seq 300); do grep -q 'hello from run.sh' "$OUT/chat.log" && break; sleep 0.1; done
  kill "$example" 2>/dev/null
  wait "$example" 2>/dev/null
  kill "$server" 2>/dev/null
  wait "$server" 2>/dev/null
  head -n 8 "$OUT/chat.log"
  if grep -q '"type":"snapshot"' "$OUT/chat.log" && grep -q 'hello from run.sh' "$OUT/chat.log"; then
    pass "examples/c/chat.c: snapshot and the posted message printed"
  else
    fail "examples/c/chat.c did not print the snapshot and the posted message (log $OUT/chat.log)"
  fi
else
  fail "examples/c/chat.c not run (no binary or no Python)"
fi

echo
echo "==== benchmark (numbers are printed, not checked) ===="
if [ -x "$OUT/bench_events" ]; then
  if timeout 300 "$OUT/bench_events" "${BENCH_MESSAGES:-20000}"; then
    pass "bench_events ran"
  else
    fail "bench_events crashed or hung"
  fi
fi

echo
echo "==== valgrind memcheck ===="
if ! command -v valgrind >/dev/null; then
  { apt-get update -qq && apt-get install -y -qq valgrind; } >/dev/null 2>&1 || true
fi
if command -v valgrind >/dev/null; then
  VG=(valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite)
  # memcheck runs a program's threads one at a time: the longest program (test_stress) runs
  # beside the others, so the two cores both work.
  verdict() { # test rc
    local vlog="$OUT/$1.valgrind.log"
    grep -E 'ERROR SUMMARY|definitely lost|indirectly lost' "$vlog" | sed "s/^==[0-9]*==/  [valgrind $1]/"
    # Test failures are counted by tally; this check is memcheck's own verdict.
    if grep -q 'ERROR SUMMARY: 0 errors from 0 contexts' "$vlog"; then
      pass "valgrind $1: 0 errors, 0 bytes definitely lost (exit $2)"
    else
      fail "valgrind $1: memcheck errors or definite leaks (see $vlog)"
    fi
  }
  beside=""
  if [ -x "$OUT/test_stress" ]; then
    beside=test_stress
    (timeout 900 "${VG[@]}" --log-file="$OUT/test_stress.valgrind.log" "$OUT/test_stress" >"$OUT/test_stress.vg-stdout.log" 2>&1
      echo $? >"$OUT/test_stress.vg-rc") &
    beside_pid=$!
  fi
  for t in "${TESTS[@]}"; do
    [ -x "$OUT/$t" ] && [ "$t" != "$beside" ] || continue
    # It measures the process's memory, which under memcheck is valgrind's.
    [ "$t" = test_slow_consumer ] && continue
    read -r -a targs <<<"$(args_of "$t")"
    run_program "valgrind $t" "$OUT/$t.vg-stdout.log" "${VG[@]}" --log-file="$OUT/$t.valgrind.log" -- "$OUT/$t" "${targs[@]}"
    verdict "$t" $?
  done
  if [ -n "$beside" ]; then
    wait "$beside_pid"
    tally "valgrind $beside" "$OUT/$beside.vg-stdout.log" "$(cat "$OUT/$beside.vg-rc")"
    verdict "$beside" "$(cat "$OUT/$beside.vg-rc")"
  fi
  # The library users ship: the release build, with the suppressions shipped beside the header
  # (include/livecache.supp; each entry says why it is a false positive of optimised code). The
  # WebSocket end-to-end program takes the handshake paths they cover.
  if [ "$PROFILE" != release ] && cargo build --release -p livecache-ffi; then
    if "$CC" "${CFLAGS[@]}" tests/c/test_e2e.c tests/c/net.c "${SUPPORT[@]}" -L"$ROOT/target/release" -llivecache \
      -Wl,-rpath,"$ROOT/target/release" -o "$OUT/test_e2e_release"; then
      read -r -a targs <<<"$(args_of test_e2e)"
      run_program "valgrind test_e2e (release library)" "$OUT/test_e2e_release.vg-stdout.log" "${VG[@]}" \
        --suppressions="$ROOT/include/livecache.supp" --log-file="$OUT/test_e2e_release.valgrind.log" -- \
        "$OUT/test_e2e_release" "${targs[@]}"
      verdict test_e2e_release $?
    else
      fail "compile test_e2e against the release liblivecache"
    fi
  fi
else
  fail "valgrind is not installed and could not be installed"
fi

finish
