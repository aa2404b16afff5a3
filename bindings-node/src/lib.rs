//! The native layer of the `livecache` npm package. `index.js` is the public API; this module
//! only converts values and maps errors around `livecache-core` (SPEC §7 Node).
//!
//! Delivery: the client runs in pull mode. When events are ready the engine calls a weak
//! threadsafe function ("wake"); the JavaScript side then calls `poll()`, which runs the queued
//! subscriber callbacks on the JavaScript thread and hands back every event of that turn as one
//! JSON text. The per-subscription queues of the engine therefore keep their bounds (E4, E5)
//! however slow the JavaScript thread is. The wake function is referenced while at least one
//! subscription is live, so the process lives exactly as long as something is subscribed.

mod bridge;
mod convert;

use std::io::Write;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use livecache_core::event_tap::Tapped;
use livecache_core::patch::{apply_patch, parse_patch};
use livecache_core::{Client, ClientOptions, Clock, Completion, Config, Delivery, EntryState, Error, HostUpdate, RawMessage, Subscription};
use napi::bindgen_prelude::{FnArgs, Function, Unknown};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Env, JsString, Status};
use napi_derive::napi;
use parking_lot::Mutex;
use serde_json::{json, Value};

use crate::bridge::{kind, settlement, Bridge, HostCalls};
use crate::convert::{arg_of, from_napi, parse, parse_wrapped, to_napi, to_text, Result};

/// The addon's Rust allocations (parsed messages, cached data, events) go to mimalloc: the
/// engine makes many small short-lived allocations per message, where glibc's malloc spent about
/// a quarter of the JavaScript thread's time (consolidating and unlinking chunks) and kept
/// freed memory resident. Node's own heap is not affected.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A poll buffer grown past this by one flood is freed rather than kept for the next poll.
const MAX_KEPT_BATCH: usize = 8 << 20;

type Wake = ThreadsafeFunction<(), Unknown<'static>, (), Status, false, true>;

/// State shared by a client, its subscriptions and the engine's ready notifier.
struct Shared {
    /// Events of the current `poll`, as `[[subId,event],[subId,event]…`: the opening bracket of
    /// the array goes in with the first event, the closing one at `poll`. The buffer is kept from
    /// one poll to the next (cleared, not freed): a flood's batches are large, and a fresh buffer
    /// for every poll came from fresh pages each time.
    batch: Mutex<Vec<u8>>,
    wake: Mutex<Wake>,
    wake_pending: AtomicBool,
    /// Live subscriptions; the wake function is referenced while this is above 0.
    live: Mutex<u32>,
}

impl Shared {
    fn wake(&self) {
        if !self.wake_pending.swap(true, Ordering::AcqRel) {
            self.wake.lock().call((), ThreadsafeFunctionCallMode::NonBlocking);
        }
    }

    #[allow(deprecated)] // refer/unref are the documented way to make a weak function hold the loop
    fn add_live(&self, env: &Env) -> Result<()> {
        let mut live = self.live.lock();
        *live += 1;
        if *live == 1 {
            self.wake.lock().refer(env).map_err(from_napi)?;
        }
        Ok(())
    }

    #[allow(deprecated)]
    fn drop_live(&self, env: &Env, all: bool) -> Result<()> {
        let mut live = self.live.lock();
        let before = *live;
        *live = if all { 0 } else { live.saturating_sub(1) };
        if before > 0 && *live == 0 {
            self.wake.lock().unref(env).map_err(from_napi)?;
        }
        Ok(())
    }
}

#[napi]
pub struct NativeClient {
    client: Client,
    shared: Arc<Shared>,
    bridge: Arc<Bridge>,
}

/// What a host update returned (L9), as JSON for index.js.
fn update_text(u: &HostUpdate) -> String {
    to_text(&json!({ "patches": u.patches, "inversePatches": u.inverse_patches }))
}

/// A recipe's outcome from the JavaScript side: mode 0 = RFC 6902 operations recorded on a
/// draft, mode 1 = a returned value that replaces the data.
fn recipe_of(mode: u32, payload: &str) -> Result<RecipeResult> {
    if mode == 1 {
        return Ok(RecipeResult::Replace(parse(payload)?));
    }
    let v = parse_wrapped(payload, 2)?;
    let ops = parse_patch(&v).map_err(|e| to_napi(Error::Patch(e.to_string())))?;
    Ok(RecipeResult::Ops(ops))
}

