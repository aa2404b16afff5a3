'use strict'
// Applies the engine's own patch events to a replica (SPEC E1: no root ops, `-` only in add,
// no test ops). Only for replicas the engine keeps in step: a failure means "drop the replica".

function unescape(token) {
  return token.indexOf('~') < 0 ? token : token.replace(/~1/g, '/').replace(/~0/g, '~')
}

function locate(doc, path) {
  const tokens = path.split('/')
  let parent = doc
  for (let i = 1; i < tokens.length - 1; i++) {
    parent = parent[Array.isArray(parent) ? Number(tokens[i]) : unescape(tokens[i])]
    if (parent === null || typeof parent !== 'object') throw new Error(`no container at ${path}`)
  }
  return [parent, unescape(tokens[tokens.length - 1])]
}

function get(doc, path) {
  if (path === '') return doc
  const [parent, last] = locate(doc, path)
  return parent[Array.isArray(parent) ? Number(last) : last]
}

function add(doc, path, value) {
  const [parent, last] = locate(doc, path)
  if (Array.isArray(parent)) {
    if (last === '-') parent.push(value)
    else parent.splice(Number(last), 0, value)
  } else parent[last] = value
}

function remove(doc, path) {
  const [parent, last] = locate(doc, path)
  let old
  if (Array.isArray(parent)) old = parent.splice(Number(last), 1)[0]
  else {
    old = parent[last]
    delete parent[last]
  }
  return old
}

function copy(value) {
  return value !== null && typeof value === 'object' ? structuredClone(value) : value
}

/** Applies `ops` to `doc` in place; values are copied so the event stays the caller's. */
function applyPatches(doc, ops) {
  for (const op of ops) {
    switch (op.op) {
      case 'add':
        add(doc, op.path, copy(op.value))
        break
      case 'remove':
        remove(doc, op.path)
        break
      case 'replace': {
        const [parent, last] = locate(doc, op.path)
        parent[Array.isArray(parent) ? Number(last) : last] = copy(op.value)
        break
      }
      case 'move':
        add(doc, op.path, remove(doc, op.from))
        break
      case 'copy':
        add(doc, op.path, copy(get(doc, op.from)))
        break
      case 'test':
        break
      default:
        throw new Error(`unknown op ${op.op}`)
    }
  }
}

module.exports = { applyPatches }
