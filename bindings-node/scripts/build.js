#!/usr/bin/env node
'use strict'
// The package's `install` step: builds the native addon from source with cargo and puts it
// where index.js loads it (livecache.node). No prebuilt binary is downloaded.
//   LIVECACHE_NODE_PROFILE=debug|release   cargo profile (default release)
//   LIVECACHE_NODE_SKIP_BUILD=1            keep an existing livecache.node as is

const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const pkg = path.resolve(__dirname, '..')
const out = path.join(pkg, 'livecache.node')

if (process.env.LIVECACHE_NODE_SKIP_BUILD === '1' && fs.existsSync(out)) {
  console.log(`livecache: keeping ${out}`)
  process.exit(0)
}

const profile = process.env.LIVECACHE_NODE_PROFILE || 'release'
const args = ['build', '--manifest-path', path.join(pkg, 'Cargo.toml'), '--lib', '--message-format=json-render-diagnostics']
if (profile === 'release') args.push('--release')
else if (profile !== 'debug') args.push('--profile', profile)

console.error(`livecache: cargo ${args.join(' ')}`)
const cargo = process.env.CARGO || 'cargo'
const r = spawnSync(cargo, args, { cwd: pkg, stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 256 * 1024 * 1024 })
if (r.error) {
  console.error(`livecache: cannot run ${cargo}: ${r.error.message} (install Rust from https://rustup.rs)`)
  process.exit(1)
}
if (r.status !== 0) {
  console.error(`livecache: cargo build failed (exit ${r.status})`)
  process.exit(r.status || 1)
}

let built = null
for (const line of r.stdout.toString().split('\n')) {
  if (!line.startsWith('{')) continue
  const msg = JSON.parse(line)
  if (msg.reason === 'compiler-artifact' && msg.target && msg.target.name === 'livecache_node') {
    built = msg.filenames.find((f) => /\.(so|dylib|dll)$/.test(f)) || built
  }
}
if (built === null) {
  console.error('livecache: cargo did not report the livecache_node library')
  process.exit(1)
}
// Copy through a temporary name, so a process that has the old addon loaded keeps a valid file.
const tmp = `${out}.${process.pid}.tmp`
fs.copyFileSync(built, tmp)
fs.renameSync(tmp, out)
console.error(`livecache: ${path.relative(process.cwd(), out) || out} <- ${built}`)
