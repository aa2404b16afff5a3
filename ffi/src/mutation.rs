//! Writes from C (SPEC W1, W2): `livecache_mutate` with a completion callback, and
//! `livecache_invalidate_tags`.

use std::ffi::{c_char, c_void};

use livecache_core::{MutateOptions, PrefetchOptions};
use serde_json::{json, Value};

use crate::client::client_ref;
use crate::client::livecache_client;
use crate::result::livecache_result::*;
use crate::result::*;
use crate::userdata::UserData;

/// The completion of `livecache_mutate`: `result` is `LIVECACHE_RESULT_OK` with the response
/// data as `result_json`; `LIVECACHE_RESULT_MUTATION` with the server's answer
/// `{"status", "data"}` (or `{"status", "error"}` for a network failure, in fetchBaseQuery's
/// shapes); or another code (`NOT_FOUND`, `NOT_CONNECTED` for a `send` mutation, `CLOSED`) with
/// `{"kind", "message"}`. `result_json` (`len` bytes, NUL-terminated) is valid only during the
/// call.
pub type livecache_mutate_cb =
    Option<unsafe extern "C" fn(user_data: *mut c_void, result: livecache_result, result_json: *const c_char, len: usize)>;

/// `mutate` (SPEC W1, W4): runs the mutation endpoint's request with `arg_json` (NULL: no arg).
/// `options_json` is NULL or `{"optimistic"?: [layer…], "confirm"?: {…}, "confirmTimeoutMs"?: n}`
/// (SPEC W3: layers shown at once above the server data until the server confirms them; each key
/// overrides the endpoint's config). A layer is `{"endpoint", "arg"?, "message"}` (through that
/// endpoint's apply rule) or `{"endpoint", "arg"?, "patch": [RFC 6902 ops]}` (a host recipe's
/// change to the entry's shown data, put back as it is on every server change).
///
/// On `LIVECACHE_RESULT_OK`, `cb` runs exactly once, on one of the client's threads (in both
/// delivery modes), after the response arrived and the refetches its `invalidatesTags` started
/// have landed: a `livecache_snapshot` from the callback shows the server's new state. It must
/// not block for long and must not call `livecache_client_free`. If the client is freed first,
/// `cb` runs with `LIVECACHE_RESULT_CLOSED` before `livecache_client_free` returns.
/// On any other return `cb` never runs and nothing was sent.
///
/// Errors: `NULL_PARAMETER` (`client`, `endpoint`, `cb`), `INVALID_UTF8`, `INVALID_JSON`,
/// `UNKNOWN_ENDPOINT`, `WRONG_ENDPOINT_KIND` (a query endpoint), `INVALID_ARGUMENT` (the arg
/// lacks a templated field; an unknown option; a layer that does not apply), `CLOSED`.
///
/// # Safety
/// `client` NULL or live; strings NULL or NUL-terminated; `user_data` usable from the client's
/// threads.
#[no_mangle]
pub unsafe extern "C" fn livecache_mutate(
    client: *mut livecache_client,
    endpoint: *const c_char,
    arg_json: *const c_char,
    options_json: *const c_char,
    cb: livecache_mutate_cb,
    user_data: *mut c_void,
) -> livecache_result {
    boundary(|| {
        let client = client_ref(client)?;
        let endpoint = text(endpoint, "endpoint")?;
        let arg = opt_json_arg(arg_json, "arg_json")?;
        let cb = cb.ok_or_else(|| null("cb"))?;
        let options = match opt_json_arg(options_json, "options_json")? {
            None => MutateOptions::default(),
            Some(v) => MutateOptions::from_value(&v).map_err(|m| Failure::new(LIVECACHE_RESULT_INVALID_ARGUMENT, m))?,
        };
        // What the engine refuses before sending (wrong kind, bad arg, closed) is this call's
        // error; everything after it, however soon it fails, reaches the callback.
        let done = client.start_mutation(endpoint, arg, &options)?;
        let user_data = UserData(user_data);
        // The core calls back exactly once, always from one of the client's threads (as documented
        // above, even if the write settled before this line): with the outcome, or with CLOSED
        // when the client is freed before the mutation settles.
        done.on_done_from_runtime(move |result: livecache_core::Result<Value>| {
            let (code, payload) = match result {
                Ok(data) => (LIVECACHE_RESULT_OK, data),
                Err(livecache_core::Error::Mutation(answer)) => (LIVECACHE_RESULT_MUTATION, answer),
                Err(e) => {
                    let payload = json!({"kind": e.kind(), "message": e.to_string()});
                    (Failure::from(e).code, payload)
                }
            };
            let text = c_string(payload.to_string());
            let len = text.as_bytes().len();
            // SAFETY: the host's callback and pointer, as `livecache_mutate` documents.
            let called = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe { cb(user_data.get(), code, text.as_ptr(), len) }));
            drop(called);
        });
        Ok(())
    })
}

