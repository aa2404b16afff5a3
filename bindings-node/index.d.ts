// Types of the `livecache` package (SPEC §7 Node). Events are a discriminated union on `type`.

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue }

/** One RFC 6902 operation (events never carry `test`, E1). */
export type PatchOperation =
  | { op: 'add'; path: string; value: JsonValue }
  | { op: 'remove'; path: string }
  | { op: 'replace'; path: string; value: JsonValue }
  | { op: 'move'; from: string; path: string }
  | { op: 'copy'; from: string; path: string }
  | { op: 'test'; path: string; value: JsonValue }

export type Status = 'pending' | 'fulfilled' | 'rejected'
export type StreamState = 'connecting' | 'open' | 'reconnecting' | 'closed'
export type ErrorReason =
  | 'invalid_json'
  | 'binary_frame'
  | 'too_large'
  | 'too_deep'
  | 'not_finite'
  | 'schema'
  | 'apply'
  | 'hook'
  | 'protocol'
  | 'graphql'
  /** W3: an optimistic layer no longer applied to the server data and was dropped. */
  | 'optimistic_conflict'
  /** W3: the server did not confirm an optimistic layer in time; it was dropped. */
  | 'unconfirmed'

export interface SnapshotEvent<D = JsonValue> {
  type: 'snapshot'
  key: string
  version: number
  status: Status
  data: D
}
export interface PatchEvent {
  type: 'patch'
  key: string
  from: number
  version: number
  patches: PatchOperation[]
}
export interface StatusEvent {
  type: 'status'
  key: string
  status: Status
  error?: JsonValue
}
export interface StreamEvent {
  type: 'stream'
  key: string
  state: StreamState
  error?: string
}
export interface ErrorEvent {
  type: 'error'
  key: string
  reason: ErrorReason
  message: string
}
export interface RemovedEvent {
  type: 'removed'
  key: string
}
/** SPEC §5. */
export type LivecacheEvent<D = JsonValue> = SnapshotEvent<D> | PatchEvent | StatusEvent | StreamEvent | ErrorEvent | RemovedEvent

/** An entry's state, as `snapshot()` returns it (SPEC §5). */
export interface EntryState<D = JsonValue> {
  key: string
  status: Status
  version: number
  data: D
  error?: JsonValue
  stream: { state: StreamState; error?: string }
  /** W3: pending optimistic layers, present while there are some. */
  optimistic?: number
}

export interface Stats {
  entries: number
  subscriptions: number
  entriesCreated: number
  entriesRemoved: number
  messagesReceived: number
  messagesApplied: number
  messagesFiltered: number
  messagesBuffered: number
  messagesReapplied: number
  messagesRejected: Record<Exclude<ErrorReason, 'optimistic_conflict' | 'unconfirmed'>, number>
  bufferOverflows: number
  fetches: number
  fetchErrors: number
  staleResponses: number
  reconnects: number
  /** T6: reconnects resumed from a cursor, refetches made to resync, messages dropped by `sequence`. */
  resumes: number
  resyncs: number
  messagesDuplicate: number
  /** T3: transport connections open now, and ever opened (a shared one counts once). */
  connections: number
  connectionsOpened: number
  queueOverflows: number
  eventsDelivered: number
  hostUpdates: number
  /** W1: mutations started, and those that failed. */
  mutations: number
  mutationErrors: number
  /** W2: entries an invalidation refetched or removed. */
  invalidations: number
  /** P1: fetches started by polling. */
  polls: number
  [counter: string]: number | Record<string, number>
}

/** T1: header name → template (`{arg}` placeholders); values never appear in events or errors. */
export type HeaderTemplates = Record<string, string>
/** T7: retries of network errors, timeouts, 5xx and 429 (never another 4xx). */
export interface RetryConfig { maxRetries: number; initialDelayMs?: number; maxDelayMs?: number }

