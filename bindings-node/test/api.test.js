'use strict'
// Every call of the Node API (SPEC §7 Node) and every error path, with queryFn hooks and
// pushMessage as the data sources. Events are replayed with fast-json-patch throughout.

const test = require('node:test')
const assert = require('node:assert/strict')
const livecache = require('..')
const { Client, LivecacheError } = livecache
const { waitFor, Recorder, settle, expectThrows, sleep } = require('./helpers')

const KINDS = ['ConfigError', 'Closed', 'UnknownEndpoint', 'NotFound', 'NotLoaded', 'PatchError', 'InvalidArgument', 'InvalidInput', 'CacheEntryRemoved']

function chatConfig(extra = {}) {
  return {
    keepUnusedDataFor: 0,
    endpoints: {
      getMessages: { stream: { apply: 'append' } },
      getDoc: { keepUnusedDataFor: 60 },
      getPost: { query: 'posts/{arg.id}' },
      ...extra,
    },
  }
}

function chatHooks(extra = {}) {
  return {
    getMessages: { queryFn: async (channel) => [{ id: 0, channel, text: 'welcome' }] },
    getDoc: { queryFn: (arg) => ({ arg: arg === undefined ? 'none' : arg, tags: ['a'], n: 1 }) },
    ...extra,
  }
}

async function withClient(config, hooks, f) {
  const client = new Client(config, hooks)
  try {
    return await f(client)
  } finally {
    await client.close()
  }
}

test('error classes: one per kind, all LivecacheError with code', () => {
  for (const kind of KINDS) {
    const cls = livecache[kind]
    assert.equal(typeof cls, 'function', kind)
    const e = new cls('m', kind)
    assert.ok(e instanceof LivecacheError && e instanceof Error)
    assert.equal(e.code, kind)
    assert.equal(e.name, kind)
  }
})

test('ESM entry point gives the same classes', async () => {
  const esm = await import('../index.mjs')
  assert.equal(esm.Client, Client)
  assert.equal(esm.default.Client, Client)
  for (const kind of KINDS) assert.equal(esm[kind], livecache[kind])
})

test('the addon throws errors whose code is the engine kind, with the message as it is', () => {
  const { NativeClient } = require('../lib/addon').load()
  const noop = () => {}
  let thrown
  try {
    new NativeClient('{"endpoints": {"a": {"query": "x/{arg.}"}}}', '{}', noop, noop)
  } catch (e) {
    thrown = e
  }
  assert.ok(thrown instanceof Error, 'the constructor throws')
  assert.equal(thrown.code, 'ConfigError')
  assert.match(thrown.message, /endpoints\.a\.query/)
  assert.ok(!thrown.message.includes('\u0001'), 'no kind packed into the message')
  const native = new NativeClient('{"endpoints": {"a": {"stream": {"apply": "replace"}}}}', '{}', noop, noop)
  try {
    assert.throws(() => native.snapshot('nope', ''), (e) => e.code === 'UnknownEndpoint' && /nope/.test(e.message))
    assert.throws(() => native.advance(-1), (e) => e.code === 'InvalidArgument')
  } finally {
    native.close()
  }
})

test('config: object or JSON text; refusals name the key path', async () => {
  const text = JSON.stringify(chatConfig())
  await new Client(text, chatHooks()).close()
  let e = expectThrows(() => new Client({ endpoints: { a: { query: 'x/{arg.}' } } }), livecache.ConfigError, 'ConfigError')
  assert.match(e.message, /endpoints\.a\.query/)
  e = expectThrows(() => new Client('{not json'), livecache.ConfigError, 'ConfigError')
  assert.match(e.message, /not valid JSON/)
  expectThrows(() => new Client(42), livecache.ConfigError, 'ConfigError')
  expectThrows(() => new Client({ endpoints: {}, keepUnusedDataFor: NaN }), livecache.ConfigError, 'ConfigError')
  e = expectThrows(() => new Client(chatConfig(), { nope: { queryFn: () => 1 } }), livecache.ConfigError, 'ConfigError')
  assert.match(e.message, /hooks\.nope/)
  e = expectThrows(() => new Client(chatConfig(), { getDoc: { queryFN: () => 1 } }), livecache.ConfigError, 'ConfigError')
  assert.match(e.message, /hooks\.getDoc\.queryFN/)
  e = expectThrows(() => new Client(chatConfig(), { getDoc: { queryFn: 'x' } }), livecache.ConfigError, 'ConfigError')
  assert.match(e.message, /expected a function/)
  expectThrows(() => new Client(chatConfig(), { getDoc: 3 }), livecache.ConfigError, 'ConfigError')
  // An onMessage hook and an apply rule on one endpoint (core validation).
  e = expectThrows(
    () => new Client(chatConfig(), { ...chatHooks(), getMessages: { queryFn: () => [], onMessage: () => {} } }),
    livecache.ConfigError,
    'ConfigError',
  )
  assert.match(e.message, /stream\.apply/)
})

