'use strict'
// Writes (SPEC W1, W2, W4) against a Node HTTP server and an npm `ws` WebSocket server on
// 127.0.0.1, started here: `POST /messages/:channel` stores a message and broadcasts it (at once
// or after a delay), `GET /messages/:channel` is counted. `mutate` resolves after the refetch its
// invalidation started has landed; a refused post is a MutationError with the server's answer;
// bad calls reject and send nothing.

const test = require('node:test')
const assert = require('node:assert/strict')
const http = require('node:http')
const { WebSocketServer } = require('ws')
const { Client, InvalidArgument, MutationError, NotFound, WrongEndpointKind, LivecacheError } = require('..')
const { waitFor, Recorder, settle, expectThrows } = require('./helpers')

async function server() {
  const stored = []
  const frames = []
  const sockets = new Set()
  const counts = { fetches: 0, posts: 0 }
  // holdEcho: a stored post's echo waits for `releaseEchoes()` (a late echo).
  const knobs = { postStatus: 201, holdEcho: false }
  const heldEchoes = []
  const broadcast = (m) => {
    for (const ws of sockets) ws.send(JSON.stringify(m))
  }
  const http_ = http.createServer((req, res) => {
    const channel = decodeURIComponent(req.url.split('/').pop())
    if (req.method === 'GET') {
      counts.fetches++
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify(stored.filter((m) => m.channel === channel)))
      return
    }
    let body = ''
    req.on('data', (c) => (body += c))
    req.on('end', () => {
      counts.posts++
      if (knobs.postStatus !== 201) {
        res.writeHead(knobs.postStatus, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ error: 'no posting today' }))
        return
      }
      const m = { id: stored.length + 1, channel, ...JSON.parse(body) }
      stored.push(m)
      // A late echo: the response (and the refetch it causes) come before the stream's copy.
      if (knobs.holdEcho) heldEchoes.push(m)
      else broadcast(m)
      res.writeHead(201, { 'content-type': 'application/json' })
      res.end(JSON.stringify(m))
    })
  })
  const wss = new WebSocketServer({ server: http_ })
  wss.on('connection', (ws) => {
    sockets.add(ws)
    ws.on('message', (data) => frames.push(JSON.parse(data.toString())))
    ws.on('close', () => sockets.delete(ws))
  })
  await new Promise((resolve) => http_.listen(0, '127.0.0.1', resolve))
  return {
    port: http_.address().port,
    counts,
    knobs,
    frames,
    releaseEchoes() {
      for (const m of heldEchoes.splice(0)) broadcast(m)
    },
    /** Another user's message: stored and broadcast at once. */
    other(channel, text) {
      const m = { id: stored.length + 1, channel, text }
      stored.push(m)
      broadcast(m)
    },
    async close() {
      for (const ws of sockets) ws.terminate()
      wss.close()
      const closed = new Promise((resolve) => http_.close(resolve))
      http_.closeAllConnections()
      await closed
    },
  }
}

function config(port) {
  return {
    baseUrl: `http://127.0.0.1:${port}/`,
    tagTypes: ['Messages'],
    endpoints: {
      getMessages: {
        query: 'messages/{arg}',
        providesTags: [{ type: 'Messages', id: '{arg}' }],
        stream: { url: `ws://127.0.0.1:${port}/`, filter: { channel: '{arg}' }, apply: { append: { dedupeBy: 'id' } } },
      },
      sendMessage: {
        mutation: { url: 'messages/{arg.channel}', body: { text: '{arg.text}' } },
        invalidatesTags: [{ type: 'Messages', id: '{arg.channel}' }],
      },
      typing: { mutation: { send: { endpoint: 'getMessages', arg: '{arg}', message: { typing: '{arg}' } } } },
    },
  }
}

/** Runs `body(srv, client)` against a fresh server and client, closing both after. */
async function withClient(body) {
  const srv = await server()
  const client = new Client(config(srv.port))
  try {
    await body(srv, client)
  } finally {
    await client.close()
    await srv.close()
  }
}

