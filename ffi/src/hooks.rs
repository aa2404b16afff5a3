//! C host hooks (SPEC §6): a query function answered through a request handle from any thread,
//! a per-message updater, a response transform and an entry-added hook with a lifecycle handle,
//! each wrapped into the core's `EndpointHooks` so the engine treats them like any other
//! binding's hooks.

use std::collections::HashMap;
use std::ffi::{c_char, c_void, CString};
use std::sync::Arc;

use livecache_core::hooks::{MessageBatch, MessageUpdate};
use livecache_core::key::cache_key;
use livecache_core::{EndpointHooks, Hooks};
use serde_json::{json, Value};
use livecache_core::completion::{reply, Reply};

use crate::update::{livecache_update, UpdateOutcome};
use crate::lifecycle::{livecache_entry_added_fn, new_lifecycle};
use crate::result::*;
use crate::userdata::UserData;

/// Host hooks per endpoint, given to `livecache_client_new_with_options`. Built with
/// `livecache_hooks_new` and the `livecache_hooks_set_*` functions, released with
/// `livecache_hooks_free` (any time after the client is created: the client keeps a copy).
pub struct livecache_hooks {
    endpoints: HashMap<String, EndpointHooks>,
}

impl livecache_hooks {
    pub(crate) fn to_hooks(&self) -> Hooks {
        self.endpoints.iter().fold(Hooks::new(), |hooks, (name, h)| hooks.endpoint(name, h.clone()))
    }
}

/// One call of a query function, answered exactly once with `livecache_request_fulfill` or
/// `livecache_request_reject`, from any thread, now or later. Either call releases it.
pub struct livecache_request {
    answer: Reply<Result<Value, Value>>,
    key: CString,
}

/// `queryFn`: starts fetching the data of one cache entry. `arg_json` is the arg as JSON text,
/// NULL for "no arg"; it lives only during the call. Runs on an engine thread: return quickly and
/// answer `request` later (from any thread), or answer it before returning.
pub type livecache_query_fn =
    Option<unsafe extern "C" fn(user_data: *mut c_void, arg_json: *const c_char, request: *mut livecache_request)>;

/// T1 `prepareHeaders`: `headers_json` is the object of headers about to be sent (name to
/// string), `context_json` is `{"endpoint", "arg", "url", "kind"}` (`kind` `"query"` or
/// `"stream"`); both live only during the call. Answer `request` (from any thread, now or later)
/// with `livecache_request_fulfill` and the headers to send as a JSON object, or with
/// `livecache_request_reject` to fail that fetch (status `rejected`) or that connect attempt
/// (retried with backoff). Runs before every request and every stream (re)connect.
pub type livecache_prepare_headers_fn = Option<
    unsafe extern "C" fn(user_data: *mut c_void, headers_json: *const c_char, context_json: *const c_char, request: *mut livecache_request),
>;

/// `onMessage`: makes the change one stream message brings. `data_json` is the current data
/// (`null` before the first data), `message_json` the message, `arg_json` the arg (NULL for "no
/// arg"); all live only during the call. Describe the change on `update`: usually RFC 6902
/// operations with `livecache_update_set_patches` (applied as they are, no diff); leave it
/// untouched for no change; `livecache_update_fail` gives subscribers an `error` event (reason
/// `hook`). Runs on an engine thread, one message of an entry at a time, no engine lock held.
pub type livecache_on_message_fn = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        data_json: *const c_char,
        message_json: *const c_char,
        arg_json: *const c_char,
        update: *mut livecache_update,
    ),
>;

/// The batched `onMessage`: one call per burst of messages queued for an entry, instead of one
/// per message, so the data crosses as text once per burst. `messages_json` is a JSON array of
/// the `count` messages, in arrival order; `data_json` the data before the first of them
/// (`null` before the first data); `arg_json` the arg (NULL for "no arg"). `updates` holds
/// `count` handles: describe message `i`'s change on `updates[i]` as `livecache_on_message_fn`
/// describes one, computed on the data as the changes before it left it. A
/// `livecache_update_fail` fails that message only (an `error` event, reason `hook`); the changes
/// after it must not build on it. Runs on an engine thread, one call of an entry at a time, no
/// engine lock held; every pointer lives only during the call.
pub type livecache_on_messages_fn = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        data_json: *const c_char,
        messages_json: *const c_char,
        count: usize,
        arg_json: *const c_char,
        updates: *const *mut livecache_update,
    ),
