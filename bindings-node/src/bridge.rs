//! Host hooks (SPEC §6) run on the JavaScript thread. The engine calls them on its own threads;
//! each call is queued on one threadsafe function and answered by `NativeClient.complete`, so a
//! hook may be async (a promise) without blocking the engine.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use futures_util::future::FutureExt;
use livecache_core::hooks::{InvalidatesTagsFn, MessageBatch, MessageUpdate, OnCacheEntryAddedFn, OnMessagesFn, PrepareHeadersFn, ProvidesTagsFn, QueryFn, TransformFn};
use livecache_core::key::cache_key;
use livecache_core::{EndpointHooks, Error, Hooks, Lifecycle, PatchOp};
use napi::bindgen_prelude::{FnArgs, Unknown};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Status;
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::{json, Value};
use livecache_core::completion::reply;

use crate::convert::to_text;

/// What a queued call asks the JavaScript side to do (mirrored in `lib/native.js`).
pub mod kind {
    pub const QUERY_FN: u32 = 1;
    pub const TRANSFORM_RESPONSE: u32 = 2;
    pub const ON_MESSAGE: u32 = 3;
    pub const ON_CACHE_ENTRY_ADDED: u32 = 4;
    /// A promise made by `loaded()` settles.
    pub const SETTLE: u32 = 5;
    /// A lifecycle's `cacheDataLoaded` settles.
    pub const LIFECYCLE_LOADED: u32 = 6;
    /// A lifecycle's `cacheEntryRemoved` resolves.
    pub const LIFECYCLE_REMOVED: u32 = 7;
    /// T1 `prepareHeaders(headers, context)`.
    pub const PREPARE_HEADERS: u32 = 8;
    /// W1 `mutationFn(arg)`; answered as a `queryFn` is.
    pub const MUTATION_FN: u32 = 9;
    /// W2 `providesTags(data, arg)`, synchronous.
    pub const PROVIDES_TAGS: u32 = 10;
    /// W2 `invalidatesTags(result, error, arg)`, synchronous.
    pub const INVALIDATES_TAGS: u32 = 11;
}

pub type HostCalls =
    ThreadsafeFunction<FnArgs<(u32, u32, String)>, Unknown<'static>, FnArgs<(u32, u32, String)>, Status, false, true>;

type Reply = Box<dyn FnOnce(bool, String) + Send>;

pub struct Bridge {
    calls: HostCalls,
    next: AtomicU32,
    pending: Mutex<HashMap<u32, Reply>>,
    lifecycles: Mutex<HashMap<u32, Lifecycle>>,
}

/// A settled promise as JSON: `{"value": …}` or `{"kind": …, "message": …}`.
pub fn settlement(result: Result<Value, Error>) -> String {
    match result {
        Ok(v) => to_text(&json!({ "value": v })),
        // A MutationError also carries the server's answer (`{status, data}`).
        Err(Error::Mutation(answer)) => to_text(&json!({ "kind": "MutationError", "message": format!("mutation failed: {answer}"), "error": answer })),
        Err(e) => to_text(&json!({ "kind": e.kind(), "message": e.to_string() })),
    }
}

impl Bridge {
    pub fn new(calls: HostCalls) -> Arc<Bridge> {
        Arc::new(Bridge {
            calls,
            next: AtomicU32::new(1),
            pending: Mutex::new(HashMap::new()),
            lifecycles: Mutex::new(HashMap::new()),
        })
    }

    pub fn next_id(&self) -> u32 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// Queues a call that expects no answer.
    pub fn notify(&self, kind: u32, id: u32, payload: String) {
        self.calls.call(FnArgs { data: (kind, id, payload) }, ThreadsafeFunctionCallMode::NonBlocking);
    }

    fn call(&self, kind: u32, payload: String, reply: Reply) {
        let id = self.next_id();
        self.pending.lock().insert(id, reply);
        let status = self.calls.call(FnArgs { data: (kind, id, payload) }, ThreadsafeFunctionCallMode::NonBlocking);
        if status != Status::Ok {
            if let Some(reply) = self.pending.lock().remove(&id) {
                reply(false, format!("the JavaScript thread cannot take calls ({status})"));
            }
        }
    }

