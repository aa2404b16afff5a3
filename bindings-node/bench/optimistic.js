'use strict'
// Optimistic updates (SPEC W3), livecache beside RTK Query's own answer, same run, same machine.
//   O1 stream messages delivered to a Node callback while 10 optimistic layers are pending, on an
//      entity-adapter state of 1,000 / 10,000 / 100,000 entities, beside the same stream with no
//      layer: the rebase must cost the layers' size, not the document's.
//   O2 the chat workload with 1,000 optimistic posts, the client keeping the last 100 messages:
//      each post shows at once, 3 other users' messages arrive, then the write fails (1 in 3) or
//      succeeds and its echo brings the stored copy. RTK Query with `updateQueryData` and
//      `patchResult.undo()` once the write settles (its documented pattern) against livecache's
//      layers: how many of the 1,000 posts leave the cache different from the server, and posts/s.
// Run: NODE_ENV=production node --expose-gc optimistic.js [--quick]
// Needs the release addon: LIVECACHE_NODE_PROFILE=release node ../scripts/build.js

process.env.NODE_ENV = 'production'
const http = require('node:http')
const { configureStore } = require('@reduxjs/toolkit')
const { createApi, fakeBaseQuery } = require('@reduxjs/toolkit/query')
const { Client } = require('..')

const QUICK = process.argv.includes('--quick')
/** `--only O2` (or O1) runs one table. */
const ONLY = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1] : null
const SIZES = [1000, 10000, 100000]
const LAYERS = 10
const BUDGET_MS = QUICK ? 300 : 1500
const POSTS = QUICK ? 200 : 1000
/** The chat keeps the last WINDOW messages (RTK: push + shift; livecache: append maxLen). */
const WINDOW = 100

const now = () => Number(process.hrtime.bigint()) / 1e6
const tick = () => new Promise((resolve) => setImmediate(resolve))
const { fmt, table } = require('./report')

