'use strict'
// livecache for Node.js: the public API of SPEC §7 Node over the native layer (src/lib.rs).

const errors = require('./lib/errors')
const { toJSONText, argText } = require('./lib/json')
const { Recorder, record } = require('./lib/draft')
const { applyPatches } = require('./lib/patch')

const { native, makeError, fromNative } = errors

const binding = require('./lib/addon').load()

// Host-call kinds, as in src/bridge.rs.
const QUERY_FN = 1
const TRANSFORM_RESPONSE = 2
const ON_MESSAGE = 3
const ON_CACHE_ENTRY_ADDED = 4
const SETTLE = 5
const LIFECYCLE_LOADED = 6
const LIFECYCLE_REMOVED = 7
const PREPARE_HEADERS = 8
const MUTATION_FN = 9
const PROVIDES_TAGS = 10
const INVALIDATES_TAGS = 11

const HOOK_NAMES = [
  'queryFn',
  'transformResponse',
  'onMessage',
  'onCacheEntryAdded',
  'prepareHeaders',
  'mutationFn',
  'providesTags',
  'invalidatesTags',
]

/** Reports a callback's exception as an uncaught exception, after the others ran (SPEC §5). */
function reportUncaught(e) {
  process.nextTick(() => {
    throw e
  })
}

function messageOf(e) {
  if (e instanceof Error) return e.message
  try {
    return typeof e === 'string' ? e : JSON.stringify(e)
  } catch {
    return String(e)
  }
}

function argOf(call) {
  return Object.prototype.hasOwnProperty.call(call, 'a') ? call.a : undefined
}

/** W2: a tags hook's answer, `{tags}` or `{error}`; the engine checks the tags themselves. The
 * hooks are synchronous, as RTK Query's are: a promise is refused rather than awaited. */
function tagsAnswer(name, thunk) {
  let tags
  try {
    tags = thunk()
  } catch (e) {
    return { error: messageOf(e) }
  }
  if (tags !== null && typeof tags === 'object' && typeof tags.then === 'function') {
    return { error: `${name} returned a promise; it must return the tags` }
  }
  return { tags: tags === undefined ? null : tags }
}

/** A failed `queryFn` as the entry's `error` (L6): a thrown Error becomes RTK's CUSTOM_ERROR shape;
 * any other thrown value is the error value itself. */
function fetchErrorText(e) {
  if (e instanceof Error) return JSON.stringify({ status: 'CUSTOM_ERROR', error: e.message })
  try {
    return toJSONText(e === undefined ? null : e)
  } catch (inner) {
    return JSON.stringify({ status: 'CUSTOM_ERROR', error: inner.message })
  }
}

function deferred() {
  let resolve, reject
  const promise = new Promise((res, rej) => {
    resolve = res
    reject = rej
  })
  return { promise, resolve, reject }
}

function settle(d, payload) {
  const s = JSON.parse(payload)
  if (Object.prototype.hasOwnProperty.call(s, 'value')) return d.resolve(s.value)
  const e = makeError(s.kind, s.message)
  if (s.error !== undefined) {
    // MutationError (W1): the server's answer in fetchBaseQuery's shape, and its fields.
    e.error = s.error
    e.status = s.error && s.error.status
    e.data = s.error && (s.error.data !== undefined ? s.error.data : s.error.error)
  }
  d.reject(e)
}

function updateResult(client, endpoint, arg, text) {
  const r = JSON.parse(text)
  return {
    patches: r.patches,
    inversePatches: r.inversePatches,
    undo: () => client.patchQueryData(endpoint, arg, r.inversePatches),
  }
}

class Subscription {
  #client
  #native
  #id
  #onEvent
  #iterators = new Set()
  #active = true

  /** @internal */
  constructor(client, nativeSub, id, onEvent) {
    this.#client = client
    this.#native = nativeSub
    this.#id = id
    this.#onEvent = onEvent === null ? undefined : onEvent
    this.key = nativeSub.key
  }

