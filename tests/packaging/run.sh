#!/usr/bin/env bash
# The packages, built once and installed the way a user installs them: outside the checkout, in
# a fresh prefix / venv / app folder, then used by a consumer program that knows nothing of the
# repository.
#   C       ffi/install.sh into a prefix; a consumer built with pkg-config, and with CMake
#           (shared and static); soname, symlinks, exported symbols
#   Python  the abi3 wheel (maturin build --release) on the oldest and newest CPython of pyenv,
#           with mypy --strict on the consumer; the sdist built and installed in a fresh venv
#   Node    the npm tarball (scripts/pack.js) installed with no cargo on PATH (the prebuilt addon),
#           require / import / tsc --strict; again built from the tarball's own sources
#   Rust    cargo package of livecache-engine and livecache-core (verified: the packaged crates build)
# Artifacts go to target/dist/ with a report (sizes, install times, file lists): target/dist/report.md.
# The last line is `packaging: N passed, N failed`.
set -uo pipefail
ROOT="${ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}"
cd "$ROOT" || exit 2
DIST="$ROOT/target/dist"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/livecache-packaging.XXXXXX")"
HERE="$ROOT/tests/packaging"
REPORT="$DIST/report.md"
rm -rf "$DIST" && mkdir -p "$DIST"
trap 'rm -rf "$WORK"' EXIT

PASSED=0
FAILED=0
pass() { PASSED=$((PASSED + 1)); echo "[ok] $*"; }
fail() { FAILED=$((FAILED + 1)); echo "[FAILED] $*"; }
check() { # description command...
  local what="$1"; shift
  if "$@"; then pass "$what"; else fail "$what"; fi
}
note() { printf '%s\n' "$*" >>"$REPORT"; }
size_of() { du -h "$1" | cut -f1; }
# Runs a command, records its wall time in seconds in $SECONDS_TAKEN.
timed() {
  local start end
  start=$(date +%s.%N)
  "$@"
  local rc=$?
  end=$(date +%s.%N)
  SECONDS_TAKEN=$(printf '%.1f' "$(echo "$end - $start" | bc)")
  return $rc
}
command -v bc >/dev/null || { apt-get update -qq && apt-get install -y -qq bc; } >/dev/null 2>&1

VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
note "# livecache $VERSION packages"
note ""
note "Built by tests/packaging/run.sh on $(uname -sm), $(date -u +%Y-%m-%d)."

# ---- one version everywhere ----
NODE_VERSION=$(node -p "require('./bindings-node/package.json').version")
check "one version: Cargo workspace $VERSION, npm package $NODE_VERSION" [ "$NODE_VERSION" = "$VERSION" ]
check "CHANGELOG.md has a section for $VERSION" grep -q "^## \[$VERSION\]" CHANGELOG.md

# Release builds for what ships; source builds from the packages reuse the test suites' dev
# builds (the same code, and the package's completeness is what they check).
export CARGO_TARGET_DIR="$ROOT/target"

# ==== C ====
echo "==== C: ffi/install.sh ===="
PREFIX="$WORK/c-prefix"
if timed ffi/install.sh --prefix "$PREFIX" >"$WORK/c-install.log" 2>&1; then
  pass "ffi/install.sh --prefix (build and install: ${SECONDS_TAKEN} s)"
  C_TIME=$SECONDS_TAKEN
else
  fail "ffi/install.sh"; cat "$WORK/c-install.log"
fi
LIB="$PREFIX/lib"
for f in "lib/liblivecache.so.$VERSION" lib/liblivecache.a include/livecache.h include/livecache.supp lib/pkgconfig/livecache.pc \
  lib/cmake/livecache/livecacheConfig.cmake lib/cmake/livecache/livecacheConfigVersion.cmake; do
  check "installed $f" [ -f "$PREFIX/$f" ]
done
MAJOR="${VERSION%%.*}"
check "liblivecache.so -> liblivecache.so.$MAJOR -> liblivecache.so.$VERSION" \
  [ "$(readlink "$LIB/liblivecache.so")" = "liblivecache.so.$MAJOR" ] && [ "$(readlink "$LIB/liblivecache.so.$MAJOR")" = "liblivecache.so.$VERSION" ]
