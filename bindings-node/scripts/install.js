#!/usr/bin/env node
'use strict'
// The package's `install` step. With a prebuilt addon for this platform in the tarball
// (prebuilds/<platform>-<arch>[-<libc>]/) that loads, there is nothing to do: no Rust needed.
// Otherwise, or with LIVECACHE_NODE_BUILD_FROM_SOURCE=1 (or node-pre-gyp's
// npm_config_build_from_source=true), the addon is built from the sources the package carries
// (scripts/build.js; needs cargo). npm runs this only for a project that allows it
// (`"allowScripts": {"livecache": true}` in its package.json): a prebuilt addon needs no script.

const fs = require('node:fs')
const path = require('node:path')
const { platformTag, prebuiltPath } = require('../lib/addon')

const truthy = (v) => ['true', '1'].includes(String(v || '').toLowerCase())
const fromSource = truthy(process.env.LIVECACHE_NODE_BUILD_FROM_SOURCE) || truthy(process.env.npm_config_build_from_source)
const skip = process.env.LIVECACHE_NODE_SKIP_BUILD === '1'
const prebuilt = prebuiltPath()

if (!fromSource && !skip) {
  if (fs.existsSync(prebuilt)) {
    try {
      require(prebuilt)
      console.error(`livecache: using the prebuilt addon for ${platformTag()}`)
      process.exit(0)
    } catch (e) {
      console.error(`livecache: the prebuilt addon for ${platformTag()} does not load (${e.message}): building from source`)
    }
  } else {
    console.error(`livecache: no prebuilt addon for ${platformTag()}: building from source`)
  }
}
require(path.join(__dirname, 'build.js'))