/** SPEC §2: one JSON shape for every language. */
export interface EndpointConfig {
  /** A template joined to `baseUrl`, or (T7) a request object of templates; `body` is sent as JSON. */
  query?: string | { url: string; method?: string; body?: JsonValue; params?: Record<string, JsonValue> }
  /** T1: over the top-level headers, for this endpoint's requests and handshakes. */
  headers?: HeaderTemplates
  /** T7: bounds each fetch attempt (default 30000). */
  timeoutMs?: number
  retry?: RetryConfig
  transformResponse?: { entityAdapter?: { selectId?: string; sortBy?: string } }
  keepUnusedDataFor?: number | null | 'infinite'
  stream?: {
    /** `"websocket"` (default, `ws://`/`wss://` url) or `"sse"` (Server-Sent Events, `http://`/`https://` url). */
    transport?: 'websocket' | 'sse'
    url?: string
    /** T4: the SSE event names that are messages (default `["message"]`); others count as filtered. */
    events?: string[]
    /** T1: handshake headers, over the endpoint's and the top level's. */
    headers?: HeaderTemplates
    /** T2 (WebSocket only): subprotocols offered in the handshake. */
    protocols?: string[]
    /** T2 (WebSocket only): sent after every open / before the entry leaves the socket. */
    subscribeMessage?: JsonValue
    unsubscribeMessage?: JsonValue
    filter?: Record<string, JsonValue>
    schema?: JsonValue
    apply?: string | Record<string, JsonValue>
    reconnect?: { initialDelayMs?: number; maxDelayMs?: number }
    /** WebSocket: a ping every `intervalMs`. SSE: the server's traffic (comments too) must come within `intervalMs + timeoutMs`. */
    heartbeat?: { intervalMs?: number; timeoutMs?: number } | null | false
    maxMessageBytes?: number
    resyncOnReconnect?: boolean
    bufferBeforeLoaded?: number
    /** T6: reconnects send the last cursor (URL `param`, `"{cursor}"` in subscribeMessage, or SSE Last-Event-ID). */
    resume?: { cursor: string; param?: string; initial?: string; mustRefetch?: Record<string, JsonValue> }
    /** T6: a JSON Pointer to each message's sequence number: duplicates dropped, gaps resumed or resynced. */
    sequence?: string
  }
  [key: string]: unknown
}
export interface Config {
  baseUrl?: string
  /** T1: for every request and handshake. */
  headers?: HeaderTemplates
  /** T7: defaults for every endpoint. */
  timeoutMs?: number
  retry?: RetryConfig
  keepUnusedDataFor?: number | null | 'infinite'
  queueLimit?: number
  endpoints: Record<string, EndpointConfig>
  [key: string]: unknown
}

/** A recipe mutates the draft (recorded as RFC 6902 operations) or returns the new data. */
export type Recipe<D = any> = (draft: D) => D | void

export interface UpdateResult {
  patches: PatchOperation[]
  inversePatches: PatchOperation[]
  /** Applies `inversePatches` as a new host update. */
  undo(): UpdateResult
}

export interface CacheLifecycle<D = any> {
  /** L2: `{data, meta}` of the first data; rejects with CacheEntryRemoved if the entry goes first. */
  cacheDataLoaded: Promise<{ data: D; meta: JsonValue }>
  /** L3: resolves when the entry is removed. */
  cacheEntryRemoved: Promise<void>
  updateCachedData(recipe: Recipe<D>): UpdateResult
  /** The entry now; once it is removed, `{key, status: 'uninitialized'}` as RTK Query gives it (SPEC §6). */
  getCacheEntry(): EntryState<D> | UninitializedEntry
}

/** An entry that is no longer in the cache (SPEC §6). */
export interface UninitializedEntry {
  key: string
  status: 'uninitialized'
}

