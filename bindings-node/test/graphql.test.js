'use strict'
// GraphQL (SPEC T5) against a server built on the npm packages `graphql` (schema, validation,
// execution) and `graphql-ws` (the graphql-transport-ws reference server), started here on
// 127.0.0.1: queries over HTTP POST, subscriptions over one shared connection, connectionParams,
// GraphQL errors, server completion, drops, and a server that never acknowledges.

const test = require('node:test')
const assert = require('node:assert/strict')
const http = require('node:http')
const { WebSocketServer } = require('ws')
const { useServer } = require('graphql-ws/use/ws')
const { buildSchema, graphql } = require('graphql')
const { Client, ConfigError } = require('..')
const { waitFor, Recorder, settle } = require('./helpers')

const TOKEN = 'gql-s3cret-token'

const schema = buildSchema(`
  type Message { id: Int! room: String! text: String! }
  type Query { messages(room: String!): [Message!]! broken(room: String!): [Message!]! }
  type Mutation { addMessage(room: String!, text: String!): Message! }
  type Subscription { messageAdded(room: String!, after: Int): Message! failing(room: String!): Message! short(room: String!): Message! }
`)

/** A queue of events as an async iterator, ended by `end()`. */
function channel() {
  const queue = []
  const waiting = []
  let ended = false
  return {
    push(v) {
      if (waiting.length) waiting.shift()({ value: v, done: false })
      else queue.push(v)
    },
    end() {
      ended = true
      while (waiting.length) waiting.shift()({ value: undefined, done: true })
    },
    [Symbol.asyncIterator]() {
      return {
        next: () => {
          if (queue.length) return Promise.resolve({ value: queue.shift(), done: false })
          if (ended) return Promise.resolve({ value: undefined, done: true })
          return new Promise((resolve) => waiting.push(resolve))
        },
        return: () => {
          ended = true
          return Promise.resolve({ value: undefined, done: true })
        },
      }
    },
  }
}

async function server({ ack = true } = {}) {
  const stored = [{ id: 1, room: 'lobby', text: 'welcome' }]
  let nextId = 2
  const subscribers = new Set()
  const seen = { connections: 0, inits: [], subscribes: 0, completes: 0, closes: [], posts: 0, frames: [], registered: 0, resumedAfter: [] }
  const rootValue = {
    messages: ({ room }) => stored.filter((m) => m.room === room),
    broken: () => {
      throw new Error('the query failed')
    },
    // W1: stores the message and sends it to the room's subscribers (its echo).
    addMessage: ({ room, text }) => {
      if (text === '') throw new Error('empty messages are refused')
      return post(room, text)
    },
    messageAdded: ({ room, after }) => {
      const ch = channel()
      // T6: a resuming subscriber gets what it missed first.
      if (after !== undefined && after !== null) {
        seen.resumedAfter.push(after)
        for (const m of stored) if (m.room === room && m.id > after) ch.push({ messageAdded: m })
      }
      const sub = { room, ch, kind: 'messageAdded' }
      subscribers.add(sub)
      seen.registered++
      const it = ch[Symbol.asyncIterator]()
      return { [Symbol.asyncIterator]: () => ({ next: it.next, return: () => (subscribers.delete(sub), it.return()) }) }
    },
    failing: ({ room }) => {
      const ch = channel()
      subscribers.add({ room, ch, kind: 'failing' })
      return ch
    },
    short: ({ room }) => {
      const ch = channel()
      subscribers.add({ room, ch, kind: 'short' })
      return ch
    },
  }
  const httpServer = http.createServer((req, res) => {
    let body = ''
    req.on('data', (c) => (body += c))
    req.on('end', async () => {
      seen.posts++
      const { query, variables } = JSON.parse(body)
      const result = await graphql({ schema, source: query, variableValues: variables, rootValue })
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify(result))
    })
  })
  const wss = new WebSocketServer({ server: httpServer })
  wss.on('connection', (ws) => {
    seen.connections++
    // What the client wrote, beside graphql-ws's own listener.
    ws.on('message', (data) => {
      const frame = JSON.parse(String(data))
      seen.frames.push(frame)
      if (frame.type === 'complete') seen.completes++
    })
    ws.on('close', (code) => seen.closes.push(code))
  })
  if (ack) {
    useServer(
      {
        schema,
        roots: { subscription: rootValue },
        onConnect: (ctx) => {
          seen.inits.push(ctx.connectionParams)
          return ctx.connectionParams?.token === TOKEN
        },
        onSubscribe: () => {
          seen.subscribes++
        },
      },
      wss,
    )
  }
  await new Promise((resolve) => httpServer.listen(0, '127.0.0.1', resolve))
  const { port } = httpServer.address()
  function post(room, text) {
    const m = { id: nextId++, room, text }
    stored.push(m)
    for (const s of subscribers) if (s.room === room && s.kind === 'messageAdded') s.ch.push({ messageAdded: m })
    return m
  }
  return {
    port,
    seen,
    stored,
    post,
    failAll(room) {
      for (const s of subscribers) if (s.room === room && s.kind === 'failing') s.ch.push({ failing: null })
    },
    endShort(room) {
      for (const s of subscribers) if (s.room === room && s.kind === 'short') s.ch.end()
    },
    open: () => wss.clients.size,
    /** The server's resolver for `kind` runs for `room` (the subscribe frame was processed). */
    has: (kind, room, n = 1) => [...subscribers].filter((s) => s.kind === kind && s.room === room).length >= n,
    drop() {
      for (const ws of wss.clients) ws.terminate()
    },
    async close() {
      for (const ws of wss.clients) ws.terminate()
      wss.close()
      httpServer.closeAllConnections()
      await new Promise((resolve) => httpServer.close(resolve))
    },
  }
}

