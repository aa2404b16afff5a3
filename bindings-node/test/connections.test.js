'use strict'
// Connections for real servers (SPEC §10, T1 and T2) against a Node HTTP server and an npm `ws`
// WebSocket server on 127.0.0.1, started here: headers on fetches and handshakes, subprotocols,
// subscribe/unsubscribe frames, send (NotConnected without a connection) and reconnect.

const test = require('node:test')
const assert = require('node:assert/strict')
const http = require('node:http')
const { WebSocketServer } = require('ws')
const { Client, ConfigError, InvalidArgument, NotConnected, NotFound } = require('..')
const { waitFor, Recorder } = require('./helpers')

const TOKEN = 'Bearer s3cret-node-token'

/** Records every fetch's and upgrade's headers and every frame received; broadcasts posts to
 * the sockets that subscribed to their channel. */
async function server() {
  const requests = []
  const handshakes = []
  const frames = []
  const closes = []
  const channels = new Map()
  const stored = []
  const http_ = http.createServer((req, res) => {
    requests.push(req.headers)
    const ok = req.headers.authorization === TOKEN
    const room = decodeURIComponent(req.url.split('/').pop())
    res.writeHead(ok ? 200 : 401, { 'content-type': 'application/json' })
    res.end(JSON.stringify(ok ? stored.filter((m) => m.channel === room) : { error: 'unauthorized' }))
  })
  const wss = new WebSocketServer({
    server: http_,
    handleProtocols: (protocols) => (protocols.has('chat.v2') ? 'chat.v2' : false),
    verifyClient: (info, done) => {
      handshakes.push(info.req.headers)
      done(info.req.headers.authorization === TOKEN, 401)
    },
  })
  wss.on('connection', (ws) => {
    channels.set(ws, new Set())
    ws.on('message', (data) => {
      const text = data.toString()
      frames.push(JSON.parse(text))
      const m = JSON.parse(text)
      if (m.type === 'subscribe') channels.get(ws).add(m.channel)
      if (m.type === 'unsubscribe') channels.get(ws).delete(m.channel)
    })
    ws.on('close', (code) => {
      channels.delete(ws)
      closes.push(code)
    })
  })
  await new Promise((resolve) => http_.listen(0, '127.0.0.1', resolve))
  const { port } = http_.address()
  let id = 1
  return {
    port,
    requests,
    handshakes,
    frames,
    closes,
    channels,
    post(channel, text) {
      const m = { id: id++, channel, text }
      stored.push(m)
      for (const [ws, subscribed] of channels) if (subscribed.has(channel)) ws.send(JSON.stringify(m))
    },
    async close() {
      for (const ws of channels.keys()) ws.terminate()
      wss.close()
      await new Promise((resolve) => http_.close(resolve))
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
        headers: { 'X-Room': '{arg}' },
        stream: {
          url: `ws://127.0.0.1:${port}/`,
          apply: 'append',
          headers: { 'X-Stream': 'yes' },
          protocols: ['chat.v2', 'chat.v1'],
          subscribeMessage: { type: 'subscribe', channel: '{arg}' },
          unsubscribeMessage: { type: 'unsubscribe', channel: '{arg}' },
          reconnect: { initialDelayMs: 60000, maxDelayMs: 60000 },
          ...stream,
        },
      },
    },
  }
}

