'use strict'
// A real WebSocket flood into a JavaScript callback, against the Rust e2e client on the same
// server in the same run. The server is `livecache-flood` (chat-server crate, tokio-tungstenite):
// a connection to /N gets N chat messages as fast as the socket takes them. Per round, each
// client reads one flood of N messages, timed from its connect (or subscribe) to the last one:
//   Rust e2e    livecache-core, filter + append maxLen 1000, events to a Rust callback
//               (`cargo bench -p livecache-core --bench e2e` with E2E_EXTERNAL), and its ceiling,
//               a bare tokio-tungstenite loop with serde_json; on mimalloc (the allocator the
//               Node addon links, so the percentages compare like with like) and on glibc malloc;
//   Node        livecache, the same endpoint config, events to a JavaScript callback;
//   ws          a bare `ws` client that JSON.parses each message (the JavaScript ceiling);
//   RTK Query   the seed's onCacheEntryAdded with a `ws` listener and updateCachedData (push,
//               trimmed to 1000), on a shorter flood (it is three orders of magnitude slower).
// Prints the medians over the rounds. Run: NODE_ENV=production node flood.js [--quick]
// Needs the release addon: LIVECACHE_NODE_PROFILE=release node ../scripts/build.js

process.env.NODE_ENV = 'production'
const path = require('node:path')
const readline = require('node:readline')
const { spawn, spawnSync } = require('node:child_process')
const WebSocket = require('ws')
const { configureStore } = require('@reduxjs/toolkit')
const { createApi, fakeBaseQuery } = require('@reduxjs/toolkit/query')
const { Client } = require('..')
const { fmt, table } = require('./report')

const QUICK = process.argv.includes('--quick')
const N = QUICK ? 50000 : 200000
const N_RTK = QUICK ? 2000 : 10000
const ROUNDS = QUICK ? 1 : 5
const KEEP = 1000
const ROOT = path.resolve(__dirname, '..', '..')

const now = () => Number(process.hrtime.bigint()) / 1e6
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

/** Starts livecache-flood (built by cargo when needed); resolves to its port and the child. */
function startServer() {
  const build = spawnSync('cargo', ['build', '--release', '-q', '-p', 'livecache-chat-server', '--bin', 'livecache-flood'], { cwd: ROOT, stdio: 'inherit' })
  if (build.status !== 0) throw new Error('cargo build of livecache-flood failed')
  const child = spawn(path.join(ROOT, 'target', 'release', 'livecache-flood'), [], { stdio: ['pipe', 'pipe', 'inherit'] })
  return new Promise((resolve, reject) => {
    child.once('error', reject)
    readline.createInterface({ input: child.stdout }).once('line', (line) => {
      const m = /^PORT (\d+)$/.exec(line)
      if (m === null) reject(new Error(`livecache-flood said ${JSON.stringify(line)}`))
      else resolve({ port: Number(m[1]), child })
    })
  })
}

function buildRust() {
  const r = spawnSync('cargo', ['bench', '-q', '-p', 'livecache-core', '--bench', 'e2e', '--no-run'], { cwd: ROOT, stdio: 'inherit' })
  if (r.status !== 0) throw new Error('cargo bench --no-run of e2e failed')
}

/** The Rust e2e client (and its bare ceiling) on the same server, on `allocator` (`mimalloc` or
 * `system`): `{livecache, bare}` msg/s. */
function rust(url, allocator) {
  const r = spawnSync('cargo', ['bench', '-q', '-p', 'livecache-core', '--bench', 'e2e'], {
    cwd: ROOT,
    env: { ...process.env, E2E_EXTERNAL: url, LIVECACHE_BENCH_ALLOCATOR: allocator },
    encoding: 'utf8',
  })
  if (r.status !== 0) throw new Error(`the Rust e2e flood failed (${r.status}): ${r.stderr}`)
  return JSON.parse(r.stdout.trim().split('\n').pop())
}

/** livecache: filter + append maxLen 1000, every event to a JavaScript callback. */
async function livecache(url, n) {
  const config = { endpoints: { getMessages: { stream: { url, filter: { channel: '{arg}' }, apply: { append: { maxLen: KEEP } } } } } }
  const client = new Client(config)
  const start = now()
  let end = 0
  let events = 0
  await new Promise((resolve) => {
    // No query: the first message (appended to null) is the initial data, version 1, as in e2e.
    const sub = client.subscribe('getMessages', 'bench', (ev) => {
      events++
      if (ev.version !== undefined && ev.version >= n && end === 0) {
        end = now()
        sub.unsubscribe()
        resolve()
      }
    })
  })
  await client.close()
  return { rate: (n / (end - start)) * 1000, events }
}