/** Subscribed to `getMessages('redux')`: loaded, stream open, no fetch in flight (the open's
 * resync, if any, has landed), every event recorded. */
async function subscribed(client, after = () => {}) {
  const rec = new Recorder()
  const sub = client.subscribe('getMessages', 'redux', (ev) => {
    rec.record(ev)
    after(ev, rec)
  })
  await waitFor('loaded and open', () => {
    const s = sub.snapshot()
    return s.status === 'fulfilled' && s.stream.state === 'open'
  })
  await settle(sub, rec)
  return { rec, sub }
}

test('W1/W4: mutate resolves with the response after the invalidated entry refetched', () =>
  withClient(async (srv, client) => {
    const { rec, sub } = await subscribed(client)
    const fetches = srv.counts.fetches
    // The echo is late: only the refetch can show the message when mutate resolves (W4).
    srv.knobs.holdEcho = true
    const result = await client.mutate('sendMessage', { channel: 'redux', text: 'from node' })
    assert.deepEqual(result, { id: 1, channel: 'redux', text: 'from node' })
    assert.equal(srv.counts.fetches, fetches + 1, 'one refetch, counted on the server')
    assert.deepEqual(sub.snapshot().data.map((m) => m.text), ['from node'])
    // The late echo is deduplicated by id: the message is there once.
    srv.releaseEchoes()
    await waitFor('the echo', () => client.stats().messagesApplied >= 1)
    assert.deepEqual(sub.snapshot().data.map((m) => m.text), ['from node'])
    await settle(sub, rec)
    rec.check(sub.snapshot(), 'after the echo')
    const st = client.stats()
    assert.deepEqual([st.mutations, st.mutationErrors, st.invalidations], [1, 0, 1])
    sub.unsubscribe()
  }))

test('W1: a refused post rejects with MutationError carrying the answer; it still invalidates', () =>
  withClient(async (srv, client) => {
    const { rec, sub } = await subscribed(client)
    const fetches = srv.counts.fetches
    srv.knobs.postStatus = 503
    const e = await client.mutate('sendMessage', { channel: 'redux', text: 'x' }).then(
      () => assert.fail('the mutation should fail'),
      (e) => e,
    )
    assert.ok(e instanceof MutationError && e instanceof LivecacheError, `${e}`)
    assert.equal(e.code, 'MutationError')
    assert.equal(e.status, 503)
    assert.deepEqual(e.data, { error: 'no posting today' })
    assert.deepEqual(e.error, { status: 503, data: { error: 'no posting today' } })
    assert.equal(srv.counts.fetches, fetches + 1, 'RTK invalidates on failure too')
    assert.deepEqual(sub.snapshot().data, [])
    sub.unsubscribe()
  }))

test('W1: wrong endpoint kinds, bad args and a send without an entry reject and send nothing', () =>
  withClient(async (srv, client) => {
    await assert.rejects(client.mutate('getMessages', 'redux'), (e) => e instanceof WrongEndpointKind && e.code === 'WrongEndpointKind')
    expectThrows(() => client.subscribe('sendMessage', undefined, () => {}), WrongEndpointKind, 'WrongEndpointKind')
    await assert.rejects(client.mutate('sendMessage', { channel: 'redux' }), (e) => e instanceof InvalidArgument && /text/.test(e.message))
    await assert.rejects(client.mutate('typing', 'nobody'), NotFound)
    assert.equal(srv.counts.posts, 0, 'nothing reached the server')
    expectThrows(() => client.invalidateTags(['Users']), InvalidArgument, 'InvalidArgument')
    expectThrows(() => client.invalidateTags({ type: 'Messages' }), InvalidArgument, 'InvalidArgument')
  }))

