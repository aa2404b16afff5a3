'use strict'
// Shared test helpers: event recorders replayed with npm fast-json-patch (an RFC 6902
// implementation independent of livecache), and waiting without timed assertions.

const assert = require('node:assert/strict')
const jsonpatch = require('fast-json-patch')

const TIMEOUT_MS = 10000

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** Polls `f` until it returns a value other than undefined/false; fails after TIMEOUT_MS. */
async function waitFor(what, f, timeoutMs = TIMEOUT_MS) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await f()
    if (v !== undefined && v !== false) return v
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(5)
  }
}

/** What one subscriber saw, replayed with fast-json-patch (validate on). */
class Recorder {
  constructor() {
    this.events = []
    this.data = undefined
    this.version = 0
    this.problems = []
    this.onEvent = (ev) => this.record(ev)
  }

  record(ev) {
    if (ev.type === 'snapshot') {
      this.data = structuredClone(ev.data)
      this.version = ev.version
    } else if (ev.type === 'patch') {
      if (ev.from !== this.version) this.problems.push(`patch from ${ev.from} but replica is at ${this.version}`)
      if (ev.from >= ev.version) this.problems.push(`patch from ${ev.from} to ${ev.version}`)
      for (const p of ev.patches) {
        if (p.path === '') this.problems.push('a patch targets the root (E1)')
        if (p.op === 'test') this.problems.push('a test op in an event (E1)')
      }
      if (this.data === undefined) this.problems.push('a patch before any snapshot')
      else {
        try {
          this.data = jsonpatch.applyPatch(this.data, structuredClone(ev.patches), true).newDocument
        } catch (e) {
          this.problems.push(`fast-json-patch could not apply ${JSON.stringify(ev.patches)}: ${e.message}`)
        }
      }
      this.version = ev.version
    }
    this.events.push(ev)
  }

  types() {
    return this.events.map((e) => e.type)
  }

  /** The replica equals the engine's data at the engine's version. */
  check(snapshot, context = '') {
    assert.deepEqual(this.problems, [], `${context}: replay problems`)
    if (snapshot.version > 0) {
      assert.equal(this.version, snapshot.version, `${context}: replica version`)
      assert.deepEqual(this.data, snapshot.data, `${context}: replica data`)
    }
  }
}

/** Waits until `recorder` has seen the version `sub.snapshot()` shows. */
async function settle(sub, recorder) {
  await waitFor(`${sub.key} to deliver its current version`, () => {
    let target = 0
    try {
      target = sub.snapshot().version
    } catch {
      return true
    }
    return recorder.version >= target
  })
}

/** The error thrown by `f` (sync), asserting its class and code. */
function expectThrows(f, cls, code) {
  let caught
  try {
    f()
  } catch (e) {
    caught = e
  }
  assert.ok(caught !== undefined, `expected ${code} to be thrown`)
  assert.ok(caught instanceof cls, `expected ${cls.name}, got ${caught && caught.constructor.name}: ${caught && caught.message}`)
  assert.equal(caught.code, code)
  return caught
}

module.exports = { sleep, waitFor, Recorder, settle, expectThrows, TIMEOUT_MS }
