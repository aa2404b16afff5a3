'use strict'
// One cargo build of the addon crate; returns the path of the library cargo made.

const { spawnSync } = require('node:child_process')

/** Builds `manifest`'s library with `profile` (`release`, `debug` or a custom one). */
function buildAddon(manifest, profile, cwd) {
  const args = ['build', '--manifest-path', manifest, '--lib', '--message-format=json-render-diagnostics']
  if (profile === 'release') args.push('--release')
  else if (profile !== 'debug') args.push('--profile', profile)
  console.error(`livecache: cargo ${args.join(' ')}`)
  const cargo = process.env.CARGO || 'cargo'
  const r = spawnSync(cargo, args, { cwd, stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 256 * 1024 * 1024 })
  if (r.error) {
    throw new Error(`cannot run ${cargo}: ${r.error.message} (install Rust from https://rustup.rs)`)
  }
  if (r.status !== 0) throw new Error(`cargo build failed (exit ${r.status})`)
  let built = null
  for (const line of r.stdout.toString().split('\n')) {
    if (!line.startsWith('{')) continue
    const msg = JSON.parse(line)
    if (msg.reason === 'compiler-artifact' && msg.target && msg.target.name === 'livecache_node') {
      built = msg.filenames.find((f) => /\.(so|dylib|dll)$/.test(f)) || built
    }
  }
  if (built === null) throw new Error('cargo did not report the livecache_node library')
  return built
}

module.exports = { buildAddon }
