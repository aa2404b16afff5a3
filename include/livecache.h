/*
 * livecache.h: the C API of livecache, a live query cache whose entries are kept current by
 * streams (WebSocket, or messages you push), telling each subscriber what changed as RFC 6902
 * JSON Patch events. The contract is SPEC.md (rule ids such as L7 and E1 below point there).
 *
 * Build and link
 * --------------
 *     cargo build --release -p livecache-ffi        # target/release/liblivecache.{so,a}
 *     cc app.c -I include -L target/release -llivecache -o app
 *     cc app.c -I include target/release/liblivecache.a -lpthread -ldl -lm -o app   # static
 * or, with the pkg-config file tests/c/run.sh writes (target/<profile>/pkgconfig/livecache.pc):
 *     cc app.c $(pkg-config --cflags --libs livecache) -o app
 *
 * Conventions
 * -----------
 * - Every fallible function returns a livecache_result: LIVECACHE_RESULT_OK (0) or an error code.
 *   livecache_last_error() gives the message of this thread's last failure, and
 *   livecache_result_kind() the error kind's name shared with the Python and Node bindings.
 * - Out-parameters are written only on success. A NULL required pointer is
 *   LIVECACHE_RESULT_NULL_PARAMETER, never a crash; string arguments must be NUL-terminated
 *   UTF-8 (else LIVECACHE_RESULT_INVALID_UTF8); JSON arguments are JSON text.
 * - An arg_json of NULL means "no arg" (cache key endpoint(undefined)); the text "null" is the
 *   JSON null (key endpoint(null)).
 * - Strings livecache returns through char ** out-parameters are released with
 *   livecache_string_free() - never free(): they come from livecache's allocator. Strings returned
 *   as const char * (livecache_last_error, livecache_result_kind, livecache_version,
 *   livecache_subscription_key, livecache_request_key, livecache_lifecycle_key) are borrowed:
 *   never free them; each function says how long they stay valid.
 * - Every _free function and livecache_unsubscribe accept NULL.
 * - user_data pointers are passed back untouched; livecache never reads them.
 *
 * Thread safety
 * -------------
 * - A livecache_client may be used from any number of threads at once, except
 *   livecache_client_free, which must be the last call on it. Subscriptions, requests and the
 *   result strings may be used and released from any thread.
 * - Event callbacks (livecache_event_cb) run on the client's delivery thread, one at a time per
 *   client, in order for each subscription; a callback never starts before livecache_subscribe
 *   has written the subscription handle. In pull mode ({"delivery": "poll"}) they run only inside
 *   livecache_client_poll, on the thread calling it.
 * - No engine lock is held while a callback runs: a callback may call any livecache function -
 *   subscribe another key, update the cache, or livecache_unsubscribe its own subscription (it
 *   returns at once, and that callback is its last).
 * - livecache_unsubscribe called from another thread while a callback of that subscription runs
 *   returns only after that callback has finished; no callback of it starts afterwards.
 * - The event text passed to a callback lives only during the call: copy what you keep. A slow
 *   callback delays the others of its client; each subscription queues at most queueLimit
 *   (default 1024) events, then they collapse into one snapshot event (SPEC E4, E5).
 * - Host hooks (query functions, on_message updaters, response transforms, entry-added hooks)
 *   run on the engine's runtime threads, possibly several at once for different entries: make
 *   them thread-safe and quick, and never block in them. A query request may be answered from any
 *   thread, at any later time; a lifecycle handle's waiting functions are for your own threads.
 * - livecache_last_error() is per thread: read it on the thread whose call failed.
 *
 * Shutdown
 * --------
 * - livecache_client_free (or livecache_client_close) removes every entry, closes every stream
 *   with a WebSocket close handshake, stops the engine's threads and stops every callback before
 *   it returns: with thread delivery the events already queued (removed events included) are
 *   delivered first; in pull mode they are dropped. No callback or hook of the client runs after
 *   it returns.
 * - Subscription handles outlive the client: release each with livecache_unsubscribe, before
 *   or after freeing the client. Unanswered query requests must still be answered (fulfil or
 *   reject) to release them; the answer is then dropped.
 * - From inside one of the client's own callbacks or hooks, call livecache_client_close (the
 *   events still queued for that subscription may follow; every other call then returns
 *   LIVECACHE_RESULT_CLOSED), and leave livecache_client_free to another thread.
 *
 * Valgrind
 * --------
 * - Run memcheck on a program using the release liblivecache with the suppressions shipped
 *   beside this header: valgrind --suppressions=<include dir>/livecache.supp. Each entry says
 *   why it is a false positive of optimised code (a WebSocket handshake's header-name lookup
 *   in the `http` crate). Its entries name functions: use a library with its symbol table
 *   (ffi/install.sh --no-strip). livecache's own tests run memcheck on the release and the
 *   debug library and require 0 errors.
 */


#ifndef LIVECACHE_H
#define LIVECACHE_H

/* Generated by cbindgen from ffi/src with ffi/cbindgen.toml. Do not edit: run tests/c/run.sh. */

#include <stddef.h>
#include <stdint.h>

/**
 * What a call did. `LIVECACHE_RESULT_OK` is 0; every other code names one error kind, and
 * `livecache_last_error()` holds the message of the failure on the calling thread.
 */