function config(port, { subscription = 'messageAdded', token = TOKEN, query = 'messages', ackMs } = {}) {
  const graphqlStream = {
    url: `ws://127.0.0.1:${port}/graphql`,
    query: `subscription ($room: String!) { ${subscription}(room: $room) { id room text } }`,
    variables: { room: '{arg}' },
    connectionParams: { token },
  }
  if (ackMs !== undefined) graphqlStream.connectionAckTimeoutMs = ackMs
  return {
    endpoints: {
      room: {
        query: {
          graphql: {
            url: `http://127.0.0.1:${port}/graphql`,
            query: `query ($room: String!) { ${query}(room: $room) { id room text } }`,
            variables: { room: '{arg}' },
          },
        },
        stream: {
          graphql: graphqlStream,
          apply: { append: { dedupeBy: 'id' } },
          reconnect: { initialDelayMs: 20, maxDelayMs: 200 },
        },
      },
    },
  }
}

test('T5: a query over HTTP POST and subscriptions of two entries over one connection', async () => {
  const srv = await server()
  const client = new Client(config(srv.port))
  const lobby = new Recorder()
  const other = new Recorder()
  try {
    const a = client.subscribe('room', 'lobby', lobby.onEvent)
    const b = client.subscribe('room', 'other', other.onEvent)
    assert.deepEqual(await a.loaded(), [{ id: 1, room: 'lobby', text: 'welcome' }], 'the single root field of data')
    assert.deepEqual(await b.loaded(), [])
    await waitFor('both subscribed', () => srv.has('messageAdded', 'lobby') && srv.has('messageAdded', 'other'))
    assert.equal(srv.seen.connections, 1, 'GraphQL streams always share one connection')
    assert.deepEqual([client.stats().connections, client.stats().connectionsOpened], [1, 1])
    assert.deepEqual(srv.seen.inits, [{ token: TOKEN }], 'connectionParams in connection_init')
    srv.post('lobby', 'hi lobby')
    srv.post('other', 'hi other')
    await waitFor('messages routed by operation id', () => a.snapshot().data.length === 2 && b.snapshot().data.length === 1)
    assert.equal(a.snapshot().data[1].text, 'hi lobby')
    assert.equal(b.snapshot().data[0].text, 'hi other')
    await settle(a, lobby)
    lobby.check(a.snapshot(), 'lobby replica')
    // Leaving sends `complete`; the last one closes the socket with a close handshake.
    b.unsubscribe()
    client.close()
    await waitFor('completes', () => srv.seen.completes === 2)
    await waitFor('socket closed', () => srv.seen.closes.length === 1)
    assert.deepEqual(srv.seen.closes, [1000])
  } finally {
    client.close()
    await srv.close()
  }
})

