'use strict'
// Runs every shared scenario of tests/scenarios/ (see its README) against the Node API, with the
// same expectations as core/tests/scenarios.rs. Events are replayed with npm fast-json-patch.

const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { Client } = require('..')
const { sleep, waitFor, Recorder, TIMEOUT_MS } = require('./helpers')

const DIR = path.join(__dirname, '..', '..', 'tests', 'scenarios')

function jsonEq(a, b) {
  if (typeof a === 'number' && typeof b === 'number') return a === b
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => jsonEq(x, b[i]))
  }
  if (a !== null && b !== null && typeof a === 'object' && typeof b === 'object') {
    const ka = Object.keys(a)
    return ka.length === Object.keys(b).length && ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && jsonEq(a[k], b[k]))
  }
  return a === b
}

function subset(expected, actual) {
  if (expected !== null && typeof expected === 'object' && !Array.isArray(expected)) {
    return (
      actual !== null &&
      typeof actual === 'object' &&
      Object.keys(expected).every((k) => Object.prototype.hasOwnProperty.call(actual, k) && subset(expected[k], actual[k]))
    )
  }
  return jsonEq(expected, actual)
}

function snapshotMatches(expected, actual) {
  return Object.keys(expected).every((k) => {
    if (!Object.prototype.hasOwnProperty.call(actual, k)) return false
    return k === 'data' || k === 'error' ? jsonEq(expected[k], actual[k]) : subset(expected[k], actual[k])
  })
}

function argOf(step) {
  return Object.prototype.hasOwnProperty.call(step, 'arg') ? step.arg : undefined
}

class Runner {
  constructor(name, scenario) {
    this.name = name
    this.pending = new Map() // key -> [{resolve, reject} | null]
    this.subs = new Map()
    this.lastUpdate = null
    this.client = null
    this.hooks = this.buildHooks(scenario.hooks || {})
  }

  buildHooks(spec) {
    const hooks = {}
    for (const [endpoint, h] of Object.entries(spec)) {
      const eh = {}
      const q = h.queryFn
      if (q === 'manual') {
        eh.queryFn = (arg) =>
          new Promise((resolve, reject) => {
            const key = this.client.cacheKey(endpoint, arg)
            if (!this.pending.has(key)) this.pending.set(key, [])
            this.pending.get(key).push({ resolve, reject })
          })
      } else if (q && Object.prototype.hasOwnProperty.call(q, 'data')) {
        eh.queryFn = () => structuredClone(q.data)
      } else if (q && Object.prototype.hasOwnProperty.call(q, 'error')) {
        eh.queryFn = () => {
          throw structuredClone(q.error)
        }
      } else if (q !== undefined) throw new Error(`unknown queryFn hook ${JSON.stringify(q)}`)
      if (h.onMessage === 'push') {
        eh.onMessage = (draft, message) => {
          if (draft === null) return [message]
          if (!Array.isArray(draft)) throw new Error('the data is not an array')
          draft.push(message)
        }
      } else if (h.onMessage === 'throw') {
        eh.onMessage = () => {
          throw new Error('boom')
        }
      } else if (h.onMessage !== undefined) throw new Error(`unknown onMessage hook ${h.onMessage}`)
      hooks[endpoint] = eh
    }
    return hooks
  }

  async settle() {
    for (const [name, s] of this.subs) {
      if (!s.sub.active) continue
      await waitFor(`${this.name}: subscriber ${name} to reach the engine's version`, () => {
        let target = 0
        try {
          target = s.sub.snapshot().version
        } catch {
          return true
        }
        return s.rec.version >= target
      })
    }
    // Let events that carry no version (status, stream, error) arrive too.
    await sleep(30)
  }

  checkReplicas(context) {
    for (const [name, s] of this.subs) {
      if (!s.sub.active) continue
      let snap
      try {
        snap = s.sub.snapshot()
      } catch {
        continue
      }
      s.rec.check(snap, `${this.name}: ${context}: subscriber ${name}`)
    }
  }