typedef enum {
    /**
     * Success; out-parameters are written.
     */
    LIVECACHE_RESULT_OK = 0,
    /**
     * A required pointer argument was NULL.
     */
    LIVECACHE_RESULT_NULL_PARAMETER = 1,
    /**
     * A string argument is not valid UTF-8.
     */
    LIVECACHE_RESULT_INVALID_UTF8 = 2,
    /**
     * A JSON argument is not valid JSON, is nested deeper than 128 levels, or holds NaN/Infinity.
     */
    LIVECACHE_RESULT_INVALID_JSON = 3,
    /**
     * The configuration (or the options JSON) is invalid; the message names the key path.
     */
    LIVECACHE_RESULT_CONFIG = 4,
    /**
     * The client is closed.
     */
    LIVECACHE_RESULT_CLOSED = 5,
    /**
     * The endpoint is not in the configuration.
     */
    LIVECACHE_RESULT_UNKNOWN_ENDPOINT = 6,
    /**
     * No cache entry exists for the key.
     */
    LIVECACHE_RESULT_NOT_FOUND = 7,
    /**
     * The cache entry has no data yet, so it cannot be updated.
     */
    LIVECACHE_RESULT_NOT_LOADED = 8,
    /**
     * A host patch or update did not apply; nothing changed.
     */
    LIVECACHE_RESULT_PATCH = 9,
    /**
     * An argument the call cannot use (an arg missing a templated field, a call that does not
     * fit the client's delivery mode).
     */
    LIVECACHE_RESULT_INVALID_ARGUMENT = 10,
    /**
     * The cache entry was removed before its data loaded.
     */
    LIVECACHE_RESULT_CACHE_ENTRY_REMOVED = 11,
    /**
     * livecache itself failed unexpectedly; the call was abandoned (a bug: please report it).
     */
    LIVECACHE_RESULT_PANIC = 12,
    /**
     * The entry's stream has no open connection to send on; nothing was queued.
     */
    LIVECACHE_RESULT_NOT_CONNECTED = 13,
    /**
     * `mutate` on a query endpoint, or an entry call on a mutation endpoint.
     */
    LIVECACHE_RESULT_WRONG_ENDPOINT_KIND = 14,
    /**
     * The mutation failed; its result JSON is the server's answer `{"status", "data"}`.
     */
    LIVECACHE_RESULT_MUTATION = 15,
} livecache_result;

/**
 * A livecache client: its cache entries, streams and subscriptions, on its own runtime.
 * Created by `livecache_client_new` / `livecache_client_new_with_options`, released by
 * `livecache_client_free`.
 */
typedef struct livecache_client livecache_client;

/**
 * Host hooks per endpoint, given to `livecache_client_new_with_options`. Built with
 * `livecache_hooks_new` and the `livecache_hooks_set_*` functions, released with
 * `livecache_hooks_free` (any time after the client is created: the client keeps a copy).
 */
typedef struct livecache_hooks livecache_hooks;

/**
 * One cache entry's lifetime, as `onCacheEntryAdded` sees it: its first data, its removal, and
 * updates bound to this lifetime. Owned by the host from the hook call on; released with
 * `livecache_lifecycle_free` (before or after the entry or the client is gone).
 */
typedef struct livecache_lifecycle livecache_lifecycle;

/**
 * One call of a query function, answered exactly once with `livecache_request_fulfill` or
 * `livecache_request_reject`, from any thread, now or later. Either call releases it.
 */
typedef struct livecache_request livecache_request;

/**
 * One subscriber of one cache key. Released by `livecache_unsubscribe`.
 */
typedef struct livecache_subscription livecache_subscription;

/**
 * A change being described by host code: filled by `livecache_update_set_data`,
 * `livecache_update_set_patches` or `livecache_update_fail` during the callback that receives
 * it (an update recipe or an `on_message` hook). Owned by livecache and valid only during that
 * callback. Leaving it untouched means "no change".
 */
typedef struct livecache_update livecache_update;

/**
 * Receives one event as compact JSON text (SPEC §5): `{"type":"patch","key":…}`.
 * `len` equals `strlen(event_json)`. The text lives only during the call: copy what you keep.
 */
typedef void (*livecache_event_cb)(void *user_data, const char *event_json, size_t len);

/**
 * An update recipe (`updateQueryData`): `data_json` is the entry's current data as JSON text
 * (valid only during the call); describe the change on `update`.
 */
typedef void (*livecache_update_fn)(void *user_data, const char *data_json, livecache_update *update);

/**
 * `queryFn`: starts fetching the data of one cache entry. `arg_json` is the arg as JSON text,
 * NULL for "no arg"; it lives only during the call. Runs on an engine thread: return quickly and
 * answer `request` later (from any thread), or answer it before returning.
 */
typedef void (*livecache_query_fn)(void *user_data, const char *arg_json, livecache_request *request);

/**
 * T1 `prepareHeaders`: `headers_json` is the object of headers about to be sent (name to
 * string), `context_json` is `{"endpoint", "arg", "url", "kind"}` (`kind` `"query"` or
 * `"stream"`); both live only during the call. Answer `request` (from any thread, now or later)
 * with `livecache_request_fulfill` and the headers to send as a JSON object, or with
 * `livecache_request_reject` to fail that fetch (status `rejected`) or that connect attempt
 * (retried with backoff). Runs before every request and every stream (re)connect.
 */
typedef void (*livecache_prepare_headers_fn)(void *user_data,
                                             const char *headers_json,
                                             const char *context_json,
                                             livecache_request *request);

/**
 * `onMessage`: makes the change one stream message brings. `data_json` is the current data
 * (`null` before the first data), `message_json` the message, `arg_json` the arg (NULL for "no
 * arg"); all live only during the call. Describe the change on `update`: usually RFC 6902
 * operations with `livecache_update_set_patches` (applied as they are, no diff); leave it
 * untouched for no change; `livecache_update_fail` gives subscribers an `error` event (reason
 * `hook`). Runs on an engine thread, one message of an entry at a time, no engine lock held.
 */
typedef void (*livecache_on_message_fn)(void *user_data,
                                        const char *data_json,
                                        const char *message_json,
                                        const char *arg_json,
                                        livecache_update *update);

/**
 * The batched `onMessage`: one call per burst of messages queued for an entry, instead of one
 * per message, so the data crosses as text once per burst. `messages_json` is a JSON array of
 * the `count` messages, in arrival order; `data_json` the data before the first of them
 * (`null` before the first data); `arg_json` the arg (NULL for "no arg"). `updates` holds
 * `count` handles: describe message `i`'s change on `updates[i]` as `livecache_on_message_fn`
 * describes one, computed on the data as the changes before it left it. A
 * `livecache_update_fail` fails that message only (an `error` event, reason `hook`); the changes
 * after it must not build on it. Runs on an engine thread, one call of an entry at a time, no
 * engine lock held; every pointer lives only during the call.
 */
typedef void (*livecache_on_messages_fn)(void *user_data,
                                         const char *data_json,
                                         const char *messages_json,
                                         size_t count,
                                         const char *arg_json,
                                         livecache_update *const *updates);