test('subscribe: key, snapshot, loaded, events replayed; arg undefined vs null (K1)', () =>
  withClient(chatConfig(), chatHooks(), async (client) => {
    const rec = new Recorder()
    const sub = client.subscribe('getMessages', 'redux', rec.onEvent)
    assert.equal(sub.key, 'getMessages("redux")')
    assert.deepEqual(await sub.loaded(), [{ id: 0, channel: 'redux', text: 'welcome' }])
    client.pushMessage('getMessages', 'redux', { id: 1, channel: 'redux', text: 'hi' })
    await waitFor('message applied', () => client.stats().messagesApplied === 1)
    await settle(sub, rec)
    rec.check(sub.snapshot(), 'replay')
    const snap = sub.snapshot()
    assert.equal(snap.status, 'fulfilled')
    assert.equal(snap.version, 2)
    assert.deepEqual(snap.stream, { state: 'closed' })
    assert.equal(rec.events[0].type, 'status')
    assert.deepEqual(client.snapshot('getMessages', 'redux'), snap)
    assert.equal(client.cacheKey('getDoc'), 'getDoc(undefined)')
    assert.equal(client.cacheKey('getDoc', null), 'getDoc(null)')
    assert.equal(client.cacheKey('getDoc', { b: 1, a: [1.0, 'x'] }), 'getDoc({"a":[1,"x"],"b":1})')
    const none = client.subscribe('getDoc')
    const nul = client.subscribe('getDoc', null)
    assert.equal(none.key, 'getDoc(undefined)')
    assert.equal(nul.key, 'getDoc(null)')
    assert.deepEqual((await none.loaded()).arg, 'none')
    assert.deepEqual((await nul.loaded()).arg, null)
    // A second subscriber of the same key shares the entry (K2) and loads at once.
    const again = client.subscribe('getMessages', 'redux')
    assert.equal((await again.loaded()).length, 2)
    assert.equal(client.stats().entries, 3)
    sub.unsubscribe()
    sub.unsubscribe()
    assert.equal(sub.active, false)
    again.unsubscribe()
    none.unsubscribe()
    nul.unsubscribe()
  }))

test('subscribe errors: UnknownEndpoint, InvalidArgument, InvalidInput', () =>
  withClient(chatConfig(), chatHooks(), async (client) => {
    expectThrows(() => client.subscribe('nope', 1), livecache.UnknownEndpoint, 'UnknownEndpoint')
    expectThrows(() => client.subscribe(42, 1), livecache.InvalidArgument, 'InvalidArgument')
    expectThrows(() => client.subscribe('getDoc', 1, 'not a function'), livecache.InvalidArgument, 'InvalidArgument')
    let e = expectThrows(() => client.subscribe('getPost', { other: 1 }), livecache.InvalidArgument, 'InvalidArgument')
    assert.match(e.message, /id/)
    e = expectThrows(() => client.subscribe('getDoc', { x: NaN }), livecache.InvalidInput, 'InvalidInput')
    assert.match(e.message, /not_finite/)
    expectThrows(() => client.subscribe('getDoc', Infinity), livecache.InvalidInput, 'InvalidInput')
    expectThrows(() => client.subscribe('getDoc', 10n), livecache.InvalidInput, 'InvalidInput')
    let deep = 1
    for (let i = 0; i < 129; i++) deep = [deep]
    e = expectThrows(() => client.subscribe('getDoc', deep), livecache.InvalidInput, 'InvalidInput')
    assert.match(e.message, /too_deep/)
    const cyclic = {}
    cyclic.self = cyclic
    expectThrows(() => client.subscribe('getDoc', cyclic), livecache.InvalidInput, 'InvalidInput')
    // 128 levels are fine; undefined members are skipped as JSON.stringify does.
    let ok = 1
    for (let i = 0; i < 127; i++) ok = [ok]
    client.subscribe('getDoc', ok).unsubscribe()
    const s = client.subscribe('getDoc', { a: 1, skip: undefined, f() {} })
    assert.equal(s.key, 'getDoc({"a":1})')
    s.unsubscribe()
    assert.equal(client.stats().subscriptions, 0)
  }))

test('loaded(): immediate with data; rejects with CacheEntryRemoved once the entry goes (L2)', () =>
  withClient(
    { keepUnusedDataFor: 0, endpoints: { slow: {} } },
    { slow: { queryFn: () => new Promise(() => {}) } },
    async (client) => {
      const sub = client.subscribe('slow', 1)
      const p = sub.loaded()
      sub.unsubscribe()
      // Nothing is subscribed now, so livecache no longer holds the process open (SPEC §7 Node):
      // the test does, while it waits.
      const hold = setInterval(() => {}, 1000)
      await assert.rejects(p, (e) => e instanceof livecache.CacheEntryRemoved && e.code === 'CacheEntryRemoved')
      // loaded() of a subscription whose entry is gone rejects at once.
      await assert.rejects(sub.loaded(), livecache.CacheEntryRemoved)
      clearInterval(hold)
    },
  ))

test('events(): async iterator of every event, ending with the subscription', () =>
  withClient(chatConfig(), chatHooks(), async (client) => {
    const sub = client.subscribe('getMessages', 'it')
    const seen = []
    const rec = new Recorder()
    for await (const ev of sub.events()) {
      seen.push(ev.type)
      rec.record(ev)
      if (ev.type === 'snapshot') client.pushMessage('getMessages', 'it', { id: 9 })
      if (ev.type === 'patch') sub.unsubscribe()
    }
    assert.deepEqual(seen, ['status', 'snapshot', 'patch'])
    assert.equal(rec.data.length, 2)
    // An iterator made after unsubscribe ends at once.
    const it = sub.events()
    assert.deepEqual(await it.next(), { value: undefined, done: true })
    // return() ends an iterator early.
    const sub2 = client.subscribe('getMessages', 'it2')
    const it2 = sub2.events()
    assert.equal((await it2.next()).value.type, 'status')
    await it2.return()
    assert.equal((await it2.next()).done, true)
    sub2.unsubscribe()
  }))

