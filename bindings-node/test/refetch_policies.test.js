'use strict'
// SPEC §12 against a Node HTTP server on 127.0.0.1 that counts its fetches, on the manual clock
// (no sleeps): P1 pollingInterval (smallest wins, stops when no poller is left), P2
// refetchOnMountOrArgChange, P3 prefetch and resetApiState, and their bad input.

const test = require('node:test')
const assert = require('node:assert/strict')
const http = require('node:http')
const { Client, InvalidArgument, WrongEndpointKind } = require('..')
const { waitFor } = require('./helpers')

async function server() {
  const counts = { fetches: 0 }
  const http_ = http.createServer((req, res) => {
    counts.fetches++
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify([{ id: counts.fetches }]))
  })
  await new Promise((resolve) => http_.listen(0, '127.0.0.1', resolve))
  return {
    counts,
    url: `http://127.0.0.1:${http_.address().port}/`,
    async close() {
      const closed = new Promise((resolve) => http_.close(resolve))
      http_.closeAllConnections()
      await closed
    },
  }
}

async function withClient(extra, body) {
  const srv = await server()
  const client = new Client(
    { baseUrl: srv.url, keepUnusedDataFor: 60, ...extra, endpoints: { getItems: { query: 'items/{arg}' }, ping: { mutation: 'ping' } } },
    {},
    { clock: 'manual' },
  )
  try {
    await body(srv, client)
  } finally {
    await client.close()
    await srv.close()
  }
}

const idle = (client) => waitFor('no fetch in flight', () => client.snapshot('getItems', 'a').status === 'fulfilled')

test('P1: polling is counted on the server; the smallest interval wins; it stops with the last poller', () =>
  withClient({}, async (srv, client) => {
    const slow = client.subscribe('getItems', 'a', null, { pollingInterval: 1000 })
    await slow.loaded()
    const base = srv.counts.fetches
    const fast = client.subscribe('getItems', 'a', null, { pollingInterval: 250 })
    for (let i = 1; i <= 3; i++) {
      await idle(client)
      client.advance(250)
      await waitFor(`poll ${i}`, () => srv.counts.fetches === base + i)
    }
    assert.equal(client.stats().polls, 3)
    fast.unsubscribe()
    await idle(client)
    client.advance(500)
    assert.equal(srv.counts.fetches, base + 3, 'back to 1000 ms from the last fetch')
    client.advance(500)
    await waitFor('the slow poll', () => srv.counts.fetches === base + 4)
    slow.unsubscribe()
    await idle(client)
    client.advance(10000)
    assert.equal(srv.counts.fetches, base + 4, 'no poller left, no poll')
    for (const bad of [0, -1, NaN, '1s']) {
      assert.throws(() => client.subscribe('getItems', 'b', null, { pollingInterval: bad }), (e) => e.code === 'InvalidArgument' || e.code === 'InvalidInput')
    }
    assert.throws(() => client.subscribe('getItems', 'b', null, { polling: 5 }), InvalidArgument)
  }))

test('P2: refetchOnMountOrArgChange true or seconds', () =>
  withClient({ refetchOnMountOrArgChange: 30 }, async (srv, client) => {
    await client.subscribe('getItems', 'a').loaded()
    const base = srv.counts.fetches
    client.advance(29000)
    client.subscribe('getItems', 'a')
    assert.equal(srv.counts.fetches, base, '29 s old is fresh for 30 s')
    client.advance(1000)
    client.subscribe('getItems', 'a')
    await waitFor('refetched at 30 s', () => srv.counts.fetches === base + 1)
    await idle(client)
    client.subscribe('getItems', 'a', null, { refetchOnMountOrArgChange: true })
    await waitFor('true refetches', () => srv.counts.fetches === base + 2)
  }))

test('P3: prefetch without subscribing, force and ifOlderThan; resetApiState removes all and the client goes on', () =>
  withClient({}, async (srv, client) => {
    client.prefetch('getItems', 'a')
    await idle(client)
    const base = srv.counts.fetches
    client.prefetch('getItems', 'a')
    client.prefetch('getItems', 'a', { ifOlderThan: 10 })
    assert.equal(srv.counts.fetches, base)
    client.prefetch('getItems', 'a', { force: true })
    await waitFor('force', () => srv.counts.fetches === base + 1)
    const events = []
    const sub = client.subscribe('getItems', 'b', (ev) => events.push(ev.type))
    await sub.loaded()
    client.resetApiState()
    await waitFor('removed', () => events.includes('removed'))
    assert.equal(client.stats().entries, 0)
    await client.subscribe('getItems', 'a').loaded()
    assert.throws(() => client.prefetch('getItems', 'a', { ifOlderThan: 0 }), InvalidArgument)
    assert.throws(() => client.prefetch('ping'), WrongEndpointKind)
  }))
