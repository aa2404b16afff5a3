'use strict'
// livecache (Node) against RTK Query itself, headless (createApi + onCacheEntryAdded +
// updateCachedData with a queryFn, production build), same run, same machine (RTK's S3 in a child
// process with a 16 GB heap limit).
//   S1 the seed chat workload: N initial messages, then streamed appends (pushMessage one by one,
//      and pushMessages with 2,000 per call).
//   S2 one field of one entity in an entity-adapter state of N entities.
//   S3 10,000 cache entries: subscribe all, memory per entry, unsubscribe all.
// Run: NODE_ENV=production node --expose-gc bench.js [--quick]
// Needs the release addon: LIVECACHE_NODE_PROFILE=release node ../scripts/build.js

process.env.NODE_ENV = 'production'
const { EventEmitter } = require('node:events')
const { configureStore, createEntityAdapter } = require('@reduxjs/toolkit')
const { createApi, fakeBaseQuery } = require('@reduxjs/toolkit/query')
const { Client } = require('..')

const QUICK = process.argv.includes('--quick')
/** `--only S3` (or S1, S2) runs one table. */
const ONLY = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1] : null
const runs = (name) => ONLY === null || ONLY === name
const SIZES = [1000, 10000, 100000]
/** Each measurement runs for about this long (or until its update budget is used). */
const BUDGET_MS = QUICK ? 300 : 1500
const S3_ENTRIES = 10000
const S3_RTK_ENTRIES = Number(process.env.S3_RTK_ENTRIES || (QUICK ? 500 : S3_ENTRIES))

const now = () => Number(process.hrtime.bigint()) / 1e6
const tick = () => new Promise((resolve) => setImmediate(resolve))
function gc() {
  if (global.gc) for (let i = 0; i < 4; i++) global.gc()
}
const { fmt, table } = require('./report')

const messages = (n, channel) => Array.from({ length: n }, (_, i) => ({ id: i, channel, text: `message ${i}`, user: `u${i % 50}` }))
const entityList = (n) => Array.from({ length: n }, (_, i) => ({ id: `e${i}`, name: `entity ${i}`, count: 0, tags: ['a', 'b'] }))

// ---- RTK Query ------------------------------------------------------------------------------

function rtkStore(endpoints) {
  const api = createApi({ reducerPath: 'api', baseQuery: fakeBaseQuery(), keepUnusedDataFor: 0, endpoints })
  const store = configureStore({ reducer: { api: api.reducer }, middleware: (gdm) => gdm().concat(api.middleware) })
  return { api, store }
}

async function rtkStream(initial, apply) {
  const feed = new EventEmitter()
  feed.setMaxListeners(0)
  const { api, store } = rtkStore((build) => ({
    getData: build.query({
      queryFn: async () => ({ data: initial() }),
      async onCacheEntryAdded(arg, { updateCachedData, cacheDataLoaded, cacheEntryRemoved }) {
        await cacheDataLoaded
        const listener = (m) => updateCachedData((draft) => apply(draft, m))
        feed.on('message', listener)
        await cacheEntryRemoved
        feed.off('message', listener)
      },
    }),
  }))
  const sub = store.dispatch(api.endpoints.getData.initiate('x'))
  await sub
  await tick()
  return { feed, store, api, sub }
}

/** Sends messages until the budget is used; returns updates per second. */
function rate(send, max) {
  let n = 0
  const start = now()
  while (n < max && now() - start < BUDGET_MS) send(n++)
  return (n / (now() - start)) * 1000
}

async function rtkS1(size) {
  const { feed, sub } = await rtkStream(
    () => messages(size, 'redux'),
    (draft, m) => {
      draft.push(m)
    },
  )
  const r = rate((i) => feed.emit('message', { id: size + i, channel: 'redux', text: 'streamed', user: 'u' }), 1e6)
  sub.unsubscribe()
  return r
}

async function rtkS2(size) {
  const adapter = createEntityAdapter()
  const { feed, sub } = await rtkStream(
    () => adapter.setAll(adapter.getInitialState(), entityList(size)),
    (draft, m) => {
      draft.entities[m.id].count = m.count
    },
  )
  const r = rate((i) => feed.emit('message', { id: `e${(i * 7919) % size}`, count: i }), 1e6)
  sub.unsubscribe()
  return r
}

async function rtkS3(n) {
  const { api, store } = rtkStore((build) => ({
    getItem: build.query({ queryFn: async (id) => ({ data: { id, v: 1 } }) }),
  }))
  gc()
  const heap0 = process.memoryUsage().heapUsed
  let start = now()
  const subs = []
  for (let i = 0; i < n; i++) subs.push(store.dispatch(api.endpoints.getItem.initiate(i)))
  await Promise.all(subs)
  const subscribeMs = (now() - start) / n
  await tick()
  gc()
  const perEntry = (process.memoryUsage().heapUsed - heap0) / n
  start = now()
  for (const s of subs) s.unsubscribe()
  // keepUnusedDataFor 0: removal is a timer per entry; wait until the cache is empty.
  while (Object.keys(store.getState().api.queries).length > 0) await new Promise((r) => setTimeout(r, 5))
  const removeMs = now() - start
  return { subscribeMs, perEntry, removeMs }
}