test('W1: a send mutation writes its frame on the entry stream; invalidateTags refetches', () =>
  withClient(async (srv, client) => {
    const { rec, sub } = await subscribed(client)
    assert.equal(await client.mutate('typing', 'redux'), null)
    await waitFor('the frame', () => srv.frames.some((f) => f.typing === 'redux'))
    const fetches = srv.counts.fetches
    const snapshots = rec.types().filter((t) => t === 'snapshot').length
    client.invalidateTags([{ type: 'Messages', id: 'redux' }])
    await waitFor('the refetch', () => rec.types().filter((t) => t === 'snapshot').length > snapshots)
    assert.equal(srv.counts.fetches, fetches + 1)
    client.invalidateTags([{ type: 'Messages', id: 'other' }])
    assert.equal(client.stats().invalidations, 1, 'an id hits only that id')
    sub.unsubscribe()
  }))

test('W3: an optimistic post shows at once, stays above other messages, and its late echo confirms it without a flicker', () =>
  withClient(async (srv, client) => {
    // Every state a replica of the events goes through, replayed by fast-json-patch (Recorder).
    const states = []
    const { rec, sub } = await subscribed(client, (ev, r) => {
      if (ev.type === 'snapshot' || ev.type === 'patch') states.push(structuredClone(r.data))
    })
    srv.knobs.holdEcho = true
    const layer = { endpoint: 'getMessages', arg: 'redux', message: { id: 'local', text: 'mine', pending: true } }
    const done = client.mutate('sendMessage', { channel: 'redux', text: 'mine' }, { optimistic: [layer], confirm: { text: 'mine' } })
    const shown = sub.snapshot()
    assert.deepEqual(shown.data, [{ id: 'local', text: 'mine', pending: true }], 'shown before any answer')
    assert.equal(shown.optimistic, 1)
    const result = await done
    assert.equal(result.text, 'mine')
    const after = sub.snapshot()
    assert.equal(after.optimistic, undefined, 'W4: confirmed when mutate resolves')
    assert.deepEqual(after.data, [{ id: 1, channel: 'redux', text: 'mine' }])
    srv.releaseEchoes()
    srv.other('redux', 'someone else')
    await waitFor('the other message', () => sub.snapshot().data.length === 2)
    await settle(sub, rec)
    rec.check(sub.snapshot(), 'after confirmation')
    const first = states.findIndex((d) => d.some((m) => m.text === 'mine'))
    assert.ok(first >= 0, 'the layer reached the subscriber')
    for (const d of states.slice(first)) assert.equal(d.filter((m) => m.text === 'mine').length, 1, JSON.stringify(d))
  }))

test('W3: a refused post takes its layer back; bad options reject and change nothing', () =>
  withClient(async (srv, client) => {
    const { rec, sub } = await subscribed(client)
    srv.knobs.postStatus = 500
    const layer = { endpoint: 'getMessages', arg: 'redux', message: { id: 'local', text: 'doomed' } }
    const failed = client.mutate('sendMessage', { channel: 'redux', text: 'doomed' }, { optimistic: [layer] })
    assert.equal(sub.snapshot().data.length, 1)
    await assert.rejects(failed, MutationError)
    assert.deepEqual(sub.snapshot().data, [])
    srv.knobs.postStatus = 201
    const posts = srv.counts.posts
    const arg = { channel: 'redux', text: 'x' }
    await assert.rejects(client.mutate('sendMessage', arg, { optimistc: [] }), InvalidArgument)
    await assert.rejects(client.mutate('sendMessage', arg, { optimistic: [{ endpoint: 'nope', message: {} }] }), (e) => e.code === 'UnknownEndpoint')
    await assert.rejects(client.mutate('sendMessage', arg, { optimistic: [{ endpoint: 'getMessages', arg: 'redux', message: { noId: 1 } }] }), InvalidArgument)
    await assert.rejects(client.mutate('sendMessage', arg, { confirmTimeoutMs: -1 }), InvalidArgument)
    await assert.rejects(client.mutate('sendMessage', arg, { confirm: { t: NaN } }), (e) => e.code === 'InvalidInput')
    assert.equal(srv.counts.posts, posts, 'nothing was sent')
    await settle(sub, rec)
    rec.check(sub.snapshot(), 'after the refusals')
  }))