>;

/// `transformResponse`: turns each fetched response (`data_json`) into the entry's data with
/// `livecache_update_set_data`; untouched keeps it as it is; `livecache_update_fail` makes the
/// fetch fail (status `rejected`). Runs on an engine thread; pointers live only during the call.
pub type livecache_transform_fn = Option<
    unsafe extern "C" fn(user_data: *mut c_void, data_json: *const c_char, arg_json: *const c_char, update: *mut livecache_update),
>;

/// W2 `providesTags`: the tags of one entry's data, answered on `tags` with
/// `livecache_update_set_data` and a JSON list of `"Type"` / `{"type", "id"}` (types from
/// `tagTypes`); untouched is no tags; `livecache_update_fail` is the hook's failure (after a fetch
/// the data is kept and subscribers get an `error` event, reason `hook`; `livecache_upsert_query_data`
/// returns `PATCH_FAILED`). Runs on an engine thread after each fetch, and on the calling thread
/// inside `livecache_upsert_query_data`; pointers live only during the call.
pub type livecache_provides_tags_fn = Option<
    unsafe extern "C" fn(user_data: *mut c_void, data_json: *const c_char, arg_json: *const c_char, tags: *mut livecache_update),
>;

/// W2 `invalidatesTags`: the tags a mutation invalidates, once when it settles: `result_json` is
/// its result (NULL on failure), `error_json` its error value `{status, data}` (NULL on success).
/// Answered as `livecache_provides_tags_fn` is; a failure or an unknown tag type makes the
/// mutation fail (`MUTATION_FAILED`, `{"status": "CUSTOM_ERROR", "error", "data"}` with the write's
/// own answer as `data`). Runs on an engine thread; pointers live only during the call.
pub type livecache_invalidates_tags_fn = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        result_json: *const c_char,
        error_json: *const c_char,
        arg_json: *const c_char,
        tags: *mut livecache_update,
    ),
>;

/// A tags hook's answer, from the update it filled.
fn tags_answer(update: livecache_update) -> Result<Value, String> {
    match update.outcome {
        UpdateOutcome::Unchanged => Ok(Value::Array(Vec::new())),
        UpdateOutcome::Data(v) => Ok(v),
        UpdateOutcome::Patches(_) => Err("answer the tags with livecache_update_set_data, not patches".into()),
        UpdateOutcome::Failed(m) => Err(m),
    }
}

fn arg_text(arg: Option<&Value>) -> Option<CString> {
    arg.map(|a| c_string(a.to_string()))
}

fn ptr_of(s: &Option<CString>) -> *const c_char {
    s.as_ref().map_or(std::ptr::null(), |c| c.as_ptr())
}

/// Creates an empty hooks object; `*out` is released with `livecache_hooks_free`.
///
/// # Safety
/// `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn livecache_hooks_new(out: *mut *mut livecache_hooks) -> livecache_result {
    boundary(|| {
        let out = out_ptr(out, "out")?;
        *out = Box::into_raw(Box::new(livecache_hooks { endpoints: HashMap::new() }));
        Ok(())
    })
}

/// Releases a hooks object. NULL is ignored. Clients created from it keep working.
///
/// # Safety
/// `hooks` is NULL or a live hooks object, released only once.
#[no_mangle]
pub unsafe extern "C" fn livecache_hooks_free(hooks: *mut livecache_hooks) {
    boundary_void(|| {
        if !hooks.is_null() {
            drop(Box::from_raw(hooks));
        }
    })
}

/// # Safety
/// `hooks` NULL or live; `endpoint` NULL or NUL-terminated.
unsafe fn endpoint_hooks<'a>(hooks: *mut livecache_hooks, endpoint: *const c_char) -> FfiResult<(&'a mut EndpointHooks, String)> {
    let hooks = hooks.as_mut().ok_or_else(|| null("hooks"))?;
    let name = text(endpoint, "endpoint")?.to_owned();
    Ok((hooks.endpoints.entry(name.clone()).or_default(), name))
}