  async runStep(step) {
    const endpoint = step.endpoint || ''
    const arg = argOf(step)
    let error = null
    try {
      await this.action(step, endpoint, arg)
    } catch (e) {
      if (e instanceof assert.AssertionError || !e.code) throw e
      error = e
    }
    const want = step.expectError
    if (want === undefined && error !== null) throw new Error(`${this.name}: step ${JSON.stringify(step)}: ${error.stack}`)
    if (want !== undefined) {
      assert.ok(error !== null, `${this.name}: step ${JSON.stringify(step)}: expected error ${want}`)
      assert.equal(error.code, want, `${this.name}: step ${JSON.stringify(step)}: ${error.message}`)
    }
  }

  async pendingCall(key, n) {
    return waitFor(`${this.name}: a pending query call for ${key} (call ${n})`, () => {
      const calls = this.pending.get(key)
      if (!calls) return undefined
      if (n !== undefined) {
        const c = calls[n - 1]
        if (c === undefined) return undefined
        assert.ok(c !== null, `${this.name}: call ${n} of ${key} was already answered`)
        calls[n - 1] = null
        return c
      }
      const i = calls.findIndex((c) => c !== null)
      if (i < 0) return undefined
      const c = calls[i]
      calls[i] = null
      return c
    })
  }

  async action(step, endpoint, arg) {
    const c = this.client
    if (step.subscribe !== undefined) {
      const rec = new Recorder()
      const sub = c.subscribe(endpoint, arg, rec.onEvent)
      this.subs.set(step.subscribe, { sub, rec })
    } else if (step.unsubscribe !== undefined) {
      this.subs.get(step.unsubscribe).sub.unsubscribe()
    } else if (Object.prototype.hasOwnProperty.call(step, 'push')) {
      c.pushMessage(endpoint, arg, step.push)
    } else if (step.pushText !== undefined) {
      c.pushMessageText(endpoint, arg, step.pushText)
    } else if (step.resolveFetch !== undefined || step.rejectFetch !== undefined) {
      const call = await this.pendingCall(c.cacheKey(endpoint, arg), step.call)
      if (Object.prototype.hasOwnProperty.call(step, 'resolveFetch')) call.resolve(step.resolveFetch)
      else call.reject(step.rejectFetch)
    } else if (step.awaitFetch !== undefined) {
      const key = c.cacheKey(endpoint, arg)
      await waitFor(`${this.name}: ${step.awaitFetch} query calls for ${key}`, () => (this.pending.get(key) || []).length >= step.awaitFetch)
    } else if (step.patchQueryData !== undefined) {
      this.lastUpdate = c.patchQueryData(endpoint, arg, step.patchQueryData)
    } else if (step.updateQueryData !== undefined) {
      const { path: pointer, value } = step.updateQueryData
      this.lastUpdate = c.updateQueryData(endpoint, arg, (draft) => {
        if (pointer === '') return value
        const tokens = pointer.split('/').slice(1).map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'))
        const last = tokens.pop()
        let parent = draft
        for (const t of tokens) parent = parent[t]
        if (Array.isArray(parent) && last === '-') parent.push(value)
        else parent[last] = value
      })
    } else if (step.upsertQueryData !== undefined) {
      c.upsertQueryData(endpoint, arg, step.upsertQueryData)
    } else if (step.undoLast !== undefined) {
      assert.ok(this.lastUpdate, 'undoLast without a host update')
      const last = this.lastUpdate
      this.lastUpdate = null
      this.lastUpdate = last.undo()
    } else if (step.refetch !== undefined) {
      c.refetch(endpoint, arg)
    } else if (step.advance !== undefined) {
      // Virtual time (the scenario's "clock": "manual"): L7's waits without sleeping.
      c.advance(step.advance)
    } else if (step.settle !== undefined) {
      await this.settle()
    } else if (
      step.expectSnapshot !== undefined ||
      step.expectNotFound !== undefined ||
      step.expectEvents !== undefined ||
      step.expectStats !== undefined
    ) {
      await this.expect(step, endpoint, arg)
    } else throw new Error(`${this.name}: unknown step ${JSON.stringify(step)}`)
  }

