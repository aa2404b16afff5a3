#!/usr/bin/env bash
# The Node package's tests: builds the addon once (debug unless LIVECACHE_NODE_PROFILE says
# otherwise), installs the test dependencies (ws, fast-json-patch, typescript), type-checks the
# typed example with `tsc --noEmit --strict`, then runs every node:test file: the shared
# scenarios, the API and its error paths, process lifetime and memory (child processes), real
# HTTP/WebSocket peers on 127.0.0.1, and `npm install` of this folder into a fresh app.
set -euo pipefail
cd "$(dirname "$0")"
export LIVECACHE_NODE_PROFILE="${LIVECACHE_NODE_PROFILE:-debug}"

echo "== build ($LIVECACHE_NODE_PROFILE)"
node scripts/build.js

echo "== npm install (test dependencies)"
LIVECACHE_NODE_SKIP_BUILD=1 npm install --no-audit --no-fund --loglevel=error

echo "== tsc --noEmit --strict test/typed/example.ts"
node node_modules/typescript/bin/tsc --noEmit --strict -p test/typed/tsconfig.json
echo "typed example: ok"

echo "== node --test"
node --test --test-reporter=spec test/*.test.js