check "soname liblivecache.so.$MAJOR" bash -c "readelf -d '$LIB/liblivecache.so.$VERSION' | grep -q 'SONAME.*\[liblivecache.so.$MAJOR\]'"
others=$(nm -D --defined-only "$LIB/liblivecache.so.$VERSION" | awk '{print $3}' | grep -v '^livecache_' || true)
exported=$(nm -D --defined-only "$LIB/liblivecache.so.$VERSION" | awk '{print $3}' | grep -c '^livecache_')
if [ -z "$others" ] && [ "$exported" -gt 0 ]; then
  pass "only livecache_* symbols exported ($exported)"
else
  fail "symbols other than livecache_* exported: $others"
fi

CONSUMER="$WORK/c-consumer"
mkdir -p "$CONSUMER" && cp "$HERE/c/consumer.c" "$HERE/c/CMakeLists.txt" "$CONSUMER/"
export PKG_CONFIG_PATH="$LIB/pkgconfig"
# shellcheck disable=SC2046
if (cd "$CONSUMER" && cc -std=c99 -Wall -Wextra -Werror consumer.c $(pkg-config --cflags --libs livecache) -o consumer_pc); then
  check "pkg-config consumer links liblivecache.so.$MAJOR and runs" bash -c \
    "readelf -d '$CONSUMER/consumer_pc' | grep -q 'NEEDED.*liblivecache.so.$MAJOR' && LD_LIBRARY_PATH='$LIB' '$CONSUMER/consumer_pc' >'$WORK/c-pc.log'"
else
  fail "pkg-config consumer does not compile"
fi
# shellcheck disable=SC2046
if (cd "$CONSUMER" && cc -std=c99 -Wall -Wextra -Werror consumer.c $(pkg-config --static --cflags livecache) "$LIB/liblivecache.a" $(pkg-config --static --libs-only-l livecache | sed 's/-llivecache//') -o consumer_static_pc); then
  check "pkg-config --static consumer runs with no shared livecache" bash -c \
    "! readelf -d '$CONSUMER/consumer_static_pc' | grep -q liblivecache && '$CONSUMER/consumer_static_pc' >/dev/null"
else
  fail "pkg-config --static consumer does not compile"
fi
unset PKG_CONFIG_PATH
if ! command -v cmake >/dev/null; then
  { apt-get update -qq && apt-get install -y -qq cmake; } >/dev/null 2>&1 || true
fi
if command -v cmake >/dev/null; then
  if cmake -S "$CONSUMER" -B "$CONSUMER/build" -DCMAKE_PREFIX_PATH="$PREFIX" -DLIVECACHE_VERSION="$VERSION" >"$WORK/cmake.log" 2>&1 &&
    cmake --build "$CONSUMER/build" >>"$WORK/cmake.log" 2>&1; then
    pass "CMake: find_package(livecache $VERSION EXACT) and both imported targets build"
    check "CMake consumer (livecache::livecache) runs" bash -c "'$CONSUMER/build/consumer_shared' >/dev/null"
    check "CMake consumer (livecache::static) runs" bash -c "'$CONSUMER/build/consumer_static' >/dev/null"
  else
    fail "CMake consumer (log below)"; tail -n 30 "$WORK/cmake.log"
  fi
  if cmake -S "$CONSUMER" -B "$CONSUMER/build-wrong" -DCMAKE_PREFIX_PATH="$PREFIX" -DLIVECACHE_VERSION=99.0 >"$WORK/cmake-wrong.log" 2>&1; then
    fail "CMake accepted find_package(livecache 99.0 EXACT)"
  else
    check "CMake refuses another version, naming it" grep -q "$VERSION" "$WORK/cmake-wrong.log"
  fi
else
  fail "cmake is not installed and apt-get could not install it"
fi
note ""
note "## C (\`ffi/install.sh --prefix DIR\`: build and install ${C_TIME:-?} s)"
note ""
note "| file | size |"
note "|---|---:|"
(cd "$PREFIX" && find . \( -type f -o -type l \) | sed 's|^\./||' | sort) | while read -r f; do
  if [ -L "$PREFIX/$f" ]; then note "| \`$f\` -> \`$(readlink "$PREFIX/$f")\` | |"; else note "| \`$f\` | $(size_of "$PREFIX/$f") |"; fi
done