test('W1: a mutationFn hook is the write; a throw is a MutationError; beside a query it is a ConfigError', () =>
  withClient(async (srv, client) => {
    await client.close()
    const cfg = config(srv.port)
    cfg.endpoints.note = { invalidatesTags: [{ type: 'Messages', id: '{arg.channel}' }] }
    const hooked = new Client(cfg, {
      note: {
        mutationFn: async (arg) => {
          if (!arg.ok) throw Object.assign(new Error('refused by the hook'))
          return { noted: arg.text }
        },
      },
    })
    try {
      const { sub } = await subscribed(hooked)
      const fetches = srv.counts.fetches
      assert.deepEqual(await hooked.mutate('note', { channel: 'redux', text: 'hi', ok: true }), { noted: 'hi' })
      assert.equal(srv.counts.fetches, fetches + 1, 'invalidatesTags applied')
      const e = await hooked.mutate('note', { channel: 'redux', ok: false }).then(
        () => assert.fail('should fail'),
        (e) => e,
      )
      assert.ok(e instanceof MutationError, `${e}`)
      assert.equal(e.status, 'CUSTOM_ERROR')
      assert.match(String(e.data), /refused by the hook/)
      expectThrows(() => hooked.subscribe('note', undefined, () => {}), WrongEndpointKind, 'WrongEndpointKind')
      sub.unsubscribe()
    } finally {
      await hooked.close()
    }
    assert.throws(() => new Client(cfg, { getMessages: { mutationFn: () => 1 } }), (e) => e.code === 'ConfigError' && /mutationFn/.test(e.message))
  }))

/** The config without its tag lists, and a client whose tags hooks stand in for them. */
async function withTagsHooks(hooks, body) {
  const srv = await server()
  const cfg = config(srv.port)
  delete cfg.endpoints.getMessages.providesTags
  delete cfg.endpoints.sendMessage.invalidatesTags
  const client = new Client(cfg, hooks)
  try {
    await body(srv, client)
  } finally {
    await client.close()
    await srv.close()
  }
}

test('W2: providesTags and invalidatesTags hooks compute the tags; upsertQueryData runs providesTags', () => {
  const provided = []
  const invalidated = []
  const hooks = {
    getMessages: {
      providesTags: (data, arg) => {
        provided.push({ data, arg })
        return [{ type: 'Messages', id: arg }]
      },
    },
    sendMessage: {
      invalidatesTags: (result, error, arg) => {
        invalidated.push({ result, error, arg })
        return [{ type: 'Messages', id: arg.channel }]
      },
    },
  }
  return withTagsHooks(hooks, async (srv, client) => {
    const { sub } = await subscribed(client)
    assert.deepEqual(provided.at(-1), { data: sub.snapshot().data, arg: 'redux' }, 'it got the fetched data and the arg')
    const fetches = srv.counts.fetches
    const arg = { channel: 'redux', text: 'tagged by a hook' }
    const result = await client.mutate('sendMessage', arg)
    assert.equal(srv.counts.fetches, fetches + 1, 'the hook tag matched the hook-provided one')
    assert.deepEqual(invalidated.at(-1), { result, error: undefined, arg })
    // On failure: no result, the error value; its tags still apply (RTK).
    srv.knobs.postStatus = 500
    await assert.rejects(client.mutate('sendMessage', arg), MutationError)
    assert.equal(invalidated.at(-1).result, undefined)
    assert.equal(invalidated.at(-1).error.status, 500)
    assert.equal(srv.counts.fetches, fetches + 2)
    client.upsertQueryData('getMessages', 'general', [])
    assert.deepEqual(provided.at(-1), { data: [], arg: 'general' })
    client.invalidateTags([{ type: 'Messages', id: 'general' }])
    expectThrows(() => client.snapshot('getMessages', 'general'), NotFound, 'NotFound') // unused and invalidated: removed
    sub.unsubscribe()
  })
})

