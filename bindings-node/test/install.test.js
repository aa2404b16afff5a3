'use strict'
// `npm install ./bindings-node` in a fresh app folder gives a working `require('livecache')`,
// `import { Client } from 'livecache'` and TypeScript types (the package's install script builds
// the addon with cargo; nothing is downloaded but the package itself).

const test = require('node:test')
const assert = require('node:assert/strict')
const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const pkg = path.resolve(__dirname, '..')

const APP_CJS = `
const { Client, NotFound } = require('livecache')
const client = new Client({ endpoints: { hello: {} } }, { hello: { queryFn: (name) => ({ greeting: 'hello ' + name }) } })
const sub = client.subscribe('hello', 'cjs', (ev) => {
  if (ev.type === 'snapshot') {
    console.log(ev.data.greeting)
    try { client.snapshot('hello', 'other') } catch (e) { console.log(e instanceof NotFound ? e.code : 'wrong') }
    sub.unsubscribe()
  }
})
`

const APP_MJS = `
import { Client } from 'livecache'
import livecache from 'livecache'
const client = new Client({ endpoints: { hello: {} } }, { hello: { queryFn: async (name) => ({ greeting: 'hello ' + name }) } })
const sub = client.subscribe('hello', 'esm')
const data = await sub.loaded()
console.log(data.greeting, livecache.Client === Client)
sub.unsubscribe()
await client.close()
`

const APP_TS = `
import { Client, type LivecacheEvent } from 'livecache'
const client = new Client({ endpoints: { hello: {} } })
const sub = client.subscribe<{ greeting: string }>('hello', 'ts', (ev: LivecacheEvent<{ greeting: string }>) => {
  if (ev.type === 'snapshot') console.log(ev.data.greeting.toUpperCase())
})
sub.unsubscribe()
`

test('npm install ./bindings-node in a fresh app: require, import and types work', { timeout: 900000 }, () => {
  const app = fs.mkdtempSync(path.join(os.tmpdir(), 'livecache-app-'))
  try {
    fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }))
    execFileSync('npm', ['install', '--no-audit', '--no-fund', pkg], { cwd: app, stdio: ['ignore', 'inherit', 'inherit'] })
    const installed = fs.realpathSync(path.join(app, 'node_modules', 'livecache'))
    assert.ok(fs.existsSync(path.join(installed, 'livecache.node')), 'the addon was built into the package')
    fs.writeFileSync(path.join(app, 'app.cjs'), APP_CJS)
    fs.writeFileSync(path.join(app, 'app.mjs'), APP_MJS)
    fs.writeFileSync(path.join(app, 'app.ts'), APP_TS)
    assert.equal(execFileSync(process.execPath, ['app.cjs'], { cwd: app }).toString(), 'hello cjs\nNotFound\n')
    assert.equal(execFileSync(process.execPath, ['app.mjs'], { cwd: app }).toString(), 'hello esm true\n')
    const tsc = path.join(pkg, 'node_modules', 'typescript', 'bin', 'tsc')
    execFileSync(
      process.execPath,
      [tsc, '--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--types', 'node', '--typeRoots', path.join(pkg, 'node_modules', '@types'), 'app.ts'],
      { cwd: app, stdio: ['ignore', 'inherit', 'inherit'] },
    )
  } finally {
    fs.rmSync(app, { recursive: true, force: true })
  }
})
