'use strict'
// The manual clock (`{clock: 'manual'}`, `advance(ms)`): keepUnusedDataFor (L7) without sleeping,
// and what a lifecycle sees of its entry once it is gone (SPEC §6).

const test = require('node:test')
const assert = require('node:assert/strict')
const livecache = require('..')
const { Client } = livecache
const { waitFor, expectThrows } = require('./helpers')

test('L7: the entry goes exactly when the manual clock reaches its deadline', async () => {
  const client = new Client({ endpoints: { a: { keepUnusedDataFor: 2 } } }, { a: { queryFn: () => [1] } }, { clock: 'manual' })
  try {
    const sub = client.subscribe('a', 1)
    assert.deepEqual(await sub.loaded(), [1])
    sub.unsubscribe()
    client.advance(1999)
    assert.deepEqual(client.snapshot('a', 1).data, [1])
    client.advance(1)
    expectThrows(() => client.snapshot('a', 1), livecache.NotFound, 'NotFound')
    assert.equal(client.stats().entriesRemoved, 1)
  } finally {
    await client.close()
  }
})

test('advance needs the manual clock; an unknown clock is InvalidArgument', async () => {
  const hooks = { a: { queryFn: () => 1 } }
  const system = new Client({ endpoints: { a: {} } }, hooks)
  expectThrows(() => system.advance(10), livecache.InvalidArgument, 'InvalidArgument')
  await system.close()
  expectThrows(() => new Client({ endpoints: { a: {} } }, hooks, { clock: 'sundial' }), livecache.InvalidArgument, 'InvalidArgument')
  const manual = new Client({ endpoints: { a: {} } }, hooks, { clock: 'manual' })
  expectThrows(() => manual.advance(-1), livecache.InvalidArgument, 'InvalidArgument')
  expectThrows(() => manual.advance('1'), livecache.InvalidArgument, 'InvalidArgument')
  await manual.close()
  expectThrows(() => manual.advance(0), livecache.Closed, 'Closed')
})

test('getCacheEntry after removal is the uninitialized entry; updateCachedData fails', async () => {
  const log = []
  const client = new Client(
    { keepUnusedDataFor: 5, endpoints: { a: {} } },
    {
      a: {
        queryFn: () => ({ x: 1 }),
        async onCacheEntryAdded(arg, { cacheDataLoaded, cacheEntryRemoved, getCacheEntry, updateCachedData }) {
          await cacheDataLoaded
          log.push(getCacheEntry().status)
          await cacheEntryRemoved
          log.push(getCacheEntry())
          try {
            updateCachedData(() => {})
            log.push('updated')
          } catch (e) {
            log.push(e.code)
          }
        },
      },
    },
    { clock: 'manual' },
  )
  try {
    const sub = client.subscribe('a', 1)
    await sub.loaded()
    await waitFor('the hook saw the data', () => log.length === 1)
    sub.unsubscribe()
    client.advance(5000)
    await waitFor('the hook saw the removal', () => log.length === 3)
    assert.deepEqual(log, ['fulfilled', { key: 'a(1)', status: 'uninitialized' }, 'CacheEntryRemoved'])
  } finally {
    await client.close()
  }
})
