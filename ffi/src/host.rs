//! Reading and changing the cache from the host (SPEC L9, L10, §5 snapshot and stats), and the
//! `livecache_update` handle through which C code hands back a change.

use std::ffi::{c_char, c_void};

use livecache_core::json::MAX_DEPTH;
use livecache_core::patch::{apply_patch, parse_patch};
use livecache_core::{HostUpdate, PatchOp, RawMessage};
use serde_json::Value;

use crate::client::{client_ref, livecache_client};
use crate::result::livecache_result::*;
use crate::result::*;

/// A change being described by host code: filled by `livecache_update_set_data`,
/// `livecache_update_set_patches` or `livecache_update_fail` during the callback that receives
/// it (an update recipe or an `on_message` hook). Owned by livecache and valid only during that
/// callback. Leaving it untouched means "no change".
pub struct livecache_update {
    pub(crate) outcome: UpdateOutcome,
}

pub(crate) enum UpdateOutcome {
    Unchanged,
    Data(Value),
    Patches(Vec<PatchOp>),
    Failed(String),
}

impl livecache_update {
    pub(crate) fn new() -> livecache_update {
        livecache_update { outcome: UpdateOutcome::Unchanged }
    }
}

/// An update recipe (`updateQueryData`): `data_json` is the entry's current data as JSON text
/// (valid only during the call); describe the change on `update`.
pub type livecache_update_fn = Option<unsafe extern "C" fn(user_data: *mut c_void, data_json: *const c_char, update: *mut livecache_update)>;

/// Sets the whole new data (JSON text); livecache derives the patch subscribers get.
///
/// Errors: `NULL_PARAMETER`, `INVALID_UTF8`, `INVALID_JSON`; the update is unchanged then.
///
/// # Safety
/// `update` is NULL or the handle passed to the running callback; `data_json` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn livecache_update_set_data(update: *mut livecache_update, data_json: *const c_char) -> livecache_result {
    boundary(|| {
        let u = update.as_mut().ok_or_else(|| null("update"))?;
        let data = json_arg(data_json, "data_json")?;
        u.outcome = UpdateOutcome::Data(data);
        Ok(())
    })
}

/// Sets the change as RFC 6902 operations (JSON text: an array of operations), applied to the
/// current data all or nothing — the fast path: no diff is computed.
///
/// Errors: `NULL_PARAMETER`, `INVALID_UTF8`, `INVALID_JSON`, `PATCH` (not an operation array);
/// the update is unchanged then.
///
/// # Safety
/// As `livecache_update_set_data`.
#[no_mangle]
pub unsafe extern "C" fn livecache_update_set_patches(update: *mut livecache_update, patches_json: *const c_char) -> livecache_result {
    boundary(|| {
        let u = update.as_mut().ok_or_else(|| null("update"))?;
        let patches = json_arg(patches_json, "patches_json")?;
        let ops = parse_patch(&patches).map_err(|e| Failure::new(LIVECACHE_RESULT_PATCH, format!("patches_json: {e}")))?;
        u.outcome = UpdateOutcome::Patches(ops);
        Ok(())
    })
}

/// Refuses the change with a message: an `on_message` hook's message becomes an `error` event
/// (reason `hook`); an update recipe's call returns `LIVECACHE_RESULT_PATCH`. Nothing changes.
///
/// Errors: `NULL_PARAMETER`, `INVALID_UTF8`.
///
/// # Safety
/// `update` is NULL or the handle passed to the running callback; `message` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn livecache_update_fail(update: *mut livecache_update, message: *const c_char) -> livecache_result {
    boundary(|| {
        let u = update.as_mut().ok_or_else(|| null("update"))?;
        let message = text(message, "message")?;
        u.outcome = UpdateOutcome::Failed(message.to_owned());
        Ok(())
    })
}

pub(crate) fn host_update_json(update: &HostUpdate) -> String {
    serde_json::json!({"patches": update.patches, "inversePatches": update.inverse_patches}).to_string()
}

/// Runs a C update recipe on a draft: the new data to use, or `None` (the draft, changed in
/// place by the recipe's patches, or unchanged). A refusal is left in `refused`.
pub(crate) fn run_recipe(
    recipe: unsafe extern "C" fn(*mut c_void, *const c_char, *mut livecache_update),
    user_data: *mut c_void,
    draft: &mut Value,
    refused: &mut Option<Failure>,
) -> Option<Value> {
    let data = c_string(draft.to_string());
    let mut change = livecache_update::new();
    // SAFETY: `data` and `change` outlive the call; the recipe's contract is the header's.
    unsafe { recipe(user_data, data.as_ptr(), &mut change) };
    match change.outcome {
        UpdateOutcome::Unchanged => None,
        UpdateOutcome::Data(v) => Some(v),
        UpdateOutcome::Patches(ops) => {
            // All or nothing: a failing patch leaves the draft as it was, so nothing changes.
            if let Err(e) = apply_patch(draft, &ops, MAX_DEPTH) {
                *refused = Some(Failure::new(LIVECACHE_RESULT_PATCH, format!("update not applied: {e}")));
            }
            None
        }
        UpdateOutcome::Failed(m) => {
            *refused = Some(Failure::new(LIVECACHE_RESULT_PATCH, format!("update refused by the recipe: {m}")));
            None
        }
    }
}

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
        let update = client.patch_query_data_value(endpoint, arg.as_ref(), &patches)?;
        if !out_result_json.is_null() {
            *out_result_json = owned_string(host_update_json(&update));
        }
        Ok(())
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