test('W2: tags hooks that throw or answer unknown types are clear errors; nothing is invalidated', () => {
  const hooks = {
    getMessages: {
      providesTags: (data, arg) => {
        if (arg === 'bad') return ['Messages', 'Users']
        if (arg === 'fails') throw new Error('no tags today')
        if (arg === 'async') return Promise.resolve(['Messages'])
        return [{ type: 'Messages', id: arg }]
      },
    },
    sendMessage: {
      invalidatesTags: (result, error, arg) => {
        if (arg.text === 'bad') return [{ type: 'Nope', id: 1 }]
        throw new Error('cannot tell')
      },
    },
  }
  return withTagsHooks(hooks, async (srv, client) => {
    const cases = [
      ['bad', /"Users" is not in tagTypes/],
      ['fails', /providesTags failed: no tags today/],
      ['async', /returned a promise/],
    ]
    for (const [arg, words] of cases) {
      const rec = new Recorder()
      const sub = client.subscribe('getMessages', arg, rec.onEvent)
      await waitFor(`the ${arg} error`, () => rec.types().includes('error'))
      const error = rec.events.find((e) => e.type === 'error')
      assert.equal(error.reason, 'hook')
      assert.match(error.message, words)
      assert.ok(rec.types().indexOf('snapshot') < rec.types().indexOf('error'), 'the data first, then the error')
      assert.deepEqual(sub.snapshot().data, [], 'the data is kept')
      sub.unsubscribe()
    }
    client.invalidateTags(['Messages'])
    assert.equal(client.stats().invalidations, 0, 'those entries provide no tags')
    // upsertQueryData: refused, nothing changed.
    for (const [arg, words] of cases) {
      const e = expectThrows(() => client.upsertQueryData('getMessages', arg, [{ text: 'upserted' }]), LivecacheError, 'PatchError')
      assert.match(e.message, words)
      assert.deepEqual(client.snapshot('getMessages', arg).data, [], 'not upserted')
    }
    const posts = srv.counts.posts
    for (const [text, words] of [['bad', /"Nope" is not in tagTypes/], ['other', /invalidatesTags failed: cannot tell/]]) {
      const e = await client.mutate('sendMessage', { channel: 'redux', text }).then(
        () => assert.fail('should fail'),
        (e) => e,
      )
      assert.ok(e instanceof MutationError, `${e}`)
      assert.equal(e.status, 'CUSTOM_ERROR')
      assert.match(e.error.error, words)
      assert.equal(e.data.text, text, "data is the write's own answer")
    }
    assert.equal(srv.counts.posts, posts + 2, 'the writes happened')
    assert.equal(client.stats().invalidations, 0)
  })
})

test('W2: a tags hook beside its config key, or on the wrong endpoint kind, is a ConfigError', async () => {
  const srv = await server()
  try {
    const tagged = config(srv.port)
    const untagged = config(srv.port)
    delete untagged.endpoints.getMessages.providesTags
    delete untagged.endpoints.sendMessage.invalidatesTags
    const tags = () => []
    const cases = [
      [tagged, { getMessages: { providesTags: tags } }, /hooks\.getMessages\.providesTags.*in its config too/],
      [tagged, { sendMessage: { invalidatesTags: tags } }, /hooks\.sendMessage\.invalidatesTags.*in its config too/],
      [untagged, { getMessages: { invalidatesTags: tags } }, /hooks\.getMessages\.invalidatesTags.*mutation endpoint/],
      [untagged, { sendMessage: { providesTags: tags } }, /hooks\.sendMessage.*providesTags/],
    ]
    for (const [cfg, hooks, words] of cases) {
      assert.throws(() => new Client(cfg, hooks), (e) => e.code === 'ConfigError' && words.test(e.message), String(words))
    }
  } finally {
    await srv.close()
  }
})