/**
 * `transformResponse`: turns each fetched response (`data_json`) into the entry's data with
 * `livecache_update_set_data`; untouched keeps it as it is; `livecache_update_fail` makes the
 * fetch fail (status `rejected`). Runs on an engine thread; pointers live only during the call.
 */
typedef void (*livecache_transform_fn)(void *user_data,
                                       const char *data_json,
                                       const char *arg_json,
                                       livecache_update *update);

/**
 * W2 `providesTags`: the tags of one entry's data, answered on `tags` with
 * `livecache_update_set_data` and a JSON list of `"Type"` / `{"type", "id"}` (types from
 * `tagTypes`); untouched is no tags; `livecache_update_fail` is the hook's failure (after a fetch
 * the data is kept and subscribers get an `error` event, reason `hook`; `livecache_upsert_query_data`
 * returns `PATCH_FAILED`). Runs on an engine thread after each fetch, and on the calling thread
 * inside `livecache_upsert_query_data`; pointers live only during the call.
 */
typedef void (*livecache_provides_tags_fn)(void *user_data,
                                           const char *data_json,
                                           const char *arg_json,
                                           livecache_update *tags);

/**
 * W2 `invalidatesTags`: the tags a mutation invalidates, once when it settles: `result_json` is
 * its result (NULL on failure), `error_json` its error value `{status, data}` (NULL on success).
 * Answered as `livecache_provides_tags_fn` is; a failure or an unknown tag type makes the
 * mutation fail (`MUTATION_FAILED`, `{"status": "CUSTOM_ERROR", "error", "data"}` with the write's
 * own answer as `data`). Runs on an engine thread; pointers live only during the call.
 */
typedef void (*livecache_invalidates_tags_fn)(void *user_data,
                                              const char *result_json,
                                              const char *error_json,
                                              const char *arg_json,
                                              livecache_update *tags);

/**
 * `onCacheEntryAdded`: called once per entry lifetime (SPEC L1) right after the entry is created,
 * with the arg (`arg_json`, NULL for "no arg", valid during the call) and a lifecycle handle the
 * hook now owns. Runs on an engine thread: do not wait there — hand the handle to a thread of
 * your own, which may block in `livecache_lifecycle_cache_data_loaded` /
 * `livecache_lifecycle_cache_entry_removed`.
 */
typedef void (*livecache_entry_added_fn)(void *user_data, const char *arg_json, livecache_lifecycle *lifecycle);

/**
 * The completion of `livecache_mutate`: `result` is `LIVECACHE_RESULT_OK` with the response
 * data as `result_json`; `LIVECACHE_RESULT_MUTATION` with the server's answer
 * `{"status", "data"}` (or `{"status", "error"}` for a network failure, in fetchBaseQuery's
 * shapes); or another code (`NOT_FOUND`, `NOT_CONNECTED` for a `send` mutation, `CLOSED`) with
 * `{"kind", "message"}`. `result_json` (`len` bytes, NUL-terminated) is valid only during the
 * call.
 */
typedef void (*livecache_mutate_cb)(void *user_data,
                                    livecache_result result,
                                    const char *result_json,
                                    size_t len);