/** An HTTP server on 127.0.0.1 that holds every request until `answer(status)` is called. */
async function heldServer() {
  const waiting = []
  const server = http.createServer((req, res) => {
    req.resume()
    req.on('end', () => waiting.push(res))
    // A request its client gave up on (a client closed with the mutation pending) is no answer.
    res.on('close', () => {
      const i = waiting.indexOf(res)
      if (i >= 0) waiting.splice(i, 1)
    })
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${server.address().port}/`,
    waiting,
    /** Answers the oldest held request once it has arrived. */
    async answer(status, body) {
      while (waiting.length === 0) await new Promise((r) => setTimeout(r, 1))
      const res = waiting.shift()
      res.writeHead(status, { 'content-type': 'application/json' })
      res.end(JSON.stringify(body))
    },
    close() {
      for (const res of waiting) res.destroy()
      server.closeAllConnections()
      server.close()
    },
  }
}

// ---- O1 -------------------------------------------------------------------------------------

async function o1(size, layers, server) {
  const users = Array.from({ length: size }, (_, i) => ({ id: i, name: `user ${i}`, score: 0, online: false }))
  const client = new Client(
    {
      endpoints: {
        getUsers: { transformResponse: { entityAdapter: {} }, stream: { apply: 'upsert' } },
        setOnline: {
          mutation: { url: `${server.url}online/{arg}` },
          optimistic: [{ endpoint: 'getUsers', message: { id: '{arg}', online: true } }],
          confirmTimeoutMs: 3600000,
        },
      },
    },
    { getUsers: { queryFn: () => users } },
  )
  // The callback sees the stream's own ops among each patch (the layers' come with them): it
  // notes the newest score, so the wait below costs nothing per document size.
  let newest = 0
  const sub = client.subscribe('getUsers', undefined, (ev) => {
    if (ev.type !== 'patch') return
    for (const op of ev.patches) if (op.path.endsWith('/score') && op.value > newest) newest = op.value
  })
  await sub.loaded()
  const pending = []
  for (let k = 0; k < layers; k++) pending.push(client.mutate('setOnline', (k * 13) % size).catch(() => {}))
  if ((sub.snapshot().optimistic || 0) !== layers) throw new Error('the layers are not pending')
  let n = 0
  const start = now()
  const CHUNK = 2000
  while (now() - start < BUDGET_MS) {
    for (let i = 0; i < CHUNK; i++) {
      n++
      client.pushMessage('getUsers', undefined, { id: (n * 7919 + 1) % size, score: n })
    }
    // End to end: the chunk's last message has reached the callback.
    while (newest < n) await tick()
  }
  const rate = (n / (now() - start)) * 1000
  if ((sub.snapshot().optimistic || 0) !== layers) throw new Error('a layer left during the run')
  sub.unsubscribe()
  await client.close()
  await Promise.all(pending)
  return rate
}

// ---- O2 -------------------------------------------------------------------------------------

/** The server's truth and the stream it sends: other users' messages and the stored posts. */
function chatWorld() {
  let nextId = 1
  const truth = []
  return {
    truth,
    view: () => truth.slice(-WINDOW),
    other: () => {
      const m = { id: nextId++, text: `other ${nextId}` }
      truth.push(m)
      return m
    },
    store: (text) => {
      const m = { id: nextId++, text }
      truth.push(m)
      return m
    },
  }
}

const same = (a, b) => JSON.stringify(a) === JSON.stringify(b)
const pushKeep = (draft, m) => {
  draft.push(m)
  if (draft.length > WINDOW) draft.shift()
}

async function o2Rtk() {
  const world = chatWorld()
  const api = createApi({
    reducerPath: 'api',
    baseQuery: fakeBaseQuery(),
    keepUnusedDataFor: 0,
    endpoints: (build) => ({ getMessages: build.query({ queryFn: async () => ({ data: [] }) }) }),
  })
  const store = configureStore({ reducer: { api: api.reducer }, middleware: (gdm) => gdm().concat(api.middleware) })
  const sub = store.dispatch(api.endpoints.getMessages.initiate('x'))
  await sub
  const update = (recipe) => store.dispatch(api.util.updateQueryData('getMessages', 'x', recipe))
  const data = () => api.endpoints.getMessages.select('x')(store.getState()).data
  let wrong = 0
  let updates = 0
  const start = now()
  for (let i = 0; i < POSTS; i++) {
    const text = `post ${i}`
    // RTK's documented optimistic update: updateQueryData, and undo() if the write fails.
    const patch = update((draft) => pushKeep(draft, { id: `tmp${i}`, text, pending: true }))
    for (let k = 0; k < 3; k++) {
      const m = world.other()
      update((draft) => pushKeep(draft, m))
    }
    const fails = i % 3 === 0
    patch.undo()
    if (!fails) {
      const echo = world.store(text)
      update((draft) => pushKeep(draft, echo))
    }
    updates += 5
    if (!same(data(), world.view())) wrong++
  }
  const ms = now() - start
  sub.unsubscribe()
  return { wrong, postsPerSec: (POSTS / ms) * 1000, updatesPerSec: (updates / ms) * 1000 }
}

async function o2Livecache(server) {
  const world = chatWorld()
  const client = new Client(
    {
      endpoints: {
        getMessages: { stream: { apply: { append: { dedupeBy: 'id', maxLen: WINDOW } } } },
        post: {
          mutation: { url: `${server.url}messages`, body: { text: '{arg.text}' } },
          optimistic: [{ endpoint: 'getMessages', arg: 'x', message: { id: '{arg.tmp}', text: '{arg.text}', pending: true } }],
          confirm: { text: '{arg.text}' },
        },
      },
    },
    { getMessages: { queryFn: () => [] } },
  )
  const sub = client.subscribe('getMessages', 'x', () => {})
  await sub.loaded()
  let wrong = 0
  let updates = 0
  const start = now()
  for (let i = 0; i < POSTS; i++) {
    const text = `post ${i}`
    const done = client.mutate('post', { tmp: `tmp${i}`, text }).then(
      () => true,
      () => false,
    )
    for (let k = 0; k < 3; k++) client.pushMessage('getMessages', 'x', world.other())
    const fails = i % 3 === 0
    if (fails) await server.answer(500, { error: 'refused' })
    else {
      const echo = world.store(text)
      await server.answer(201, echo)
      client.pushMessage('getMessages', 'x', echo)
    }
    await done
    updates += 5
    if (!same(sub.snapshot().data, world.view())) wrong++
  }
  const ms = now() - start
  sub.unsubscribe()
  await client.close()
  return { wrong, postsPerSec: (POSTS / ms) * 1000, updatesPerSec: (updates / ms) * 1000 }
}

;(async () => {
  console.log(`livecache optimistic layers vs RTK Query ${require('@reduxjs/toolkit/package.json').version} — node ${process.version}`)
  const server = await heldServer()
  const rows = []
  for (const size of ONLY === 'O2' ? [] : SIZES) {
    const none = await o1(size, 0, server)
    const ten = await o1(size, LAYERS, server)
    rows.push([size.toLocaleString('en-US'), fmt(none), fmt(ten), `${fmt(ten / none)}×`])
  }
  if (rows.length) table(`O1 stream messages/s to a Node callback, ${LAYERS} optimistic layers pending (bursts of 2,000 via pushMessage)`, ['entities', 'no layer', `${LAYERS} layers`, 'ratio'], rows)
  if (ONLY === 'O1') return server.close()
  const rtk = await o2Rtk()
  const o2server = await heldServer()
  const lc = await o2Livecache(o2server)
  o2server.close()
  table(
    `O2 chat keeping the last ${WINDOW} messages, ${POSTS.toLocaleString('en-US')} optimistic posts (each: 3 other messages, then 1 in 3 fails, else its echo)`,
    ['', 'RTK Query updateQueryData + undo', 'livecache layers'],
    [
      ['posts leaving the cache != server', `${rtk.wrong} of ${POSTS}`, `${lc.wrong} of ${POSTS}`],
      ['posts/s', fmt(rtk.postsPerSec), `${fmt(lc.postsPerSec)} (an HTTP round trip each)`],
      ['updates/s (post, 3 messages, echo or undo)', fmt(rtk.updatesPerSec), fmt(lc.updatesPerSec)],
    ],
  )
  server.close()
})().catch((e) => {
  console.error(e)
  process.exit(1)
})