test('updateQueryData: draft mutations, returned value, undo, errors (L9)', () =>
  withClient(chatConfig(), chatHooks(), async (client) => {
    const rec = new Recorder()
    const sub = client.subscribe('getDoc', 1, rec.onEvent)
    await sub.loaded()
    let r = client.updateQueryData('getDoc', 1, (draft) => {
      draft.n += 1
      draft.tags.push('b', 'c')
      draft.tags.splice(0, 1)
      draft.added = { deep: [1, { x: 'y' }] }
      draft.added.deep[1].x = 'z'
      delete draft.arg
      draft['a/b~c'] = true
    })
    const expected = { tags: ['b', 'c'], n: 2, added: { deep: [1, { x: 'z' }] }, 'a/b~c': true }
    // Host updates are synchronous (L9).
    assert.deepEqual(client.snapshot('getDoc', 1).data, expected)
    assert.ok(r.patches.length > 0 && r.inversePatches.length > 0)
    const undone = r.undo()
    assert.deepEqual(client.snapshot('getDoc', 1).data, { arg: 1, tags: ['a'], n: 1 })
    undone.undo()
    assert.deepEqual(client.snapshot('getDoc', 1).data, expected)
    r = client.updateQueryData('getDoc', 1, () => ({ replaced: true }))
    assert.deepEqual(client.snapshot('getDoc', 1).data, { replaced: true })
    r.undo()
    assert.deepEqual(client.snapshot('getDoc', 1).data, expected)
    // pop, shift, unshift, sort, reverse, length truncation, array element through a nested draft
    client.updateQueryData('getDoc', 1, (d) => {
      d.list = [5, 3, 4, 1]
      d.list.sort()
      d.list.reverse()
      d.list.pop()
      d.list.shift()
      d.list.unshift(0)
      d.more = [1, 2, 3, 4]
      d.more.length = 2
      d.more[0] = undefined
      d.added.deep[1] = { replaced: [] }
      d.added.deep[1].replaced.push(d.tags)
    })
    const data = client.snapshot('getDoc', 1).data
    assert.deepEqual(data.list, [0, 4, 3])
    assert.deepEqual(data.more, [null, 2])
    assert.deepEqual(data.added.deep[1], { replaced: [['b', 'c']] })
    // A recipe that changes nothing changes nothing.
    const before = client.snapshot('getDoc', 1).version
    r = client.updateQueryData('getDoc', 1, () => {})
    assert.deepEqual(r.patches, [])
    assert.equal(client.snapshot('getDoc', 1).version, before)
    // Errors change nothing.
    const boom = new Error('recipe failed')
    assert.throws(() => client.updateQueryData('getDoc', 1, (d) => { d.n = 100; throw boom }), (e) => e === boom)
    expectThrows(() => client.updateQueryData('getDoc', 1, (d) => { d.n = NaN }), livecache.InvalidInput, 'InvalidInput')
    expectThrows(() => client.updateQueryData('getDoc', 1, () => ({ x: Infinity })), livecache.InvalidInput, 'InvalidInput')
    expectThrows(() => client.updateQueryData('getDoc', 1, (d) => { d.list[5] = 1 }), livecache.InvalidArgument, 'InvalidArgument')
    expectThrows(() => client.updateQueryData('getDoc', 1, (d) => { d.list.length = 9 }), livecache.InvalidArgument, 'InvalidArgument')
    expectThrows(() => client.updateQueryData('getDoc', 1, (d) => { Object.defineProperty(d, 'x', { value: 1 }) }), livecache.InvalidArgument, 'InvalidArgument')
    expectThrows(() => client.updateQueryData('getDoc', 1, async () => {}), livecache.InvalidArgument, 'InvalidArgument')
    // 127 levels under a member: the data is 128 levels deep, the limit (E3). One more is refused.
    let deep = 1
    for (let i = 0; i < 127; i++) deep = [deep]
    const ok = client.updateQueryData('getDoc', 1, (d) => { d.deep = deep })
    ok.undo()
    expectThrows(() => client.updateQueryData('getDoc', 1, (d) => { d.deep = [deep] }), livecache.PatchError, 'PatchError')
    expectThrows(() => client.patchQueryData('getDoc', 1, [{ op: 'add', path: '/deep', value: [deep] }]), livecache.PatchError, 'PatchError')
    expectThrows(() => client.updateQueryData('getDoc', 1, 'x'), livecache.InvalidArgument, 'InvalidArgument')
    expectThrows(() => client.updateQueryData('getDoc', 2, () => {}), livecache.NotFound, 'NotFound')
    expectThrows(() => client.updateQueryData('nope', 2, () => {}), livecache.UnknownEndpoint, 'UnknownEndpoint')
    assert.equal(client.snapshot('getDoc', 1).version, before + 2)
    await settle(sub, rec)
    rec.check(sub.snapshot(), 'after host updates')
    sub.unsubscribe()
  }))

test('updateQueryData / patchQueryData on an entry without data: NotLoaded (L9)', () =>
  withClient(
    { endpoints: { slow: {} } },
    { slow: { queryFn: () => new Promise(() => {}) } },
    async (client) => {
      const sub = client.subscribe('slow', 1)
      let ran = false
      expectThrows(() => client.updateQueryData('slow', 1, () => { ran = true }), livecache.NotLoaded, 'NotLoaded')
      assert.equal(ran, false)
      expectThrows(() => client.patchQueryData('slow', 1, [{ op: 'add', path: '/x', value: 1 }]), livecache.NotLoaded, 'NotLoaded')
      sub.unsubscribe()
    },
  ))