enum RecipeResult {
    Ops(Vec<livecache_core::PatchOp>),
    Replace(Value),
}

/// Runs a recorded recipe as the engine's recipe: the operations are applied to the engine's
/// own draft, so a change that happened since the JavaScript side read the data is kept.
fn run_recipe(
    recipe: RecipeResult,
    update: impl FnOnce(&mut dyn FnMut(&mut Value) -> Option<Value>) -> livecache_core::Result<HostUpdate>,
) -> Result<String> {
    let mut failure = None;
    let mut recipe = Some(recipe);
    let mut f = |draft: &mut Value| -> Option<Value> {
        match recipe.take()? {
            RecipeResult::Replace(v) => Some(v),
            RecipeResult::Ops(ops) => {
                if let Err(e) = apply_patch(draft, &ops, livecache_core::json::MAX_DEPTH) {
                    failure = Some(e.to_string());
                }
                None
            }
        }
    };
    let result = update(&mut f).map_err(to_napi)?;
    if let Some(message) = failure {
        return Err(to_napi(Error::Patch(message)));
    }
    Ok(update_text(&result))
}

impl NativeClient {
    /// Settles `id` with `done`'s result, through the host-call function (`kind::SETTLE`).
    fn settle_when_done(&self, id: u32, done: Completion<Value>) {
        settle(&self.bridge, id, done);
    }
}

fn settle(bridge: &Arc<Bridge>, id: u32, done: Completion<Value>) {
    let bridge = Arc::clone(bridge);
    done.on_done(move |result| bridge.notify(kind::SETTLE, id, settlement(result)));
}

#[napi]
impl NativeClient {
    /// `config_json`: SPEC §2 config as JSON text; `hook_spec_json`: `{endpoint: [hook names]}`;
    /// `on_wake`: called (no arguments) when events wait for `poll`; `on_host_call(kind, id,
    /// payload)`: hook calls and promise settlements, see bridge.rs.
    #[napi(constructor, catch_unwind)]
    pub fn new(
        env: Env,
        config_json: String,
        hook_spec_json: String,
        on_wake: Function<'_, (), Unknown<'static>>,
        on_host_call: Function<'_, FnArgs<(u32, u32, String)>, Unknown<'static>>,
        clock: Option<String>,
    ) -> Result<Self> {
        let _ = env;
        let clock = match clock.as_deref() {
            None | Some("system") => Clock::System,
            Some("manual") => Clock::Manual,
            Some(other) => {
                return Err(to_napi(Error::InvalidArgument(format!("clock must be \"system\" or \"manual\", not {other:?}"))))
            }
        };
        let config = Config::from_json_text(&config_json).map_err(to_napi)?;
        let wake: Wake = on_wake.build_threadsafe_function::<()>().callee_handled::<false>().weak::<true>().build().map_err(from_napi)?;
        let calls: HostCalls = on_host_call
            .build_threadsafe_function::<FnArgs<(u32, u32, String)>>()
            .callee_handled::<false>()
            .weak::<true>()
            .build()
            .map_err(from_napi)?;
        let bridge = Bridge::new(calls);
        let hooks = bridge.hooks(&parse(&hook_spec_json)?)?;
        let options = ClientOptions { delivery: Delivery::Poll, clock, ..ClientOptions::default() };
        let client = Client::with_options(config, hooks, options).map_err(to_napi)?;
        let shared = Arc::new(Shared {
            batch: Mutex::new(Vec::new()),
            wake: Mutex::new(wake),
            wake_pending: AtomicBool::new(false),
            live: Mutex::new(0),
        });
        let notifier = Arc::clone(&shared);
        client.set_ready_notifier(Some(Arc::new(move || notifier.wake())));
        Ok(NativeClient { client, shared, bridge })
    }

