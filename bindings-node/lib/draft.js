'use strict'
// Recording drafts: a recipe (updateQueryData, updateCachedData, onMessage) mutates a Proxy over
// a plain JSON object, and every set / delete / array change is recorded as an RFC 6902
// operation, so what crosses to the engine is the change, not the document. The target is
// mutated in place and an undo log restores it, so a draft over a long-lived replica costs time
// proportional to the change only.

const { makeError } = require('./errors')
const { toJSONText } = require('./json')

const TARGET = Symbol('livecache.draftTarget')
const hasOwn = Object.prototype.hasOwnProperty

function escapeToken(token) {
  if (token.indexOf('~') < 0 && token.indexOf('/') < 0) return token
  return token.replace(/~/g, '~0').replace(/\//g, '~1')
}

function arrayIndex(prop) {
  if (prop === '0') return 0
  if (!/^[1-9][0-9]*$/.test(prop)) return -1
  const i = Number(prop)
  return i < 4294967295 ? i : -1
}

/** A value JSON would skip in an object (and write as null in an array). */
function skipped(value) {
  return value === undefined || typeof value === 'function' || typeof value === 'symbol'
}

class Recorder {
  constructor() {
    this.ops = []
    this.undo = []
  }

  /** The recorded operations as JSON text (an RFC 6902 array). */
  text() {
    return '[' + this.ops.join(',') + ']'
  }

  /** Puts the target back as it was before the recipe ran. */
  rollback() {
    for (let i = this.undo.length - 1; i >= 0; i--) this.undo[i]()
    this.undo.length = 0
  }
}

/** The value to store in the target: primitives as is, objects as a fresh copy of their JSON. */
function stored(value, text) {
  return value !== null && typeof value === 'object' ? JSON.parse(text) : value
}

class Handler {
  constructor(path, recorder) {
    this.path = path
    this.recorder = recorder
  }

  get(target, prop) {
    if (prop === TARGET) return target
    const value = target[prop]
    if (typeof prop !== 'string' || value === null || typeof value !== 'object' || !hasOwn.call(target, prop)) {
      return value
    }
    return new Proxy(value, new Handler(this.path + '/' + escapeToken(prop), this.recorder))
  }

  set(target, prop, value) {
    if (typeof prop === 'symbol') {
      throw makeError('InvalidArgument', 'a draft holds JSON data: symbol keys cannot be set')
    }
    const rec = this.recorder
    if (Array.isArray(target)) {
      if (prop === 'length') return this.setLength(target, value)
      const i = arrayIndex(prop)
      if (i < 0) throw makeError('InvalidArgument', `a draft array has only indices and length, not ${JSON.stringify(prop)}`)
      if (i > target.length) {
        throw makeError('InvalidArgument', `index ${i} of a draft array of length ${target.length} would leave holes (JSON has none)`)
      }
      const text = skipped(value) ? 'null' : toJSONText(value)
      const path = JSON.stringify(this.path + '/' + i)
      if (i < target.length) {
        const old = target[i]
        rec.undo.push(() => {
          target[i] = old
        })
        rec.ops.push('{"op":"replace","path":' + path + ',"value":' + text + '}')
      } else {
        rec.undo.push(() => {
          target.length = i
        })
        rec.ops.push('{"op":"add","path":' + path + ',"value":' + text + '}')
      }
      target[i] = skipped(value) ? null : stored(value, text)
      return true
    }
    if (skipped(value)) return this.deleteProperty(target, prop)
    const text = toJSONText(value)
    const path = JSON.stringify(this.path + '/' + escapeToken(prop))
    if (hasOwn.call(target, prop)) {
      const old = target[prop]
      rec.undo.push(() => {
        target[prop] = old
      })
      rec.ops.push('{"op":"replace","path":' + path + ',"value":' + text + '}')
    } else {
      rec.undo.push(() => {
        delete target[prop]
      })
      rec.ops.push('{"op":"add","path":' + path + ',"value":' + text + '}')
    }
    target[prop] = stored(value, text)
    return true
  }

  setLength(target, value) {
    const n = Number(value)
    const old = target.length
    if (n === old) return true
    if (!(Number.isInteger(n) && n >= 0 && n < old)) {
      throw makeError('InvalidArgument', `a draft array cannot grow through its length (JSON has no holes)`)
    }
    const removed = target.slice(n)
    for (let i = old - 1; i >= n; i--) {
      this.recorder.ops.push('{"op":"remove","path":' + JSON.stringify(this.path + '/' + i) + '}')
    }
    this.recorder.undo.push(() => {
      target.push(...removed)
    })
    target.length = n
    return true
  }

  deleteProperty(target, prop) {
    if (typeof prop === 'symbol' || !hasOwn.call(target, prop)) return true
    const rec = this.recorder
    const old = target[prop]
    if (Array.isArray(target)) {
      // A hole is `null` in JSON; shrinking `length` (pop, splice) removes it afterwards.
      const i = arrayIndex(prop)
      rec.ops.push('{"op":"replace","path":' + JSON.stringify(this.path + '/' + i) + ',"value":null}')
      rec.undo.push(() => {
        target[i] = old
      })
      target[i] = null
      return true
    }
    rec.ops.push('{"op":"remove","path":' + JSON.stringify(this.path + '/' + escapeToken(prop)) + '}')
    rec.undo.push(() => {
      target[prop] = old
    })
    delete target[prop]
    return true
  }

  defineProperty(target, prop) {
    throw makeError('InvalidArgument', `a draft holds JSON data: define ${String(prop)} by assignment instead`)
  }

  setPrototypeOf() {
    throw makeError('InvalidArgument', 'a draft holds JSON data: its prototype cannot change')
  }
}

/** A recording draft over `base` (returned as is when it is not an object). */
function createDraft(base, recorder) {
  if (base === null || typeof base !== 'object') return base
  return new Proxy(base, new Handler('', recorder))
}

function isDraft(value) {
  return value !== null && typeof value === 'object' && value[TARGET] !== undefined
}

/**
 * Runs `recipe(draft)` over `base`. Returns `{ mode: 0, payload: opsText }` for a mutated draft
 * or `{ mode: 1, payload: dataText }` for a returned value; `base` is left mutated (`recorder`
 * can roll it back).
 */
function record(base, recipe, recorder, ...rest) {
  const draft = createDraft(base, recorder)
  const result = recipe(draft, ...rest)
  if (result !== null && typeof result === 'object' && typeof result.then === 'function') {
    throw makeError('InvalidArgument', 'a recipe must be synchronous: it returned a promise')
  }
  if (result !== undefined && !isDraft(result)) return { mode: 1, payload: toJSONText(result) }
  return { mode: 0, payload: recorder.text() }
}

module.exports = { Recorder, createDraft, isDraft, record, escapeToken }
