'use strict'
// W3's rebase property from Node (the counterpart of bindings-python/tests/test_rebase_random.py),
// on 12 seeded random interleavings (mulberry32, no network): other users' messages fed with
// pushMessage, optimistic posts whose `mutationFn` the test answers when it chooses (success or
// failure), and the server's echoes, which confirm them. After every step the subscriber's replica,
// rebuilt from the events with npm fast-json-patch, equals `snapshot()`; the snapshot equals the
// server's messages with the pending posts on top, in order (`optimistic` counts them); a
// confirmed post never disappears (no flicker at its confirmation, none afterwards). Every wait is
// on an event (a delivered event, a hook call, a settled promise), never on a sleep.

const test = require('node:test')
const assert = require('node:assert/strict')
const { isDeepStrictEqual } = require('node:util')
const jsonpatch = require('fast-json-patch')
const { Client, MutationError } = require('..')
const { TIMEOUT_MS } = require('./helpers')

/** A small seeded PRNG: floats in [0, 1). */
function mulberry32(seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function deferred() {
  let resolve, reject
  const promise = new Promise((res, rej) => {
    resolve = res
    reject = rej
  })
  return { promise, resolve, reject }
}

/** `mutationFn` whose calls wait until the test answers them. */
class Writes {
  constructor() {
    this.open = new Map() // clientId -> the deferred the hook's call awaits
    this.arrivals = new Map() // clientId -> resolved when the hook is called
    this.mutationFn = (arg) => {
      const d = deferred()
      this.open.set(arg.clientId, d)
      this.arrival(arg.clientId).resolve()
      return d.promise
    }
  }

  arrival(clientId) {
    if (!this.arrivals.has(clientId)) this.arrivals.set(clientId, deferred())
    return this.arrivals.get(clientId)
  }

  /** Resolves once the write of `clientId` reached the hook. */
  arrived(clientId) {
    return this.arrival(clientId).promise
  }

  isOpen(clientId) {
    return this.open.has(clientId)
  }

  answer(clientId, ok) {
    const d = this.open.get(clientId)
    this.open.delete(clientId)
    if (ok) d.resolve({ stored: clientId })
    // Not an Error: the thrown value is the MutationError's answer, `{status, data}`.
    else d.reject({ status: 500, data: 'refused' })
  }
}

const CONFIG = {
  endpoints: {
    getMessages: { stream: { apply: { append: { dedupeBy: 'id' } } } },
    post: {
      optimistic: [{ endpoint: 'getMessages', message: { id: '{arg.clientId}', clientId: '{arg.clientId}', text: '{arg.text}' } }],
      confirm: { clientId: '{arg.clientId}' },
      confirmTimeoutMs: 600000,
    },
  },
}

function pick(rng, list) {
  return list[Math.floor(rng() * list.length)]
}

async function run(seed) {
  const rng = mulberry32(seed)
  const writes = new Writes()
  // The subscriber's replica: the last snapshot with every patch applied since, and each state it went through.
  const replica = { data: undefined, version: 0, states: [], problems: [] }
  const watchers = new Set()

  const onEvent = (e) => {
    if (e.type === 'snapshot') {
      replica.data = e.data
      replica.version = e.version
    } else if (e.type === 'patch') {
      if (e.from !== replica.version) replica.problems.push(`E1: patch from ${e.from} but the replica is at ${replica.version}`)
      try {
        replica.data = jsonpatch.applyPatch(replica.data, e.patches, true, false).newDocument
      } catch (err) {
        replica.problems.push(`fast-json-patch could not apply ${JSON.stringify(e.patches)}: ${err.message}`)
      }
      replica.version = e.version
    } else {
      return
    }
    replica.states.push(replica.data)
    for (const w of [...watchers]) w()
  }

  /** Resolves once `pred()` holds, checked now and after every delivered event. */
  const until = (what, pred) =>
    new Promise((resolve, reject) => {
      if (pred()) return resolve()
      const w = () => {
        if (!pred()) return
        clearTimeout(timer)
        watchers.delete(w)
        resolve()
      }
      // Only a bound for a failure: a passing run resolves on an event.
      const timer = setTimeout(() => {
        watchers.delete(w)
        reject(new Error(`timed out waiting for ${what()}`))
      }, TIMEOUT_MS)
      watchers.add(w)
    })

  const hooks = { getMessages: { queryFn: () => [] }, post: { mutationFn: writes.mutationFn } }
  const client = new Client(CONFIG, hooks)
  try {
    const sub = client.subscribe('getMessages', undefined, onEvent)
    await sub.loaded()
    await until(
      () => 'the first snapshot',
      () => replica.version > 0 && replica.version === sub.snapshot().version,
    )
    const server = [] // what the stream delivered, in order
    let pending = [] // posts whose layer is on, in mutation order
    const stored = [] // answered successfully, echo not yet delivered
    const results = new Map() // clientId -> the mutation's outcome, once settled
    const confirmed = []
    let nextId = 1
    for (let step = 0; step < 40; step++) {
      const kind = pick(rng, ['post', 'other', 'answer', 'echo', 'other'])
      const before = replica.states.length
      let confirms = null
      let did = kind
      const answerable = pending.filter((p) => writes.isOpen(p.clientId))
      if (kind === 'post') {
        const n = `c${seed}-${step}`
        const text = `post ${step}`
        results.set(
          n,
          client.mutate('post', { clientId: n, text }).then(
            (value) => ({ ok: true, value }),
            (error) => ({ ok: false, error }),
          ),
        )
        pending.push({ id: n, clientId: n, text })
        await writes.arrived(n)
      } else if (kind === 'answer' && answerable.length > 0) {
        const p = pick(rng, answerable)
        const ok = rng() < 0.7
        did = `answer ${p.clientId} ${ok ? 'ok' : 'refused'}`
        writes.answer(p.clientId, ok)
        if (ok) {
          stored.push({ id: nextId, clientId: p.clientId, text: p.text })
          nextId++
        } else {
          pending = pending.filter((q) => q !== p)
          const r = await results.get(p.clientId)
          assert.ok(!r.ok && r.error instanceof MutationError, `seed ${seed} step ${step}: the refused post rejects with MutationError, got ${JSON.stringify(r)}`)
        }
      } else if (kind === 'echo' && stored.length > 0) {
        const m = stored.shift()
        did = `echo ${m.clientId}`
        client.pushMessage('getMessages', undefined, m)
        server.push(m)
        pending = pending.filter((p) => p.clientId !== m.clientId)
        confirms = m.text
      } else {
        did = 'other'
        const m = { id: nextId, text: 'other' }
        nextId++
        client.pushMessage('getMessages', undefined, m)
        server.push(m)
      }
      const expected = [...server, ...pending]
      const where = `seed ${seed} step ${step} (${did})`
      await until(
        () => `${where}: visible = server + pending layers; expected ${JSON.stringify(expected)}, snapshot ${JSON.stringify(client.snapshot('getMessages'))}, replica v${replica.version} ${JSON.stringify(replica.data)}`,
        () => isDeepStrictEqual(replica.data, expected) && replica.version === client.snapshot('getMessages').version,
      )
      assert.deepEqual(replica.problems, [], `${where}: replay problems`)
      const snap = client.snapshot('getMessages')
      assert.deepEqual(snap.data, expected, `${where}: client.snapshot() = server + pending, in order`)
      assert.deepEqual(sub.snapshot().data, expected, `${where}: sub.snapshot() = server + pending, in order`)
      assert.deepEqual(replica.data, snap.data, `${where}: the replica equals the snapshot`)
      assert.equal(snap.optimistic ?? 0, pending.length, `${where}: optimistic counts the pending layers`)
      if (confirms !== null) {
        confirmed.push(confirms)
        const since = replica.states.slice(Math.max(before - 1, 0))
        for (const s of since) assert.ok(s.some((m) => m.text === confirms), `${where}: no flicker at confirmation: ${JSON.stringify(s)}`)
      }
    }
    // Writes still out are answered (refused) so no hook call is left waiting at close.
    const refused = pending.map((p) => p.clientId).filter((n) => writes.isOpen(n))
    for (const n of refused) writes.answer(n, false)
    for (const n of refused) assert.equal((await results.get(n)).ok, false, `seed ${seed}: ${n} was refused`)
    for (const text of confirmed) {
      const first = replica.states.findIndex((s) => s.some((m) => m.text === text))
      assert.ok(first >= 0, `seed ${seed}: ${text} was seen`)
      for (const s of replica.states.slice(first)) assert.ok(s.some((m) => m.text === text), `seed ${seed}: ${text} disappeared: ${JSON.stringify(s)}`)
    }
    sub.unsubscribe()
  } finally {
    // Posts answered but never echoed still wait for their confirmation: close settles them (Closed).
    await client.close()
  }
}

for (let seed = 0; seed < 12; seed++) {
  test(`W3: random interleaving, seed ${seed}: the replica replays, visible = server + pending posts in order, no confirmed post disappears`, () => run(seed))
}