test('patchQueryData: applies all or nothing; PatchError, InvalidInput, NotFound', () =>
  withClient(chatConfig(), chatHooks(), async (client) => {
    const sub = client.subscribe('getDoc', 7)
    await sub.loaded()
    const r = client.patchQueryData('getDoc', 7, [{ op: 'replace', path: '/n', value: 5 }, { op: 'add', path: '/tags/-', value: 'z' }])
    assert.deepEqual(client.snapshot('getDoc', 7).data, { arg: 7, tags: ['a', 'z'], n: 5 })
    assert.equal(r.inversePatches.length, 2)
    r.undo()
    assert.deepEqual(client.snapshot('getDoc', 7).data, { arg: 7, tags: ['a'], n: 1 })
    const version = client.snapshot('getDoc', 7).version
    expectThrows(() => client.patchQueryData('getDoc', 7, [{ op: 'replace', path: '/n', value: 2 }, { op: 'test', path: '/n', value: 99 }]), livecache.PatchError, 'PatchError')
    expectThrows(() => client.patchQueryData('getDoc', 7, [{ op: 'remove', path: '/missing' }]), livecache.PatchError, 'PatchError')
    expectThrows(() => client.patchQueryData('getDoc', 7, [{ op: 'jump', path: '/n' }]), livecache.PatchError, 'PatchError')
    expectThrows(() => client.patchQueryData('getDoc', 7, { op: 'add' }), livecache.PatchError, 'PatchError')
    expectThrows(() => client.patchQueryData('getDoc', 7, [{ op: 'add', path: '/x', value: NaN }]), livecache.InvalidInput, 'InvalidInput')
    expectThrows(() => client.patchQueryData('getDoc', 8, []), livecache.NotFound, 'NotFound')
    assert.equal(client.snapshot('getDoc', 7).version, version)
    sub.unsubscribe()
  }))

test('upsertQueryData creates a fulfilled entry without subscriber, then replaces (L9)', () =>
  withClient(chatConfig(), chatHooks(), async (client) => {
    client.upsertQueryData('getDoc', 'u', { v: 1 })
    assert.deepEqual(client.snapshot('getDoc', 'u'), { key: 'getDoc("u")', status: 'fulfilled', version: 1, data: { v: 1 }, stream: { state: 'closed' } })
    const rec = new Recorder()
    const sub = client.subscribe('getDoc', 'u', rec.onEvent)
    assert.deepEqual(await sub.loaded(), { v: 1 })
    client.upsertQueryData('getDoc', 'u', [1, 2])
    await settle(sub, rec)
    rec.check(sub.snapshot(), 'upsert')
    assert.deepEqual(rec.data, [1, 2])
    client.upsertQueryData('getDoc', 'u', undefined)
    assert.equal(client.snapshot('getDoc', 'u').data, null)
    expectThrows(() => client.upsertQueryData('getDoc', 'u', { x: -Infinity }), livecache.InvalidInput, 'InvalidInput')
    expectThrows(() => client.upsertQueryData('nope', 'u', 1), livecache.UnknownEndpoint, 'UnknownEndpoint')
    sub.unsubscribe()
  }))

test('refetch re-runs queryFn and replaces the data (L5); NotFound without entry', async () => {
  let calls = 0
  await withClient(chatConfig(), { getDoc: { queryFn: () => ({ call: ++calls }) } }, async (client) => {
    const rec = new Recorder()
    const sub = client.subscribe('getDoc', 1, rec.onEvent)
    await sub.loaded()
    client.refetch('getDoc', 1)
    await waitFor('the refetch', () => client.snapshot('getDoc', 1).data.call === 2)
    await settle(sub, rec)
    rec.check(sub.snapshot(), 'refetch')
    assert.deepEqual(rec.types().filter((t) => t === 'snapshot').length, 2)
    expectThrows(() => client.refetch('getDoc', 2), livecache.NotFound, 'NotFound')
    expectThrows(() => client.refetch('nope', 2), livecache.UnknownEndpoint, 'UnknownEndpoint')
    sub.unsubscribe()
  })
})

test('pushMessage / pushMessageText: pipeline errors are events (E3), call errors are exceptions (L10)', () =>
  withClient(chatConfig(), chatHooks(), async (client) => {
    const rec = new Recorder()
    const sub = client.subscribe('getMessages', 'e3', rec.onEvent)
    await sub.loaded()
    client.pushMessageText('getMessages', 'e3', '{"id": 1}')
    client.pushMessageText('getMessages', 'e3', '{not json')
    client.pushMessageText('getMessages', 'e3', '[1, NaN]')
    client.pushMessageText('getMessages', 'e3', '['.repeat(200) + ']'.repeat(200))
    client.pushMessage('getMessages', 'e3', { id: 2 })
    await waitFor('five messages', () => client.stats().messagesReceived === 5)
    await waitFor('error events', () => rec.events.filter((e) => e.type === 'error').length === 3)
    await settle(sub, rec)
    rec.check(sub.snapshot(), 'after bad input')
    assert.deepEqual(rec.data.map((m) => m.id), [0, 1, 2])
    const errorEvents = rec.events.filter((e) => e.type === 'error')
    assert.deepEqual(errorEvents.map((e) => e.reason), ['invalid_json', 'not_finite', 'too_deep'])
    for (const e of errorEvents) assert.equal(typeof e.message, 'string')
    const stats = client.stats()
    assert.equal(stats.messagesRejected.invalid_json, 1)
    assert.equal(stats.messagesRejected.not_finite, 1)
    assert.equal(stats.messagesRejected.too_deep, 1)
    expectThrows(() => client.pushMessage('getMessages', 'other', { id: 1 }), livecache.NotFound, 'NotFound')
    expectThrows(() => client.pushMessage('nope', 'e3', { id: 1 }), livecache.UnknownEndpoint, 'UnknownEndpoint')
    expectThrows(() => client.pushMessage('getMessages', 'e3', { id: NaN }), livecache.InvalidInput, 'InvalidInput')
    expectThrows(() => client.pushMessageText('getMessages', 'e3', 5), livecache.InvalidArgument, 'InvalidArgument')
    sub.unsubscribe()
  }))