test('T1/T2: headers, subprotocol, subscribe frame, send, reconnect, unsubscribe frame', async () => {
  const srv = await server()
  const client = new Client(config(srv.port))
  const rec = new Recorder()
  try {
    const sub = client.subscribe('room', 'lobby', rec.onEvent)
    await sub.loaded()
    await waitFor('stream open', () => sub.snapshot().stream.state === 'open')
    assert.equal(srv.requests[0].authorization, TOKEN)
    assert.equal(srv.requests[0]['x-room'], 'lobby')
    assert.equal(srv.requests[0]['x-stream'], undefined, 'stream.headers are for handshakes only')
    assert.deepEqual([srv.handshakes[0].authorization, srv.handshakes[0]['x-stream']], [TOKEN, 'yes'])
    assert.equal(srv.handshakes[0]['sec-websocket-protocol'], 'chat.v2, chat.v1')
    await waitFor('subscribe frame', () => srv.frames.length === 1)
    assert.deepEqual(srv.frames[0], { type: 'subscribe', channel: 'lobby' })

    srv.post('lobby', 'hi')
    await waitFor('message applied', () => sub.snapshot().data.length === 1)
    assert.equal(await client.send('room', 'lobby', { type: 'typing' }), undefined)
    await waitFor('sent frame', () => srv.frames.length === 2)
    assert.deepEqual(srv.frames[1], { type: 'typing' })
    await assert.rejects(client.send('room', 'nowhere', {}), NotFound)
    await assert.rejects(client.send('room', 'lobby', () => 1), (e) => e.code === 'InvalidInput')

    // The backoff is a minute: only an immediate reconnect reopens in time.
    client.reconnect('room', 'lobby')
    await waitFor('reopened', () => srv.handshakes.length === 2 && sub.snapshot().stream.state === 'open')
    assert.deepEqual(srv.closes, [1000], 'the old socket closed with a close handshake')
    await waitFor('subscribed again', () => srv.frames.length === 3)
    assert.deepEqual(srv.frames[2], { type: 'subscribe', channel: 'lobby' })
    // Events reach the callback after snapshot() shows their state: wait for the reopen's.
    const states = () => rec.events.filter((e) => e.type === 'stream').map((e) => e.state)
    await waitFor('the reopen reported', () => states().at(-1) === 'open' && states().length >= 3)
    assert.deepEqual(states().slice(-2), ['reconnecting', 'open'])
    assert.ok(!JSON.stringify([rec.events, sub.snapshot(), client.stats()]).includes('s3cret'))
    await client.close()
    // The server reads on this same event loop: wait for it to have handled the close.
    await waitFor('both sockets closed', () => srv.closes.length === 2)
    assert.deepEqual(srv.frames.at(-1), { type: 'unsubscribe', channel: 'lobby' })
    assert.deepEqual(srv.closes, [1000, 1000])
  } finally {
    await client.close()
    await srv.close()
  }
})

test('T1: a refused credential is a rejected fetch and a failed connect that never quote it', async () => {
  const srv = await server()
  const cfg = config(srv.port)
  cfg.headers.Authorization = 'Bearer s3cret-but-wrong'
  const client = new Client(cfg)
  const rec = new Recorder()
  try {
    const sub = client.subscribe('room', 'lobby', rec.onEvent)
    await waitFor('rejected', () => sub.snapshot().status === 'rejected')
    await waitFor('handshake refused', () => /401/.test(sub.snapshot().stream.error || ''))
    assert.equal(sub.snapshot().error.status, 401)
    await assert.rejects(client.send('room', 'lobby', {}), NotConnected)
    assert.ok(!JSON.stringify([rec.events, sub.snapshot(), client.stats()]).includes('s3cret'))
  } finally {
    await client.close()
    await srv.close()
  }
})

test('T1/T2: bad headers, protocols and messages are errors that name the key', () => {
  const bad = (mutate) => {
    const cfg = config(1)
    mutate(cfg)
    return () => new Client(cfg)
  }
  assert.throws(bad((c) => (c.headers['X-Evil'] = 'a\r\nX-Admin: 1')), (e) => e instanceof ConfigError && /headers\.X-Evil/.test(e.message) && !/X-Admin/.test(e.message))
  assert.throws(bad((c) => (c.endpoints.room.stream.protocols = ['a b'])), (e) => e instanceof ConfigError && /protocols\[0\]/.test(e.message))
  assert.throws(bad((c) => (c.endpoints.room.stream.subscribeMessage = { ch: '{channel}' })), (e) => e instanceof ConfigError && /subscribeMessage/.test(e.message))
  const client = new Client(config(1))
  try {
    assert.throws(() => client.subscribe('room', 'a\nX-Admin: 1', () => {}), (e) => e instanceof InvalidArgument && /X-Room/.test(e.message) && !/X-Admin/.test(e.message))
    assert.throws(() => client.reconnect('room', 'none'), NotFound)
  } finally {
    client.close()
  }
})

