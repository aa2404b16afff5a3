#!/usr/bin/env bash
# Runs every livecache test suite: Rust, C, Python, Node. Installs what the tests need first
# (Python venv with maturin/pytest/websockets/jsonpatch, npm packages, cbindgen, valgrind).
# Everything it builds or installs stays inside this checkout.
set -euo pipefail
cd "$(dirname "$0")"
ROOT="$PWD"
export CARGO_TERM_COLOR=never
FAILED=()

stage() { printf '\n==== %s ====\n' "$*"; }
run() { # name, command...
  local name="$1"; shift
  if "$@"; then echo "[ok] $name"; else echo "[FAILED] $name"; FAILED+=("$name"); fi
}

# ---- Rust -----------------------------------------------------------------------------------
stage "Rust: cargo test"
run rust cargo test --workspace --exclude livecache-python --exclude livecache-node 2>/dev/null \
  || true
