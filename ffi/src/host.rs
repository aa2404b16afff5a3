//! Reading and changing the cache from the host (SPEC L9, L10, §5 snapshot and stats).

use std::ffi::{c_char, c_void};

use livecache_core::{json, RawMessage};
use serde_json::Value;

use crate::client::{client_ref, livecache_client};
use crate::update::{host_update_json, livecache_update_fn, run_recipe};
use crate::result::livecache_result::*;
use crate::result::*;

/// The entry state of `(endpoint, arg)` as JSON text (SPEC §5):
/// `{"key","status","version","data","error"?,"stream":{"state","error"?}}`.
/// On success `*out_json` is a string to release with `livecache_string_free`.
///
/// Errors: `NULL_PARAMETER`, `INVALID_UTF8`, `INVALID_JSON`, `UNKNOWN_ENDPOINT`, `NOT_FOUND`
/// (no entry for the key), `CLOSED`.
///
/// # Safety
/// `client` NULL or live; strings NULL or NUL-terminated; `out_json` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn livecache_snapshot(
    client: *mut livecache_client,
    endpoint: *const c_char,
    arg_json: *const c_char,
    out_json: *mut *mut c_char,
) -> livecache_result {
    boundary(|| {
        let out = out_ptr(out_json, "out_json")?;
        let client = client_ref(client)?;
        let endpoint = text(endpoint, "endpoint")?;
        let arg = opt_json_arg(arg_json, "arg_json")?;
        let state = client.snapshot(endpoint, arg.as_ref())?;
        *out = owned_string(state.to_json());
        Ok(())
    })
}

/// `patchQueryData` (SPEC L9): applies RFC 6902 operations (`patches_json`, an array) to a loaded
/// entry, all or nothing. When this returns, `livecache_snapshot` shows the change; subscribers'
/// events follow asynchronously. `*out_result_json` (NULL if not wanted) gets
/// `{"patches": [...], "inversePatches": [...]}`; applying `inversePatches` with this function
/// undoes the change. Release it with `livecache_string_free`.
///
/// Errors: `NOT_FOUND` (no entry), `NOT_LOADED` (no data yet), `PATCH` (an operation does not
/// apply, `test` fails, unknown op, deeper than 128 levels; nothing changed), and the argument
/// errors of `livecache_snapshot`.
///
/// # Safety
/// As `livecache_snapshot`; `out_result_json` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn livecache_patch_query_data(
    client: *mut livecache_client,
    endpoint: *const c_char,
    arg_json: *const c_char,
    patches_json: *const c_char,
    out_result_json: *mut *mut c_char,
) -> livecache_result {
    boundary(|| {
        let client = client_ref(client)?;
        let endpoint = text(endpoint, "endpoint")?;
        let arg = opt_json_arg(arg_json, "arg_json")?;
        let patches = json_arg(patches_json, "patches_json")?;
        apply_host_patch(client, endpoint, arg, &patches, out_result_json)
    })
}

/// Applies an operation array as a host update and writes its result (when asked).
///
/// # Safety
/// `out_result_json` NULL or writable.
unsafe fn apply_host_patch(
    client: &livecache_core::Client,
    endpoint: &str,
    arg: Option<Value>,
    patches: &Value,
    out_result_json: *mut *mut c_char,
) -> FfiResult {
    let update = client.patch_query_data_value(endpoint, arg.as_ref(), patches)?;
    if !out_result_json.is_null() {
        *out_result_json = owned_string(host_update_json(&update));
    }
    Ok(())
}

/// `undo()` of a host update (SPEC L9, as RTK Query's `patchResult.undo()`): applies the
/// `inversePatches` of `result_json` — a result that `livecache_patch_query_data`,
/// `livecache_update_query_data` or `livecache_lifecycle_update_cached_data` wrote — to
/// `(endpoint, arg)` as a new host update, all or nothing. `*out_result_json` (NULL if not wanted)
/// gets that update's `{"patches", "inversePatches"}`: undoing it again redoes the change.
///
/// Errors: `INVALID_JSON` (`result_json` is not JSON), `PATCH` (it has no `inversePatches`
/// array, or they no longer apply: nothing changed), and the errors of `livecache_patch_query_data`.
///
/// # Safety
/// As `livecache_patch_query_data`; `result_json` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn livecache_undo(
    client: *mut livecache_client,
    endpoint: *const c_char,
    arg_json: *const c_char,
    result_json: *const c_char,
    out_result_json: *mut *mut c_char,
) -> livecache_result {
    boundary(|| {
        let client = client_ref(client)?;
        let endpoint = text(endpoint, "endpoint")?;
        let arg = opt_json_arg(arg_json, "arg_json")?;
        let result = json_arg(result_json, "result_json")?;
        let inverse = result.get("inversePatches").filter(|v| v.is_array()).ok_or_else(|| {
            Failure::new(LIVECACHE_RESULT_PATCH, "result_json has no \"inversePatches\" array: pass a host update's result")
        })?;
        apply_host_patch(client, endpoint, arg, inverse, out_result_json)
    })
}