test('T7: a query object (method, JSON body, params), retried past a 503, gzip decoded; the entry stays pending', async () => {
  const zlib = require('node:zlib')
  const seen = []
  const srv = http.createServer((req, res) => {
    let body = ''
    req.on('data', (c) => (body += c))
    req.on('end', () => {
      seen.push({ method: req.method, url: req.url, body, type: req.headers['content-type'], accept: req.headers['accept-encoding'] })
      if (seen.length === 1) {
        res.writeHead(503).end('busy')
        return
      }
      res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' })
      res.end(zlib.gzipSync(JSON.stringify({ echo: JSON.parse(body) })))
    })
  })
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve))
  const client = new Client({
    baseUrl: `http://127.0.0.1:${srv.address().port}/`,
    retry: { maxRetries: 2, initialDelayMs: 5, maxDelayMs: 10 },
    endpoints: {
      search: { query: { url: 'search/{arg.kind}', method: 'POST', body: { q: '{arg.q}', limit: '{arg.limit}' }, params: { lang: 'en', q: '{arg.q}' } } },
    },
  })
  const rec = new Recorder()
  try {
    const sub = client.subscribe('search', { kind: 'posts', q: 'a b', limit: 5 }, rec.onEvent)
    const { data } = await waitFor('loaded', async () => ({ data: await sub.loaded() }))
    assert.deepEqual(data, { echo: { q: 'a b', limit: 5 } })
    assert.equal(seen.length, 2, 'one retry after the 503')
    assert.deepEqual(seen[1], { method: 'POST', url: '/search/posts?lang=en&q=a+b', body: seen[1].body, type: 'application/json', accept: seen[1].accept })
    assert.deepEqual(JSON.parse(seen[1].body), { q: 'a b', limit: 5 })
    assert.match(seen[1].accept, /gzip/)
    const statuses = rec.events.filter((e) => e.type === 'snapshot' || e.type === 'status').map((e) => e.status)
    assert.ok(!statuses.includes('rejected'), `no rejected while retrying: ${statuses}`)
  } finally {
    await client.close()
    await new Promise((resolve) => srv.close(resolve))
  }
})

test('T1: prepareHeaders (async) runs before every fetch and connect; a refreshed token reaches the reconnect', async () => {
  const srv = await server()
  const cfg = config(srv.port)
  cfg.headers.Authorization = 'Bearer stale'
  cfg.endpoints.room.stream.reconnect = { initialDelayMs: 10, maxDelayMs: 20 }
  const calls = []
  // The server accepts TOKEN only: the hook must replace the stale configured one.
  const client = new Client(cfg, {
    room: {
      prepareHeaders: async (headers, context) => {
        calls.push(context)
        assert.equal(headers.Authorization, 'Bearer stale')
        return { ...headers, Authorization: TOKEN, 'X-Attempt': String(calls.length) }
      },
    },
  })
  try {
    const sub = client.subscribe('room', 'lobby', () => {})
    await sub.loaded()
    await waitFor('stream open', () => sub.snapshot().stream.state === 'open')
    assert.equal(srv.requests.at(-1).authorization, TOKEN)
    assert.equal(srv.handshakes.at(-1).authorization, TOKEN)
    assert.deepEqual(new Set(calls.map((c) => c.kind)), new Set(['query', 'stream']))
    assert.ok(calls.every((c) => c.endpoint === 'room' && c.arg === 'lobby' && typeof c.url === 'string'))
    const attempt = srv.handshakes.at(-1)['x-attempt']
    client.reconnect('room', 'lobby')
    await waitFor('reconnected', () => srv.handshakes.length === 2 && sub.snapshot().stream.state === 'open')
    assert.notEqual(srv.handshakes.at(-1)['x-attempt'], attempt, 'the hook ran again for the reconnect')
  } finally {
    await client.close()
    await srv.close()
  }
})

test('T1: a throwing prepareHeaders rejects the fetch and fails the connect attempt', async () => {
  const srv = await server()
  const client = new Client(config(srv.port), {
    room: {
      prepareHeaders: (_headers, context) => {
        throw new Error(`no token for ${context.kind}`)
      },
    },
  })
  try {
    const sub = client.subscribe('room', 'lobby', () => {})
    await waitFor('rejected', () => sub.snapshot().status === 'rejected')
    assert.match(sub.snapshot().error.error, /no token for query/)
    await waitFor('connect failed', () => /no token for stream/.test(sub.snapshot().stream.error || ''))
    assert.equal(srv.requests.length + srv.handshakes.length, 0, 'nothing was sent')
  } finally {
    await client.close()
    await srv.close()
  }
  assert.throws(() => new Client(config(srv.port), { room: { prepareHeaders: 'token' } }), ConfigError)
})
