'use strict'
// Against real peers on 127.0.0.1, started here: a Node HTTP server for `query` and a `ws`
// WebSocket server for `stream`. Every event is replayed with fast-json-patch (validate on) and
// compared with snapshot().

const test = require('node:test')
const assert = require('node:assert/strict')
const http = require('node:http')
const { WebSocketServer, WebSocket } = require('ws')
const { Client } = require('..')
const { waitFor, Recorder, settle } = require('./helpers')

/** The seed's chat server: GET /messages/<channel>, and every message broadcast over WebSocket. */
/** Every fetch started so far has ended and its event reached `rec`: a snapshot for each one
 * applied (SPEC §5: after every refetch, L8's resyncs included), none for a stale or failed one. */
function fetchesSettled(client, rec) {
  const s = client.stats()
  return rec.types().filter((t) => t === 'snapshot').length + s.staleResponses + s.fetchErrors >= s.fetches
}

async function chatServer() {
  const messages = []
  const sockets = new Set()
  const closes = []
  let gets = 0
  const server = http.createServer((req, res) => {
    const m = /^\/messages\/([^/?]+)$/.exec(req.url)
    if (!m) {
      res.writeHead(404).end()
      return
    }
    gets++
    const channel = decodeURIComponent(m[1])
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify(messages.filter((x) => x.channel === channel)))
  })
  let refusing = false
  // While `refusing`, WebSocket upgrades are answered 503: a client stays disconnected.
  const wss = new WebSocketServer({ server, verifyClient: (info, done) => (refusing ? done(false, 503) : done(true)) })
  wss.on('connection', (ws) => {
    sockets.add(ws)
    ws.on('close', (code) => {
      sockets.delete(ws)
      closes.push(code)
    })
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address()
  let nextId = 1
  return {
    port,
    closes,
    sockets,
    get gets() {
      return gets
    },
    set refusing(v) {
      refusing = v
    },
    /** Stores a message (so later GETs include it) and broadcasts it. */
    post(channel, text) {
      const m = { id: nextId++, channel, text }
      messages.push(m)
      for (const ws of sockets) ws.send(JSON.stringify(m))
      return m
    },
    sendRaw(text) {
      for (const ws of sockets) ws.send(text)
    },
    dropAll() {
      for (const ws of sockets) ws.terminate()
    },
    async close() {
      for (const ws of sockets) ws.terminate()
      wss.close()
      await new Promise((resolve) => server.close(resolve))
    },
  }
}

test('built-in HTTP query and WebSocket stream: replay equals snapshot, close handshake on removal', async () => {
  const srv = await chatServer()
  srv.post('redux', 'before subscribe')
  const client = new Client({
    baseUrl: `http://127.0.0.1:${srv.port}/`,
    keepUnusedDataFor: 0,
    endpoints: {
      getMessages: {
        query: 'messages/{arg}',
        stream: {
          url: `ws://127.0.0.1:${srv.port}/`,
          filter: { channel: '{arg}' },
          schema: { type: 'object', required: ['id', 'channel', 'text'] },
          apply: { append: { dedupeBy: 'id' } },
        },
      },
    },
  })
  try {
    const rec = new Recorder()
    const sub = client.subscribe('getMessages', 'redux', rec.onEvent)
    const data = await sub.loaded()
    assert.equal(data[0].text, 'before subscribe')
    await waitFor('stream open', () => sub.snapshot().stream.state === 'open')
    for (let i = 0; i < 200; i++) srv.post(i % 3 ? 'redux' : 'other', `m${i}`)
    srv.sendRaw('not json')
    srv.sendRaw(JSON.stringify({ id: 'x', channel: 'redux' }))
    await waitFor('every frame', () => {
      const s = client.stats()
      return s.messagesApplied + s.messagesFiltered + s.messagesRejected.invalid_json + s.messagesRejected.schema >= 202
    })
    // A fetch that ended before the socket opened is followed by a resync (L8): let it land too.
    await waitFor('every fetch answered', () => fetchesSettled(client, rec))
    await settle(sub, rec)
    rec.check(sub.snapshot(), 'ws replay')
    assert.equal(rec.data.length, 1 + 133)
    // The two bad frames came after the last change: their error events may still be on the way.
    await waitFor('two error events', () => rec.events.filter((e) => e.type === 'error').length >= 2)
    assert.deepEqual(rec.events.filter((e) => e.type === 'error').map((e) => e.reason), ['invalid_json', 'schema'])
    assert.ok(rec.events.some((e) => e.type === 'stream' && e.state === 'open'))
    // refetch over HTTP replaces the data with the server's (L5).
    const gets = srv.gets
    client.refetch('getMessages', 'redux')
    // The request reaching the server is not the response applied: wait for the refetch's snapshot.
    await waitFor('refetched', () => srv.gets > gets && fetchesSettled(client, rec))
    assert.equal(sub.snapshot().status, 'fulfilled')
    await settle(sub, rec)
    rec.check(sub.snapshot(), 'after refetch')
    // Host updates on a streamed entry.
    const r = client.updateQueryData('getMessages', 'redux', (draft) => {
      draft[0].text = 'edited'
    })
    client.patchQueryData('getMessages', 'redux', r.inversePatches)
    await settle(sub, rec)
    rec.check(sub.snapshot(), 'after host updates')
    sub.unsubscribe()
    // L7: the entry goes and its socket closes with a close handshake (not 1006, abnormal).
    await waitFor('socket closed', () => srv.closes.length === 1 && srv.sockets.size === 0)
    assert.notEqual(srv.closes[0], 1006)
    assert.equal(client.stats().entries, 0)
  } finally {
    await client.close()
    await srv.close()
  }
})

test('a dropped stream reconnects and resyncs (L8); nothing is lost', async () => {
  const srv = await chatServer()
  const client = new Client({
    baseUrl: `http://127.0.0.1:${srv.port}`,
    endpoints: {
      getMessages: {
        query: '/messages/{arg}',
        stream: {
          url: `ws://127.0.0.1:${srv.port}`,
          filter: { channel: '{arg}' },
          apply: { append: { dedupeBy: 'id' } },
          reconnect: { initialDelayMs: 20, maxDelayMs: 100 },
        },
      },
    },
  })
  try {
    const rec = new Recorder()
    const sub = client.subscribe('getMessages', 'general', rec.onEvent)
    await sub.loaded()
    await waitFor('open', () => sub.snapshot().stream.state === 'open')
    srv.post('general', 'one')
    await waitFor('one', () => sub.snapshot().data.length === 1)
    // The server refuses reconnects until the post below: the client is away, however fast it
    // comes back, and only the resync fetch can bring that message.
    srv.refusing = true
    const before = rec.events.length
    srv.dropAll()
    await waitFor('the drop seen', () => rec.events.slice(before).some((e) => e.type === 'stream' && e.state !== 'open'))
    srv.post('general', 'two (missed)')
    srv.refusing = false
    await waitFor('reconnected and resynced', () => sub.snapshot().stream.state === 'open' && sub.snapshot().data.length === 2)
    srv.post('general', 'three')
    await waitFor('three', () => sub.snapshot().data.length === 3)
    await settle(sub, rec)
    rec.check(sub.snapshot(), 'after reconnect')
    assert.deepEqual(rec.data.map((m) => m.text), ['one', 'two (missed)', 'three'])
    const states = rec.events.filter((e) => e.type === 'stream').map((e) => e.state)
    assert.ok(states.includes('reconnecting') || states.includes('connecting'), states.join())
    assert.ok(client.stats().reconnects >= 1)
    sub.unsubscribe()
  } finally {
    await client.close()
    await srv.close()
  }
})

test("the seed's onCacheEntryAdded streaming code, with a ws WebSocket, runs nearly unchanged", async () => {
  const srv = await chatServer()
  const isMessage = (m) => m !== null && typeof m === 'object' && typeof m.id === 'number'
  const url = `ws://127.0.0.1:${srv.port}`
  const client = new Client(
    { baseUrl: `http://127.0.0.1:${srv.port}/`, keepUnusedDataFor: 0, endpoints: { getMessages: { query: 'messages/{arg}' } } },
    {
      getMessages: {
        // From RTK Query's "Streaming Updates" page; only the WebSocket class is the `ws` one.
        async onCacheEntryAdded(arg, { updateCachedData, cacheDataLoaded, cacheEntryRemoved }) {
          const ws = new WebSocket(url)
          try {
            await cacheDataLoaded
            const listener = (event) => {
              const data = JSON.parse(event.data)
              if (!isMessage(data) || data.channel !== arg) return
              updateCachedData((draft) => {
                draft.push(data)
              })
            }
            ws.addEventListener('message', listener)
          } catch {
            // cacheEntryRemoved resolved before cacheDataLoaded
          }
          await cacheEntryRemoved
          ws.close()
        },
      },
    },
  )
  try {
    srv.post('redux', 'hello')
    const rec = new Recorder()
    const sub = client.subscribe('getMessages', 'redux', rec.onEvent)
    assert.deepEqual((await sub.loaded()).map((m) => m.text), ['hello'])
    await waitFor('hook socket', () => srv.sockets.size === 1)
    for (let i = 0; i < 100; i++) srv.post(i % 2 ? 'redux' : 'other', `m${i}`)
    await waitFor('50 appended', () => sub.snapshot().data.length === 51)
    await settle(sub, rec)
    rec.check(sub.snapshot(), 'seed')
    sub.unsubscribe()
    await waitFor('hook socket closed', () => srv.sockets.size === 0)
    assert.notEqual(srv.closes[0], 1006)
  } finally {
    await client.close()
    await srv.close()
  }
})