/// Sets the query function of `endpoint` (replacing a previous one). The endpoint then needs
/// no `query` URL. `user_data` is passed untouched to every call and must stay valid until the
/// client is freed.
///
/// Errors: `NULL_PARAMETER`, `INVALID_UTF8`. An endpoint the config lacks is reported by the
/// client constructor (`CONFIG`).
///
/// # Safety
/// `hooks` NULL or live; `endpoint` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn livecache_hooks_set_query_fn(
    hooks: *mut livecache_hooks,
    endpoint: *const c_char,
    query_fn: livecache_query_fn,
    user_data: *mut c_void,
) -> livecache_result {
    boundary(|| {
        let f = query_fn.ok_or_else(|| null("query_fn"))?;
        let (h, name) = endpoint_hooks(hooks, endpoint)?;
        h.query_fn = Some(request_fn(f, UserData(user_data), name, "query"));
        Ok(())
    })
}

/// Sets the `mutationFn` hook of `endpoint` (SPEC W1): the endpoint is then a mutation whose
/// write is this function, called once per `livecache_mutate` with the arg, and answered like a
/// `query_fn` — `livecache_request_fulfill` with the result, or `livecache_request_reject` with
/// the error value the `MUTATION` result carries. The config must give the endpoint no `query`,
/// `stream` or `mutation` (`CONFIG` at client creation). Thread rules as for `query_fn`.
///
/// Errors: `NULL_PARAMETER`, `INVALID_UTF8`.
///
/// # Safety
/// As `livecache_hooks_set_query_fn`.
#[no_mangle]
pub unsafe extern "C" fn livecache_hooks_set_mutation_fn(
    hooks: *mut livecache_hooks,
    endpoint: *const c_char,
    mutation_fn: livecache_query_fn,
    user_data: *mut c_void,
) -> livecache_result {
    boundary(|| {
        let f = mutation_fn.ok_or_else(|| null("mutation_fn"))?;
        let (h, name) = endpoint_hooks(hooks, endpoint)?;
        h.mutation_fn = Some(request_fn(f, UserData(user_data), name, "mutation"));
        Ok(())
    })
}

/// A host function answered through a `livecache_request` (`query_fn`, `mutation_fn`).
fn request_fn(
    f: unsafe extern "C" fn(user_data: *mut c_void, arg_json: *const c_char, request: *mut livecache_request),
    user_data: UserData,
    name: String,
    what: &'static str,
) -> livecache_core::hooks::QueryFn {
    {
        Arc::new(move |arg: Option<Value>| {
            let (answer, rx) = reply();
            let key = c_string(cache_key(&name, arg.as_ref()));
            let arg = arg_text(arg.as_ref());
            let request = Box::into_raw(Box::new(livecache_request { answer, key }));
            // SAFETY: `arg` outlives the call; `request` is handed over to the host.
            unsafe { f(user_data.get(), ptr_of(&arg), request) };
            Box::pin(async move {
                rx.await.unwrap_or_else(|| Err(json!({"status": "CUSTOM_ERROR", "error": format!("the {what} request was released unanswered")})))
            })
        })
    }
}

/// Sets the `prepareHeaders` hook of `endpoint` (T1), replacing a previous one. `user_data`
/// must stay valid until the client is freed.
///
/// Errors: `NULL_PARAMETER`, `INVALID_UTF8`.
///
/// # Safety
/// As `livecache_hooks_set_query_fn`.
#[no_mangle]
pub unsafe extern "C" fn livecache_hooks_set_prepare_headers(
    hooks: *mut livecache_hooks,
    endpoint: *const c_char,
    prepare_headers: livecache_prepare_headers_fn,
    user_data: *mut c_void,
) -> livecache_result {
    boundary(|| {
        let f = prepare_headers.ok_or_else(|| null("prepare_headers"))?;
        let (h, name) = endpoint_hooks(hooks, endpoint)?;
        let user_data = UserData(user_data);
        h.prepare_headers = Some(Arc::new(move |headers: Value, context: Value| {
            let (answer, rx) = reply();
            let key = c_string(cache_key(&name, context.get("arg")));
            let request = Box::into_raw(Box::new(livecache_request { answer, key }));
            let (headers, context) = (c_string(headers.to_string()), c_string(context.to_string()));
            // SAFETY: the texts outlive the call; `request` is handed over to the host.
            unsafe { f(user_data.get(), headers.as_ptr(), context.as_ptr(), request) };
            Box::pin(async move {
                match rx.await {
                    Some(Ok(headers)) => Ok(headers),
                    Some(Err(error)) => Err(error.get("error").and_then(Value::as_str).map_or_else(|| error.to_string(), str::to_owned)),
                    None => Err("the prepareHeaders request was released unanswered".to_owned()),
                }
            })
        }));
        Ok(())
    })
}

