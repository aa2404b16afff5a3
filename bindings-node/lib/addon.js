'use strict'
// Where the native addon comes from, in this order:
//   1. LIVECACHE_NODE_ADDON, a path (for tests and custom builds);
//   2. livecache.node in the package folder: built from source (a checkout, or an install that had
//      no prebuilt addon for this platform, or was asked to build from source);
//   3. prebuilds/<platform>-<arch>[-<libc>]/livecache.node, shipped in the npm tarball.

const fs = require('node:fs')
const path = require('node:path')

const pkg = path.resolve(__dirname, '..')

/** `linux-x64-gnu`, `linux-x64-musl`, `darwin-arm64`, …: the folder a prebuilt addon is in. */
function platformTag() {
  let tag = `${process.platform}-${process.arch}`
  if (process.platform === 'linux') {
    const report = typeof process.report?.getReport === 'function' ? process.report.getReport() : null
    tag += report && report.header && report.header.glibcVersionRuntime ? '-gnu' : '-musl'
  }
  return tag
}

function prebuiltPath() {
  return path.join(pkg, 'prebuilds', platformTag(), 'livecache.node')
}

/** The addon files to try, best first. */
function candidates() {
  if (process.env.LIVECACHE_NODE_ADDON) return [process.env.LIVECACHE_NODE_ADDON]
  return [path.join(pkg, 'livecache.node'), prebuiltPath()].filter((f) => fs.existsSync(f))
}

function load() {
  const files = candidates()
  const failures = []
  for (const file of files) {
    try {
      return require(file)
    } catch (e) {
      failures.push(`${file}: ${e.message}`)
    }
  }
  const tried = failures.length ? ` (${failures.join('; ')})` : ''
  throw new Error(
    `livecache: no native addon loads for ${platformTag()}${tried}. ` +
      'To build it from the sources the package carries (needs Rust: https://rustup.rs), allow its install ' +
      'script (`"allowScripts": {"livecache": true}` in your package.json) and reinstall with ' +
      'LIVECACHE_NODE_BUILD_FROM_SOURCE=1.',
  )
}

module.exports = { load, platformTag, prebuiltPath }