test('T5: a drop reconnects once for every entry; each resubscribes and resyncs', async () => {
  const srv = await server()
  const client = new Client(config(srv.port))
  try {
    const a = client.subscribe('room', 'lobby', () => {})
    const b = client.subscribe('room', 'other', () => {})
    await a.loaded()
    await b.loaded()
    await waitFor('subscribed', () => srv.has('messageAdded', 'lobby') && srv.has('messageAdded', 'other'))
    srv.drop()
    await waitFor('dropped', () => a.snapshot().stream.state !== 'open')
    srv.post('lobby', 'while away')
    await waitFor('resubscribed', () => srv.seen.registered === 4)
    await waitFor('caught up', () => a.snapshot().data.length === 2 && a.snapshot().status === 'fulfilled')
    assert.deepEqual(a.snapshot().data.map((m) => m.id), srv.stored.filter((m) => m.room === 'lobby').map((m) => m.id))
    assert.equal(srv.seen.connections, 2, 'one reconnect for both entries')
    srv.post('lobby', 'after')
    await waitFor('live again', () => a.snapshot().data.length === 3)
  } finally {
    client.close()
    await srv.close()
  }
})

test('T6: a GraphQL subscription resumes with its cursor in a variable: no refetch, nothing lost or doubled', async () => {
  const srv = await server()
  const cfg = config(srv.port)
  const stream = cfg.endpoints.room.stream
  stream.graphql.query = 'subscription ($room: String!, $after: Int) { messageAdded(room: $room, after: $after) { id room text } }'
  stream.graphql.variables = { room: '{arg}', after: '{cursor}' }
  stream.resume = { cursor: '/id' }
  const client = new Client(cfg)
  const rec = new Recorder()
  try {
    const sub = client.subscribe('room', 'lobby', rec.onEvent)
    await sub.loaded()
    await waitFor('subscribed', () => srv.has('messageAdded', 'lobby'))
    // The open's resync (L8), if any, has landed: a response leaves the position unknown
    // (no `resume.initial`), so the cursor is the next message's.
    await waitFor('open, no fetch in flight', () => sub.snapshot().stream.state === 'open' && sub.snapshot().status === 'fulfilled')
    const first = srv.seen.frames.find((f) => f.type === 'subscribe')
    assert.equal(first.payload.variables.after, null, 'no cursor before the first message')
    srv.post('lobby', 'before the drop')
    await waitFor('applied', () => sub.snapshot().data.length === 2)
    const queries = srv.seen.posts
    srv.drop()
    await waitFor('dropped', () => sub.snapshot().stream.state !== 'open')
    srv.post('lobby', 'while away 1')
    srv.post('lobby', 'while away 2')
    await waitFor('resubscribed', () => srv.seen.resumedAfter.length === 1)
    assert.deepEqual(srv.seen.resumedAfter, [2], 'the cursor of the last message applied')
    await waitFor('caught up', () => sub.snapshot().data.length === 4)
    srv.post('lobby', 'after')
    await waitFor('live again', () => sub.snapshot().data.length === 5)
    const lobby = srv.stored.filter((m) => m.room === 'lobby')
    assert.deepEqual(sub.snapshot().data, lobby, "the server's messages, each once")
    assert.equal(srv.seen.posts, queries, 'resumed: no refetch')
    assert.ok(client.stats().resumes >= 1, 'counted as a resume')
    await settle(sub, rec)
    rec.check(sub.snapshot(), 'after the resume')
  } finally {
    client.close()
    await srv.close()
  }
})

test('T5: GraphQL errors are error events and leave the data; a server complete closes that stream', async () => {
  const srv = await server()
  const failing = new Client(config(srv.port, { subscription: 'failing' }))
  const short = new Client(config(srv.port, { subscription: 'short' }))
  const invalid = new Client(config(srv.port, { subscription: 'nosuchfield' }))
  const rec = new Recorder()
  const recInvalid = new Recorder()
  try {
    const f = failing.subscribe('room', 'lobby', rec.onEvent)
    await f.loaded()
    await waitFor('subscribed', () => srv.has('failing', 'lobby'))
    srv.failAll('lobby')
    await waitFor('graphql error event', () => rec.events.some((e) => e.type === 'error'))
    const error = rec.events.find((e) => e.type === 'error')
    assert.equal(error.reason, 'graphql')
    assert.match(error.message, /non-nullable|null/i)
    assert.equal(f.snapshot().data.length, 1, 'the data is unchanged')

    const s = short.subscribe('room', 'lobby', () => {})
    await s.loaded()
    await waitFor('subscribed', () => srv.has('short', 'lobby'))
    srv.endShort('lobby')
    await waitFor('completed by the server', () => s.snapshot().stream.state === 'closed')
    assert.match(s.snapshot().stream.error, /completed/)

    // Validation fails before the operation runs: an `error` message.
    const v = invalid.subscribe('room', 'lobby', recInvalid.onEvent)
    await v.loaded()
    await waitFor('error message', () => recInvalid.events.some((e) => e.type === 'error'))
    assert.equal(recInvalid.events.find((e) => e.type === 'error').reason, 'graphql')
    await waitFor('closed', () => v.snapshot().stream.state === 'closed')
    assert.equal(v.snapshot().data.length, 1)
  } finally {
    failing.close()
    short.close()
    invalid.close()
    await srv.close()
  }
})