test('pushMessages: a burst in order, each message through the pipeline on its own (L10, E2, E3); call errors queue nothing', () =>
  withClient(
    chatConfig({ burst: { stream: { apply: { append: { dedupeBy: 'id' } } } } }),
    chatHooks({ burst: { queryFn: () => [] } }),
    async (client) => {
      const rec = new Recorder()
      const sub = client.subscribe('burst', 'b', rec.onEvent)
      await sub.loaded()
      // {text} has no `id` (an apply error), the second {id: 2} a duplicate (no change).
      client.pushMessages('burst', 'b', [{ id: 1 }, { id: 2 }, { text: 'no id' }, { id: 2 }, { id: 3 }])
      await waitFor('the burst', () => client.stats().messagesReceived === 5)
      await waitFor('the error event', () => rec.events.some((e) => e.type === 'error'))
      await settle(sub, rec)
      rec.check(sub.snapshot(), 'after the burst')
      assert.deepEqual(rec.data.map((m) => m.id), [1, 2, 3])
      assert.deepEqual(rec.events.filter((e) => e.type === 'error').map((e) => e.reason), ['apply'])
      const before = client.stats().messagesReceived
      expectThrows(() => client.pushMessages('burst', 'b', { id: 4 }), livecache.InvalidArgument, 'InvalidArgument')
      expectThrows(() => client.pushMessages('burst', 'b', [{ id: 4 }, { id: NaN }]), livecache.InvalidInput, 'InvalidInput')
      expectThrows(() => client.pushMessages('burst', 'other', [{ id: 4 }]), livecache.NotFound, 'NotFound')
      expectThrows(() => client.pushMessages('nope', 'b', [{ id: 4 }]), livecache.UnknownEndpoint, 'UnknownEndpoint')
      assert.equal(client.stats().messagesReceived, before, 'a refused call queues none of its messages')
      client.pushMessages('burst', 'b', [])
      assert.equal(client.stats().messagesReceived, before)
      assert.deepEqual(sub.snapshot().data.map((m) => m.id), [1, 2, 3])
      sub.unsubscribe()
    },
  ))

test('stats: every documented counter', () =>
  withClient(chatConfig(), chatHooks(), async (client) => {
    const s = client.stats()
    for (const k of ['entries', 'subscriptions', 'entriesCreated', 'entriesRemoved', 'messagesReceived', 'messagesApplied', 'messagesFiltered', 'messagesBuffered', 'messagesReapplied', 'bufferOverflows', 'fetches', 'fetchErrors', 'staleResponses', 'reconnects', 'queueOverflows', 'eventsDelivered', 'hostUpdates']) {
      assert.equal(typeof s[k], 'number', k)
    }
    assert.deepEqual(Object.keys(s.messagesRejected).sort(), ['apply', 'binary_frame', 'graphql', 'hook', 'invalid_json', 'not_finite', 'protocol', 'schema', 'too_deep', 'too_large'])
  }))

test('close: idempotent; every later call fails with Closed; live subscriptions end', async () => {
  const client = new Client(chatConfig(), chatHooks())
  const sub = client.subscribe('getMessages', 'c')
  await sub.loaded()
  const it = sub.events()
  const slow = new Client({ endpoints: { slow: {} } }, { slow: { queryFn: () => new Promise(() => {}) } })
  const pending = slow.subscribe('slow', 1)
  const p = pending.loaded()
  await slow.close()
  await assert.rejects(p, livecache.CacheEntryRemoved)
  await client.close()
  await client.close()
  assert.equal(client.closed, true)
  assert.equal(sub.active, false)
  const drained = []
  for await (const ev of it) drained.push(ev.type)
  sub.unsubscribe()
  expectThrows(() => client.subscribe('getMessages', 'c'), livecache.Closed, 'Closed')
  expectThrows(() => client.snapshot('getMessages', 'c'), livecache.Closed, 'Closed')
  expectThrows(() => sub.snapshot(), livecache.Closed, 'Closed')
  expectThrows(() => client.stats(), livecache.Closed, 'Closed')
  expectThrows(() => client.pushMessage('getMessages', 'c', {}), livecache.Closed, 'Closed')
  expectThrows(() => client.pushMessageText('getMessages', 'c', '{}'), livecache.Closed, 'Closed')
  expectThrows(() => client.pushMessages('getMessages', 'c', [{}]), livecache.Closed, 'Closed')
  expectThrows(() => client.upsertQueryData('getDoc', 1, {}), livecache.Closed, 'Closed')
  expectThrows(() => client.patchQueryData('getDoc', 1, []), livecache.Closed, 'Closed')
  expectThrows(() => client.updateQueryData('getDoc', 1, () => {}), livecache.Closed, 'Closed')
  expectThrows(() => client.refetch('getDoc', 1), livecache.Closed, 'Closed')
  await assert.rejects(sub.loaded(), livecache.CacheEntryRemoved)
})

