#!/usr/bin/env node
'use strict'
// Builds the native addon from source with cargo and puts it where the loader looks first
// (livecache.node in the package folder). In a checkout it builds the workspace's
// bindings-node crate; in an installed npm tarball, the sources the tarball carries (native/).
//   LIVECACHE_NODE_PROFILE=debug|release   cargo profile (default release)
//   LIVECACHE_NODE_SKIP_BUILD=1            keep an existing livecache.node as is
//   CARGO                                  the cargo to run (default: cargo on PATH)

const fs = require('node:fs')
const path = require('node:path')
const { buildAddon } = require('./cargo')

const pkg = path.resolve(__dirname, '..')
const out = path.join(pkg, 'livecache.node')

if (process.env.LIVECACHE_NODE_SKIP_BUILD === '1' && fs.existsSync(out)) {
  console.log(`livecache: keeping ${out}`)
  process.exit(0)
}

// The tarball's own copy of the sources, else the checkout's crate.
const shipped = path.join(pkg, 'native', 'bindings-node', 'Cargo.toml')
const manifest = fs.existsSync(shipped) ? shipped : path.join(pkg, 'Cargo.toml')
let built
try {
  built = buildAddon(manifest, process.env.LIVECACHE_NODE_PROFILE || 'release', pkg)
} catch (e) {
  console.error(`livecache: ${e.message}`)
  process.exit(1)
}
// Copy through a temporary name, so a process that has the old addon loaded keeps a valid file.
const tmp = `${out}.${process.pid}.tmp`
fs.copyFileSync(built, tmp)
fs.renameSync(tmp, out)
console.error(`livecache: ${path.relative(process.cwd(), out) || out} <- ${built}`)