/// `updateQueryData` (SPEC L9): calls `recipe(user_data, data_json, update)` once, on this thread
/// with no engine lock held, with the entry's current data; the recipe describes the change on
/// `update` (whole new data, or RFC 6902 operations). `*out_result_json` (NULL if not wanted)
/// gets `{"patches", "inversePatches"}` as `livecache_patch_query_data` gives them.
///
/// Errors: `PATCH` (the recipe's operations do not apply, or it called `livecache_update_fail`;
/// nothing changed) and the errors of `livecache_patch_query_data`.
///
/// # Safety
/// As `livecache_patch_query_data`; `recipe` may be called once before this returns.
#[no_mangle]
pub unsafe extern "C" fn livecache_update_query_data(
    client: *mut livecache_client,
    endpoint: *const c_char,
    arg_json: *const c_char,
    recipe: livecache_update_fn,
    user_data: *mut c_void,
    out_result_json: *mut *mut c_char,
) -> livecache_result {
    boundary(|| {
        let client = client_ref(client)?;
        let endpoint = text(endpoint, "endpoint")?;
        let arg = opt_json_arg(arg_json, "arg_json")?;
        let recipe = recipe.ok_or_else(|| null("recipe"))?;
        let mut refused: Option<Failure> = None;
        let update = client.update_query_data(endpoint, arg.as_ref(), |draft| run_recipe(recipe, user_data, draft, &mut refused))?;
        if let Some(f) = refused {
            return Err(f);
        }
        if !out_result_json.is_null() {
            *out_result_json = owned_string(host_update_json(&update));
        }
        Ok(())
    })
}

/// `upsertQueryData` (SPEC L9): sets the data of `(endpoint, arg)`, creating a fulfilled entry
/// with no subscriber if absent (it is then removed after `keepUnusedDataFor`, L7).
///
/// Errors: `NULL_PARAMETER`, `INVALID_UTF8`, `INVALID_JSON`, `UNKNOWN_ENDPOINT`, `PATCH` (data
/// deeper than 128 levels), `INVALID_ARGUMENT`, `CLOSED`.
///
/// # Safety
/// As `livecache_snapshot`.
#[no_mangle]
pub unsafe extern "C" fn livecache_upsert_query_data(
    client: *mut livecache_client,
    endpoint: *const c_char,
    arg_json: *const c_char,
    data_json: *const c_char,
) -> livecache_result {
    boundary(|| {
        let client = client_ref(client)?;
        let endpoint = text(endpoint, "endpoint")?;
        let arg = opt_json_arg(arg_json, "arg_json")?;
        let data = json_arg(data_json, "data_json")?;
        client.upsert_query_data(endpoint, arg, data)?;
        Ok(())
    })
}

/// Re-runs the query of `(endpoint, arg)` (SPEC L5); the response replaces the data and
/// subscribers get a `snapshot`.
///
/// Errors: `NOT_FOUND` and the argument errors of `livecache_snapshot`.
///
/// # Safety
/// As `livecache_snapshot`.
#[no_mangle]
pub unsafe extern "C" fn livecache_refetch(client: *mut livecache_client, endpoint: *const c_char, arg_json: *const c_char) -> livecache_result {
    boundary(|| {
        let client = client_ref(client)?;
        let endpoint = text(endpoint, "endpoint")?;
        let arg = opt_json_arg(arg_json, "arg_json")?;
        client.refetch(endpoint, arg.as_ref())?;
        Ok(())
    })
}

/// `pushMessage` (SPEC L10): feeds `message_json` through the endpoint's stream pipeline exactly
/// as if the stream had received that text frame. Returns once queued; a message the pipeline
/// refuses (not JSON, schema, patch that does not apply, too large or deep) gives an `error`
/// event to subscribers, not an error code.
///
/// Errors: `NOT_FOUND` (no entry for the key), `NULL_PARAMETER`, `INVALID_UTF8` (the message
/// text too), `INVALID_JSON` (arg only), `UNKNOWN_ENDPOINT`, `CLOSED`.
///
/// # Safety
/// As `livecache_snapshot`.
#[no_mangle]
pub unsafe extern "C" fn livecache_push_message(
    client: *mut livecache_client,
    endpoint: *const c_char,
    arg_json: *const c_char,
    message_json: *const c_char,
) -> livecache_result {
    boundary(|| {
        let client = client_ref(client)?;
        let endpoint = text(endpoint, "endpoint")?;
        let arg = opt_json_arg(arg_json, "arg_json")?;
        let message = text(message_json, "message_json")?;
        client.push_message(endpoint, arg.as_ref(), RawMessage::Text(message.to_owned()))?;
        Ok(())
    })
}

