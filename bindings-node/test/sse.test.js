'use strict'
// Server-Sent Events streams (SPEC T4) against an npm `better-sse` server on 127.0.0.1, started
// here: messages into the cache, named events filtered, headers and Last-Event-ID on the
// requests, a drop while the server keeps producing that loses and doubles nothing, 204.

const test = require('node:test')
const assert = require('node:assert/strict')
const http = require('node:http')
const { createSession } = require('better-sse')
const { Client, ConfigError, InvalidArgument } = require('..')
const { waitFor, Recorder, settle } = require('./helpers')

const TOKEN = 'Bearer sse-s3cret-node'

async function server() {
  const requests = []
  const sessions = new Map()
  const stored = [{ id: 1, room: 'lobby', text: 'welcome' }]
  let nextId = 2
  let held = false
  let status = null
  const srv = http.createServer(async (req, res) => {
    const [, kind, room] = req.url.split('?')[0].split('/')
    if (kind === 'rooms') {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify(stored.filter((m) => m.room === room)))
      return
    }
    requests.push(req.headers)
    if (req.headers.authorization !== TOKEN || held || status) {
      res.writeHead(status ?? (held ? 503 : 401))
      res.end()
      return
    }
    const session = await createSession(req, res, { retry: 30, keepAlive: 50 })
    sessions.set(session, { room, res })
    session.on('disconnected', () => sessions.delete(session))
    // A replay of what the client missed, from its Last-Event-ID.
    if (session.lastId !== '') {
      for (const m of stored) if (m.room === room && m.id > Number(session.lastId)) session.push(m, 'message', String(m.id))
    }
  })
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve))
  const { port } = srv.address()
  return {
    port,
    requests,
    stored,
    open: () => sessions.size,
    post(room, text) {
      const m = { id: nextId++, room, text }
      stored.push(m)
      for (const [session, s] of sessions) if (s.room === room) session.push(m, 'message', String(m.id))
      return m
    },
    typing(room) {
      for (const [session, s] of sessions) if (s.room === room) session.push({ typing: true }, 'typing')
    },
    hold(on) {
      held = on
    },
    answer(code) {
      status = code
    },
    drop() {
      for (const { res } of sessions.values()) res.destroy()
    },
    async close() {
      srv.closeAllConnections()
      await new Promise((resolve) => srv.close(resolve))
    },
  }
}

function config(port, stream = {}) {
  return {
    baseUrl: `http://127.0.0.1:${port}/`,
    headers: { Authorization: TOKEN },
    endpoints: {
      room: {
        query: 'rooms/{arg}',
        stream: {
          transport: 'sse',
          url: `http://127.0.0.1:${port}/events/{arg}`,
          apply: { append: { dedupeBy: 'id' } },
          heartbeat: { intervalMs: 200, timeoutMs: 2000 },
          reconnect: { initialDelayMs: 20, maxDelayMs: 200 },
          ...stream,
        },
      },
    },
  }
}

test('T4: an event stream keeps the entry live; other event names count as filtered', async () => {
  const srv = await server()
  const client = new Client(config(srv.port))
  const rec = new Recorder()
  try {
    const sub = client.subscribe('room', 'lobby', rec.onEvent)
    assert.deepEqual((await sub.loaded()).map((m) => m.id), [1])
    await waitFor('stream open', () => sub.snapshot().stream.state === 'open')
    assert.equal(srv.requests[0].authorization, TOKEN)
    assert.equal(srv.requests[0].accept, 'text/event-stream')
    srv.post('lobby', 'hi')
    await waitFor('message applied', () => sub.snapshot().data.length === 2)
    const filtered = client.stats().messagesFiltered
    srv.typing('lobby')
    srv.post('lobby', 'after typing')
    await waitFor('message after the typing event', () => sub.snapshot().data.length === 3)
    assert.equal(client.stats().messagesFiltered, filtered + 1)
    await settle(sub, rec)
    rec.check(sub.snapshot(), 'fast-json-patch replica')
    await assert.rejects(client.send('room', 'lobby', { type: 'typing' }), InvalidArgument)
    assert.ok(!JSON.stringify([rec.events, sub.snapshot(), client.stats()]).includes('s3cret'))
  } finally {
    client.close()
    await srv.close()
  }
})

test('T4: a drop while the server produces reconnects with Last-Event-ID; nothing lost or doubled', async () => {
  const srv = await server()
  const client = new Client(config(srv.port))
  const rec = new Recorder()
  try {
    const sub = client.subscribe('room', 'lobby', rec.onEvent)
    await sub.loaded()
    await waitFor('stream open', () => sub.snapshot().stream.state === 'open')
    const last = srv.post('lobby', 'before the drop')
    await waitFor('message before the drop', () => sub.snapshot().data.at(-1).id === last.id)
    srv.hold(true)
    srv.drop()
    await waitFor('stream dropped', () => sub.snapshot().stream.state === 'reconnecting')
    const missed = [srv.post('lobby', 'missed 1'), srv.post('lobby', 'missed 2')]
    srv.hold(false)
    await waitFor('caught up', () => sub.snapshot().data.at(-1).id === missed[1].id)
    // One snapshot for both: a resync would set the status to pending between two reads.
    await waitFor('settled', () => {
      const snap = sub.snapshot()
      return snap.status === 'fulfilled' && snap.stream.state === 'open'
    })
    const expected = srv.stored.filter((m) => m.room === 'lobby').map((m) => m.id)
    assert.deepEqual(sub.snapshot().data.map((m) => m.id), expected)
    const resumed = srv.requests.filter((h) => h['last-event-id'] !== undefined)
    assert.equal(resumed.at(-1)['last-event-id'], String(last.id))
    await settle(sub, rec)
    rec.check(sub.snapshot(), 'fast-json-patch replica')
  } finally {
    client.close()
    await srv.close()
  }
})

test('T4: a 204 closes the stream without reconnecting; bad configs are ConfigErrors', async () => {
  const srv = await server()
  srv.answer(204)
  const client = new Client(config(srv.port))
  try {
    const sub = client.subscribe('room', 'lobby', () => {})
    await sub.loaded()
    await waitFor('stream closed', () => sub.snapshot().stream.state === 'closed')
    assert.match(sub.snapshot().stream.error, /204/)
    assert.equal(sub.snapshot().data.length, 1)
  } finally {
    client.close()
    await srv.close()
  }
  assert.throws(() => new Client(config(srv.port, { protocols: ['x'] })), (e) => e instanceof ConfigError && /only receives/.test(e.message))
  assert.throws(() => new Client(config(srv.port, { url: 'ws://127.0.0.1:9/' })), ConfigError)
})