    async fn call_async(&self, kind: u32, payload: String) -> (bool, String) {
        let (tx, rx) = reply();
        self.call(kind, payload, Box::new(move |ok, text| tx.send((ok, text))));
        rx.await.unwrap_or_else(|| (false, "the hook call was dropped".into()))
    }

    /// For the engine's synchronous hooks (`transformResponse`): waits on this engine thread.
    fn call_blocking(&self, kind: u32, payload: String) -> (bool, String) {
        let (tx, rx) = reply();
        self.call(kind, payload, Box::new(move |ok, text| tx.send((ok, text))));
        rx.wait_on_engine_thread().unwrap_or_else(|| (false, "the hook call was dropped".into()))
    }

    /// The answer to call `id`, from the JavaScript side.
    pub fn complete(&self, id: u32, ok: bool, text: String) {
        if let Some(reply) = self.pending.lock().remove(&id) {
            reply(ok, text);
        }
    }

    pub fn lifecycle(&self, id: u32) -> Option<Lifecycle> {
        self.lifecycles.lock().get(&id).cloned()
    }

    /// Builds the engine hooks for `spec` (`{endpoint: [hook names]}`), each forwarding here.
    pub fn hooks(self: &Arc<Self>, spec: &Value) -> crate::convert::Result<Hooks> {
        let mut hooks = Hooks::new();
        let Some(spec) = spec.as_object() else { return Ok(hooks) };
        for (endpoint, names) in spec {
            let mut eh = EndpointHooks::default();
            for name in names.as_array().into_iter().flatten().filter_map(Value::as_str) {
                match name {
                    "queryFn" => eh.query_fn = Some(self.query_fn(endpoint, kind::QUERY_FN)),
                    "mutationFn" => eh.mutation_fn = Some(self.query_fn(endpoint, kind::MUTATION_FN)),
                    "transformResponse" => eh.transform_response = Some(self.transform_response(endpoint)),
                    "providesTags" => eh.provides_tags = Some(self.provides_tags(endpoint)),
                    "invalidatesTags" => eh.invalidates_tags = Some(self.invalidates_tags(endpoint)),
                    "onMessage" => eh.on_messages = Some(self.on_messages(endpoint)),
                    "onCacheEntryAdded" => eh.on_cache_entry_added = Some(self.on_cache_entry_added(endpoint)),
                    "prepareHeaders" => eh.prepare_headers = Some(self.prepare_headers(endpoint)),
                    other => {
                        return Err(crate::convert::kind_error(
                            "ConfigError",
                            format!("invalid config at hooks.{endpoint}.{other}: not a hook name"),
                        ))
                    }
                }
            }
            hooks = hooks.endpoint(endpoint, eh);
        }
        Ok(hooks)
    }

    /// A `queryFn` (or, with `MUTATION_FN`, a `mutationFn`): the arg crosses, data or an error value comes back.
    fn query_fn(self: &Arc<Self>, endpoint: &str, call_kind: u32) -> QueryFn {
        let (bridge, endpoint) = (Arc::clone(self), endpoint.to_owned());
        Arc::new(move |arg: Option<Value>| {
            let payload = to_text(&HookCall { e: &endpoint, a: arg.as_ref(), ..HookCall::default() });
            let bridge = Arc::clone(&bridge);
            async move {
                let (ok, text) = bridge.call_async(call_kind, payload).await;
                let parsed = livecache_core::json::parse_host(&text);
                match (ok, parsed) {
                    (true, Ok(data)) => Ok(data),
                    (false, Ok(error)) => Err(error),
                    (_, Err(e)) => Err(json!({"status": "CUSTOM_ERROR", "error": format!("queryFn: {e}")})),
                }
            }
            .boxed()
        })
    }

    /// T1: the headers cross as an object, the answer comes back as one (a promise may make it).
    fn prepare_headers(self: &Arc<Self>, endpoint: &str) -> PrepareHeadersFn {
        let (bridge, endpoint) = (Arc::clone(self), endpoint.to_owned());
        Arc::new(move |headers: Value, context: Value| {
            let payload = serde_json::json!({"e": endpoint, "h": headers, "c": context}).to_string();
            let bridge = Arc::clone(&bridge);
            async move {
                let (ok, text) = bridge.call_async(kind::PREPARE_HEADERS, payload).await;
                if !ok {
                    return Err(text);
                }
                livecache_core::json::parse_host(&text).map_err(|e| format!("returned an invalid value: {e}"))
            }
            .boxed()
        })
    }