#ifdef __cplusplus
extern "C" {
#endif // __cplusplus

/**
 * The library version, e.g. `"0.1.0"`. A static string: do not free it.
 */
const char *livecache_version(void);

/**
 * The message of the last call that failed on this thread, or an empty string if none did.
 * The pointer stays valid until the next failing call on this thread; do not free it.
 */
const char *livecache_last_error(void);

/**
 * The error kind of a result code, with the names every livecache binding shares
 * (`"NotFound"`, `"ConfigError"`, `"PatchError"`, …; `"Ok"` for success). A static string: do
 * not free it. `result` is an `int`, not the enum: a C caller may pass any value (a code of a
 * newer library, garbage), and any value it is given is `"Unknown"` rather than undefined
 * behaviour.
 */
const char *livecache_result_kind(int result);

/**
 * Frees a string livecache returned (`livecache_snapshot`, `livecache_stats`, …). NULL is
 * ignored. Never pass these strings to `free()`: they come from livecache's allocator.
 *
 * # Safety
 * `s` is NULL or a string returned by livecache that was not freed yet.
 */
void livecache_string_free(char *s);

/**
 * Creates a client from configuration JSON text (SPEC §2). Callbacks run on a delivery thread
 * the client owns. On success `*out` is the new client, freed with `livecache_client_free`.
 *
 * Errors: `NULL_PARAMETER`, `INVALID_UTF8`, `INVALID_JSON` (not JSON text), `CONFIG` (the
 * message names the offending key path, e.g. `endpoints.getPost.query`).
 *
 * # Safety
 * `config_json` is NULL or a NUL-terminated string; `out` is NULL or writable.
 */
livecache_result livecache_client_new(const char *config_json, livecache_client **out);

/**
 * Creates a client with options and host hooks.
 *
 * `options_json` (NULL for the defaults) is a JSON object:
 * - `"delivery"`: `"thread"` (default: callbacks run on the client's delivery thread) or
 *   `"poll"` (pull mode: callbacks run only inside `livecache_client_poll`, on the caller's thread;
 *   `livecache_client_fd` gives a descriptor to wait on);
 * - `"workerThreads"`: threads of the engine's runtime, 1 to 64 (default 2);
 * - `"clock"`: `"system"` (default) or `"manual"`: virtual time that moves only with
 *   `livecache_client_advance`, for tests of `keepUnusedDataFor` (L7) that do not sleep.
 *
 * `hooks` (NULL for none) is read during the call and may be freed right after it; the
 * functions and `user_data` pointers it holds must stay valid until `livecache_client_free`.
 *
 * Errors: as `livecache_client_new`; an unknown or invalid option is `CONFIG`, and so are hooks
 * for an endpoint the config does not have.
 *
 * # Safety
 * String arguments are NULL or NUL-terminated; `hooks` is NULL or a live hooks object; `out`
 * is NULL or writable.
 */
livecache_result livecache_client_new_with_options(const char *config_json,
                                                   const char *options_json,
                                                   const livecache_hooks *hooks,
                                                   livecache_client **out);

/**
 * Moves a manual clock (option `"clock": "manual"`) forward by `ms` milliseconds and runs what
 * is due by then (L7 removals) before returning; their events follow as usual.
 *
 * Errors: `INVALID_ARGUMENT` on a client with the system clock, `CLOSED`, `NULL_PARAMETER`.
 *
 * # Safety
 * `client` is NULL or a live client.
 */
livecache_result livecache_client_advance(livecache_client *client, uint64_t ms);

/**
 * Closes the client, then releases it. NULL is ignored.
 *
 * Closing removes every entry, closes every stream with a WebSocket close handshake (bounded
 * wait) and stops every callback before this returns: in thread delivery the events already
 * queued (`removed` included) are delivered first, in pull mode they are dropped. No callback
 * or hook of this client starts after it returns.
 *
 * Subscription handles stay valid after this: each must still be released once with
 * `livecache_unsubscribe` (which then only frees it).
 *
 * # Safety
 * `client` is NULL or a live client that no other thread uses during or after this call.
 */
void livecache_client_free(livecache_client *client);

/**
 * Closes the client without releasing it (idempotent): as `livecache_client_free` does, but
 * the handle stays valid and every later call on it returns `LIVECACHE_RESULT_CLOSED`.
 *
 * # Safety
 * `client` is NULL or a live client.
 */
livecache_result livecache_client_close(livecache_client *client);

/**
 * Pull mode: runs the callbacks that are ready, on the calling thread, waiting up to
 * `timeout_ms` milliseconds for the first one (0: do not wait; negative: wait until one is
 * ready or the client closes). `*out_count` (NULL if not wanted) gets how many callbacks ran.
 *
 * Drains the descriptor of `livecache_client_fd` first: whenever callbacks become ready after
 * that, it is readable again (it may also turn readable for callbacks this call then runs
 * itself; a later poll then simply runs none). Call it from one thread at a time.
 *
 * Errors: `CLOSED`; `INVALID_ARGUMENT` for a client that delivers on its own thread.
 *
 * # Safety
 * `client` is NULL or a live client; `out_count` is NULL or writable.
 */
livecache_result livecache_client_poll(livecache_client *client, int64_t timeout_ms, size_t *out_count);

/**
 * Pull mode: a file descriptor that is readable while callbacks wait for
 * `livecache_client_poll` — wait on it with poll(2), epoll or your event loop, then call
 * `livecache_client_poll(client, 0, …)`. It belongs to the client: do not read, write or close it;
 * it is closed by `livecache_client_free`.
 *
 * Errors: `INVALID_ARGUMENT` for a client that delivers on its own thread.
 *
 * # Safety
 * `client` is NULL or a live client; `out_fd` is NULL or writable.
 */
livecache_result livecache_client_fd(livecache_client *client, int32_t *out_fd);

/**
 * Subscribes to `(endpoint, arg)`; the first subscriber of a key creates its entry and starts
 * its query and stream (SPEC L1). `arg_json` is the arg as JSON text; NULL means "no arg"
 * (key `endpoint(undefined)`), the text `null` is the JSON null (key `endpoint(null)`).
 *
 * `cb(user_data, event_json, len)` gets every event of this subscription, in order, never two
 * at once, on the client's delivery thread (pull mode: inside `livecache_client_poll`). The
 * first callback starts only after this function has written `*out`. A callback may call any
 * livecache function, `livecache_unsubscribe` on its own subscription included.
 *
 * On success `*out` is the subscription, released with `livecache_unsubscribe`.
 *
 * Errors: `NULL_PARAMETER` (client, endpoint, cb, out), `INVALID_UTF8`, `INVALID_JSON`,
 * `UNKNOWN_ENDPOINT`, `INVALID_ARGUMENT` (the arg lacks a templated field), `CLOSED`.
 *
 * # Safety
 * `client` is NULL or live; strings are NULL or NUL-terminated; `out` is NULL or writable.
 */
livecache_result livecache_subscribe(livecache_client *client,
                                     const char *endpoint,
                                     const char *arg_json,
                                     livecache_event_cb cb,
                                     void *user_data,
                                     livecache_subscription **out);

/**
 * `livecache_subscribe` with `options_json`: NULL or `{"pollingInterval"?: ms,
 * "refetchOnMountOrArgChange"?: true | false | seconds}` (SPEC P1: the entry refetches every
 * smallest interval among its polling subscribers, never with two fetches in flight, and stops
 * when none is left; P2: subscribing to an existing entry refetches when its data is that old).
 * Polls run on the client's threads; events reach `cb` as for `livecache_subscribe`.
 *
 * Errors: those of `livecache_subscribe`, and `INVALID_ARGUMENT` for an unknown option or a
 * `pollingInterval` that is not a positive number.
 *
 * # Safety
 * As `livecache_subscribe`; `options_json` is NULL or NUL-terminated.
 */
livecache_result livecache_subscribe_with_options(livecache_client *client,
                                                  const char *endpoint,
                                                  const char *arg_json,
                                                  const char *options_json,
                                                  livecache_event_cb cb,
                                                  void *user_data,
                                                  livecache_subscription **out);

/**
 * Ends a subscription and releases its handle. NULL is ignored.
 *
 * After it returns no callback of this subscription starts; when one is running on another
 * thread, this waits for it to finish. Called from the subscription's own callback, it returns
 * at once and that callback is the last. The last subscriber of a key leaving starts the
 * entry's `keepUnusedDataFor` timer (SPEC L7). Also valid after `livecache_client_free`, where it
 * only releases the handle.
 *
 * # Safety
 * `sub` is NULL or a live subscription, released only once.
 */
void livecache_unsubscribe(livecache_subscription *sub);

/**
 * The subscription's cache key (SPEC K1), e.g. `getMessages("redux")`. Owned by the
 * subscription: valid until `livecache_unsubscribe`; do not free it. NULL for a NULL `sub`.
 *
 * # Safety
 * `sub` is NULL or a live subscription.
 */
const char *livecache_subscription_key(const livecache_subscription *sub);

/**
 * The entry state of the subscription's key, as `livecache_snapshot` gives it.
 *
 * # Safety
 * `sub` is NULL or a live subscription; `out_json` is NULL or writable.
 */
livecache_result livecache_subscription_snapshot(const livecache_subscription *sub, char **out_json);

/**
 * The entry state of `(endpoint, arg)` as JSON text (SPEC §5):
 * `{"key","status","version","data","error"?,"stream":{"state","error"?}}`.
 * On success `*out_json` is a string to release with `livecache_string_free`.
 *
 * Errors: `NULL_PARAMETER`, `INVALID_UTF8`, `INVALID_JSON`, `UNKNOWN_ENDPOINT`, `NOT_FOUND`
 * (no entry for the key), `CLOSED`.
 *
 * # Safety
 * `client` NULL or live; strings NULL or NUL-terminated; `out_json` NULL or writable.
 */
livecache_result livecache_snapshot(livecache_client *client,
                                    const char *endpoint,
                                    const char *arg_json,
                                    char **out_json);

/**
 * `patchQueryData` (SPEC L9): applies RFC 6902 operations (`patches_json`, an array) to a loaded
 * entry, all or nothing. When this returns, `livecache_snapshot` shows the change; subscribers'
 * events follow asynchronously. `*out_result_json` (NULL if not wanted) gets
 * `{"patches": [...], "inversePatches": [...]}`; applying `inversePatches` with this function
 * undoes the change. Release it with `livecache_string_free`.
 *
 * Errors: `NOT_FOUND` (no entry), `NOT_LOADED` (no data yet), `PATCH` (an operation does not
 * apply, `test` fails, unknown op, deeper than 128 levels; nothing changed), and the argument
 * errors of `livecache_snapshot`.
 *
 * # Safety
 * As `livecache_snapshot`; `out_result_json` NULL or writable.
 */
livecache_result livecache_patch_query_data(livecache_client *client,
                                            const char *endpoint,
                                            const char *arg_json,
                                            const char *patches_json,
                                            char **out_result_json);

/**
 * `undo()` of a host update (SPEC L9, as RTK Query's `patchResult.undo()`): applies the
 * `inversePatches` of `result_json` — a result that `livecache_patch_query_data`,
 * `livecache_update_query_data` or `livecache_lifecycle_update_cached_data` wrote — to
 * `(endpoint, arg)` as a new host update, all or nothing. `*out_result_json` (NULL if not wanted)
 * gets that update's `{"patches", "inversePatches"}`: undoing it again redoes the change.
 *
 * Errors: `INVALID_JSON` (`result_json` is not JSON), `PATCH` (it has no `inversePatches`
 * array, or they no longer apply: nothing changed), and the errors of `livecache_patch_query_data`.
 *
 * # Safety
 * As `livecache_patch_query_data`; `result_json` NULL or NUL-terminated.
 */
livecache_result livecache_undo(livecache_client *client,
                                const char *endpoint,
                                const char *arg_json,
                                const char *result_json,
                                char **out_result_json);

/**
 * `updateQueryData` (SPEC L9): calls `recipe(user_data, data_json, update)` once, on this thread
 * with no engine lock held, with the entry's current data; the recipe describes the change on
 * `update` (whole new data, or RFC 6902 operations). `*out_result_json` (NULL if not wanted)
 * gets `{"patches", "inversePatches"}` as `livecache_patch_query_data` gives them.
 *
 * Errors: `PATCH` (the recipe's operations do not apply, or it called `livecache_update_fail`;
 * nothing changed) and the errors of `livecache_patch_query_data`.
 *
 * # Safety
 * As `livecache_patch_query_data`; `recipe` may be called once before this returns.
 */
livecache_result livecache_update_query_data(livecache_client *client,
                                             const char *endpoint,
                                             const char *arg_json,
                                             livecache_update_fn recipe,
                                             void *user_data,
                                             char **out_result_json);

/**
 * `upsertQueryData` (SPEC L9): sets the data of `(endpoint, arg)`, creating a fulfilled entry
 * with no subscriber if absent (it is then removed after `keepUnusedDataFor`, L7).
 *
 * Errors: `NULL_PARAMETER`, `INVALID_UTF8`, `INVALID_JSON`, `UNKNOWN_ENDPOINT`, `PATCH` (data
 * deeper than 128 levels), `INVALID_ARGUMENT`, `CLOSED`.
 *
 * # Safety
 * As `livecache_snapshot`.
 */
livecache_result livecache_upsert_query_data(livecache_client *client,
                                             const char *endpoint,
                                             const char *arg_json,
                                             const char *data_json);

/**
 * Re-runs the query of `(endpoint, arg)` (SPEC L5); the response replaces the data and
 * subscribers get a `snapshot`.
 *
 * Errors: `NOT_FOUND` and the argument errors of `livecache_snapshot`.
 *
 * # Safety
 * As `livecache_snapshot`.
 */
livecache_result livecache_refetch(livecache_client *client, const char *endpoint, const char *arg_json);

/**
 * `pushMessage` (SPEC L10): feeds `message_json` through the endpoint's stream pipeline exactly
 * as if the stream had received that text frame. Returns once queued; a message the pipeline
 * refuses (not JSON, schema, patch that does not apply, too large or deep) gives an `error`
 * event to subscribers, not an error code.
 *
 * Errors: `NOT_FOUND` (no entry for the key), `NULL_PARAMETER`, `INVALID_UTF8` (the message
 * text too), `INVALID_JSON` (arg only), `UNKNOWN_ENDPOINT`, `CLOSED`.
 *
 * # Safety
 * As `livecache_snapshot`.
 */
livecache_result livecache_push_message(livecache_client *client,
                                        const char *endpoint,
                                        const char *arg_json,
                                        const char *message_json);

/**
 * `pushMessages` (SPEC L10 for a burst): `messages_json` is a JSON array; each element goes
 * through the endpoint's stream pipeline in order, as frames that arrived back to back, in one
 * engine step (one event for the burst, E2). Each element passes or fails the pipeline on its
 * own (a failure is an `error` event); each may nest the full 128 levels inside the array.
 *
 * Errors, which queue none of the messages: `NOT_FOUND` (no entry for the key),
 * `NULL_PARAMETER`, `INVALID_UTF8`, `INVALID_JSON` (arg, or `messages_json` not JSON text or
 * nested too deep), `INVALID_ARGUMENT` (`messages_json` not an array), `UNKNOWN_ENDPOINT`,
 * `CLOSED`.
 *
 * # Safety
 * As `livecache_snapshot`.
 */
livecache_result livecache_push_messages(livecache_client *client,
                                         const char *endpoint,
                                         const char *arg_json,
                                         const char *messages_json);

/**
 * The client's counters as JSON text (SPEC §5): `entries`, `subscriptions`, `messagesApplied`,
 * `messagesFiltered`, `messagesRejected` (by reason), `reconnects`, `queueOverflows`, …
 * Release `*out_json` with `livecache_string_free`.
 *
 * Errors: `NULL_PARAMETER`, `CLOSED`.
 *
 * # Safety
 * `client` NULL or live; `out_json` NULL or writable.
 */
livecache_result livecache_stats(livecache_client *client, char **out_json);

/**
 * The cache key of `(endpoint, arg)` (SPEC K1), e.g. `getPost({"id":1,"page":2})`, the same
 * in every binding. Release `*out_key` with `livecache_string_free`.
 *
 * Errors: `NULL_PARAMETER`, `INVALID_UTF8`, `INVALID_JSON`, `UNKNOWN_ENDPOINT`.
 *
 * # Safety
 * As `livecache_snapshot`.
 */
livecache_result livecache_cache_key(livecache_client *client,
                                     const char *endpoint,
                                     const char *arg_json,
                                     char **out_key);

/**
 * `send` (SPEC T2): writes `message_json` as one text frame on the open stream of
 * `(endpoint, arg)`, blocking until it is written.
 *
 * Errors: `NOT_CONNECTED` when the stream is not open (nothing is queued; retry after an
 * `open` stream event), `NOT_FOUND` (no entry), `INVALID_JSON` (the message too) and the
 * argument errors of `livecache_snapshot`.
 *
 * # Safety
 * As `livecache_snapshot`.
 */
livecache_result livecache_send(livecache_client *client,
                                const char *endpoint,
                                const char *arg_json,
                                const char *message_json);

/**
 * `reconnect` (SPEC T1): closes the stream of `(endpoint, arg)` with a close handshake and
 * connects again at once, with freshly rendered headers; the new connection resyncs (L8).
 * Returns without waiting for the reconnect; stream events report it.
 *
 * Errors: `NOT_CONNECTED` (the endpoint has no stream URL), `NOT_FOUND` and the argument
 * errors of `livecache_snapshot`.
 *
 * # Safety
 * As `livecache_snapshot`.
 */
livecache_result livecache_reconnect(livecache_client *client, const char *endpoint, const char *arg_json);

/**
 * Sets the whole new data (JSON text); livecache derives the patch subscribers get.
 *
 * Errors: `NULL_PARAMETER`, `INVALID_UTF8`, `INVALID_JSON`; the update is unchanged then.
 *
 * # Safety
 * `update` is NULL or the handle passed to the running callback; `data_json` NULL or NUL-terminated.
 */
livecache_result livecache_update_set_data(livecache_update *update, const char *data_json);

/**
 * Sets the change as RFC 6902 operations (JSON text: an array of operations), applied to the
 * current data all or nothing — the fast path: no diff is computed.
 *
 * Errors: `NULL_PARAMETER`, `INVALID_UTF8`, `INVALID_JSON`, `PATCH` (not an operation array);
 * the update is unchanged then.
 *
 * # Safety
 * As `livecache_update_set_data`.
 */
livecache_result livecache_update_set_patches(livecache_update *update, const char *patches_json);

/**
 * Refuses the change with a message: an `on_message` hook's message becomes an `error` event
 * (reason `hook`); an update recipe's call returns `LIVECACHE_RESULT_PATCH`. Nothing changes.
 *
 * Errors: `NULL_PARAMETER`, `INVALID_UTF8`.
 *
 * # Safety
 * `update` is NULL or the handle passed to the running callback; `message` NULL or NUL-terminated.
 */
livecache_result livecache_update_fail(livecache_update *update, const char *message);

/**
 * Creates an empty hooks object; `*out` is released with `livecache_hooks_free`.
 *
 * # Safety
 * `out` is NULL or writable.
 */
livecache_result livecache_hooks_new(livecache_hooks **out);

/**
 * Releases a hooks object. NULL is ignored. Clients created from it keep working.
 *
 * # Safety
 * `hooks` is NULL or a live hooks object, released only once.
 */
void livecache_hooks_free(livecache_hooks *hooks);

/**
 * Sets the query function of `endpoint` (replacing a previous one). The endpoint then needs
 * no `query` URL. `user_data` is passed untouched to every call and must stay valid until the
 * client is freed.
 *
 * Errors: `NULL_PARAMETER`, `INVALID_UTF8`. An endpoint the config lacks is reported by the
 * client constructor (`CONFIG`).
 *
 * # Safety
 * `hooks` NULL or live; `endpoint` NULL or NUL-terminated.
 */
livecache_result livecache_hooks_set_query_fn(livecache_hooks *hooks,
                                              const char *endpoint,
                                              livecache_query_fn query_fn,
                                              void *user_data);

/**
 * Sets the `mutationFn` hook of `endpoint` (SPEC W1): the endpoint is then a mutation whose
 * write is this function, called once per `livecache_mutate` with the arg, and answered like a
 * `query_fn` — `livecache_request_fulfill` with the result, or `livecache_request_reject` with
 * the error value the `MUTATION` result carries. The config must give the endpoint no `query`,
 * `stream` or `mutation` (`CONFIG` at client creation). Thread rules as for `query_fn`.
 *
 * Errors: `NULL_PARAMETER`, `INVALID_UTF8`.
 *
 * # Safety
 * As `livecache_hooks_set_query_fn`.
 */
livecache_result livecache_hooks_set_mutation_fn(livecache_hooks *hooks,
                                                 const char *endpoint,
                                                 livecache_query_fn mutation_fn,
                                                 void *user_data);

/**
 * Sets the `prepareHeaders` hook of `endpoint` (T1), replacing a previous one. `user_data`
 * must stay valid until the client is freed.
 *
 * Errors: `NULL_PARAMETER`, `INVALID_UTF8`.
 *
 * # Safety
 * As `livecache_hooks_set_query_fn`.
 */
livecache_result livecache_hooks_set_prepare_headers(livecache_hooks *hooks,
                                                     const char *endpoint,
                                                     livecache_prepare_headers_fn prepare_headers,
                                                     void *user_data);

/**
 * Sets the per-message updater of `endpoint` (its `onMessage`; the endpoint's `stream` then
 * has no `apply` rule). `user_data` must stay valid until the client is freed.
 *
 * Errors: `NULL_PARAMETER`, `INVALID_UTF8`.
 *
 * # Safety
 * As `livecache_hooks_set_query_fn`.
 */
livecache_result livecache_hooks_set_on_message(livecache_hooks *hooks,
                                                const char *endpoint,
                                                livecache_on_message_fn on_message,
                                                void *user_data);

/**
 * Sets the batched per-message updater of `endpoint` (its `onMessage`, one call per burst; see
 * `livecache_on_messages_fn`). It replaces `livecache_hooks_set_on_message`'s hook when both are
 * set. `user_data` must stay valid until the client is freed.
 *
 * Errors: `NULL_PARAMETER`, `INVALID_UTF8`.
 *
 * # Safety
 * As `livecache_hooks_set_query_fn`.
 */
livecache_result livecache_hooks_set_on_messages(livecache_hooks *hooks,
                                                 const char *endpoint,
                                                 livecache_on_messages_fn on_messages,
                                                 void *user_data);

/**
 * Sets the response transform of `endpoint` (its `transformResponse`, applied before the
 * config's `entityAdapter`). `user_data` must stay valid until the client is freed.
 *
 * Errors: `NULL_PARAMETER`, `INVALID_UTF8`.
 *
 * # Safety
 * As `livecache_hooks_set_query_fn`.
 */
livecache_result livecache_hooks_set_transform_response(livecache_hooks *hooks,
                                                        const char *endpoint,
                                                        livecache_transform_fn transform,
                                                        void *user_data);

/**
 * Sets the `providesTags` hook of `endpoint` (W2), in place of the config's `providesTags`
 * (both is a `CONFIG` error from `livecache_client_new_with_options`). `user_data` must stay
 * valid until the client is freed.
 *
 * Errors: `NULL_PARAMETER`, `INVALID_UTF8`.
 *
 * # Safety
 * As `livecache_hooks_set_query_fn`.
 */
livecache_result livecache_hooks_set_provides_tags(livecache_hooks *hooks,
                                                   const char *endpoint,
                                                   livecache_provides_tags_fn provides_tags,
                                                   void *user_data);

/**
 * Sets the `invalidatesTags` hook of mutation endpoint `endpoint` (W2), in place of the
 * config's `invalidatesTags`. `user_data` must stay valid until the client is freed.
 *
 * Errors: `NULL_PARAMETER`, `INVALID_UTF8`.
 *
 * # Safety
 * As `livecache_hooks_set_query_fn`.
 */
livecache_result livecache_hooks_set_invalidates_tags(livecache_hooks *hooks,
                                                      const char *endpoint,
                                                      livecache_invalidates_tags_fn invalidates_tags,
                                                      void *user_data);

/**
 * Sets the `onCacheEntryAdded` hook of `endpoint`: called once per entry lifetime with a
 * lifecycle handle (see `livecache_entry_added_fn`). `user_data` must stay valid until the
 * client is freed.
 *
 * Errors: `NULL_PARAMETER`, `INVALID_UTF8`.
 *
 * # Safety
 * As `livecache_hooks_set_query_fn`.
 */
livecache_result livecache_hooks_set_on_cache_entry_added(livecache_hooks *hooks,
                                                          const char *endpoint,
                                                          livecache_entry_added_fn on_added,
                                                          void *user_data);

/**
 * The cache key the request fetches for (SPEC K1). Owned by the request: valid until it is
 * answered; do not free it. NULL for a NULL request.
 *
 * # Safety
 * `request` is NULL or an unanswered request.
 */
const char *livecache_request_key(const livecache_request *request);

/**
 * Answers a query request with its data (JSON text) and releases the request — whatever the
 * result: the handle is invalid after this call. Callable from any thread, also after the
 * client was freed (the answer is then dropped). Invalid `data_json` fails the fetch (status
 * `rejected`, error `PARSING_ERROR`) and returns the error code.
 *
 * Errors: `NULL_PARAMETER` (a NULL request is left alone), `INVALID_UTF8`, `INVALID_JSON`.
 *
 * # Safety
 * `request` is NULL or an unanswered request; `data_json` NULL or NUL-terminated.
 */
livecache_result livecache_request_fulfill(livecache_request *request, const char *data_json);

/**
 * Fails a query request (SPEC L6: status `rejected`, previous data kept) and releases it —
 * whatever the result. `error_json` is the entry's `error` value, in RTK Query's shape such as
 * `{"status": 500, "data": …}` or `{"status": "CUSTOM_ERROR", "error": "…"}`; NULL gives
 * `{"status": "CUSTOM_ERROR", "error": "rejected"}`. Callable from any thread.
 *
 * Errors: `NULL_PARAMETER` (a NULL request is left alone), `INVALID_UTF8`, `INVALID_JSON` (the
 * request is still rejected, with the parse error as its message).
 *
 * # Safety
 * As `livecache_request_fulfill`.
 */
livecache_result livecache_request_reject(livecache_request *request, const char *error_json);

/**
 * `cacheDataLoaded` (SPEC L2): blocks until the entry's first data arrives, then writes
 * `{"data": …, "meta": …}` to `*out_json` (release with `livecache_string_free`). Returns at once
 * when the data is already there. Failed fetches do not end the wait; a later success does.
 *
 * Errors: `CACHE_ENTRY_REMOVED` when the entry is removed first (also when the client is freed),
 * `NULL_PARAMETER`.
 *
 * # Safety
 * `lifecycle` NULL or live; `out_json` NULL or writable. Call it from a thread of your own, not
 * from a callback or hook.
 */
livecache_result livecache_lifecycle_cache_data_loaded(livecache_lifecycle *lifecycle, char **out_json);

/**
 * `cacheEntryRemoved` (SPEC L3): blocks until the entry is removed (after `keepUnusedDataFor`
 * with no subscriber, or when the client is closed). Returns at once if it already was.
 *
 * # Safety
 * As `livecache_lifecycle_cache_data_loaded`.
 */
livecache_result livecache_lifecycle_cache_entry_removed(livecache_lifecycle *lifecycle);

/**
 * `updateCachedData(recipe)`: `livecache_update_query_data` for this entry lifetime only.
 *
 * Errors: `CACHE_ENTRY_REMOVED` (this entry was removed, or the client freed), `NOT_LOADED`, `PATCH`.
 *
 * # Safety
 * `lifecycle` NULL or live; `out_result_json` NULL or writable.
 */
livecache_result livecache_lifecycle_update_cached_data(livecache_lifecycle *lifecycle,
                                                        livecache_update_fn recipe,
                                                        void *user_data,
                                                        char **out_result_json);

/**
 * `getCacheEntry()`: the entry's state, as `livecache_snapshot` gives it; once the entry is
 * removed (or the client freed), RTK Query's uninitialized entry `{"key":…,"status":"uninitialized"}`
 * (SPEC §6).
 *
 * Errors: `NULL_PARAMETER`.
 *
 * # Safety
 * `lifecycle` NULL or live; `out_json` NULL or writable.
 */
livecache_result livecache_lifecycle_get_cache_entry(livecache_lifecycle *lifecycle, char **out_json);

/**
 * The entry's cache key. Owned by the handle: valid until `livecache_lifecycle_free`.
 *
 * # Safety
 * `lifecycle` NULL or live.
 */
const char *livecache_lifecycle_key(const livecache_lifecycle *lifecycle);

/**
 * Releases a lifecycle handle. NULL is ignored. Do not release it while another thread waits
 * on it.
 *
 * # Safety
 * `lifecycle` NULL or live, released once.
 */
void livecache_lifecycle_free(livecache_lifecycle *lifecycle);

/**
 * `mutate` (SPEC W1, W4): runs the mutation endpoint's request with `arg_json` (NULL: no arg).
 * `options_json` is NULL or `{"optimistic"?: [layer…], "confirm"?: {…}, "confirmTimeoutMs"?: n}`
 * (SPEC W3: layers shown at once above the server data until the server confirms them; each key
 * overrides the endpoint's config). A layer is `{"endpoint", "arg"?, "message"}` (through that
 * endpoint's apply rule) or `{"endpoint", "arg"?, "patch": [RFC 6902 ops]}` (a host recipe's
 * change to the entry's shown data, put back as it is on every server change).
 *
 * On `LIVECACHE_RESULT_OK`, `cb` runs exactly once, on one of the client's threads (in both
 * delivery modes), after the response arrived and the refetches its `invalidatesTags` started
 * have landed: a `livecache_snapshot` from the callback shows the server's new state. It must
 * not block for long and must not call `livecache_client_free`. If the client is freed first,
 * `cb` runs with `LIVECACHE_RESULT_CLOSED` before `livecache_client_free` returns.
 * On any other return `cb` never runs and nothing was sent.
 *
 * Errors: `NULL_PARAMETER` (`client`, `endpoint`, `cb`), `INVALID_UTF8`, `INVALID_JSON`,
 * `UNKNOWN_ENDPOINT`, `WRONG_ENDPOINT_KIND` (a query endpoint), `INVALID_ARGUMENT` (the arg
 * lacks a templated field; an unknown option; a layer that does not apply), `CLOSED`.
 *
 * # Safety
 * `client` NULL or live; strings NULL or NUL-terminated; `user_data` usable from the client's
 * threads.
 */
livecache_result livecache_mutate(livecache_client *client,
                                  const char *endpoint,
                                  const char *arg_json,
                                  const char *options_json,
                                  livecache_mutate_cb cb,
                                  void *user_data);

/**
 * `prefetch` (SPEC P3): creates and fetches the entry of `(endpoint, arg)` without subscribing
 * (it goes after `keepUnusedDataFor`, L7), or refetches an existing one when `options_json` says
 * `{"force": true}`, or `{"ifOlderThan": seconds}` and its data is that old. NULL options: fetch
 * only when there is no entry. Returns without waiting for the fetch.
 *
 * Errors: `NULL_PARAMETER`, `INVALID_UTF8`, `INVALID_JSON`, `UNKNOWN_ENDPOINT`,
 * `WRONG_ENDPOINT_KIND`, `INVALID_ARGUMENT` (an unknown option, the arg lacks a templated
 * field), `CLOSED`.
 *
 * # Safety
 * `client` NULL or live; strings NULL or NUL-terminated.
 */
livecache_result livecache_prefetch(livecache_client *client,
                                    const char *endpoint,
                                    const char *arg_json,
                                    const char *options_json);

/**
 * `resetApiState` (SPEC P3): removes every entry — each subscriber gets a `removed` event,
 * every stream is closed with a close handshake, every lifecycle's `cacheEntryRemoved` resolves
 * — and leaves the client usable. Subscriptions stay valid handles: release them with
 * `livecache_unsubscribe` as usual.
 *
 * Errors: `NULL_PARAMETER`, `CLOSED`.
 *
 * # Safety
 * `client` NULL or live.
 */
livecache_result livecache_reset_api_state(livecache_client *client);

/**
 * `invalidateTags` (SPEC W2): `tags_json` is an array of `"Type"` or `{"type", "id"}`. The
 * subscribed entries providing a matching tag refetch (their streams keep running); unused ones
 * are removed at once. Returns without waiting for the refetches.
 *
 * Errors: `NULL_PARAMETER`, `INVALID_UTF8`, `INVALID_JSON`, `INVALID_ARGUMENT` (not an array,
 * a malformed tag, a type not in `tagTypes`: nothing is invalidated), `CLOSED`.
 *
 * # Safety
 * `client` NULL or live; `tags_json` NULL or NUL-terminated.
 */
livecache_result livecache_invalidate_tags(livecache_client *client, const char *tags_json);

#ifdef __cplusplus
}  // extern "C"
#endif  // __cplusplus

#endif  /* LIVECACHE_H */
