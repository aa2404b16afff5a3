// ESM entry point: the same objects as the CommonJS one.
import livecache from './index.js'

export const {
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
} = livecache
export default livecache