  /** @internal Delivers one event to the callback and to every `events()` iterator. */
  _deliver(event) {
    if (this.#onEvent !== undefined) {
      try {
        this.#onEvent(event)
      } catch (e) {
        reportUncaught(e)
      }
    }
    for (const it of this.#iterators) it.notify()
  }

  get active() {
    return this.#active
  }

  /** The entry's current state (SPEC §5). */
  snapshot() {
    return JSON.parse(native(() => this.#native.snapshot()))
  }

  /** The data once loaded (L2); rejects with CacheEntryRemoved if the entry goes first. */
  loaded() {
    const d = deferred()
    const id = this.#client[SETTLES].add(d)
    try {
      this.#native.loaded(id)
    } catch (e) {
      this.#client[SETTLES].remove(id)
      d.reject(fromNative(e))
    }
    return d.promise
  }

  /** The entry's state now, then every later event, as an async iterator; it ends after a
   * `removed` event, on `unsubscribe()` and on `close()`. The events wait in a queue of the
   * core's, bounded like the subscription's own (E4, E5): a reader more than `queueLimit` events
   * behind gets one `snapshot` instead of the steps it missed. */
  events() {
    const reader = this.#active ? native(() => this.#native.events()) : null
    let waiting = null
    let finished = reader === null
    // The subscription ended (unsubscribe, close): what waits is still read, then it is done.
    let ended = false
    const iterators = this.#iterators
    const take = () => {
      if (!finished) {
        const text = reader.next()
        if (text !== null) return { value: JSON.parse(text), done: false }
        if (!ended && !reader.done()) return null
        finished = true
        iterators.delete(it)
      }
      return { value: undefined, done: true }
    }
    const settle = () => {
      if (waiting === null) return
      const result = take()
      if (result === null) return
      const w = waiting
      waiting = null
      w(result)
    }
    const it = {
      /** @internal The subscription's callback ran: its events reached the reader too. */
      notify: settle,
      /** @internal The subscription ended. */
      end() {
        ended = true
        settle()
      },
      next() {
        const result = take()
        if (result !== null) return Promise.resolve(result)
        return new Promise((resolve) => {
          waiting = resolve
        })
      },
      return() {
        if (reader !== null) reader.close()
        finished = true
        iterators.delete(it)
        return Promise.resolve({ value: undefined, done: true })
      },
      [Symbol.asyncIterator]() {
        return it
      },
    }
    if (!finished) iterators.add(it)
    return it
  }

  /** Stops the subscription: no callback of it runs afterwards (SPEC §5). Idempotent. */
  unsubscribe() {
    if (!this.#active) return
    this.#active = false
    try {
      native(() => this.#native.unsubscribe())
    } finally {
      this.#client[FORGET](this.#id, this.key)
      for (const it of [...this.#iterators]) it.end()
    }
  }

  /** @internal The client closed. */
  _closed() {
    this.#active = false
    for (const it of [...this.#iterators]) it.end()
  }
}

const SETTLES = Symbol('settles')
const FORGET = Symbol('forget')

class Client {
  #native
  #hooks
  #subs = new Map()
  #keyCounts = new Map()
  #nextSub = 1
  #settles = new Map()
  #nextSettle = 1
  #lifecycles = new Map()
  /** Per cache key, a copy of the data kept in step by its events, for `onMessage` drafts. */
  #replicas = new Map()
  /** `onMessage` calls waiting for their key's replica to reach the version they were given. */
  #waiting = new Map()
  #closed = false
  /** True while events are handed out: a nested drain would reorder them. */
  #draining = false

  /**
   * @param config SPEC §2 config, as an object or JSON text.
   * @param hooks `{ [endpoint]: { queryFn, transformResponse, onMessage, onCacheEntryAdded, prepareHeaders,
   *   mutationFn, providesTags, invalidatesTags } }`
   * @param options `{ clock: 'system' | 'manual' }`: `'manual'` is virtual time moved by `advance(ms)`
   */
  constructor(config, hooks = {}, options = {}) {
    const clock = options && options.clock !== undefined ? options.clock : 'system'
    if (clock !== 'system' && clock !== 'manual') {
      throw makeError('InvalidArgument', `invalid argument: options.clock must be 'system' or 'manual', not ${JSON.stringify(clock)}`)
    }
    let configText
    if (typeof config === 'string') configText = config
    else if (config !== null && typeof config === 'object') {
      try {
        configText = toJSONText(config)
      } catch (e) {
        throw makeError('ConfigError', `invalid config at (root): ${e.message}`)
      }
    } else throw makeError('ConfigError', 'invalid config at (root): expected an object or JSON text')
    if (hooks === null || hooks === undefined) hooks = {}
    if (typeof hooks !== 'object') throw makeError('ConfigError', 'invalid config at hooks: expected an object')
    const spec = {}
    this.#hooks = {}
    for (const endpoint of Object.keys(hooks)) {
      const h = hooks[endpoint]
      if (h === null || typeof h !== 'object') {
        throw makeError('ConfigError', `invalid config at hooks.${endpoint}: expected an object of hook functions`)
      }
      const names = []
      for (const name of Object.keys(h)) {
        if (h[name] === undefined) continue
        if (!HOOK_NAMES.includes(name)) {
          throw makeError('ConfigError', `invalid config at hooks.${endpoint}.${name}: not a hook name (${HOOK_NAMES.join(', ')})`)
        }
        if (typeof h[name] !== 'function') {
          throw makeError('ConfigError', `invalid config at hooks.${endpoint}.${name}: expected a function`)
        }
        names.push(name)
      }
      spec[endpoint] = names
      this.#hooks[endpoint] = { ...h }
    }
    this.#native = native(
      () =>
        new binding.NativeClient(
          configText,
          JSON.stringify(spec),
          () => this.#drain(),
          (kind, id, payload) => this.#hostCall(kind, id, payload),
          clock,
        ),
    )
  }

  /** Moves the manual clock (`{clock: 'manual'}`) forward by `ms` and runs what is due by then (L7). */
  advance(ms) {
    if (typeof ms !== 'number') throw makeError('InvalidArgument', `invalid argument: advance takes milliseconds, not ${typeof ms}`)
    native(() => this.#native.advance(ms))
  }

  get [SETTLES]() {
    const settles = this.#settles
    return {
      add: (d) => {
        const id = this.#nextSettle++
        settles.set(id, d)
        return id
      },
      remove: (id) => settles.delete(id),
    }
  }

  [FORGET](id, key) {
    this.#subs.delete(id)
    const n = (this.#keyCounts.get(key) || 1) - 1
    if (n > 0) {
      this.#keyCounts.set(key, n)
      return
    }
    this.#keyCounts.delete(key)
    // No events will move this key's replica any more: waiting hook calls take the data itself.
    this.#replicas.delete(key)
    const waiting = this.#waiting.get(key)
    if (waiting !== undefined) {
      this.#waiting.delete(key)
      for (const w of waiting) this.#complete(w.id, true, 'snapshot')
    }
  }

  /** Runs the engine's ready callbacks and hands their events out, in order, on this thread. */
  #drain() {
    if (this.#closed || this.#draining) return
    let text
    try {
      text = this.#native.poll()
    } catch (e) {
      reportUncaught(fromNative(e))
      return
    }
    if (text == null) return
    const batch = JSON.parse(text)
    const outer = this.#draining
    this.#draining = true
    try {
      for (let i = 0; i < batch.length; i++) {
        const pair = batch[i]
        const sub = this.#subs.get(pair[0])
        if (sub === undefined) continue
        const event = pair[1]
        if (this.#replicas.size !== 0) this.#track(event)
        sub._deliver(event)
      }
    } finally {
      this.#draining = outer
    }
    if (this.#waiting.size !== 0) this.#resumeWaiting()
  }

  /** Keeps a replica in step with its key's events (several subscribers: each version once). */
  #track(event) {
    const r = this.#replicas.get(event.key)
    if (r === undefined) return
    switch (event.type) {
      case 'patch':
        if (event.from !== r.version) return
        try {
          applyPatches(r.data, event.patches)
          r.version = event.version
        } catch {
          this.#replicas.delete(event.key)
        }
        return
      case 'snapshot':
        r.data = structuredClone(event.data)
        r.version = event.version
        // A snapshot does not say which entry lifetime it is; the next hook call tells.
        r.entryId = null
        return
      case 'removed':
        this.#replicas.delete(event.key)
        return
      default:
    }
  }

  #resumeWaiting() {
    for (const [key, calls] of this.#waiting) {
      const r = this.#replicas.get(key)
      const ready = calls.filter((c) => r === undefined || r.version >= c.call.v[1])
      if (ready.length === 0) continue
      const rest = calls.filter((c) => !ready.includes(c))
      if (rest.length === 0) this.#waiting.delete(key)
      else this.#waiting.set(key, rest)
      for (const c of ready) this.#onMessage(c.id, c.call)
    }
  }

  #complete(id, ok, text) {
    if (this.#closed) return
    try {
      this.#native.complete(id, ok, text)
    } catch (e) {
      reportUncaught(fromNative(e))
    }
  }

  /** Answers hook call `id` with what `thunk` returns (a value or a promise). */
  #answer(id, thunk, okText, failText) {
    let result
    try {
      result = thunk()
    } catch (e) {
      this.#complete(id, false, failText(e))
      return
    }
    const finish = (value) => {
      let text
      try {
        text = okText(value)
      } catch (e) {
        this.#complete(id, false, failText(e))
        return
      }
      this.#complete(id, true, text)
    }
    if (result !== null && typeof result === 'object' && typeof result.then === 'function') {
      result.then(finish, (e) => this.#complete(id, false, failText(e)))
    } else finish(result)
  }

  #hostCall(kind, id, payload) {
    switch (kind) {
      case QUERY_FN:
      case MUTATION_FN: {
        const call = JSON.parse(payload)
        const fn = kind === QUERY_FN ? this.#hooks[call.e].queryFn : this.#hooks[call.e].mutationFn
        this.#answer(id, () => fn(argOf(call)), (v) => toJSONText(v === undefined ? null : v), fetchErrorText)
        return
      }
      case TRANSFORM_RESPONSE: {
        const call = JSON.parse(payload)
        const fn = this.#hooks[call.e].transformResponse
        this.#answer(id, () => fn(call.d, argOf(call)), (v) => toJSONText(v === undefined ? null : v), messageOf)
        return
      }
      case PROVIDES_TAGS:
      case INVALIDATES_TAGS: {
        const call = JSON.parse(payload)
        const answer =
          kind === PROVIDES_TAGS
            ? tagsAnswer('providesTags', () => this.#hooks[call.e].providesTags(call.d, argOf(call)))
            : tagsAnswer('invalidatesTags', () =>
                this.#hooks[call.e].invalidatesTags(call.r === null ? undefined : call.r, call.x === null ? undefined : call.x, argOf(call)),
              )
        if (answer.error !== undefined) this.#complete(id, false, answer.error)
        else {
          let text
          try {
            text = toJSONText(answer.tags)
          } catch (e) {
            this.#complete(id, false, messageOf(e))
            return
          }
          this.#complete(id, true, text)
        }
        return
      }
      case PREPARE_HEADERS: {
        const call = JSON.parse(payload)
        const fn = this.#hooks[call.e].prepareHeaders
        this.#answer(id, () => fn(call.h, call.c), (v) => toJSONText(v), messageOf)
        return
      }
      case ON_MESSAGE:
        // The event for the version this call was given is already queued: take it first.
        this.#drain()
        this.#onMessage(id, JSON.parse(payload))
        return
      case ON_CACHE_ENTRY_ADDED:
        this.#onCacheEntryAdded(id, JSON.parse(payload))
        return
      case SETTLE: {
        const d = this.#settles.get(id)
        if (d === undefined) return
        this.#settles.delete(id)
        settle(d, payload)
        return
      }
      case LIFECYCLE_LOADED: {
        const lc = this.#lifecycles.get(id)
        if (lc !== undefined) settle(lc.loaded, payload)
        return
      }
      case LIFECYCLE_REMOVED: {
        const lc = this.#lifecycles.get(id)
        if (lc === undefined) return
        this.#lifecycles.delete(id)
        lc.gone = true
        lc.removed.resolve()
        return
      }
      default:
    }
  }

  /** `onMessage` over the key's replica, for the messages of one engine call in turn: each
   * draft records operations, the replica is rolled back at the end, and the engine's patch
   * events move it forward, so no message copies the document. */
  #onMessage(id, call) {
    const fn = this.#hooks[call.e].onMessage
    const [entryId, version] = call.v || [null, -1]
    let r
    if (Object.prototype.hasOwnProperty.call(call, 'd')) {
      r = { entryId, version, data: call.d }
      if (this.#keyCounts.has(call.k)) this.#replicas.set(call.k, r)
    } else {
      r = this.#replicas.get(call.k)
      if (r !== undefined && r.entryId !== null && r.entryId !== entryId) r = undefined
      if (r === undefined) {
        this.#complete(id, true, 'snapshot')
        return
      }
      if (r.version > version) {
        // The engine has moved on since; it calls again with its current data.
        this.#complete(id, true, '{"batch":[{}]}')
        return
      }
      if (r.version < version) {
        let list = this.#waiting.get(call.k)
        if (list === undefined) this.#waiting.set(call.k, (list = []))
        list.push({ id, call })
        return
      }
      r.entryId = entryId
    }
    const arg = argOf(call)
    const outcomes = []
    const kept = []
    for (let i = 0; i < call.ms.length; i++) {
      const recorder = new Recorder()
      let out
      try {
        out = record(r.data, fn, recorder, call.ms[i], arg)
      } catch (e) {
        // This message's changes go; the next message sees the data without them.
        recorder.rollback()
        outcomes.push('{"error":' + JSON.stringify(String(messageOf(e))) + '}')
        continue
      }
      kept.push(recorder)
      if (out.mode === 1) {
        // A returned value replaces the data: the engine offers the messages after it again.
        outcomes.push('{"data":' + out.payload + '}')
        break
      }
      outcomes.push('{"ops":' + out.payload + '}')
    }
    for (let i = kept.length - 1; i >= 0; i--) kept[i].rollback()
    this.#complete(id, true, '{"batch":[' + outcomes.join(',') + ']}')
  }

  #onCacheEntryAdded(id, call) {
    const fn = this.#hooks[call.e].onCacheEntryAdded
    const lcId = call.lc
    const lc = { loaded: deferred(), removed: deferred() }
    // L2: an unobserved rejection of cacheDataLoaded is never an unhandled rejection.
    lc.loaded.promise.catch(() => {})
    this.#lifecycles.set(lcId, lc)
    const arg = call.has_arg ? call.a : undefined
    const api = {
      cacheDataLoaded: lc.loaded.promise,
      cacheEntryRemoved: lc.removed.promise,
      updateCachedData: (recipe) => this.#lifecycleUpdate(lcId, call.e, arg, call.k, recipe),
      getCacheEntry: () => JSON.parse(native(() => this.#native.lifecycleEntry(lcId, call.k))),
    }
    this.#answer(id, () => fn(arg, api), () => '', messageOf)
  }

  #lifecycleUpdate(lcId, ep, arg, key, recipe) {
    if (typeof recipe !== 'function') throw makeError('InvalidArgument', 'invalid argument: updateCachedData needs a recipe function')
    const lc = this.#lifecycles.get(lcId)
    const a = argText(arg)
    const fast = lc === undefined || lc.gone ? null : this.#recordOnReplica(key, ep, a, recipe)
    if (fast !== null && fast.mode === 0) return this.#lifecycleResult(lcId, native(() => this.#native.patchQueryData(ep, a, fast.payload)))
    let out = fast
    if (out === null) {
      const state = JSON.parse(native(() => this.#native.lifecycleEntry(lcId, key)))
      out = state.version === 0 ? { mode: 0, payload: '[]' } : record(state.data, recipe, new Recorder())
    }
    return this.#lifecycleResult(lcId, native(() => this.#native.lifecycleUpdate(lcId, out.mode, out.payload)))
  }

  /** Runs a host recipe on the replica of `key` when this client's subscriptions keep one in
   * step, so the recipe costs time proportional to its change, not to the document. Returns
   * null when there is none (the caller reads the data from the engine instead). */
  #recordOnReplica(key, ep, a, recipe) {
    if (!this.#keyCounts.has(key) || this.#draining) return null
    // Every change the engine has committed is queued for this key's subscriptions: take it.
    this.#drain()
    let r = this.#replicas.get(key)
    if (r === undefined) {
      const state = JSON.parse(native(() => this.#native.snapshot(ep, a)))
      if (state.version === 0) return null
      r = { entryId: null, version: state.version, data: state.data }
      this.#replicas.set(key, r)
    }
    const recorder = new Recorder()
    try {
      return record(r.data, recipe, recorder)
    } finally {
      recorder.rollback()
    }
  }

  #lifecycleResult(lcId, text) {
    const r = JSON.parse(text)
    return {
      patches: r.patches,
      inversePatches: r.inversePatches,
      undo: () =>
        this.#lifecycleResult(lcId, native(() => this.#native.lifecycleUpdate(lcId, 0, JSON.stringify(r.inversePatches)))),
    }
  }

  /** Subscribes to `(endpoint, arg)`; `arg` undefined is "no arg", null is null (K1). */
  subscribe(endpoint, arg, onEvent, options) {
    if (typeof endpoint !== 'string') throw makeError('InvalidArgument', 'invalid argument: the endpoint must be a string')
    if (onEvent !== undefined && onEvent !== null && typeof onEvent !== 'function') {
      throw makeError('InvalidArgument', 'invalid argument: onEvent must be a function')
    }
    const optionsText = native(() => toJSONText(options === undefined ? null : options))
    const id = this.#nextSub++
    const nativeSub = native(() => this.#native.subscribe(endpoint, argText(arg), optionsText, id))
    const sub = new Subscription(this, nativeSub, id, onEvent)
    this.#subs.set(id, sub)
    this.#keyCounts.set(sub.key, (this.#keyCounts.get(sub.key) || 0) + 1)
    return sub
  }

  /** The cache key of `(endpoint, arg)` (K1). */
  cacheKey(endpoint, arg) {
    return native(() => this.#native.cacheKey(String(endpoint), argText(arg)))
  }

  /** The entry state of `(endpoint, arg)` (SPEC §5); NotFound without an entry. */
  snapshot(endpoint, arg) {
    return JSON.parse(native(() => this.#native.snapshot(String(endpoint), argText(arg))))
  }

  /** L9: `recipe(draft)` mutates the draft or returns new data. */
  updateQueryData(endpoint, arg, recipe) {
    if (typeof recipe !== 'function') throw makeError('InvalidArgument', 'invalid argument: updateQueryData needs a recipe function')
    const a = argText(arg)
    const ep = String(endpoint)
    let out = this.#recordOnReplica(native(() => this.#native.cacheKey(ep, a)), ep, a, recipe)
    if (out !== null && out.mode === 0) return updateResult(this, endpoint, arg, native(() => this.#native.patchQueryData(ep, a, out.payload)))
    if (out === null) {
      const state = JSON.parse(native(() => this.#native.snapshot(ep, a)))
      // Without data the engine refuses the update (NotLoaded); the recipe does not run.
      out = state.version === 0 ? { mode: 0, payload: '[]' } : record(state.data, recipe, new Recorder())
    }
    return updateResult(this, endpoint, arg, native(() => this.#native.updateQueryData(ep, a, out.mode, out.payload)))
  }

  /** L9: RFC 6902 operations, all or nothing. */
  patchQueryData(endpoint, arg, patches) {
    const text = toJSONText(patches, 2)
    return updateResult(this, endpoint, arg, native(() => this.#native.patchQueryData(String(endpoint), argText(arg), text)))
  }

  /** L9: sets the data, creating a fulfilled entry if absent. */
  upsertQueryData(endpoint, arg, data) {
    const text = toJSONText(data === undefined ? null : data)
    // W2: providesTags runs here, on this thread; the engine checks what it answered.
    const hook = this.#hooks[endpoint] && this.#hooks[endpoint].providesTags
    let tags
    if (hook !== undefined) {
      const answer = tagsAnswer('providesTags', () => hook(data === undefined ? null : data, arg))
      try {
        tags = toJSONText(answer)
      } catch (e) {
        tags = JSON.stringify({ error: messageOf(e) })
      }
    }
    native(() => this.#native.upsertQueryData(String(endpoint), argText(arg), text, tags))
  }

  /** L5: re-runs the query. */
  refetch(endpoint, arg) {
    native(() => this.#native.refetch(String(endpoint), argText(arg)))
  }

  /** T2: writes `message` as one JSON text frame on the entry's open stream; resolves once it is
   * written, rejects with NotConnected when the stream is not open (nothing is queued). */
  send(endpoint, arg, message) {
    const d = deferred()
    let text
    try {
      text = toJSONText(message === undefined ? null : message)
    } catch (e) {
      d.reject(e)
      return d.promise
    }
    const settles = this[SETTLES]
    const id = settles.add(d)
    try {
      this.#native.send(String(endpoint), argText(arg), text, id)
    } catch (e) {
      settles.remove(id)
      d.reject(fromNative(e))
    }
    return d.promise.then(() => undefined)
  }

  /** W1: runs the mutation endpoint's request with `arg`. Resolves with the response data once
   * the refetches its `invalidatesTags` started have landed (W4), so `snapshot()` then shows
   * the server's new state; rejects with MutationError (`status`, `data`, `error`),
   * WrongEndpointKind (a query endpoint) or InvalidArgument (nothing was sent).
   * `options` (W3): `{optimistic: [{endpoint, arg, message}], confirm, confirmTimeoutMs}`: layers
   * shown at once above the server data until the server confirms them; the promise settles once
   * they are confirmed or dropped. */
  mutate(endpoint, arg, options) {
    const d = deferred()
    const settles = this[SETTLES]
    let optionsText
    try {
      optionsText = toJSONText(this.#withRecipesRun(options === undefined ? null : options))
    } catch (e) {
      // A recipe that threw rejects with its own error; nothing was sent.
      d.reject(e)
      return d.promise
    }
    const id = settles.add(d)
    try {
      this.#native.mutate(String(endpoint), argText(arg), optionsText, id)
    } catch (e) {
      settles.remove(id)
      d.reject(fromNative(e))
    }
    return d.promise
  }

  /** W3: `options` with each `{endpoint, arg?, recipe}` layer replaced by the patch its recipe
   * makes, now, on the entry's shown data (`{endpoint, arg?, patch}`); the engine puts that patch
   * back on every server change (the recipe is not run again). A layer for an entry without data
   * is left out, as a message layer is skipped there. */
  #withRecipesRun(options) {
    if (options === null || typeof options !== 'object' || !Array.isArray(options.optimistic)) return options
    if (!options.optimistic.some((l) => l !== null && typeof l === 'object' && 'recipe' in l)) return options
    const layers = []
    for (const layer of options.optimistic) {
      if (layer === null || typeof layer !== 'object' || !('recipe' in layer)) {
        layers.push(layer)
        continue
      }
      const patched = this.#recipeLayer(layer)
      if (patched !== null) layers.push(patched)
    }
    return { ...options, optimistic: layers }
  }

  #recipeLayer(layer) {
    const bad = (m) => makeError('InvalidArgument', `invalid argument: optimistic: ${m}`)
    for (const k of Object.keys(layer)) {
      if (!['endpoint', 'arg', 'recipe'].includes(k)) throw bad(`a recipe layer has no key ${JSON.stringify(k)} (expected endpoint, arg, recipe)`)
    }
    if (typeof layer.recipe !== 'function') throw bad("a layer's recipe must be a function")
    if (typeof layer.endpoint !== 'string') throw bad('a layer needs a string endpoint')
    const a = argText(layer.arg)
    const key = native(() => this.#native.cacheKey(layer.endpoint, a))
    let out = this.#recordOnReplica(key, layer.endpoint, a, layer.recipe)
    if (out === null) {
      const state = JSON.parse(native(() => this.#native.snapshot(layer.endpoint, a)))
      if (!(state.version > 0)) return null
      out = record(state.data, layer.recipe, new Recorder())
    }
    const patch = out.mode === 0 ? JSON.parse(out.payload) : [{ op: 'replace', path: '', value: JSON.parse(out.payload) }]
    const patched = { endpoint: layer.endpoint, patch }
    if (layer.arg !== undefined) patched.arg = layer.arg // absent is "no arg" (K1)
    return patched
  }

  /** P3: creates and fetches the entry without subscribing (it goes after keepUnusedDataFor), or
   * refetches an existing one when `force`, or when its data is older than `ifOlderThan` seconds. */
  prefetch(endpoint, arg, options) {
    const optionsText = native(() => toJSONText(options === undefined ? null : options))
    native(() => this.#native.prefetch(String(endpoint), argText(arg), optionsText))
  }

  /** P3: removes every entry (subscribers get `removed`, streams close with a close handshake,
   * lifecycles' `cacheEntryRemoved` resolves); the client stays usable. */
  resetApiState() {
    native(() => this.#native.resetApiState())
  }

  /** W2: refetches the subscribed entries providing a matching tag (`'Type'` matches every id,
   * `{type, id}` only that one) and removes the unused ones at once. */
  invalidateTags(tags) {
    let text
    try {
      text = toJSONText(tags)
    } catch (e) {
      throw fromNative(e)
    }
    native(() => this.#native.invalidateTags(text))
  }

  /** T1: closes the entry's stream (close handshake) and connects again now, with fresh headers. */
  reconnect(endpoint, arg) {
    native(() => this.#native.reconnect(String(endpoint), argText(arg)))
  }

  /** L10: one message through the endpoint's stream pipeline. */
  pushMessage(endpoint, arg, message) {
    const text = toJSONText(message === undefined ? null : message)
    native(() => this.#native.pushMessage(String(endpoint), argText(arg), text))
  }

  /** L10 for a burst: each message of the array in order, as frames that arrived back to back,
   * in one crossing and one engine step (one event for the burst, E2). Each message passes or
   * fails the pipeline on its own (a failure is an `error` event); a value that has no JSON form
   * throws before any is queued. */
  pushMessages(endpoint, arg, messages) {
    if (!Array.isArray(messages)) throw makeError('InvalidArgument', 'invalid argument: pushMessages needs an array of messages')
    const text = toJSONText(messages, 1)
    native(() => this.#native.pushMessages(String(endpoint), argText(arg), text))
  }

  /** L10 with raw text, exactly as a stream frame carries it (bad JSON is an `error` event). */
  pushMessageText(endpoint, arg, text) {
    if (typeof text !== 'string') throw makeError('InvalidArgument', 'invalid argument: pushMessageText needs a string')
    native(() => this.#native.pushMessageText(String(endpoint), argText(arg), text))
  }

  /** Counters (SPEC §5). */
  stats() {
    return JSON.parse(native(() => this.#native.stats()))
  }

  get closed() {
    return this.#closed
  }

  /** Closes every stream and subscription (SPEC §8); a second call does nothing. */
  async close() {
    if (this.#closed) return
    this.#closed = true
    native(() => this.#native.close())
    for (const sub of this.#subs.values()) sub._closed()
    this.#subs.clear()
    this.#keyCounts.clear()
    this.#replicas.clear()
    this.#waiting.clear()
    const removed = makeError('CacheEntryRemoved', 'the client closed')
    for (const d of this.#settles.values()) d.reject(removed)
    this.#settles.clear()
    for (const lc of this.#lifecycles.values()) {
      lc.loaded.reject(removed)
      lc.removed.resolve()
    }
    this.#lifecycles.clear()
  }
}

const {
  LivecacheError,
  ConfigError,
  Closed,
  UnknownEndpoint,
  NotFound,
  NotLoaded,
  PatchError,
  InvalidArgument,
  InvalidInput,
  CacheEntryRemoved,
  NotConnected,
  WrongEndpointKind,
  MutationError,
} = errors

module.exports = {
  Client,
  Subscription,
  LivecacheError,
  ConfigError,
  Closed,
  UnknownEndpoint,
  NotFound,
  NotLoaded,
  PatchError,
  InvalidArgument,
  InvalidInput,
  CacheEntryRemoved,
  NotConnected,
  WrongEndpointKind,
  MutationError,
}
module.exports.default = module.exports