/** RTK's S3 in a child process with a large heap: at 10,000 entries its store outgrows node's
 * default heap limit, and its garbage would weigh on the livecache figures of this process. */
function rtkS3Child(n) {
  const { spawnSync } = require('node:child_process')
  const args = ['--expose-gc', '--max-old-space-size=16384', __filename, '--rtk-s3', String(n)]
  const r = spawnSync(process.execPath, args, { env: { ...process.env, NODE_ENV: 'production' }, encoding: 'utf8', maxBuffer: 1 << 20 })
  if (r.status !== 0) throw new Error(`RTK S3 child failed (${r.status}): ${r.stderr}`)
  return JSON.parse(r.stdout.trim().split('\n').pop())
}

// ---- livecache ------------------------------------------------------------------------------

/** A subscribed entry; `target(version)` resolves once the callback has seen that version. */
async function lcEntry(config, hooks, endpoint, onUpdate = () => {}) {
  const client = new Client(config, hooks)
  let seen = 0
  let want = Infinity
  let wake = null
  const sub = client.subscribe(endpoint, 'x', (ev) => {
    if (ev.type === 'patch') onUpdate(ev)
    if (ev.version !== undefined) seen = ev.version
    if (wake !== null && seen >= want) {
      const w = wake
      wake = null
      w()
    }
  })
  await sub.loaded()
  while (seen < sub.snapshot().version) await tick()
  const reach = (version) =>
    seen >= version
      ? Promise.resolve()
      : new Promise((resolve) => {
          want = version
          wake = resolve
        })
  return { client, sub, reach }
}

/** Pushes messages (in chunks, so events flow meanwhile) for the budget; updates/s delivered.
 * `batch`: each chunk in one `pushMessages` call instead of a `pushMessage` per message. */
async function lcRate(entry, endpoint, make, batch = false) {
  const v0 = entry.sub.snapshot().version
  let n = 0
  const start = now()
  const CHUNK = 2000
  while (now() - start < BUDGET_MS) {
    if (batch) {
      const chunk = []
      for (let i = 0; i < CHUNK; i++) chunk.push(make(n++))
      entry.client.pushMessages(endpoint, 'x', chunk)
    } else for (let i = 0; i < CHUNK; i++) entry.client.pushMessage(endpoint, 'x', make(n++))
    // Wait for the engine to deliver this chunk before the next, so the rate is end to end.
    await entry.reach(v0 + n)
  }
  const ms = now() - start
  return (n / ms) * 1000
}

async function lcS1(size, mode) {
  const initial = messages(size, 'x')
  const feed = new EventEmitter()
  const endpoint = 'getMessages'
  let config
  let hooks
  if (mode === 'rule' || mode === 'batch') {
    config = { endpoints: { getMessages: { stream: { filter: { channel: '{arg}' }, apply: 'append' } } } }
    hooks = { getMessages: { queryFn: () => initial } }
  } else if (mode === 'hook') {
    config = { endpoints: { getMessages: { stream: { filter: { channel: '{arg}' } } } } }
    hooks = {
      getMessages: {
        queryFn: () => initial,
        onMessage: (draft, m) => {
          draft.push(m)
        },
      },
    }
  } else {
    // The seed's code: onCacheEntryAdded + updateCachedData.
    config = { endpoints: { getMessages: {} } }
    hooks = {
      getMessages: {
        queryFn: () => initial,
        async onCacheEntryAdded(arg, { updateCachedData, cacheDataLoaded, cacheEntryRemoved }) {
          await cacheDataLoaded
          const listener = (m) =>
            updateCachedData((draft) => {
              draft.push(m)
            })
          feed.on('message', listener)
          await cacheEntryRemoved
          feed.off('message', listener)
        },
      },
    }
  }
  const entry = await lcEntry(config, hooks, endpoint)
  const make = (i) => ({ id: size + i, channel: 'x', text: 'streamed', user: 'u' })
  let r
  if (mode === 'rule') r = await lcRate(entry, endpoint, make)
  else if (mode === 'batch') r = await lcRate(entry, endpoint, make, true)
  else if (mode === 'hook') r = await lcRate(entry, endpoint, make)
  else {
    while (feed.listenerCount('message') === 0) await tick()
    r = rate((i) => feed.emit('message', make(i)), 1e6)
  }
  entry.sub.unsubscribe()
  await entry.client.close()
  return r
}

async function lcS2(size, mode) {
  const initial = entityList(size)
  const config = {
    endpoints: {
      getEntities: {
        transformResponse: { entityAdapter: { selectId: 'id' } },
        stream: mode === 'rule' ? { apply: { upsert: { selectId: 'id' } } } : {},
      },
    },
  }
  const hooks = { getEntities: { queryFn: () => initial } }
  if (mode === 'hook') {
    hooks.getEntities.onMessage = (draft, m) => {
      draft.entities[m.id].count = m.count
    }
  }
  const entry = await lcEntry(config, hooks, 'getEntities')
  const make = (i) => ({ id: `e${(i * 7919) % size}`, count: i + 1 })
  const r = await lcRate(entry, 'getEntities', make)
  entry.sub.unsubscribe()
  await entry.client.close()
  return r
}

