'use strict'
// Process lifetime (SPEC §7 Node), uncaught callback errors (§5), unobserved rejections (L2) and
// memory under churn, each in a child process of its own.

const test = require('node:test')
const assert = require('node:assert/strict')
const { execFile } = require('node:child_process')
const path = require('node:path')

/** Runs a fixture; resolves with {code, stdout, stderr} once the child exits by itself. */
function run(fixture, nodeArgs = []) {
  return new Promise((resolve) => {
    execFile(process.execPath, [...nodeArgs, path.join(__dirname, 'fixtures', fixture)], { timeout: 60000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (error.code ?? error.signal) : 0, killed: !!(error && error.killed), stdout, stderr })
    })
  })
}

test('the process exits by itself after the last unsubscribe (keepUnusedDataFor pending)', async () => {
  const r = await run('exit_after_unsubscribe.js')
  assert.equal(r.killed, false, 'the child had to be killed')
  assert.equal(r.code, 0, r.stderr)
  assert.equal(r.stdout.trim(), 'unsubscribed')
})

test('a live subscription keeps the process alive', async () => {
  const r = await run('alive_while_subscribed.js')
  assert.equal(r.code, 0, r.stderr)
  assert.equal(r.stdout.trim(), 'unsubscribed')
})

test('a client closed with live subscriptions: they end, calls fail with Closed, the process exits', async () => {
  const r = await run('close_with_live_subscriptions.js')
  assert.equal(r.killed, false)
  assert.equal(r.code, 0, r.stderr)
  assert.equal(r.stdout.trim(), 'closed active=false,false,false error=Closed iteratorEnded=true')
})

test('a throwing callback is an uncaught exception; the other subscriber still gets every event', async () => {
  const r = await run('throwing_callback.js')
  assert.equal(r.code, 0, r.stderr)
  const { thrown, seen } = JSON.parse(r.stdout)
  assert.ok(thrown.includes('boom status') && thrown.includes('boom snapshot') && thrown.includes('boom patch'), thrown.join())
  assert.deepEqual(seen.slice(0, 2), ['status', 'snapshot'])
  assert.ok(seen.includes('patch'))
})

test('an unobserved cacheDataLoaded rejection is not an unhandled rejection (L2)', async () => {
  const r = await run('unobserved_rejection.js')
  assert.equal(r.code, 0, r.stderr)
  assert.equal(r.stdout.trim(), 'removed\nunhandled=0')
})

test('100,000 subscribe/unsubscribe cycles: heap growth after gc() under 5 MiB', async () => {
  const r = await run('churn.js', ['--expose-gc'])
  assert.equal(r.code, 0, r.stderr)
  const m = JSON.parse(r.stdout)
  console.log(`# churn: 100,000 cycles in ${m.ms.toFixed(0)} ms; heap growth ${(m.growth / 1024).toFixed(1)} KiB; rss growth ${(m.rssGrowth / 1048576).toFixed(1)} MiB`)
  assert.equal(m.subscriptions, 0)
  assert.ok(m.growth < 5 * 1024 * 1024, `heap grew by ${m.growth} bytes`)
})