    /// Runs the subscriber callbacks that are ready and returns their events as one JSON array of
    /// `[subscriptionId, event]` pairs, or `null` when there were none (or the client is closed).
    #[napi(catch_unwind)]
    pub fn poll<'env>(&self, env: &'env Env) -> Result<Option<JsString<'env>>> {
        self.shared.wake_pending.store(false, Ordering::Release);
        let _ = self.client.poll(Duration::ZERO);
        let mut batch = self.shared.batch.lock();
        if batch.is_empty() {
            return Ok(None);
        }
        batch.push(b']');
        // V8 copies the text into a string of its own; the buffer is then ready for the next poll.
        let text = env.create_string(std::str::from_utf8(&batch).expect("serde_json writes UTF-8"));
        batch.clear();
        if batch.capacity() > MAX_KEPT_BATCH {
            *batch = Vec::new();
        }
        text.map(Some).map_err(from_napi)
    }

    #[napi(catch_unwind)]
    pub fn subscribe(&self, env: Env, endpoint: String, arg_json: String, options_json: String, sub_id: u32) -> Result<NativeSubscription> {
        let arg = arg_of(&arg_json)?;
        let options = livecache_core::SubscribeOptions::from_value(&parse(&options_json)?).map_err(|m| to_napi(Error::InvalidArgument(m)))?;
        let shared = Arc::clone(&self.shared);
        let sub = self
            .client
            .subscribe_with(&endpoint, arg, options, move |event| {
                let mut batch = shared.batch.lock();
                let separator = if batch.is_empty() { b'[' } else { b',' };
                batch.push(separator);
                let _ = write!(batch, "[{sub_id},");
                let _ = serde_json::to_writer(&mut *batch, event);
                batch.push(b']');
            })
            .map_err(to_napi)?;
        self.shared.add_live(&env)?;
        Ok(NativeSubscription {
            sub,
            shared: Arc::clone(&self.shared),
            bridge: Arc::clone(&self.bridge),
            active: true,
        })
    }

    /// Moves the manual clock forward by `ms` milliseconds and runs what is due (L7).
    #[napi(catch_unwind)]
    pub fn advance(&self, ms: f64) -> Result<()> {
        if !(ms.is_finite() && ms >= 0.0) {
            return Err(to_napi(Error::InvalidArgument(format!("advance takes a non-negative number of milliseconds, not {ms}"))));
        }
        self.client.advance(Duration::from_secs_f64(ms / 1000.0)).map_err(to_napi)
    }

    #[napi(catch_unwind)]
    pub fn cache_key(&self, endpoint: String, arg_json: String) -> Result<String> {
        self.client.cache_key(&endpoint, arg_of(&arg_json)?.as_ref()).map_err(to_napi)
    }

    #[napi(catch_unwind)]
    pub fn snapshot(&self, endpoint: String, arg_json: String) -> Result<String> {
        Ok(self.client.snapshot(&endpoint, arg_of(&arg_json)?.as_ref()).map_err(to_napi)?.to_json())
    }

    #[napi(catch_unwind)]
    pub fn update_query_data(&self, endpoint: String, arg_json: String, mode: u32, payload: String) -> Result<String> {
        let arg = arg_of(&arg_json)?;
        let recipe = recipe_of(mode, &payload)?;
        run_recipe(recipe, |f| self.client.update_query_data(&endpoint, arg.as_ref(), f))
    }

    #[napi(catch_unwind)]
    pub fn patch_query_data(&self, endpoint: String, arg_json: String, patches_json: String) -> Result<String> {
        let arg = arg_of(&arg_json)?;
        let patches = parse_wrapped(&patches_json, 2)?;
        let result = self.client.patch_query_data_value(&endpoint, arg.as_ref(), &patches).map_err(to_napi)?;
        Ok(update_text(&result))
    }

    /// `tags_json`: the endpoint's `providesTags` answer, computed by `index.js` in this call
    /// (`{"tags": …}`, or `{"error": "…"}` when it threw): the hook cannot be called back from
    /// here, this being the JavaScript thread that would answer it.
    #[napi(catch_unwind)]
    pub fn upsert_query_data(&self, endpoint: String, arg_json: String, data_json: String, tags_json: Option<String>) -> Result<()> {
        let arg = arg_of(&arg_json)?;
        let data = parse(&data_json)?;
        let tags = match tags_json {
            None => None,
            Some(text) => {
                let answer = parse(&text)?;
                Some(match answer.get("error") {
                    Some(e) => Err(e.as_str().map_or_else(|| e.to_string(), str::to_owned)),
                    None => Ok(answer.get("tags").cloned().unwrap_or(Value::Null)),
                })
            }
        };
        self.client.upsert_query_data_tagged(&endpoint, arg, data, tags).map_err(to_napi)
    }

    #[napi(catch_unwind)]
    pub fn refetch(&self, endpoint: String, arg_json: String) -> Result<()> {
        self.client.refetch(&endpoint, arg_of(&arg_json)?.as_ref()).map_err(to_napi)
    }

    /// T2 `send`: settles `id` once the frame is written, or at once with `NotConnected`.
    #[napi(catch_unwind)]
    pub fn send(&self, endpoint: String, arg_json: String, message_json: String, id: u32) -> Result<()> {
        let message = parse(&message_json)?;
        let sent = self.client.send(&endpoint, arg_of(&arg_json)?.as_ref(), &message);
        self.settle_when_done(id, sent.map(|()| Value::Null));
        Ok(())
    }

    /// W1 `mutate`: settles `id` with the response data once the refetches it caused have
    /// landed (W4), or with the error (`MutationError` carrying the server's answer).
    #[napi(catch_unwind)]
    pub fn mutate(&self, endpoint: String, arg_json: String, options_json: String, id: u32) -> Result<()> {
        let options = livecache_core::MutateOptions::from_value(&parse(&options_json)?).map_err(|m| to_napi(Error::InvalidArgument(m)))?;
        let done = self.client.mutate_with(&endpoint, arg_of(&arg_json)?, &options);
        self.settle_when_done(id, done);
        Ok(())
    }

    /// P3 `prefetch` with its options as JSON text.
    #[napi(catch_unwind)]
    pub fn prefetch(&self, endpoint: String, arg_json: String, options_json: String) -> Result<()> {
        let options = livecache_core::PrefetchOptions::from_value(&parse(&options_json)?).map_err(|m| to_napi(Error::InvalidArgument(m)))?;
        self.client.prefetch(&endpoint, arg_of(&arg_json)?, options).map_err(to_napi)
    }

    /// P3 `resetApiState`.
    #[napi(catch_unwind)]
    pub fn reset_api_state(&self) -> Result<()> {
        self.client.reset_api_state().map_err(to_napi)
    }

    /// W2 `invalidateTags` with the tags as a JSON array.
    #[napi(catch_unwind)]
    pub fn invalidate_tags(&self, tags_json: String) -> Result<()> {
        let tags = match parse(&tags_json)? {
            Value::Array(tags) => tags,
            other => return Err(to_napi(Error::InvalidArgument(format!("invalidateTags takes an array of tags, got {other}")))),
        };
        self.client.invalidate_tags(&tags).map_err(to_napi)
    }

    /// T1 `reconnect`.
    #[napi(catch_unwind)]
    pub fn reconnect(&self, endpoint: String, arg_json: String) -> Result<()> {
        self.client.reconnect(&endpoint, arg_of(&arg_json)?.as_ref()).map_err(to_napi)
    }

    /// `pushMessage` with a value the JavaScript side already checked and serialised.
    #[napi(catch_unwind)]
    pub fn push_message(&self, endpoint: String, arg_json: String, message_json: String) -> Result<()> {
        let arg = arg_of(&arg_json)?;
        let message = parse(&message_json)?;
        self.client.push_message(&endpoint, arg.as_ref(), RawMessage::Value(message)).map_err(to_napi)
    }

    /// `pushMessages`: a JSON array of messages (checked and serialised by the JavaScript side),
    /// each one message of the burst. One crossing, one engine step for the whole array.
    #[napi(catch_unwind)]
    pub fn push_messages(&self, endpoint: String, arg_json: String, messages_json: String) -> Result<()> {
        let arg = arg_of(&arg_json)?;
        let Value::Array(messages) = parse_wrapped(&messages_json, 1)? else {
            return Err(to_napi(Error::InvalidArgument("pushMessages needs an array of messages".into())));
        };
        self.client.push_messages(&endpoint, arg.as_ref(), messages.into_iter().map(RawMessage::Value).collect()).map_err(to_napi)
    }

    /// Raw text as a stream frame carries it: the pipeline parses it (bad JSON is an `error` event).
    #[napi(catch_unwind)]
    pub fn push_message_text(&self, endpoint: String, arg_json: String, text: String) -> Result<()> {
        let arg = arg_of(&arg_json)?;
        self.client.push_message(&endpoint, arg.as_ref(), RawMessage::Text(text)).map_err(to_napi)
    }

    #[napi(catch_unwind)]
    pub fn stats(&self) -> Result<String> {
        Ok(to_text(&self.client.stats().map_err(to_napi)?))
    }

    /// Closes the client (SPEC §8) and lets the process exit: no subscription holds it any more.
    #[napi(catch_unwind)]
    pub fn close(&self, env: Env) -> Result<()> {
        self.client.close();
        self.shared.batch.lock().clear();
        self.shared.drop_live(&env, true)
    }

    #[napi(catch_unwind)]
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// The JavaScript side's answer to a hook call.
    #[napi(catch_unwind)]
    pub fn complete(&self, id: u32, ok: bool, text: String) {
        self.bridge.complete(id, ok, text);
    }

    /// `lifecycle.updateCachedData(recipe)` for lifecycle `lc`.
    #[napi(catch_unwind)]
    pub fn lifecycle_update(&self, lc: u32, mode: u32, payload: String) -> Result<String> {
        let lifecycle = self.bridge.lifecycle(lc).ok_or_else(|| to_napi(Error::CacheEntryRemoved(format!("of lifecycle {lc}"))))?;
        let recipe = recipe_of(mode, &payload)?;
        run_recipe(recipe, |f| lifecycle.update_cached_data(f))
    }

    /// `lifecycle.getCacheEntry()`; once the entry is gone (its lifecycle dropped from the
    /// table), the uninitialized entry of `key` (SPEC §6).
    #[napi(catch_unwind)]
    pub fn lifecycle_entry(&self, lc: u32, key: String) -> Result<String> {
        match self.bridge.lifecycle(lc) {
            Some(lifecycle) => Ok(lifecycle.get_cache_entry().map_err(to_napi)?.to_json()),
            None => Ok(EntryState::uninitialized(&key).to_json()),
        }
    }
}