test('queryFn: async values, thrown Error and thrown values reject the fetch (L6, §6)', () =>
  withClient(
    { endpoints: { a: {}, b: {}, c: {}, d: {} } },
    {
      a: { queryFn: async (arg) => { await sleep(1); return { arg } } },
      b: { queryFn: () => { throw new Error('no route') } },
      c: { queryFn: () => Promise.reject({ status: 503, data: 'busy' }) },
      d: { queryFn: () => ({ bad: NaN }) },
    },
    async (client) => {
      const a = client.subscribe('a', 'x')
      assert.deepEqual(await a.loaded(), { arg: 'x' })
      const subs = [a]
      for (const [ep, error] of [
        ['b', { status: 'CUSTOM_ERROR', error: 'no route' }],
        ['c', { status: 503, data: 'busy' }],
      ]) {
        const s = client.subscribe(ep, 1)
        subs.push(s)
        await waitFor(`${ep} rejected`, () => s.snapshot().status === 'rejected')
        assert.deepEqual(s.snapshot().error, error)
      }
      const d = client.subscribe('d', 1)
      subs.push(d)
      await waitFor('d rejected', () => d.snapshot().status === 'rejected')
      assert.equal(d.snapshot().error.status, 'CUSTOM_ERROR')
      assert.match(d.snapshot().error.error, /not_finite/)
      for (const s of subs) s.unsubscribe()
    },
  ))

test('transformResponse: applied to every response; a throw rejects the fetch', () =>
  withClient(
    { endpoints: { t: {}, bad: {} } },
    {
      t: { queryFn: () => [3, 1, 2], transformResponse: (data, arg) => ({ sorted: data.sort(), arg }) },
      bad: { queryFn: () => 1, transformResponse: () => { throw new Error('cannot transform') } },
    },
    async (client) => {
      const t = client.subscribe('t', 'k')
      assert.deepEqual(await t.loaded(), { sorted: [1, 2, 3], arg: 'k' })
      const bad = client.subscribe('bad')
      await waitFor('bad rejected', () => bad.snapshot().status === 'rejected')
      assert.match(JSON.stringify(bad.snapshot().error), /cannot transform/)
      t.unsubscribe()
      bad.unsubscribe()
    },
  ))

test('onMessage: a recording draft, a returned value, a throw is an error event (§6)', () =>
  withClient(
    { endpoints: { counter: { stream: {} }, ents: { stream: {} } } },
    {
      counter: {
        queryFn: () => ({ n: 0, log: [] }),
        onMessage: (draft, message, arg) => {
          if (message.fail) throw new Error('bad message')
          if (message.reset) return { n: 0, log: [], arg }
          if (message.nan) draft.n = NaN
          else {
            draft.n += message.inc
            draft.log.push(message.inc)
          }
        },
      },
      ents: {
        queryFn: () => ({ ids: [], entities: {} }),
        onMessage: (draft, m) => {
          if (!draft.entities[m.id]) {
            draft.ids.push(m.id)
            draft.entities[m.id] = { id: m.id, v: 0 }
          }
          draft.entities[m.id].v = m.v
        },
      },
    },
    async (client) => {
      const rec = new Recorder()
      const sub = client.subscribe('counter', 'a', rec.onEvent)
      await sub.loaded()
      for (let i = 1; i <= 50; i++) client.pushMessage('counter', 'a', { inc: i })
      client.pushMessage('counter', 'a', { fail: true })
      client.pushMessage('counter', 'a', { nan: true })
      client.pushMessage('counter', 'a', { inc: 1 })
      await waitFor('53 handled', () => client.stats().messagesReceived === 53 && sub.snapshot().data.n === 1276)
      await settle(sub, rec)
      rec.check(sub.snapshot(), 'onMessage drafts')
      assert.equal(rec.data.log.length, 51)
      const errors = rec.events.filter((e) => e.type === 'error')
      assert.deepEqual(errors.map((e) => e.reason), ['hook', 'hook'])
      assert.match(errors[0].message, /bad message/)
      assert.match(errors[1].message, /not_finite/)
      client.pushMessage('counter', 'a', { reset: true })
      await waitFor('reset', () => sub.snapshot().data.n === 0)
      await settle(sub, rec)
      rec.check(sub.snapshot(), 'returned value')
      assert.deepEqual(rec.data, { n: 0, log: [], arg: 'a' })
      // Without a subscriber the hook still runs (on the data itself).
      sub.unsubscribe()
      const e = new Recorder()
      const s2 = client.subscribe('ents', 1, e.onEvent)
      await s2.loaded()
      for (let i = 0; i < 30; i++) client.pushMessage('ents', 1, { id: `e${i % 7}`, v: i })
      await waitFor('ents', () => client.stats().messagesApplied >= 30 + 53 - 2)
      await settle(s2, e)
      e.check(s2.snapshot(), 'entities')
      assert.equal(e.data.ids.length, 7)
      s2.unsubscribe()
      client.upsertQueryData('counter', 'nosub', { n: 5, log: [] })
      client.pushMessage('counter', 'nosub', { inc: 2 })
      await waitFor('no subscriber', () => client.snapshot('counter', 'nosub').data.n === 7)
    },
  ))