# ==== Python ====
echo "==== Python: abi3 wheel and sdist ===="
VENV_PY="$ROOT/.venv/bin/python"
[ -x "$VENV_PY" ] || python3 -m venv "$ROOT/.venv"
"$VENV_PY" -m pip install --quiet --disable-pip-version-check "maturin>=1.9,<2" auditwheel
MATURIN="$ROOT/.venv/bin/maturin"
if timed "$MATURIN" build --release -m bindings-python/Cargo.toml -o "$DIST" >"$WORK/wheel.log" 2>&1; then
  pass "maturin build --release (${SECONDS_TAKEN} s)"
else
  fail "maturin build --release"; tail -n 30 "$WORK/wheel.log"
fi
WHEEL=$(ls "$DIST"/livecache-"$VERSION"-cp39-abi3-*.whl 2>/dev/null | head -n1)
check "one abi3 wheel for CPython >= 3.9: $(basename "${WHEEL:-none}")" [ -n "$WHEEL" ]
if [ -n "$WHEEL" ]; then
  TAG=$(basename "$WHEEL" .whl | sed 's/.*-abi3-//')
  check "auditwheel: the wheel is consistent with its tag $TAG" bash -c \
    "'$ROOT/.venv/bin/auditwheel' show '$WHEEL' 2>&1 | tr '\n' ' ' | tr -s ' ' | grep -q 'is consistent with the following platform tag: \"$TAG\"'"
  for member in livecache/__init__.py livecache/__init__.pyi livecache/_livecache.pyi livecache/py.typed livecache/_livecache.abi3.so; do
    check "wheel has $member" bash -c "'$VENV_PY' -m zipfile -l '$WHEEL' | grep -q ' *$member '"
  done
fi
if timed "$MATURIN" sdist -m bindings-python/Cargo.toml -o "$DIST" >"$WORK/sdist.log" 2>&1; then
  pass "maturin sdist (${SECONDS_TAKEN} s)"
else
  fail "maturin sdist"; tail -n 30 "$WORK/sdist.log"
fi
SDIST="$DIST/livecache-$VERSION.tar.gz"

PYENV_ROOT="${PYENV_ROOT:-$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")}"
newest_of() { ls -d "$PYENV_ROOT"/versions/"$1".* 2>/dev/null | sort -V | tail -n1; }
declare -A PY_TIMES=()
for minor in 3.9 3.13; do
  base=$(newest_of "$minor")
  if [ -z "$base" ] || [ ! -x "$base/bin/python3" ]; then
    fail "CPython $minor: not found under $PYENV_ROOT/versions"
    continue
  fi
  venv="$WORK/venv-$minor"
  "$base/bin/python3" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >/dev/null 2>&1
  if [ -n "$WHEEL" ] && timed "$venv/bin/pip" install --quiet --disable-pip-version-check "$WHEEL"; then
    PY_TIMES[$minor]=$SECONDS_TAKEN
    pass "pip install the wheel on CPython $("$venv/bin/python" -V | cut -d' ' -f2) (${SECONDS_TAKEN} s)"
  else
    fail "pip install the wheel on CPython $minor"
    continue
  fi
  app="$WORK/py-app-$minor"
  mkdir -p "$app" && cp "$HERE/python/consumer.py" "$app/"
  check "CPython $minor: the consumer runs against the installed wheel" bash -c \
    "cd '$app' && '$venv/bin/python' consumer.py | tee '$WORK/py-$minor.log' | tail -n1 | grep -q '$venv'"
  "$venv/bin/pip" install --quiet --disable-pip-version-check mypy >/dev/null 2>&1
  check "CPython $minor: mypy --strict on the consumer, with the package's own types" bash -c \
    "cd '$app' && '$venv/bin/mypy' --strict --no-incremental consumer.py"
done
if [ -f "$SDIST" ]; then
  base=$(newest_of 3.13)
  [ -n "$base" ] || base=$(dirname "$(dirname "$(command -v python3)")")
  venv="$WORK/venv-sdist"
  "$base/bin/python3" -m venv "$venv"
  # The build backend comes from PyPI (pip's isolated build), the Rust crates from the archive.
  if MATURIN_PEP517_ARGS="--profile dev" timed "$venv/bin/pip" install --quiet --disable-pip-version-check "$SDIST" >"$WORK/sdist-install.log" 2>&1; then
    SDIST_TIME=$SECONDS_TAKEN
    pass "pip install the sdist in a fresh venv (builds from the archive alone: ${SECONDS_TAKEN} s)"
    app="$WORK/py-app-sdist"
    mkdir -p "$app" && cp "$HERE/python/consumer.py" "$app/"
    check "the consumer runs against the sdist's build" bash -c "cd '$app' && '$venv/bin/python' consumer.py | tail -n1 | grep -q '$venv'"
  else
    fail "pip install the sdist"; tail -n 30 "$WORK/sdist-install.log"
  fi
