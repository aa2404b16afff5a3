'use strict'
// Slow consumers keep memory bounded (E4, E5): while a flood of 20,000 messages of 4 KB (80 MB of
// events) is pushed, a `for await` reader of events() that stalls and a callback that cannot run
// (the JavaScript thread is busy pushing) leave the process within a few megabytes of where it
// started: their queues are the core's, bounded by queueLimit (1,024 by default), and collapse
// into one snapshot instead of holding the flood. Measured as the process's resident memory.
// What they get afterwards replays (fast-json-patch) to the entry's data.

const test = require('node:test')
const assert = require('node:assert/strict')
const { Client } = require('..')
const { waitFor, Recorder } = require('./helpers')

const MESSAGES = 20000
const BLOB = 'x'.repeat(4000)
const BOUND = 24 * 1024 * 1024
const MiB = (n) => (n / 2 ** 20).toFixed(1)

test('E4: a stalled for-await reader and a starved callback hold bounded queues during a flood', async () => {
  const client = new Client({ endpoints: { doc: { stream: { apply: 'replace' } } } }, { doc: { queryFn: () => ({ i: -1 }) } })
  try {
    const rec = new Recorder()
    const sub = client.subscribe('doc', undefined, rec.onEvent)
    await sub.loaded()
    await waitFor('the callback has the snapshot', () => rec.version === 1)
    const iterator = sub.events()[Symbol.asyncIterator]()
    const first = await iterator.next()
    assert.equal(first.value.type, 'snapshot')
    // The reader stalls from here: nothing calls next() until the flood is in.
    const before = process.memoryUsage().rss
    for (let i = 0; i < MESSAGES; i++) client.pushMessage('doc', undefined, { i, blob: BLOB })
    assert.equal(client.stats().messagesApplied, MESSAGES)
    const grown = process.memoryUsage().rss - before
    console.log(`stalled reader and starved callback: grew ${MiB(grown)} MiB over a ${MiB(MESSAGES * BLOB.length)} MiB flood`)
    assert.ok(grown < BOUND, `grew ${MiB(grown)} MiB while the consumers stalled`)

    const final = { i: MESSAGES - 1, blob: BLOB }
    assert.deepEqual(sub.snapshot().data, final)
    // The callback catches up: at most queueLimit events, the overflow collapsed into a snapshot.
    await waitFor('the callback caught up', () => rec.version === MESSAGES + 1)
    assert.ok(rec.events.length <= 1027, `${rec.events.length} events reached the callback`)
    assert.deepEqual(rec.data, final)
    assert.deepEqual(rec.problems, [])
    // The reader likewise: what waited replays from its first event to the same data.
    const got = []
    for (;;) {
      const { value } = await iterator.next()
      got.push(value)
      if (value.version === MESSAGES + 1) break
    }
    assert.ok(got.length <= 1025, `${got.length} events waited for the reader`)
    assert.equal(got[0].type, 'snapshot', 'a reader that fell behind starts again from a snapshot (E5)')
    const replica = new Recorder()
    got.forEach((e) => replica.record(e))
    assert.deepEqual(replica.data, final)
    assert.deepEqual(replica.problems, [])
    await iterator.return()
    sub.unsubscribe()
  } finally {
    await client.close()
  }
})