  async expect(step, endpoint, arg) {
    const deadline = Date.now() + TIMEOUT_MS
    for (;;) {
      await this.settle()
      const problem = this.check(step, endpoint, arg)
      if (problem === null) break
      if (Date.now() >= deadline) assert.fail(`${this.name}: ${problem}`)
      await sleep(20)
    }
    if (step.expectSnapshot !== undefined) {
      await this.settle()
      this.checkReplicas('expectSnapshot')
    }
  }

  check(step, endpoint, arg) {
    const c = this.client
    if (step.expectSnapshot !== undefined) {
      let snap
      try {
        snap = c.snapshot(endpoint, arg)
      } catch (e) {
        return `snapshot: ${e.message}`
      }
      if (!snapshotMatches(step.expectSnapshot, snap)) {
        return `snapshot\n expected ${JSON.stringify(step.expectSnapshot)}\n actual   ${JSON.stringify(snap)}`
      }
    } else if (step.expectNotFound !== undefined) {
      try {
        const snap = c.snapshot(endpoint, arg)
        return `expected NotFound, got ${JSON.stringify(snap)}`
      } catch (e) {
        if (e.code !== 'NotFound') return `expected NotFound, got ${e.code}`
      }
    } else if (step.expectEvents !== undefined) {
      return this.checkEvents(step.expectEvents)
    } else if (step.expectStats !== undefined) {
      const stats = c.stats()
      if (!subset(step.expectStats, stats)) {
        return `stats\n expected ${JSON.stringify(step.expectStats)}\n actual   ${JSON.stringify(stats)}`
      }
    }
    return null
  }

  checkEvents(exp) {
    const rec = this.subs.get(exp.sub).rec
    const types = rec.types()
    if (exp.first !== undefined && types[0] !== exp.first) return `first event of ${exp.sub} is not ${exp.first}: ${types}`
    for (const t of exp.includes || []) if (!types.includes(t)) return `${exp.sub} never got ${t}: ${types}`
    for (const t of exp.excludes || []) if (types.includes(t)) return `${exp.sub} got ${t}: ${types}`
    if (exp.errors !== undefined) {
      const reasons = rec.events.filter((e) => e.type === 'error').map((e) => e.reason)
      if (!jsonEq(reasons, exp.errors)) return `error reasons of ${exp.sub}: expected ${JSON.stringify(exp.errors)}, got ${JSON.stringify(reasons)}`
    }
    if (exp.version !== undefined && rec.version !== exp.version) {
      return `last version seen by ${exp.sub} is ${rec.version}, expected ${exp.version}`
    }
    return null
  }
}

async function runScenario(file) {
  const scenario = JSON.parse(fs.readFileSync(path.join(DIR, file), 'utf8'))
  const runner = new Runner(file, scenario)
  if (scenario.expectConfigError !== undefined) {
    let error = null
    try {
      runner.client = new Client(scenario.config, runner.hooks, { clock: scenario.clock || 'system' })
    } catch (e) {
      error = e
    }
    assert.ok(error !== null, `${file}: expected ConfigError at ${scenario.expectConfigError}, the client was built`)
    assert.equal(error.code, 'ConfigError', `${file}: ${error.message}`)
    const m = /^invalid config at (\S+): /.exec(error.message)
    assert.ok(m, `${file}: the message names no key path: ${error.message}`)
    assert.equal(m[1], scenario.expectConfigError, `${file}: ${error.message}`)
    if (runner.client) await runner.client.close()
    return
  }
  runner.client = new Client(scenario.config, runner.hooks, { clock: scenario.clock || 'system' })
  try {
    for (const step of scenario.steps) await runner.runStep(step)
    await runner.settle()
    runner.checkReplicas('end')
  } finally {
    await runner.client.close()
  }
}

const files = fs.readdirSync(DIR).filter((f) => f.endsWith('.json')).sort()

test('the scenario folder is not empty', () => {
  assert.ok(files.length > 0)
})

for (const file of files) {
  test(`scenario ${file.replace(/\.json$/, '')}`, () => runScenario(file))
}