#[napi]
pub struct NativeSubscription {
    sub: Subscription,
    shared: Arc<Shared>,
    bridge: Arc<Bridge>,
    active: bool,
}

#[napi]
impl NativeSubscription {
    #[napi(getter, catch_unwind)]
    pub fn key(&self) -> String {
        self.sub.key().to_owned()
    }

    #[napi(catch_unwind)]
    pub fn snapshot(&self) -> Result<String> {
        Ok(self.sub.snapshot().map_err(to_napi)?.to_json())
    }

    /// `loaded()`: bound to the entry now (L2); settles later through the host-call function
    /// with `kind::SETTLE` and this `id`.
    #[napi(catch_unwind)]
    pub fn loaded(&self, id: u32) {
        settle(&self.bridge, id, self.sub.loaded());
    }

    /// An `events()` reader: the subscription's events from now on, in a queue the core bounds by
    /// `queueLimit` (E4, E5). The events reach it inside `poll`, after the subscription's own
    /// callback, so index.js reads it when that callback ran: no wake of its own is needed.
    #[napi(catch_unwind)]
    pub fn events(&self) -> NativeEvents {
        NativeEvents { reader: self.sub.events(Box::new(|| {})) }
    }

    #[napi(catch_unwind)]
    pub fn unsubscribe(&mut self, env: Env) -> Result<()> {
        if std::mem::replace(&mut self.active, false) {
            self.sub.unsubscribe();
            self.shared.drop_live(&env, false)?;
        }
        Ok(())
    }
}

/// One `events()` reader of a subscription (livecache_core::event_tap).
#[napi]
pub struct NativeEvents {
    reader: livecache_core::event_tap::EventTap,
}

#[napi]
impl NativeEvents {
    /// The next event as JSON text; `null` when none waits.
    #[napi(catch_unwind)]
    pub fn next(&self) -> Option<String> {
        match self.reader.next() {
            Tapped::Event(event) => Some(event.to_json()),
            Tapped::Empty | Tapped::Ended => None,
        }
    }

    /// Whether the subscription ended and nothing waits: no event will come.
    #[napi(catch_unwind)]
    pub fn done(&self) -> bool {
        self.reader.peek_ended()
    }

    /// The reader is done: what waits is dropped.
    #[napi(catch_unwind)]
    pub fn close(&self) {
        self.reader.close();
    }
}