/** SPEC §6, per endpoint. */
export interface EndpointHooks<D = any, A = any> {
  /** The data for `arg` (may be async). A thrown Error rejects the fetch as
   * `{status: 'CUSTOM_ERROR', error: message}`; any other thrown value is the error itself. */
  queryFn?: (arg: A) => D | Promise<D>
  transformResponse?: (data: any, arg: A) => D | Promise<D>
  /** Mutate the draft or return the new data. Synchronous. */
  onMessage?: (draft: D, message: any, arg: A) => D | void
  onCacheEntryAdded?: (arg: A, lifecycle: CacheLifecycle<D>) => void | Promise<void>
  /** T1: the headers to send, before every request and every stream (re)connect; throwing fails that attempt. */
  prepareHeaders?: (
    headers: Record<string, string>,
    context: { endpoint: string; arg: A; url: string; kind: 'query' | 'mutation' | 'stream' },
  ) => Record<string, string | null> | Promise<Record<string, string | null>>
  /** W1: makes the endpoint a mutation whose write this is (no `query`, `stream` or `mutation`
   * beside it); a thrown value is the `MutationError`'s, as for `queryFn`. */
  mutationFn?: (arg: A) => any | Promise<any>
  /** W2: the tags a query entry provides, after every fetch and `upsertQueryData`, instead of the
   * config's `providesTags`. Synchronous. An unknown tag type or a throw is an `error` event
   * (reason `hook`) after a fetch, and a `PatchError` from `upsertQueryData`. */
  providesTags?: (data: D, arg: A) => Tag[]
  /** W2: the tags a mutation invalidates when it settles (success or failure), instead of the
   * config's `invalidatesTags`. Synchronous. An unknown tag type or a throw fails the mutation
   * with `{status: 'CUSTOM_ERROR', error, data}` (`data` is the write's own answer). */
  invalidatesTags?: (result: any | undefined, error: { status: unknown; data?: unknown; error?: string } | undefined, arg: A) => Tag[]
}
/** W2: a tag, `"Type"` or `{type, id}`. */
export type Tag = string | { type: string; id?: unknown }
export type Hooks = Record<string, EndpointHooks>

export declare class Subscription<D = any> {
  private constructor()
  /** The cache key (K1), e.g. `getMessages("redux")`. */
  readonly key: string
  readonly active: boolean
  snapshot(): EntryState<D>
  /** L2: the data, at once if present. */
  loaded(): Promise<D>
  /**
   * The entry's state now (a `snapshot`, or a `status` while there is no data), then every later
   * event. Ends after a `removed` event, on `unsubscribe()` and on `close()`. The events wait in a
   * queue of the core's bounded by `queueLimit` (E4, E5): a reader further behind gets one
   * `snapshot` instead of the steps it missed.
   */
  events(): AsyncIterableIterator<LivecacheEvent<D>>
  unsubscribe(): void
}

export interface ClientOptions {
  /** `'manual'`: virtual time that moves only with `advance(ms)`, for tests of `keepUnusedDataFor` (L7). */
  clock?: 'system' | 'manual'
}

export declare class Client {
  constructor(config: Config | string, hooks?: Hooks, options?: ClientOptions)
  readonly closed: boolean
  /** Moves the manual clock forward by `ms` and runs what is due by then (L7 removals). */
  advance(ms: number): void
  /** `arg` undefined is "no arg", null is null (K1). */
  subscribe<D = any>(endpoint: string, arg?: unknown, onEvent?: ((event: LivecacheEvent<D>) => void) | null, options?: SubscribeOptions): Subscription<D>
  /** P3: create and fetch an entry without subscribing, or refetch a stale one. */
  prefetch(endpoint: string, arg?: unknown, options?: { ifOlderThan?: number; force?: boolean }): void
  /** P3: remove every entry; the client stays usable. */
  resetApiState(): void
  cacheKey(endpoint: string, arg?: unknown): string
  snapshot<D = any>(endpoint: string, arg?: unknown): EntryState<D>
  updateQueryData<D = any>(endpoint: string, arg: unknown, recipe: Recipe<D>): UpdateResult
  patchQueryData(endpoint: string, arg: unknown, patches: PatchOperation[]): UpdateResult
  upsertQueryData(endpoint: string, arg: unknown, data: unknown): void
  refetch(endpoint: string, arg?: unknown): void
  /** T2: one JSON text frame on the entry's open stream; rejects with NotConnected when it is not open. */
  send(endpoint: string, arg: unknown, message: unknown): Promise<void>
  /** W1: resolves with the response data once the refetches its invalidation started have
   * landed (W4); rejects with MutationError, WrongEndpointKind or InvalidArgument. */
  mutate<R = any>(endpoint: string, arg?: unknown, options?: MutateOptions): Promise<R>
  /** W2: refetch the subscribed entries providing a matching tag, remove the unused ones. */
  invalidateTags(tags: Tag[]): void
  /** T1: closes the entry's stream and connects again at once, with fresh headers. */
  reconnect(endpoint: string, arg?: unknown): void
  pushMessage(endpoint: string, arg: unknown, message: unknown): void
  /** L10 for a burst: the messages in order, in one crossing and one engine step (one event). */
  pushMessages(endpoint: string, arg: unknown, messages: unknown[]): void
  /** Raw text through the stream pipeline, exactly as a frame carries it. */
  pushMessageText(endpoint: string, arg: unknown, text: string): void
  stats(): Stats
  close(): Promise<void>
}