/// Sets the per-message updater of `endpoint` (its `onMessage`; the endpoint's `stream` then
/// has no `apply` rule). `user_data` must stay valid until the client is freed.
///
/// Errors: `NULL_PARAMETER`, `INVALID_UTF8`.
///
/// # Safety
/// As `livecache_hooks_set_query_fn`.
#[no_mangle]
pub unsafe extern "C" fn livecache_hooks_set_on_message(
    hooks: *mut livecache_hooks,
    endpoint: *const c_char,
    on_message: livecache_on_message_fn,
    user_data: *mut c_void,
) -> livecache_result {
    boundary(|| {
        let f = on_message.ok_or_else(|| null("on_message"))?;
        let (h, _) = endpoint_hooks(hooks, endpoint)?;
        let user_data = UserData(user_data);
        h.on_message = Some(Arc::new(move |data: Arc<Value>, message: Value, arg: Option<Value>| {
            let data = c_string(data.to_string());
            let message = c_string(message.to_string());
            let arg = arg_text(arg.as_ref());
            let mut update = livecache_update::new();
            // SAFETY: every pointer outlives the call.
            unsafe { f(user_data.get(), data.as_ptr(), message.as_ptr(), ptr_of(&arg), &mut update) };
            Box::pin(std::future::ready(message_outcome(update.outcome)))
        }));
        Ok(())
    })
}

fn message_outcome(outcome: UpdateOutcome) -> Result<MessageUpdate, String> {
    match outcome {
        UpdateOutcome::Unchanged => Ok(MessageUpdate::Unchanged),
        UpdateOutcome::Data(v) => Ok(MessageUpdate::Data(v)),
        UpdateOutcome::Patches(ops) => Ok(MessageUpdate::Ops(ops)),
        UpdateOutcome::Failed(m) => Err(m),
    }
}

/// Sets the batched per-message updater of `endpoint` (its `onMessage`, one call per burst; see
/// `livecache_on_messages_fn`). It replaces `livecache_hooks_set_on_message`'s hook when both are
/// set. `user_data` must stay valid until the client is freed.
///
/// Errors: `NULL_PARAMETER`, `INVALID_UTF8`.
///
/// # Safety
/// As `livecache_hooks_set_query_fn`.
#[no_mangle]
pub unsafe extern "C" fn livecache_hooks_set_on_messages(
    hooks: *mut livecache_hooks,
    endpoint: *const c_char,
    on_messages: livecache_on_messages_fn,
    user_data: *mut c_void,
) -> livecache_result {
    boundary(|| {
        let f = on_messages.ok_or_else(|| null("on_messages"))?;
        let (h, _) = endpoint_hooks(hooks, endpoint)?;
        let user_data = UserData(user_data);
        h.on_messages = Some(Arc::new(move |batch: MessageBatch| {
            let data = c_string(batch.data.to_string());
            let count = batch.messages.len();
            let messages = c_string(Value::Array(batch.messages).to_string());
            let arg = arg_text(batch.arg.as_ref());
            let mut updates: Vec<livecache_update> = (0..count).map(|_| livecache_update::new()).collect();
            let handles: Vec<*mut livecache_update> = updates.iter_mut().map(|u| u as *mut livecache_update).collect();
            // SAFETY: every pointer outlives the call; `handles` has `count` live handles.
            unsafe { f(user_data.get(), data.as_ptr(), messages.as_ptr(), count, ptr_of(&arg), handles.as_ptr()) };
            drop(handles);
            let outcomes = updates.into_iter().map(|u| message_outcome(u.outcome)).collect();
            Box::pin(std::future::ready(Ok(outcomes)))
        }));
        Ok(())
    })
}