async function lcS3(n) {
  const client = new Client({ keepUnusedDataFor: 0, endpoints: { getItem: {} } }, { getItem: { queryFn: (id) => ({ id, v: 1 }) } })
  gc()
  const heap0 = process.memoryUsage().heapUsed
  const rss0 = process.memoryUsage().rss
  let start = now()
  const subs = []
  for (let i = 0; i < n; i++) subs.push(client.subscribe('getItem', i))
  const subscribeMs = (now() - start) / n
  await Promise.all(subs.map((s) => s.loaded()))
  const loadedMs = now() - start
  await tick()
  gc()
  const heapPerEntry = (process.memoryUsage().heapUsed - heap0) / n
  const rssPerEntry = (process.memoryUsage().rss - rss0) / n
  start = now()
  for (const s of subs) s.unsubscribe()
  const unsubscribeMs = now() - start
  while (client.stats().entries > 0) await tick()
  const removeMs = now() - start
  await client.close()
  return { subscribeMs, loadedMs, heapPerEntry, rssPerEntry, unsubscribeMs, removeMs }
}

// ---- run ------------------------------------------------------------------------------------

;(async () => {
  if (process.argv.includes('--rtk-s3')) {
    console.log(JSON.stringify(await rtkS3(Number(process.argv[process.argv.indexOf('--rtk-s3') + 1]))))
    return
  }
  console.log(`livecache vs RTK Query ${require('@reduxjs/toolkit/package.json').version} — node ${process.version}, NODE_ENV=${process.env.NODE_ENV}`)
  const s1 = []
  if (runs('S1')) {
    // One untimed pass of every contender first, so the first row is not the one that pays for
    // V8's compilation of the code paths (RTK Query's included).
    await rtkS1(SIZES[0])
    for (const mode of ['rule', 'batch', 'hook', 'seed']) await lcS1(SIZES[0], mode)
  }
  for (const size of runs('S1') ? SIZES : []) {
    // A full collection before each contender, so none is timed while the previous one's
    // garbage is collected.
    gc()
    const rtk = await rtkS1(size)
    gc()
    const rule = await lcS1(size, 'rule')
    gc()
    const batch = await lcS1(size, 'batch')
    gc()
    const hook = await lcS1(size, 'hook')
    gc()
    const seed = await lcS1(size, 'seed')
    s1.push([size.toLocaleString('en-US'), fmt(rtk), fmt(rule), `${fmt(rule / rtk)}×`, fmt(batch), `${fmt(batch / rtk)}×`, fmt(hook), `${fmt(hook / rtk)}×`, fmt(seed), `${fmt(seed / rtk)}×`])
  }
  if (runs('S1')) table(
    'S1 chat: appends/s delivered (initial messages, then streamed appends)',
    ['messages', 'RTK Query', 'lc apply:append', 'vs RTK', 'lc pushMessages ×2000', 'vs RTK', 'lc onMessage', 'vs RTK', 'lc updateCachedData', 'vs RTK'],
    s1,
  )
  const s2 = []
  for (const size of runs('S2') ? SIZES : []) {
    const rtk = await rtkS2(size)
    const rule = await lcS2(size, 'rule')
    const hook = await lcS2(size, 'hook')
    s2.push([size.toLocaleString('en-US'), fmt(rtk), fmt(rule), `${fmt(rule / rtk)}×`, fmt(hook), `${fmt(hook / rtk)}×`])
  }
  if (runs('S2')) table('S2 entity field update: updates/s delivered', ['entities', 'RTK Query', 'lc apply:upsert', 'vs RTK', 'lc onMessage', 'vs RTK'], s2)
  if (!runs('S3')) return
  const lc = await lcS3(S3_ENTRIES)
  const rtk = rtkS3Child(S3_RTK_ENTRIES)
  table(
    `S3 cache entries (livecache ${S3_ENTRIES.toLocaleString('en-US')}, RTK Query ${S3_RTK_ENTRIES.toLocaleString('en-US')})`,
    ['', 'RTK Query', 'livecache', 'ratio'],
    [
      ['subscribe, ms per entry', fmt(rtk.subscribeMs), lc.subscribeMs.toFixed(4), `${fmt(rtk.subscribeMs / lc.subscribeMs)}×`],
      ['all loaded, ms', '—', fmt(lc.loadedMs), ''],
      ['JS heap per entry, bytes', fmt(rtk.perEntry), fmt(lc.heapPerEntry), ''],
      ['RSS per entry (native included), bytes', '—', fmt(lc.rssPerEntry), ''],
      ['unsubscribe all, ms', '—', fmt(lc.unsubscribeMs), ''],
      ['remove all (keepUnusedDataFor 0), ms', fmt(rtk.removeMs), fmt(lc.removeMs), `${fmt(rtk.removeMs / lc.removeMs)}×`],
    ],
  )
})()