/// `prefetch` (SPEC P3): creates and fetches the entry of `(endpoint, arg)` without subscribing
/// (it goes after `keepUnusedDataFor`, L7), or refetches an existing one when `options_json` says
/// `{"force": true}`, or `{"ifOlderThan": seconds}` and its data is that old. NULL options: fetch
/// only when there is no entry. Returns without waiting for the fetch.
///
/// Errors: `NULL_PARAMETER`, `INVALID_UTF8`, `INVALID_JSON`, `UNKNOWN_ENDPOINT`,
/// `WRONG_ENDPOINT_KIND`, `INVALID_ARGUMENT` (an unknown option, the arg lacks a templated
/// field), `CLOSED`.
///
/// # Safety
/// `client` NULL or live; strings NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn livecache_prefetch(
    client: *mut livecache_client,
    endpoint: *const c_char,
    arg_json: *const c_char,
    options_json: *const c_char,
) -> livecache_result {
    boundary(|| {
        let client = client_ref(client)?;
        let endpoint = text(endpoint, "endpoint")?;
        let arg = opt_json_arg(arg_json, "arg_json")?;
        let options = match opt_json_arg(options_json, "options_json")? {
            None => PrefetchOptions::default(),
            Some(v) => PrefetchOptions::from_value(&v).map_err(|m| Failure::new(LIVECACHE_RESULT_INVALID_ARGUMENT, m))?,
        };
        client.prefetch(endpoint, arg, options)?;
        Ok(())
    })
}

/// `resetApiState` (SPEC P3): removes every entry — each subscriber gets a `removed` event,
/// every stream is closed with a close handshake, every lifecycle's `cacheEntryRemoved` resolves
/// — and leaves the client usable. Subscriptions stay valid handles: release them with
/// `livecache_unsubscribe` as usual.
///
/// Errors: `NULL_PARAMETER`, `CLOSED`.
///
/// # Safety
/// `client` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn livecache_reset_api_state(client: *mut livecache_client) -> livecache_result {
    boundary(|| {
        client_ref(client)?.reset_api_state()?;
        Ok(())
    })
}

/// `invalidateTags` (SPEC W2): `tags_json` is an array of `"Type"` or `{"type", "id"}`. The
/// subscribed entries providing a matching tag refetch (their streams keep running); unused ones
/// are removed at once. Returns without waiting for the refetches.
///
/// Errors: `NULL_PARAMETER`, `INVALID_UTF8`, `INVALID_JSON`, `INVALID_ARGUMENT` (not an array,
/// a malformed tag, a type not in `tagTypes`: nothing is invalidated), `CLOSED`.
///
/// # Safety
/// `client` NULL or live; `tags_json` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn livecache_invalidate_tags(client: *mut livecache_client, tags_json: *const c_char) -> livecache_result {
    boundary(|| {
        let client = client_ref(client)?;
        let tags = match json_arg(tags_json, "tags_json")? {
            Value::Array(tags) => tags,
            other => return Err(Failure::new(LIVECACHE_RESULT_INVALID_ARGUMENT, format!("tags_json must be an array of tags, found {other}"))),
        };
        client.invalidate_tags(&tags)?;
        Ok(())
    })
}