/// Sets the response transform of `endpoint` (its `transformResponse`, applied before the
/// config's `entityAdapter`). `user_data` must stay valid until the client is freed.
///
/// Errors: `NULL_PARAMETER`, `INVALID_UTF8`.
///
/// # Safety
/// As `livecache_hooks_set_query_fn`.
#[no_mangle]
pub unsafe extern "C" fn livecache_hooks_set_transform_response(
    hooks: *mut livecache_hooks,
    endpoint: *const c_char,
    transform: livecache_transform_fn,
    user_data: *mut c_void,
) -> livecache_result {
    boundary(|| {
        let f = transform.ok_or_else(|| null("transform"))?;
        let (h, _) = endpoint_hooks(hooks, endpoint)?;
        let user_data = UserData(user_data);
        h.transform_response = Some(Arc::new(move |data: Value, arg: Option<Value>| {
            let text = c_string(data.to_string());
            let arg = arg_text(arg.as_ref());
            let mut update = livecache_update::new();
            // SAFETY: every pointer outlives the call.
            unsafe { f(user_data.get(), text.as_ptr(), ptr_of(&arg), &mut update) };
            match update.outcome {
                UpdateOutcome::Unchanged => Ok(data),
                UpdateOutcome::Data(v) => Ok(v),
                UpdateOutcome::Patches(ops) => {
                    let mut data = data;
                    livecache_core::patch::apply_patch(&mut data, &ops, livecache_core::json::MAX_DEPTH)
                        .map_err(|e| format!("transform patch: {e}"))?;
                    Ok(data)
                }
                UpdateOutcome::Failed(m) => Err(m),
            }
        }));
        Ok(())
    })
}

/// Sets the `providesTags` hook of `endpoint` (W2), in place of the config's `providesTags`
/// (both is a `CONFIG` error from `livecache_client_new_with_options`). `user_data` must stay
/// valid until the client is freed.
///
/// Errors: `NULL_PARAMETER`, `INVALID_UTF8`.
///
/// # Safety
/// As `livecache_hooks_set_query_fn`.
#[no_mangle]
pub unsafe extern "C" fn livecache_hooks_set_provides_tags(
    hooks: *mut livecache_hooks,
    endpoint: *const c_char,
    provides_tags: livecache_provides_tags_fn,
    user_data: *mut c_void,
) -> livecache_result {
    boundary(|| {
        let f = provides_tags.ok_or_else(|| null("provides_tags"))?;
        let (h, _) = endpoint_hooks(hooks, endpoint)?;
        let user_data = UserData(user_data);
        h.provides_tags = Some(Arc::new(move |data: &Value, arg: Option<&Value>| {
            let text = c_string(data.to_string());
            let arg = arg_text(arg);
            let mut update = livecache_update::new();
            // SAFETY: every pointer outlives the call.
            unsafe { f(user_data.get(), text.as_ptr(), ptr_of(&arg), &mut update) };
            tags_answer(update)
        }));
        Ok(())
    })
}

/// Sets the `invalidatesTags` hook of mutation endpoint `endpoint` (W2), in place of the
/// config's `invalidatesTags`. `user_data` must stay valid until the client is freed.
///
/// Errors: `NULL_PARAMETER`, `INVALID_UTF8`.
///
/// # Safety
/// As `livecache_hooks_set_query_fn`.
#[no_mangle]
pub unsafe extern "C" fn livecache_hooks_set_invalidates_tags(
    hooks: *mut livecache_hooks,
    endpoint: *const c_char,
    invalidates_tags: livecache_invalidates_tags_fn,
    user_data: *mut c_void,
) -> livecache_result {
    boundary(|| {
        let f = invalidates_tags.ok_or_else(|| null("invalidates_tags"))?;
        let (h, _) = endpoint_hooks(hooks, endpoint)?;
        let user_data = UserData(user_data);
        h.invalidates_tags = Some(Arc::new(move |result: Option<&Value>, error: Option<&Value>, arg: Option<&Value>| {
            let (result, error, arg) = (arg_text(result), arg_text(error), arg_text(arg));
            let mut update = livecache_update::new();
            // SAFETY: every pointer outlives the call.
            unsafe { f(user_data.get(), ptr_of(&result), ptr_of(&error), ptr_of(&arg), &mut update) };
            tags_answer(update)
        }));
        Ok(())
    })
}