/// `pushMessages` (SPEC L10 for a burst): `messages_json` is a JSON array; each element goes
/// through the endpoint's stream pipeline in order, as frames that arrived back to back, in one
/// engine step (one event for the burst, E2). Each element passes or fails the pipeline on its
/// own (a failure is an `error` event); each may nest the full 128 levels inside the array.
///
/// Errors, which queue none of the messages: `NOT_FOUND` (no entry for the key),
/// `NULL_PARAMETER`, `INVALID_UTF8`, `INVALID_JSON` (arg, or `messages_json` not JSON text or
/// nested too deep), `INVALID_ARGUMENT` (`messages_json` not an array), `UNKNOWN_ENDPOINT`,
/// `CLOSED`.
///
/// # Safety
/// As `livecache_snapshot`.
#[no_mangle]
pub unsafe extern "C" fn livecache_push_messages(
    client: *mut livecache_client,
    endpoint: *const c_char,
    arg_json: *const c_char,
    messages_json: *const c_char,
) -> livecache_result {
    boundary(|| {
        let client = client_ref(client)?;
        let endpoint = text(endpoint, "endpoint")?;
        let arg = opt_json_arg(arg_json, "arg_json")?;
        let messages = json::parse_host_wrapped(text(messages_json, "messages_json")?, 1)
            .map_err(|e| Failure::new(LIVECACHE_RESULT_INVALID_JSON, format!("messages_json is not accepted: {e}")))?;
        let Value::Array(messages) = messages else {
            return Err(Failure::new(LIVECACHE_RESULT_INVALID_ARGUMENT, "messages_json must be a JSON array of messages"));
        };
        client.push_messages(endpoint, arg.as_ref(), messages.into_iter().map(RawMessage::Value).collect())?;
        Ok(())
    })
}

/// The client's counters as JSON text (SPEC §5): `entries`, `subscriptions`, `messagesApplied`,
/// `messagesFiltered`, `messagesRejected` (by reason), `reconnects`, `queueOverflows`, …
/// Release `*out_json` with `livecache_string_free`.
///
/// Errors: `NULL_PARAMETER`, `CLOSED`.
///
/// # Safety
/// `client` NULL or live; `out_json` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn livecache_stats(client: *mut livecache_client, out_json: *mut *mut c_char) -> livecache_result {
    boundary(|| {
        let out = out_ptr(out_json, "out_json")?;
        let client = client_ref(client)?;
        let stats = client.stats()?;
        let text = serde_json::to_string(&stats).map_err(|e| Failure::new(LIVECACHE_RESULT_PANIC, e.to_string()))?;
        *out = owned_string(text);
        Ok(())
    })
}

/// The cache key of `(endpoint, arg)` (SPEC K1), e.g. `getPost({"id":1,"page":2})`, the same
/// in every binding. Release `*out_key` with `livecache_string_free`.
///
/// Errors: `NULL_PARAMETER`, `INVALID_UTF8`, `INVALID_JSON`, `UNKNOWN_ENDPOINT`.
///
/// # Safety
/// As `livecache_snapshot`.
#[no_mangle]
pub unsafe extern "C" fn livecache_cache_key(
    client: *mut livecache_client,
    endpoint: *const c_char,
    arg_json: *const c_char,
    out_key: *mut *mut c_char,
) -> livecache_result {
    boundary(|| {
        let out = out_ptr(out_key, "out_key")?;
        let client = client_ref(client)?;
        let endpoint = text(endpoint, "endpoint")?;
        let arg = opt_json_arg(arg_json, "arg_json")?;
        *out = owned_string(client.cache_key(endpoint, arg.as_ref())?);
        Ok(())
    })
}

/// `send` (SPEC T2): writes `message_json` as one text frame on the open stream of
/// `(endpoint, arg)`, blocking until it is written.
///
/// Errors: `NOT_CONNECTED` when the stream is not open (nothing is queued; retry after an
/// `open` stream event), `NOT_FOUND` (no entry), `INVALID_JSON` (the message too) and the
/// argument errors of `livecache_snapshot`.
///
/// # Safety
/// As `livecache_snapshot`.
#[no_mangle]
pub unsafe extern "C" fn livecache_send(
    client: *mut livecache_client,
    endpoint: *const c_char,
    arg_json: *const c_char,
    message_json: *const c_char,
) -> livecache_result {
    boundary(|| {
        let client = client_ref(client)?;
        let endpoint = text(endpoint, "endpoint")?;
        let arg = opt_json_arg(arg_json, "arg_json")?;
        let message = json_arg(message_json, "message_json")?;
        client.send(endpoint, arg.as_ref(), &message).wait()?;
        Ok(())
    })
}

/// `reconnect` (SPEC T1): closes the stream of `(endpoint, arg)` with a close handshake and
/// connects again at once, with freshly rendered headers; the new connection resyncs (L8).
/// Returns without waiting for the reconnect; stream events report it.
///
/// Errors: `NOT_CONNECTED` (the endpoint has no stream URL), `NOT_FOUND` and the argument
/// errors of `livecache_snapshot`.
///
/// # Safety
/// As `livecache_snapshot`.
#[no_mangle]
pub unsafe extern "C" fn livecache_reconnect(client: *mut livecache_client, endpoint: *const c_char, arg_json: *const c_char) -> livecache_result {
    boundary(|| {
        let client = client_ref(client)?;
        let endpoint = text(endpoint, "endpoint")?;
        let arg = opt_json_arg(arg_json, "arg_json")?;
        client.reconnect(endpoint, arg.as_ref())?;
        Ok(())
    })
}