/** A client whose `post` mutation is a `mutationFn` the test answers when it chooses. */
async function withHeldPost(body) {
  const srv = await server()
  const cfg = config(srv.port)
  cfg.endpoints.post = { confirm: { text: '{arg.text}' } }
  const writes = []
  const client = new Client(cfg, {
    post: {
      mutationFn: (arg) => {
        const d = deferred()
        writes.push(d)
        return d.promise
      },
    },
  })
  try {
    await body(srv, client, writes)
  } finally {
    await client.close()
    await srv.close()
  }
}

function deferred() {
  let resolve
  const promise = new Promise((r) => (resolve = r))
  return { promise, resolve }
}

test('W3: a recipe layer runs once on the shown data, stays above other messages, and its echo confirms it', () =>
  withHeldPost(async (srv, client, writes) => {
    const { rec, sub } = await subscribed(client)
    const given = []
    const recipe = (draft) => {
      given.push(JSON.parse(JSON.stringify(draft))) // a recording draft: copied as JSON
      draft.push({ id: 'local', text: 'from a recipe', pending: true })
    }
    const done = client.mutate('post', { text: 'from a recipe' }, { optimistic: [{ endpoint: 'getMessages', arg: 'redux', recipe }] })
    assert.deepEqual(given, [[]], 'ran once, on the data shown')
    assert.equal(sub.snapshot().optimistic, 1)
    await waitFor('the write reached the hook', () => writes.length === 1)
    srv.other('redux', 'someone else')
    await waitFor('the other message', () => sub.snapshot().data.some((m) => m.text === 'someone else'))
    assert.deepEqual(sub.snapshot().data.map((m) => m.text), ['someone else', 'from a recipe'], 'the append stays on top')
    writes[0].resolve({ stored: true })
    srv.other('redux', 'from a recipe') // the echo
    assert.deepEqual(await done, { stored: true })
    const after = sub.snapshot()
    assert.equal(after.optimistic, undefined, 'W4: confirmed when mutate resolves')
    assert.deepEqual(after.data.map((m) => m.text), ['someone else', 'from a recipe'])
    assert.equal(given.length, 1, 'not run again on a rebase')
    await settle(sub, rec)
    rec.check(sub.snapshot(), 'after the echo')
    sub.unsubscribe()
  }))

test('W3: a recipe that throws rejects with its own error; bad recipe layers reject; nothing is sent', () =>
  withHeldPost(async (srv, client, writes) => {
    const { sub } = await subscribed(client)
    const before = sub.snapshot()
    const refused = new Error('not this one')
    const layers = [
      { endpoint: 'getMessages', arg: 'redux', recipe: (d) => [...d, { id: 'ok' }] },
      {
        endpoint: 'getMessages',
        arg: 'redux',
        recipe: (d) => {
          d.push({ id: 'half' })
          throw refused
        },
      },
    ]
    await assert.rejects(client.mutate('post', { text: 'x' }, { optimistic: layers }), (e) => e === refused)
    const cases = [
      [{ endpoint: 'getMessages', arg: 'redux', recipe: 3 }, InvalidArgument, /must be a function/],
      [{ endpoint: 'getMessages', arg: 'redux', recipe: () => {}, message: {} }, InvalidArgument, /no key "message"/],
      [{ endpoint: 'post', recipe: () => {} }, WrongEndpointKind, /mutation endpoint/],
    ]
    for (const [layer, cls, words] of cases) {
      await assert.rejects(client.mutate('post', { text: 'x' }, { optimistic: [layer] }), (e) => e instanceof cls && words.test(e.message))
    }
    assert.equal(writes.length, 0, 'nothing was sent')
    assert.deepEqual(sub.snapshot(), before, 'nothing changed')
    sub.unsubscribe()
  }))