/** The JavaScript ceiling: a bare `ws` client, each message parsed. */
function bare(url, n) {
  return new Promise((resolve, reject) => {
    const start = now()
    const ws = new WebSocket(url)
    let count = 0
    let last = null
    ws.on('error', reject)
    ws.on('message', (data) => {
      last = JSON.parse(data.toString())
      if (++count === n) {
        const ms = now() - start
        ws.close()
        resolve((n / ms) * 1000)
      }
    })
  })
}

/** RTK Query with the seed's pattern: a `ws` socket in onCacheEntryAdded, updateCachedData. */
async function rtk(url, n) {
  let done
  const finished = new Promise((resolve) => (done = resolve))
  const api = createApi({
    reducerPath: 'api',
    baseQuery: fakeBaseQuery(),
    keepUnusedDataFor: 0,
    endpoints: (build) => ({
      getMessages: build.query({
        queryFn: async () => ({ data: [] }),
        async onCacheEntryAdded(arg, { updateCachedData, cacheDataLoaded, cacheEntryRemoved }) {
          await cacheDataLoaded
          const ws = new WebSocket(url)
          let count = 0
          ws.on('message', (data) => {
            const m = JSON.parse(data.toString())
            if (m.channel !== arg) return
            updateCachedData((draft) => {
              draft.push(m)
              if (draft.length > KEEP) draft.splice(0, draft.length - KEEP)
            })
            if (++count === n) done()
          })
          await cacheEntryRemoved
          ws.close()
        },
      }),
    }),
  })
  const store = configureStore({ reducer: { api: api.reducer }, middleware: (gdm) => gdm().concat(api.middleware) })
  const start = now()
  const sub = store.dispatch(api.endpoints.getMessages.initiate('bench'))
  await finished
  const ms = now() - start
  sub.unsubscribe()
  return (n / ms) * 1000
}

;(async () => {
  buildRust()
  const { port, child } = await startServer()
  const url = (n) => `ws://127.0.0.1:${port}/${n}`
  const rows = { rustLc: [], rustBare: [], rustGlibc: [], node: [], ws: [], rtk: [] }
  let events = 0
  for (let round = 0; round < ROUNDS; round++) {
    const r = rust(url(N), 'mimalloc')
    rows.rustLc.push(r.livecache)
    rows.rustBare.push(r.bare)
    rows.rustGlibc.push(rust(url(N), 'system').livecache)
    const lc = await livecache(url(N), N)
    rows.node.push(lc.rate)
    events += lc.events
    rows.ws.push(await bare(url(N), N))
    rows.rtk.push(await rtk(url(N_RTK), N_RTK))
  }
  child.stdin.end()
  const rustLc = median(rows.rustLc)
  const pct = (x) => `${fmt((100 * x) / rustLc)}%`
  console.log(`WebSocket flood into a callback — node ${process.version}, RTK Query ${require('@reduxjs/toolkit/package.json').version}, median of ${ROUNDS}`)
  table(
    `flood: ${N.toLocaleString('en-US')} chat messages per round (RTK Query: ${N_RTK.toLocaleString('en-US')}), livecache-flood server, append maxLen ${KEEP}`,
    ['client', 'msg/s', 'of Rust e2e'],
    [
      ['Rust e2e: livecache-core → Rust callback (mimalloc)', fmt(rustLc), '100%'],
      ['Rust e2e on glibc malloc', fmt(median(rows.rustGlibc)), pct(median(rows.rustGlibc))],
      ['Rust ceiling: tokio-tungstenite + serde_json', fmt(median(rows.rustBare)), pct(median(rows.rustBare))],
      ['Node: livecache → JavaScript callback', fmt(median(rows.node)), pct(median(rows.node))],
      ['Node ceiling: ws + JSON.parse', fmt(median(rows.ws)), pct(median(rows.ws))],
      ['RTK Query: onCacheEntryAdded + ws + updateCachedData', fmt(median(rows.rtk)), pct(median(rows.rtk))],
    ],
  )
  console.log(`\nlivecache delivered ${fmt(events / ROUNDS)} events per flood of ${N.toLocaleString('en-US')} (bursts coalesce, E2)`)
})().catch((e) => {
  console.error(e)
  process.exit(1)
})
