'use strict'
// Error classes, one per error kind of the engine (`Error::kind()` in core/src/error.rs).
// Every class extends LivecacheError and carries `code`, the kind's name.

class LivecacheError extends Error {
  constructor(message, code, options) {
    super(message, options)
    this.name = new.target.name
    this.code = code || 'LivecacheError'
  }
}

const KINDS = [
  'ConfigError',
  'Closed',
  'UnknownEndpoint',
  'NotFound',
  'NotLoaded',
  'PatchError',
  'InvalidArgument',
  'InvalidInput',
  'CacheEntryRemoved',
  'NotConnected',
  'WrongEndpointKind',
  'MutationError',
]

const classes = { LivecacheError }
for (const kind of KINDS) {
  const cls = { [kind]: class extends LivecacheError {} }[kind]
  Object.defineProperty(cls, 'name', { value: kind })
  classes[kind] = cls
}

/** Builds the error of `kind` (a kind name from the engine) with `message`. */
function makeError(kind, message, cause) {
  const cls = Object.prototype.hasOwnProperty.call(classes, kind) && KINDS.includes(kind) ? classes[kind] : LivecacheError
  return new cls(message, kind, cause === undefined ? undefined : { cause })
}

/** Native errors carry their kind as `code` (napi sets it); anything else passes through
 * unchanged. A native error of no kind of the engine (napi's own) becomes a LivecacheError. */
function fromNative(e) {
  if (e instanceof Error && !(e instanceof LivecacheError) && typeof e.code === 'string') {
    if (KINDS.includes(e.code)) return makeError(e.code, e.message)
    if (e.code === 'LivecacheError') return makeError(e.code, e.message)
  }
  return e
}

/** Calls a native function, turning its errors into LivecacheError subclasses. */
function native(fn) {
  try {
    return fn()
  } catch (e) {
    throw fromNative(e)
  }
}

module.exports = { ...classes, KINDS, makeError, fromNative, native }