test('onMessage: a burst crosses to JavaScript in few calls; a throw or a returned value inside it (§6)', () => {
  const log = []
  return withClient(
    { endpoints: { feed: { stream: {} } } },
    {
      feed: {
        queryFn: () => ({ items: [], seen: 0 }),
        onMessage: (draft, m) => {
          log.push(m.i)
          if (m.i % 10 === 3) throw new Error(`refused ${m.i}`)
          if (m.i === 250) return { items: ['restart'], seen: draft.seen + 1 }
          draft.items.push(m.i)
          draft.seen += 1
        },
      },
    },
    async (client) => {
      const rec = new Recorder()
      const events = []
      const sub = client.subscribe('feed', undefined, (e) => {
        events.push(log.length)
        rec.onEvent(e)
      })
      await sub.loaded()
      await settle(sub, rec)
      const start = events.length
      for (let i = 0; i < 500; i++) client.pushMessage('feed', undefined, { i })
      await waitFor('500 handled', () => {
        const s = client.stats()
        return s.messagesApplied + (s.messagesRejected.hook || 0) === 500
      })
      await settle(sub, rec)
      rec.check(sub.snapshot(), 'burst')
      // Every message reached the hook once, except those after the returned value in its call,
      // which the engine offered again (on the new data).
      const once = new Set(log)
      assert.equal(once.size, 500)
      assert.ok(log.length < 500 + 256, `hook calls: ${log.length}`)
      assert.deepEqual(log.slice(0, 251), Array.from({ length: 251 }, (_, i) => i))
      const refused = Array.from({ length: 50 }, (_, k) => k * 10 + 3)
      const expected = ['restart', ...Array.from({ length: 249 }, (_, k) => 251 + k).filter((i) => i % 10 !== 3)]
      assert.deepEqual(sub.snapshot().data.items, expected)
      const seenBefore = Array.from({ length: 250 }, (_, i) => i).filter((i) => i % 10 !== 3).length
      assert.equal(sub.snapshot().data.seen, seenBefore + 1 + expected.length - 1)
      const errors = rec.events.filter((e) => e.type === 'error')
      assert.deepEqual(errors.map((e) => e.message), refused.map((i) => `onMessage: refused ${i}`))
      assert.ok(errors.every((e) => e.reason === 'hook'))
      // Batched: many hook runs happened between two deliveries to the subscriber.
      const gaps = events.slice(start).map((n, k, a) => n - (k === 0 ? 0 : a[k - 1]))
      assert.ok(Math.max(...gaps) >= 100, `largest run of hook calls between events: ${Math.max(...gaps)}`)
      sub.unsubscribe()
    },
  )
})

test('onCacheEntryAdded: the seed pattern (cacheDataLoaded, updateCachedData, getCacheEntry, cacheEntryRemoved)', async () => {
  const feed = new (require('node:events').EventEmitter)()
  const log = []
  await withClient(
    { keepUnusedDataFor: 0, endpoints: { getMessages: {} } },
    {
      getMessages: {
        queryFn: async (channel) => [{ id: 0, channel, text: 'welcome' }],
        async onCacheEntryAdded(arg, { updateCachedData, cacheDataLoaded, cacheEntryRemoved, getCacheEntry }) {
          const listener = (message) => {
            if (message.channel !== arg) return
            updateCachedData((draft) => {
              draft.push(message)
            })
          }
          try {
            const loaded = await cacheDataLoaded
            log.push(['loaded', loaded.data.length, loaded.meta])
            log.push(['entry', getCacheEntry().status])
            feed.on('message', listener)
          } catch (e) {
            log.push(['never loaded', e.code])
          }
          await cacheEntryRemoved
          feed.off('message', listener)
          log.push(['removed'])
        },
      },
    },
    async (client) => {
      const rec = new Recorder()
      const sub = client.subscribe('getMessages', 'redux', rec.onEvent)
      await sub.loaded()
      await waitFor('listener', () => feed.listenerCount('message') === 1)
      for (let i = 1; i <= 20; i++) feed.emit('message', { id: i, channel: i % 2 ? 'redux' : 'other', text: `m${i}` })
      await settle(sub, rec)
      rec.check(sub.snapshot(), 'seed')
      assert.deepEqual(rec.data.map((m) => m.id), [0, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19])
      sub.unsubscribe()
      await waitFor('removed', () => log.some((l) => l[0] === 'removed'))
      assert.deepEqual(log, [['loaded', 1, null], ['entry', 'fulfilled'], ['removed']])
      assert.equal(feed.listenerCount('message'), 0)
    },
  )
})

test('onCacheEntryAdded: cacheDataLoaded rejects when removed first; a failing hook is an error event', async () => {
  const log = []
  await withClient(
    { keepUnusedDataFor: 0, endpoints: { never: {}, failing: {} } },
    {
      never: {
        queryFn: () => new Promise(() => {}),
        async onCacheEntryAdded(arg, { cacheDataLoaded, cacheEntryRemoved, updateCachedData }) {
          try {
            await cacheDataLoaded
          } catch (e) {
            log.push(e.code)
          }
          await cacheEntryRemoved
          try {
            updateCachedData(() => {})
          } catch (e) {
            log.push(`after removal: ${e.code}`)
          }
        },
      },
      failing: {
        queryFn: () => 1,
        async onCacheEntryAdded(arg, { cacheDataLoaded, updateCachedData }) {
          await cacheDataLoaded
          assert.throws(() => updateCachedData('x'), livecache.InvalidArgument)
          throw new Error('hook failed')
        },
      },
    },
    async (client) => {
      const s = client.subscribe('never', 1)
      s.unsubscribe()
      await waitFor('rejection seen', () => log.length === 2)
      assert.deepEqual(log, ['CacheEntryRemoved', 'after removal: CacheEntryRemoved'])
      const rec = new Recorder()
      const f = client.subscribe('failing', 1, rec.onEvent)
      await waitFor('hook error event', () => rec.events.some((e) => e.type === 'error'))
      const ev = rec.events.find((e) => e.type === 'error')
      assert.equal(ev.reason, 'hook')
      assert.match(ev.message, /hook failed/)
      f.unsubscribe()
    },
  )
})

