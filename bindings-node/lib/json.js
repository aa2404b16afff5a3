'use strict'
// JavaScript values to JSON text for the engine, with the engine's input rules (SPEC E3):
// nesting deeper than 128 levels (the root container is level 1) and NaN/±Infinity are refused
// with InvalidInput instead of being turned into `null` as JSON.stringify would. Everything else
// follows JSON.stringify: undefined, functions and symbols are skipped in objects (null in
// arrays), toJSON() is honoured.

const { makeError } = require('./errors')

const MAX_DEPTH = 128

function check(value, depth, path) {
  switch (typeof value) {
    case 'number':
      if (!Number.isFinite(value)) {
        throw makeError('InvalidInput', `invalid input: not_finite: ${value} at ${path || '/'} is not a JSON number`)
      }
      return
    case 'bigint':
      throw makeError('InvalidInput', `invalid input: a BigInt at ${path || '/'} has no JSON form`)
    case 'object': {
      if (value === null) return
      if (typeof value.toJSON === 'function') {
        check(value.toJSON(), depth, path)
        return
      }
      if (depth >= MAX_DEPTH) {
        throw makeError('InvalidInput', `invalid input: too_deep: nested deeper than ${MAX_DEPTH} levels at ${path || '/'}`)
      }
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) check(value[i], depth + 1, path + '/' + i)
      } else {
        for (const k in value) {
          if (Object.prototype.hasOwnProperty.call(value, k)) check(value[k], depth + 1, path + '/' + k)
        }
      }
      return
    }
    default:
      return
  }
}

/** JSON text of `value` for the engine; throws InvalidInput when the engine would refuse it.
 * `wrapping`: levels of transport containers around the values (2 for an operation array). */
function toJSONText(value, wrapping = 0) {
  check(value, -wrapping, '')
  const text = JSON.stringify(value)
  if (text === undefined) {
    throw makeError('InvalidInput', `invalid input: ${typeof value} has no JSON form`)
  }
  return text
}

/** `arg` as the native layer takes it: '' for undefined (no arg), JSON text otherwise (K1). */
function argText(arg) {
  return arg === undefined ? '' : toJSONText(arg)
}

module.exports = { toJSONText, argText, MAX_DEPTH }