fi
note ""
note "## Python"
note ""
note "| artifact | size | install |"
note "|---|---:|---|"
[ -n "$WHEEL" ] && note "| \`$(basename "$WHEEL")\` | $(size_of "$WHEEL") | $(for m in "${!PY_TIMES[@]}"; do printf 'CPython %s: %s s; ' "$m" "${PY_TIMES[$m]}"; done) |"
[ -f "$SDIST" ] && note "| \`$(basename "$SDIST")\` | $(size_of "$SDIST") | build and install ${SDIST_TIME:-?} s (dev profile, shared target/) |"
if [ -n "$WHEEL" ]; then
  note ""
  note "Wheel files: $("$VENV_PY" -m zipfile -l "$WHEEL" | awk 'NR>1 {printf "`%s` (%s B), ", $1, $4}')"
fi
if [ -f "$SDIST" ]; then
  note ""
  note "sdist: $(tar tzf "$SDIST" | wc -l) files: $(tar tzf "$SDIST" | sed "s|^livecache-$VERSION/||" | grep -v '/$' | awk -F/ '{print ($2 == "" ? $1 : $1 "/" ($3 == "" ? $2 : $2 "/…"))}' | sort -u | tr '\n' ' ')"
fi

# ==== Node ====
echo "==== Node: npm tarball ===="
TARBALL=""
if timed node bindings-node/scripts/pack.js --out "$DIST" >"$WORK/pack.out" 2>"$WORK/pack.log"; then
  TARBALL=$(tail -n1 "$WORK/pack.out")
  pass "scripts/pack.js: $(basename "$TARBALL") (${SECONDS_TAKEN} s)"
else
  fail "scripts/pack.js"; tail -n 30 "$WORK/pack.log"