test('T5: a query with errors is rejected with GRAPHQL_ERROR', async () => {
  const srv = await server()
  const client = new Client(config(srv.port, { query: 'broken' }))
  try {
    const sub = client.subscribe('room', 'lobby', () => {})
    await waitFor('rejected', () => sub.snapshot().status === 'rejected')
    const e = sub.snapshot().error
    assert.equal(e.status, 'GRAPHQL_ERROR')
    assert.equal(e.errors[0].message, 'the query failed')
  } finally {
    client.close()
    await srv.close()
  }
})

test('T5: refused connectionParams and a server that never acks are failed connects, retried', async () => {
  const srv = await server()
  const refused = new Client(config(srv.port, { token: 'wrong' }))
  const mute = await server({ ack: false })
  const silent = new Client(config(mute.port, { ackMs: 100 }))
  try {
    const r = refused.subscribe('room', 'lobby', () => {})
    await r.loaded()
    await waitFor('refused', () => /4403|Forbidden/.test(r.snapshot().stream.error ?? ''))
    assert.ok(!JSON.stringify([r.snapshot(), refused.stats()]).includes('wrong-token'))
    const s = silent.subscribe('room', 'lobby', () => {})
    await waitFor('no ack', () => /connection_ack/.test(s.snapshot().stream.error ?? ''))
    assert.equal(s.snapshot().stream.state, 'reconnecting')
    await waitFor('retried', () => mute.seen.connections >= 2)
  } finally {
    refused.close()
    silent.close()
    await srv.close()
    await mute.close()
  }
  assert.throws(() => new Client({ endpoints: { e: { stream: { graphql: { url: 'http://x/', query: 'subscription { a }' } } } } }), ConfigError)
})

test('W1/W3: a GraphQL mutation over HTTP POST; its layer is confirmed by the subscription echo; errors are a MutationError', async () => {
  const srv = await server()
  const cfg = config(srv.port)
  cfg.endpoints.addMessage = {
    mutation: {
      graphql: {
        url: `http://127.0.0.1:${srv.port}/graphql`,
        query: 'mutation ($room: String!, $text: String!) { addMessage(room: $room, text: $text) { id room text } }',
        variables: { room: '{arg.room}', text: '{arg.text}' },
      },
    },
    optimistic: [{ endpoint: 'room', arg: '{arg.room}', message: { id: 'local', room: '{arg.room}', text: '{arg.text}' } }],
    confirm: { text: '{arg.text}' },
  }
  const client = new Client(cfg)
  const rec = new Recorder()
  try {
    const sub = client.subscribe('room', 'lobby', rec.onEvent)
    await sub.loaded()
    await waitFor('subscribed', () => srv.has('messageAdded', 'lobby'))
    const done = client.mutate('addMessage', { room: 'lobby', text: 'via graphql' })
    assert.equal(sub.snapshot().optimistic, 1)
    assert.deepEqual(await done, { id: 2, room: 'lobby', text: 'via graphql' }, "the single root field of the result's data")
    assert.deepEqual(sub.snapshot().data.map((m) => m.id), [1, 2], 'the echo replaced the layer')
    assert.equal(sub.snapshot().optimistic, undefined)
    await settle(sub, rec)
    rec.check(sub.snapshot(), 'after the echo')
    const e = await client.mutate('addMessage', { room: 'lobby', text: '' }).then(
      () => assert.fail('the mutation should fail'),
      (e) => e,
    )
    assert.equal(e.code, 'MutationError')
    assert.equal(e.status, 'GRAPHQL_ERROR')
    assert.match(JSON.stringify(e.error), /empty messages are refused/)
    assert.deepEqual(sub.snapshot().data.map((m) => m.id), [1, 2], 'the failed layer was taken back')
  } finally {
    client.close()
    await srv.close()
  }
})
