#!/usr/bin/env bash
# Python suite: a venv at the repository root (.venv), the package installed exactly as a user
# installs it (`pip install ./bindings-python`, maturin as the PEP 517 backend, dev profile: one build),
# then mypy --strict on the tests and examples, then pytest.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$HERE")"
VENV="$ROOT/.venv"
cd "$ROOT"

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
"$PY" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$PY" -m pip install --quiet --disable-pip-version-check "maturin>=1.9,<2" pytest websockets jsonpatch mypy aiohttp aiohttp-sse

# One build; cargo reuses the workspace's target/ between runs. The tests take the dev profile,
# which shares the dependencies `cargo test` already built (a user's `pip install` builds release).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
export MATURIN_PEP517_ARGS="${MATURIN_PEP517_ARGS:---profile dev}"
"$PY" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps ./bindings-python

cd "$HERE"
"$VENV/bin/mypy" --strict --config-file pyproject.toml tests examples bench
"$VENV/bin/mypy" --strict --config-file pyproject.toml python/livecache/__init__.py python/livecache/_draft.py
"$VENV/bin/python" -m pytest tests -p no:cacheprovider -q "$@"
