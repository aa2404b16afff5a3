#!/usr/bin/env node
'use strict'
// Makes the npm tarball (`livecache-<version>.tgz`): the JavaScript package, the addon prebuilt
// for this platform in prebuilds/<platform>-<arch>[-<libc>]/ (one self-contained tarball that
// installs offline, from a file, without Rust), and the Rust sources of the addon and the core in
// native/, from which the install step builds when no prebuilt fits.
//   node scripts/pack.js [--out DIR] [--profile release|debug]
// Prints the tarball's path on the last line.

const { execFileSync, spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { buildAddon } = require('./cargo')
const { platformTag } = require('../lib/addon')

const pkg = path.resolve(__dirname, '..')
const root = path.resolve(pkg, '..')
const argv = process.argv.slice(2)
const option = (name, fallback) => {
  const i = argv.indexOf(name)
  return i >= 0 && argv[i + 1] ? argv[i + 1] : fallback
}
const outDir = path.resolve(option('--out', process.cwd()))
const profile = option('--profile', 'release')

/** Copies `rel` (a file or a folder, relative to `from`) to the same place under `to`. */
function copy(from, to, rel) {
  fs.cpSync(path.join(from, rel), path.join(to, rel), { recursive: true })
}

/** A crate manifest without what only the checkout has: dev-dependencies (path ones point
 * outside the shipped sources) and benchmarks (their files are not shipped). */
function shippedManifest(text) {
  const kept = []
  let skipping = false
  for (const line of text.split('\n')) {
    const header = /^\s*\[\[?([^\]]+)\]\]?\s*$/.exec(line)
    if (header) skipping = header[1] === 'dev-dependencies' || header[1] === 'bench'
    if (!skipping) kept.push(line)
  }
  return kept.join('\n')
}

/** The workspace root of native/: the checkout's, with only the crates the addon needs. */
function shippedWorkspace(text) {
  const members = /^members = \[.*\]$/m
  if (!members.test(text)) throw new Error('Cargo.toml: no one-line `members = [...]` to rewrite')
  return text.replace(members, 'members = ["core", "core/engine", "bindings-node", "workspace-hack"]')
}

const stage = fs.mkdtempSync(path.join(os.tmpdir(), 'livecache-pack-'))
try {
  for (const rel of ['package.json', 'README.md', 'index.js', 'index.mjs', 'index.d.ts', 'lib', 'scripts/install.js', 'scripts/build.js', 'scripts/cargo.js']) {
    copy(pkg, stage, rel)
  }

  const built = buildAddon(path.join(pkg, 'Cargo.toml'), profile, pkg)
  const prebuilt = path.join(stage, 'prebuilds', platformTag(), 'livecache.node')
  fs.mkdirSync(path.dirname(prebuilt), { recursive: true })
  fs.copyFileSync(built, prebuilt)
  // Symbol tables are no use to a user: about a third of the size.
  if (spawnSync('strip', ['--strip-unneeded', prebuilt]).status !== 0) console.error('livecache: strip not run')

  const native = path.join(stage, 'native')
  fs.mkdirSync(path.join(native, 'core', 'engine'), { recursive: true })
  fs.mkdirSync(path.join(native, 'bindings-node'), { recursive: true })
  fs.mkdirSync(path.join(native, 'workspace-hack'), { recursive: true })
  fs.writeFileSync(path.join(native, 'Cargo.toml'), shippedWorkspace(fs.readFileSync(path.join(root, 'Cargo.toml'), 'utf8')))
  copy(root, native, 'Cargo.lock')
  for (const crate of ['core', 'core/engine', 'bindings-node', 'workspace-hack']) {
    const manifest = fs.readFileSync(path.join(root, crate, 'Cargo.toml'), 'utf8')
    fs.writeFileSync(path.join(native, crate, 'Cargo.toml'), shippedManifest(manifest))
    copy(root, native, path.join(crate, 'src'))
  }
  copy(root, native, 'bindings-node/build.rs')
  copy(root, native, 'workspace-hack/build.rs')

  fs.mkdirSync(outDir, { recursive: true })
  const json = execFileSync('npm', ['pack', '--json', '--pack-destination', outDir], { cwd: stage, stdio: ['ignore', 'pipe', 'inherit'] })
  const [info] = JSON.parse(json.toString())
  const tarball = path.join(outDir, info.filename)
  console.error(`livecache: ${info.entryCount} files, ${info.size} bytes packed, ${info.unpackedSize} unpacked`)
  console.log(tarball)
} catch (e) {
  console.error(`livecache: pack failed: ${e.message}`)
  process.exitCode = 1
} finally {
  fs.rmSync(stage, { recursive: true, force: true })
}