test('callbacks are re-entrant: unsubscribe itself, subscribe, update from inside (SPEC §5)', () =>
  withClient(chatConfig(), chatHooks(), async (client) => {
    const seen = []
    let inner = null
    const innerRec = new Recorder()
    const sub = client.subscribe('getMessages', 'r', (ev) => {
      seen.push(ev.type)
      if (ev.type === 'snapshot') {
        inner = client.subscribe('getDoc', 'from-callback', innerRec.onEvent)
        client.pushMessage('getMessages', 'r', { id: 1 })
        client.updateQueryData('getMessages', 'r', (d) => {
          d[0].seen = true
        })
      }
      if (ev.type === 'patch') {
        sub.unsubscribe()
        assert.equal(sub.active, false)
      }
    })
    await waitFor('self-unsubscribe', () => !sub.active)
    // Nothing is delivered after the self-unsubscribe: wait until the entry is gone
    // (keepUnusedDataFor 0), so no more events can be made for it, then until a subscription made
    // after that gets its first event, which the delivery queue hands out after any earlier one.
    await waitFor('the entry removed', () => {
      try {
        client.snapshot('getMessages', 'r')
        return false
      } catch (e) {
        return e.code === 'NotFound'
      }
    })
    const marker = new Recorder()
    const after = client.subscribe('getDoc', 'marker', marker.onEvent)
    await waitFor('the marker subscription\'s first event', () => marker.events.length > 0)
    after.unsubscribe()
    assert.deepEqual(seen, ['status', 'snapshot', 'patch'])
    await settle(inner, innerRec)
    innerRec.check(inner.snapshot(), 'inner')
    inner.unsubscribe()
  }))

test('queue bound: a slow JavaScript thread gets a snapshot instead of every step (E4, E5)', () =>
  withClient({ queueLimit: 4, endpoints: { s: { stream: { apply: 'append' } } } }, { s: { queryFn: () => [] } }, async (client) => {
    const rec = new Recorder()
    const sub = client.subscribe('s', 1, rec.onEvent)
    await sub.loaded()
    await settle(sub, rec)
    // Interleave pushes with host updates so patches cannot coalesce (E2), and keep the JS
    // thread busy so nothing is polled meanwhile: each push is applied before the next upsert.
    const deadline = Date.now() + 10000
    for (let i = 0; i < 50; i++) {
      client.pushMessage('s', 1, i)
      while (client.stats().messagesApplied < i + 1) {
        if (Date.now() > deadline) assert.fail(`message ${i} not applied within 10 s`)
      }
      client.upsertQueryData('s', 1, client.snapshot('s', 1).data)
    }
    await waitFor('all applied', () => client.stats().messagesApplied === 50)
    await settle(sub, rec)
    rec.check(sub.snapshot(), 'after overflow')
    assert.ok(client.stats().queueOverflows > 0)
    sub.unsubscribe()
  }))

test('host recipes on a subscribed key run on its replica, interleaved with streamed changes', () =>
  withClient({ endpoints: { s: { stream: { apply: 'append' } } } }, { s: { queryFn: () => [] } }, async (client) => {
    const rec = new Recorder()
    const sub = client.subscribe('s', 1, rec.onEvent)
    await sub.loaded()
    for (let i = 0; i < 200; i++) {
      client.pushMessage('s', 1, { stream: i })
      const r = client.updateQueryData('s', 1, (draft) => {
        draft.push({ host: i })
        if (draft.length > 1) draft[0].touched = i
      })
      assert.ok(r.patches.length >= 1)
      if (i % 50 === 0) await sleep(1)
    }
    await waitFor('all streamed', () => client.stats().messagesApplied === 200)
    await settle(sub, rec)
    rec.check(sub.snapshot(), 'interleaved')
    const data = sub.snapshot().data
    assert.equal(data.length, 400)
    assert.equal(data.filter((x) => 'host' in x).length, 200)
    assert.equal(data[0].touched, 199)
    sub.unsubscribe()
  }))

test('events(): a stalled for-await reader holds at most queueLimit events (E4), the first a snapshot (E5)', async () => {
  const client = new Client({ queueLimit: 8, endpoints: { log: { stream: { apply: 'append' } } } }, { log: { queryFn: () => [] } })
  try {
    const rec = new Recorder()
    const sub = client.subscribe('log', undefined, rec.onEvent)
    await sub.loaded()
    const it = sub.events()
    // The reader does not read while 2,000 messages and 2,000 bad frames are delivered: bad
    // frames give error events, which do not coalesce into the patches (E2).
    for (let i = 0; i < 2000; i++) {
      client.pushMessage('log', undefined, { i })
      client.pushMessageText('log', undefined, '{bad')
    }
    await waitFor('every message delivered to the callback', () => rec.version === 2001)
    const read = new Recorder()
    while (read.version < 2001) read.record((await it.next()).value)
    assert.ok(read.events.length <= 8 + 1, `${read.events.length} events waited: ${read.types()}`)
    assert.equal(read.events[0].type, 'snapshot', 'the overflow became a snapshot')
    read.check(sub.snapshot(), 'the reader')
    // Still live: the next message, then the end of the subscription. Events of the flood may
    // still wait behind the version read above (error reports, or another collapse of the same
    // engine step, at that version); the late message follows them as a patch.
    client.pushMessage('log', undefined, { i: 'late' })
    while (read.version < 2002) read.record((await it.next()).value)
    assert.equal(read.events.at(-1).type, 'patch')
    read.check(sub.snapshot(), 'the reader after the late message')
    sub.unsubscribe()
    assert.deepEqual(await it.next(), { value: undefined, done: true })
  } finally {
    await client.close()
  }
})