/// Sets the `onCacheEntryAdded` hook of `endpoint`: called once per entry lifetime with a
/// lifecycle handle (see `livecache_entry_added_fn`). `user_data` must stay valid until the
/// client is freed.
///
/// Errors: `NULL_PARAMETER`, `INVALID_UTF8`.
///
/// # Safety
/// As `livecache_hooks_set_query_fn`.
#[no_mangle]
pub unsafe extern "C" fn livecache_hooks_set_on_cache_entry_added(
    hooks: *mut livecache_hooks,
    endpoint: *const c_char,
    on_added: livecache_entry_added_fn,
    user_data: *mut c_void,
) -> livecache_result {
    boundary(|| {
        let f = on_added.ok_or_else(|| null("on_added"))?;
        let (h, _) = endpoint_hooks(hooks, endpoint)?;
        let user_data = UserData(user_data);
        h.on_cache_entry_added = Some(Arc::new(move |arg: Option<Value>, lifecycle| {
            let arg = arg_text(arg.as_ref());
            // SAFETY: `arg` outlives the call; the handle is handed over to the host.
            unsafe { f(user_data.get(), ptr_of(&arg), new_lifecycle(lifecycle)) };
            Box::pin(std::future::ready(Ok(())))
        }));
        Ok(())
    })
}

/// The cache key the request fetches for (SPEC K1). Owned by the request: valid until it is
/// answered; do not free it. NULL for a NULL request.
///
/// # Safety
/// `request` is NULL or an unanswered request.
#[no_mangle]
pub unsafe extern "C" fn livecache_request_key(request: *const livecache_request) -> *const c_char {
    boundary_value(std::ptr::null(), || request.as_ref().map_or(std::ptr::null(), |r| r.key.as_ptr()))
}

/// Answers a query request with its data (JSON text) and releases the request — whatever the
/// result: the handle is invalid after this call. Callable from any thread, also after the
/// client was freed (the answer is then dropped). Invalid `data_json` fails the fetch (status
/// `rejected`, error `PARSING_ERROR`) and returns the error code.
///
/// Errors: `NULL_PARAMETER` (a NULL request is left alone), `INVALID_UTF8`, `INVALID_JSON`.
///
/// # Safety
/// `request` is NULL or an unanswered request; `data_json` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn livecache_request_fulfill(request: *mut livecache_request, data_json: *const c_char) -> livecache_result {
    boundary(|| {
        if request.is_null() {
            return Err(null("request"));
        }
        let request = Box::from_raw(request);
        match json_arg(data_json, "data_json") {
            Ok(data) => {
                request.answer.send(Ok(data));
                Ok(())
            }
            Err(f) => {
                request.answer.send(Err(json!({"status": "PARSING_ERROR", "error": f.message})));
                Err(f)
            }
        }
    })
}

/// Fails a query request (SPEC L6: status `rejected`, previous data kept) and releases it —
/// whatever the result. `error_json` is the entry's `error` value, in RTK Query's shape such as
/// `{"status": 500, "data": …}` or `{"status": "CUSTOM_ERROR", "error": "…"}`; NULL gives
/// `{"status": "CUSTOM_ERROR", "error": "rejected"}`. Callable from any thread.
///
/// Errors: `NULL_PARAMETER` (a NULL request is left alone), `INVALID_UTF8`, `INVALID_JSON` (the
/// request is still rejected, with the parse error as its message).
///
/// # Safety
/// As `livecache_request_fulfill`.
#[no_mangle]
pub unsafe extern "C" fn livecache_request_reject(request: *mut livecache_request, error_json: *const c_char) -> livecache_result {
    boundary(|| {
        if request.is_null() {
            return Err(null("request"));
        }
        let request = Box::from_raw(request);
        let (error, outcome) = match opt_json_arg(error_json, "error_json") {
            Ok(Some(e)) => (e, Ok(())),
            Ok(None) => (json!({"status": "CUSTOM_ERROR", "error": "rejected"}), Ok(())),
            Err(f) => (json!({"status": "CUSTOM_ERROR", "error": f.message.clone()}), Err(f)),
        };
        request.answer.send(Err(error));
        outcome
    })
}