/** P1/P2: what a subscription may set. */
export interface SubscribeOptions {
  /** ms: the entry refetches every smallest interval among its polling subscribers. */
  pollingInterval?: number
  /** true, or seconds: subscribing to an existing entry refetches when its data is that old. */
  refetchOnMountOrArgChange?: boolean | number
}

/** W3: a mutation's optimistic layers and how the server confirms them (each overrides the endpoint's config). */
export interface MutateOptions {
  /** Shown at once above the server data until the server confirms them. A `message` goes
   * through that endpoint's apply rule; a `recipe` runs once, in this call, on a draft of the
   * entry's shown data (mutate it or return new data) and the change it made is the layer, put
   * back as a patch on every server change. A recipe that throws rejects with its error; nothing
   * is sent. */
  optimistic?: Array<
    | { endpoint: string; arg?: unknown; message: unknown }
    | { endpoint: string; arg?: unknown; recipe: Recipe<any> }
    | { endpoint: string; arg?: unknown; patch: PatchOperation[] }
  >
  /** Fields a stream message must have to confirm the layers (compared as `filter` compares). */
  confirm?: Record<string, unknown>
  confirmTimeoutMs?: number
}

export type ErrorCode =
  | 'ConfigError'
  | 'Closed'
  | 'UnknownEndpoint'
  | 'NotFound'
  | 'NotLoaded'
  | 'PatchError'
  | 'InvalidArgument'
  | 'InvalidInput'
  | 'CacheEntryRemoved'
  | 'NotConnected'
  | 'WrongEndpointKind'
  | 'MutationError'

export declare class LivecacheError extends Error {
  readonly code: ErrorCode | 'LivecacheError'
}
export declare class ConfigError extends LivecacheError {}
export declare class Closed extends LivecacheError {}
export declare class UnknownEndpoint extends LivecacheError {}
export declare class NotFound extends LivecacheError {}
export declare class NotLoaded extends LivecacheError {}
export declare class PatchError extends LivecacheError {}
export declare class InvalidArgument extends LivecacheError {}
export declare class InvalidInput extends LivecacheError {}
export declare class CacheEntryRemoved extends LivecacheError {}
/** T2: the entry's stream has no open connection to send on; nothing was queued. */
export declare class NotConnected extends LivecacheError {}
/** W1: `mutate` on a query endpoint, or an entry call on a mutation endpoint. */
export declare class WrongEndpointKind extends LivecacheError {}
/** W1: the mutation failed; `error` is the server's answer in fetchBaseQuery's shape. */
export declare class MutationError extends LivecacheError {
  readonly error: { status: number | string; data?: unknown; error?: string }
  readonly status: number | string
  readonly data: unknown
}

declare const livecache: {
  Client: typeof Client
  Subscription: typeof Subscription
  LivecacheError: typeof LivecacheError
  ConfigError: typeof ConfigError
  Closed: typeof Closed
  UnknownEndpoint: typeof UnknownEndpoint
  NotFound: typeof NotFound
  NotLoaded: typeof NotLoaded
  PatchError: typeof PatchError
  InvalidArgument: typeof InvalidArgument
  InvalidInput: typeof InvalidInput
  CacheEntryRemoved: typeof CacheEntryRemoved
  NotConnected: typeof NotConnected
  WrongEndpointKind: typeof WrongEndpointKind
  MutationError: typeof MutationError
}
export default livecache