fi
if [ -n "$TARBALL" ]; then
  for member in package/package.json package/index.js package/index.mjs package/index.d.ts package/lib/addon.js \
    package/scripts/install.js package/prebuilds/linux-x64-gnu/livecache.node package/native/Cargo.toml \
    package/native/Cargo.lock package/native/core/src/lib.rs package/native/core/engine/src/lib.rs package/native/bindings-node/src/lib.rs; do
    check "tarball has ${member#package/}" bash -c "tar tzf '$TARBALL' | grep -qx '$member'"
  done
  # No cargo, rustc or rustup on PATH: only the system's folders and node's own.
  NO_RUST_PATH="$(dirname "$(command -v node)"):/usr/bin:/bin"
  check "no cargo on the stripped PATH" bash -c "! PATH='$NO_RUST_PATH' command -v cargo >/dev/null"
  app="$WORK/npm-app"
  mkdir -p "$app" && cp "$HERE"/node/app.* "$HERE/node/tsconfig.json" "$app/"
  printf '{"name": "app", "version": "1.0.0", "private": true}\n' >"$app/package.json"
  cd "$app" || exit 2
  if PATH="$NO_RUST_PATH" timed npm install --no-audit --no-fund --loglevel=error "$TARBALL" >"$WORK/npm-install.log" 2>&1; then
    NPM_TIME=$SECONDS_TAKEN
    pass "npm install the tarball with no Rust toolchain on PATH (${SECONDS_TAKEN} s)"
  else
    fail "npm install the tarball with no Rust toolchain"; tail -n 30 "$WORK/npm-install.log"
  fi
  cd "$ROOT" || exit 2
  check "the prebuilt addon is what loads (nothing was built)" [ ! -e "$app/node_modules/livecache/livecache.node" ]
  check "require('livecache') from the installed tarball" bash -c "cd '$app' && node app.cjs | tail -n1 | grep -qx 'cjs: ok'"
  check "import from the installed tarball" bash -c "cd '$app' && node app.mjs | tail -n1 | grep -qx 'esm: ok'"
  if (cd "$app" && npm install --no-audit --no-fund --loglevel=error --no-save typescript@5 @types/node@20 >"$WORK/npm-ts.log" 2>&1); then
    check "tsc --strict on a TypeScript consumer, with the package's own types" bash -c "cd '$app' && node node_modules/typescript/bin/tsc -p tsconfig.json"
  else
    fail "npm install typescript"; tail -n 20 "$WORK/npm-ts.log"
  fi
  check "with --ignore-scripts too (no install step at all) the prebuilt addon loads" bash -c \
    "cd '$app' && rm -rf node_modules && PATH='$NO_RUST_PATH' npm install --ignore-scripts --no-audit --no-fund --loglevel=error '$TARBALL' >/dev/null 2>&1 && node app.cjs | tail -n1 | grep -qx 'cjs: ok'"

  # The fallback: the install step builds from the tarball's own sources (native/).
  src_app="$WORK/npm-app-source"
  mkdir -p "$src_app" && cp "$HERE/node/app.cjs" "$src_app/"
  printf '{"name": "app", "version": "1.0.0", "private": true, "allowScripts": {"livecache": true, "file:%s": true}}\n' "$TARBALL" >"$src_app/package.json"
  cd "$src_app" || exit 2
  LIVECACHE_NODE_BUILD_FROM_SOURCE=1 LIVECACHE_NODE_PROFILE=debug timed npm install --no-audit --no-fund --foreground-scripts --loglevel=error "$TARBALL" >"$WORK/npm-source.log" 2>&1
  built=$?
  cd "$ROOT" || exit 2
  if [ "$built" -eq 0 ]; then
    NPM_SOURCE_TIME=$SECONDS_TAKEN
    pass "npm install with LIVECACHE_NODE_BUILD_FROM_SOURCE=1 builds from the tarball's sources (${SECONDS_TAKEN} s)"
    check "the addon built from the tarball's sources is what loads" bash -c \
      "[ -f '$src_app/node_modules/livecache/livecache.node' ] && grep -q 'native/bindings-node/Cargo.toml' '$WORK/npm-source.log' && cd '$src_app' && node app.cjs | tail -n1 | grep -qx 'cjs: ok'"
  else
    fail "npm install building from the tarball's sources"; tail -n 30 "$WORK/npm-source.log"
  fi
  note ""
  note "## Node"
  note ""
  note "| artifact | size | install |"
  note "|---|---:|---|"
  note "| \`$(basename "$TARBALL")\` | $(size_of "$TARBALL") | prebuilt, no Rust on PATH: ${NPM_TIME:-?} s; from its own sources: ${NPM_SOURCE_TIME:-?} s (dev profile, shared target/) |"
  note ""
  note "Tarball files: $(tar tzvf "$TARBALL" | awk '{print $6 " (" $3 " B)"}' | sed 's|^package/||' | grep -v '^native/' | tr '\n' ',' | sed 's/,/, /g')native/: $(tar tzf "$TARBALL" | grep -c '^package/native/') files (Cargo.toml, Cargo.lock, core/, core/engine/, bindings-node/)"
fi

# ==== Rust ====
echo "==== Rust: cargo package ===="
# cargo unpacks the engine's .crate from its temporary registry into CARGO_HOME, under a name
# that does not change while the version does not: a copy left by an earlier run would be built
# instead of this one. Neither is left behind.
forget_unpacked() { rm -rf "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/livecache-engine-[0-9]* "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/livecache-core-[0-9]*; }
forget_unpacked
timed cargo package --quiet -p livecache-engine -p livecache-core --allow-dirty >"$WORK/cargo-package.log" 2>&1
packaged=$?
forget_unpacked
if [ "$packaged" -eq 0 ]; then
  pass "cargo package -p livecache-engine -p livecache-core (verified: ${SECONDS_TAKEN} s)"
  note ""
  note "## Rust"
  note ""
  note "| crate | size | files |"
  note "|---|---:|---:|"
  for crate in livecache-engine livecache-core; do
    f="$ROOT/target/package/$crate-$VERSION.crate"
    note "| \`$(basename "$f")\` | $(size_of "$f") | $(tar tzf "$f" | wc -l) |"
  done
else
  fail "cargo package"; tail -n 30 "$WORK/cargo-package.log"
fi

echo
echo "==== report ($REPORT) ===="
cat "$REPORT"
echo "packaging: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