    fn transform_response(self: &Arc<Self>, endpoint: &str) -> TransformFn {
        let (bridge, endpoint) = (Arc::clone(self), endpoint.to_owned());
        Arc::new(move |data: Value, arg: Option<Value>| {
            let payload = to_text(&HookCall { e: &endpoint, a: arg.as_ref(), d: Some(&data), ..HookCall::default() });
            drop(data);
            bridge.sync_answer(kind::TRANSFORM_RESPONSE, payload)
        })
    }

    /// W2: runs on an engine thread after a fetch (an `upsertQueryData` from JavaScript computes
    /// its tags in `index.js` instead: this thread is the one that would answer).
    fn provides_tags(self: &Arc<Self>, endpoint: &str) -> ProvidesTagsFn {
        let (bridge, endpoint) = (Arc::clone(self), endpoint.to_owned());
        Arc::new(move |data: &Value, arg: Option<&Value>| {
            let payload = to_text(&HookCall { e: &endpoint, a: arg, d: Some(data), ..HookCall::default() });
            bridge.sync_answer(kind::PROVIDES_TAGS, payload)
        })
    }

    /// W2: runs on an engine thread when a mutation settles.
    fn invalidates_tags(self: &Arc<Self>, endpoint: &str) -> InvalidatesTagsFn {
        let (bridge, endpoint) = (Arc::clone(self), endpoint.to_owned());
        Arc::new(move |result: Option<&Value>, error: Option<&Value>, arg: Option<&Value>| {
            let mut call = json!({"e": endpoint, "r": result, "x": error});
            if let Some(a) = arg {
                call["a"] = a.clone(); // absent for "no arg" (K1), as in HookCall
            }
            let payload = to_text(&call);
            bridge.sync_answer(kind::INVALIDATES_TAGS, payload)
        })
    }

    /// A synchronous hook's answer: the value it returned, or what it threw.
    fn sync_answer(&self, call_kind: u32, payload: String) -> Result<Value, String> {
        let (ok, text) = self.call_blocking(call_kind, payload);
        if !ok {
            return Err(text);
        }
        livecache_core::json::parse_host(&text).map_err(|e| format!("returned an invalid value: {e}"))
    }

    /// `onMessage`, batched: the messages queued for an entry cross in one call, so a burst costs
    /// one trip to the JavaScript thread, not one per message.
    fn on_messages(self: &Arc<Self>, endpoint: &str) -> OnMessagesFn {
        let (bridge, endpoint) = (Arc::clone(self), endpoint.to_owned());
        Arc::new(move |batch: MessageBatch| {
            let MessageBatch { base, data, messages, arg } = batch;
            let key = cache_key(&endpoint, arg.as_ref());
            let v = Some((base.entry_id, base.version));
            let call = HookCall { e: &endpoint, a: arg.as_ref(), k: Some(&key), ms: Some(&messages), d: None, v };
            let payload = to_text(&call);
            let (bridge, endpoint) = (Arc::clone(&bridge), endpoint.clone());
            async move {
                let (mut ok, mut text) = bridge.call_async(kind::ON_MESSAGE, payload).await;
                if ok && text == "snapshot" {
                    // The data itself crosses only when the JavaScript side has no replica of it
                    // (see `#onMessage` in index.js).
                    let call = HookCall { e: &endpoint, a: arg.as_ref(), k: Some(&key), ms: Some(&messages), d: Some(&data), v };
                    (ok, text) = bridge.call_async(kind::ON_MESSAGE, to_text(&call)).await;
                }
                drop(data);
                if !ok {
                    return Err(text);
                }
                message_outcomes(&text, messages.len())
            }
            .boxed()
        })
    }

    fn on_cache_entry_added(self: &Arc<Self>, endpoint: &str) -> OnCacheEntryAddedFn {
        let (bridge, endpoint) = (Arc::clone(self), endpoint.to_owned());
        Arc::new(move |arg: Option<Value>, lifecycle: Lifecycle| {
            let bridge = Arc::clone(&bridge);
            let id = bridge.next_id();
            bridge.lifecycles.lock().insert(id, lifecycle.clone());
            let payload = to_text(&json!({ "e": endpoint, "a": arg, "has_arg": arg.is_some(), "k": lifecycle.key(), "lc": id }));
            async move {
                let (tx, rx) = reply();
                bridge.call(kind::ON_CACHE_ENTRY_ADDED, payload, Box::new(move |ok, text| tx.send((ok, text))));
                // Queued after the call above, so the JavaScript side knows the lifecycle first;
                // `cacheDataLoaded` settles no later than removal (L2), and removal is awaited
                // only once it has, so the JavaScript side is always told of it first.
                let b = Arc::clone(&bridge);
                lifecycle.cache_data_loaded().on_done(move |loaded| {
                    let loaded = loaded.map(|l| json!({"data": l.data, "meta": l.meta}));
                    b.notify(kind::LIFECYCLE_LOADED, id, settlement(loaded));
                    lifecycle.cache_entry_removed().on_done(move |_| {
                        // Gone from the table first: an update after `cacheEntryRemoved` is CacheEntryRemoved.
                        b.lifecycles.lock().remove(&id);
                        b.notify(kind::LIFECYCLE_REMOVED, id, String::new());
                    });
                });
                let (ok, text) = rx.await.unwrap_or_else(|| (false, "the hook call was dropped".into()));
                if ok {
                    Ok(())
                } else {
                    Err(text)
                }
            }
            .boxed()
        })
    }
}

/// One hook call's arguments; absent fields are left out. `a` is absent for "no arg" (K1).
#[derive(Serialize, Default)]
struct HookCall<'a> {
    e: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    a: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    k: Option<&'a str>,
    /// The messages of an `onMessage` call, in arrival order.
    #[serde(skip_serializing_if = "Option::is_none")]
    ms: Option<&'a [Value]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    d: Option<&'a Value>,
    /// `[entry id, version]` of the data the hook is given.
    #[serde(skip_serializing_if = "Option::is_none")]
    v: Option<(u64, u64)>,
}

/// An `onMessage` answer: `{"batch": [outcome, …]}`, one outcome per message answered, in order.
/// An outcome is `{"ops": [...]}` (a recording draft's operations), `{"data": …}` (a returned
/// value), `{"error": "…"}` (the hook threw for that message) or `{}` (nothing changed).
fn message_outcomes(text: &str, count: usize) -> Result<Vec<Result<MessageUpdate, String>>, String> {
    // `{"batch": [{"ops": [{"value": …}]}]}` holds values five levels down.
    let v = crate::convert::parse_wrapped(text, 5).map_err(|e| format!("returned an invalid value: {}", e.reason.replace('\u{1}', ": ")))?;
    let Value::Object(mut answer) = v else { return Err("onMessage answer is not an object".into()) };
    let Some(Value::Array(items)) = answer.remove("batch") else {
        return Err("onMessage answer has no batch".into());
    };
    if items.len() > count {
        return Err(format!("onMessage answered {} messages of {count}", items.len()));
    }
    let mut outcomes = Vec::with_capacity(items.len());
    for item in items {
        if let Some(e) = item.get("error") {
            // The hook threw for this message; the next outcome was computed without its changes.
            outcomes.push(Err(e.as_str().map_or_else(|| e.to_string(), str::to_owned)));
            continue;
        }
        let outcome = message_update(item);
        let malformed = outcome.is_err();
        outcomes.push(outcome);
        // What came after a malformed outcome may build on it: those messages are offered again.
        if malformed {
            break;
        }
    }
    Ok(outcomes)
}

fn message_update(v: Value) -> Result<MessageUpdate, String> {
    let Value::Object(mut o) = v else { return Err("onMessage outcome is not an object".into()) };
    if let Some(ops) = o.get("ops") {
        let ops = ops.as_array().ok_or("onMessage ops are not an array")?;
        if ops.is_empty() {
            return Ok(MessageUpdate::Unchanged);
        }
        return Ok(MessageUpdate::Ops(ops.iter().map(PatchOp::from_value).collect::<Result<Vec<_>, _>>()?));
    }
    Ok(o.remove("data").map_or(MessageUpdate::Unchanged, MessageUpdate::Data))
}
