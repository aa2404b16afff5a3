//! The client: its threads (engine workers, a stream thread, a delivery thread), one engine
//! state, the public operations of SPEC §4 and §7.
//! Every operation changes state under one lock and queues events; user code (callbacks,
//! hooks, recipes) always runs with the lock released (SPEC §5).


mod messages;

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::future::{BoxFuture, FutureExt};
use parking_lot::Mutex;
use serde_json::Value;
use tokio::runtime::{Handle, Runtime};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::adapter;
use crate::apply::{apply_rule, Change};
use crate::config::{Config, EndpointConfig, KeepUnused, StreamConfig};
use crate::dispatch::{Callback, Dispatcher, SubscriberQueue};
use crate::entry::{Entry, EntryState, Loaded};
use crate::error::{Error, Result};
use crate::event::{ErrorReason, Event, Status, StreamState};
use crate::hooks::Hooks;
use crate::json::{self, MAX_DEPTH};
use crate::key::cache_key;
use crate::lifecycle::{shared_loaded, Lifecycle};
use crate::patch::{apply_patch, PatchOp};
use crate::message::{self as pipeline, MessageFilter};
use crate::pipeline::Inbound;
use crate::stats::Stats;
use crate::template::join_url;
use crate::transport::{FetchRequest, FetchResponse, QuerySource, RawMessage, StreamRequest, StreamSink, StreamSource};

/// How subscriber callbacks are run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Delivery {
    /// On a delivery thread the client owns.
    #[default]
    Thread,
    /// On the host's thread, inside `Client::poll` (C pull mode).
    Poll,
}

/// How a client is built, beyond its config and hooks.
#[derive(Clone)]
pub struct ClientOptions {
    /// Where `query` endpoints fetch from; `None` is the built-in HTTP client.
    pub query_source: Option<Arc<dyn QuerySource>>,
    /// Where `stream.url` endpoints read from; `None` is the built-in WebSocket client.
    pub stream_source: Option<Arc<dyn StreamSource>>,
    pub delivery: Delivery,
    /// Worker threads of the client's engine runtime (fetches, hooks, message pipelines). Streams
    /// read and parse on one more thread of their own.
    pub worker_threads: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions { query_source: None, stream_source: None, delivery: Delivery::Thread, worker_threads: 2 }
    }
}

/// What a host update did (L9): the patches applied and the patches that undo them.
#[derive(Clone, Debug)]
pub struct HostUpdate {
    pub patches: Vec<PatchOp>,
    pub inverse_patches: Vec<PatchOp>,
    target: Option<(Weak<Inner>, Arc<str>)>,
}

impl HostUpdate {
    /// Applies `inverse_patches` to the same entry, as a new host update.
    pub fn undo(&self) -> Result<HostUpdate> {
        let (inner, key) = self.target.as_ref().ok_or_else(|| Error::InvalidArgument("nothing to undo".into()))?;
        let inner = inner.upgrade().ok_or(Error::Closed)?;
        inner.patch_entry(key, &self.inverse_patches)
    }
}

std::thread_local! {
    /// Set on the client's runtime threads: `close` from there cannot block on the runtime.
    static ON_ENGINE_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

pub(crate) struct State {
    closed: bool,
    /// Boxed: the map keeps spare capacity after removals, a pointer per slot rather than an entry.
    entries: HashMap<Arc<str>, Box<Entry>>,
    stats: Stats,
}

pub(crate) struct Inner {
    self_ref: Weak<Inner>,
    config: Config,
    hooks: Hooks,
    /// Per endpoint: its `stream` config, or a default one for `pushMessage`-only use.
    stream_configs: HashMap<String, Arc<StreamConfig>>,
    query_source: Option<Arc<dyn QuerySource>>,
    stream_source: Option<Arc<dyn StreamSource>>,
    state: Mutex<State>,
    dispatcher: Arc<Dispatcher>,
    runtime: Mutex<Option<Runtime>>,
    handle: Handle,
    /// Where stream drivers run (see `with_options`).
    io_runtime: Mutex<Option<Runtime>>,
    io_handle: Handle,
    next_id: AtomicU64,
    received: AtomicU64,
    filtered: AtomicU64,
    buffered: AtomicU64,
    buffer_overflows: AtomicU64,
}

/// A livecache client: entries, streams and subscriptions, on its own threads (SPEC §8).
/// Dropping it closes it.
pub struct Client {
    inner: Arc<Inner>,
}

/// One subscriber of one cache key. Dropping it unsubscribes.
pub struct Subscription {
    inner: Arc<Inner>,
    queue: Arc<SubscriberQueue>,
    key: Arc<str>,
    entry_id: u64,
    done: AtomicBool,
}

fn default_stream_config() -> StreamConfig {
    StreamConfig {
        url: None,
        filter: Vec::new(),
        schema: None,
        apply: None,
        reconnect: Default::default(),
        heartbeat: None,
        max_message_bytes: crate::config::DEFAULT_MAX_MESSAGE_BYTES,
        resync_on_reconnect: true,
        buffer_before_loaded: crate::config::DEFAULT_BUFFER_BEFORE_LOADED,
    }
}

/// A runtime of the client's own, whose threads are marked as engine threads (see `close`).
fn engine_runtime(name: &str, workers: usize) -> Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name(name)
        .on_thread_start(|| ON_ENGINE_THREAD.with(|f| f.set(true)))
        .enable_all()
        .build()
        .map_err(|e| Error::InvalidArgument(format!("cannot start the {name} threads: {e}")))
}

/// Cross-checks config and hooks: what a config alone cannot tell (SPEC §2, §6).
fn validate(config: &Config, hooks: &Hooks) -> Result<()> {
    for name in hooks.endpoints.keys() {
        if !config.endpoints.contains_key(name) {
            return Err(Error::config(format!("hooks.{name}"), "hooks given for an endpoint the config does not have"));
        }
    }
    for (name, ep) in &config.endpoints {
        let h = hooks.get(name);
        let has_query_fn = h.is_some_and(|h| h.query_fn.is_some());
        let has_on_message = h.is_some_and(|h| h.has_on_message());
        if ep.query.is_none() && !has_query_fn && ep.stream.is_none() {
            return Err(Error::config(
                format!("endpoints.{name}"),
                "needs a `query`, a `queryFn` hook or a `stream` to get its data",
            ));
        }
        if let Some(stream) = &ep.stream {
            if stream.apply.is_none() && !has_on_message {
                return Err(Error::config(
                    format!("endpoints.{name}.stream.apply"),
                    "missing: give an apply rule or an onMessage hook",
                ));
            }
            if stream.apply.is_some() && has_on_message {
                return Err(Error::config(
                    format!("endpoints.{name}.stream.apply"),
                    "both an apply rule and an onMessage hook: choose one",
                ));
            }
        }
    }
    Ok(())
}

impl Client {
    /// Builds a client from parsed config and hooks, with the built-in transports.
    pub fn new(config: Config, hooks: Hooks) -> Result<Client> {
        Client::with_options(config, hooks, ClientOptions::default())
    }

    /// Builds a client from config JSON text.
    pub fn from_json(config_json: &str, hooks: Hooks) -> Result<Client> {
        Client::new(Config::from_json_text(config_json)?, hooks)
    }

    pub fn with_options(config: Config, hooks: Hooks, options: ClientOptions) -> Result<Client> {
        validate(&config, &hooks)?;
        let runtime = engine_runtime("livecache-engine", options.worker_threads.max(1))?;
        let handle = runtime.handle().clone();
        // Streams read and parse on their own thread: a flood on a socket then overlaps with the
        // engine applying what came before. (Within one runtime the pipeline task, woken by
        // the stream task, would wait on the same worker until the stream task stops reading.)
        let io_runtime = engine_runtime("livecache-io", 1)?;
        let io_handle = io_runtime.handle().clone();
        let dispatcher = Dispatcher::new();
        if options.delivery == Delivery::Thread {
            dispatcher
                .spawn_thread("livecache-delivery".into())
                .map_err(|e| Error::InvalidArgument(format!("cannot start the delivery thread: {e}")))?;
        }
        let stream_configs = config
            .endpoints
            .iter()
            .map(|(name, ep)| (name.clone(), ep.stream.clone().unwrap_or_else(|| Arc::new(default_stream_config()))))
            .collect();
        let query_source = options.query_source.or_else(crate::default_query_source);
        let stream_source = options.stream_source.or_else(crate::default_stream_source);
        let inner = Arc::new_cyclic(|self_ref| Inner {
            self_ref: self_ref.clone(),
            config,
            hooks,
            stream_configs,
            query_source,
            stream_source,
            state: Mutex::new(State { closed: false, entries: HashMap::new(), stats: Stats::new() }),
            dispatcher,
            runtime: Mutex::new(Some(runtime)),
            handle,
            io_runtime: Mutex::new(Some(io_runtime)),
            io_handle,
            next_id: AtomicU64::new(1),
            received: AtomicU64::new(0),
            filtered: AtomicU64::new(0),
            buffered: AtomicU64::new(0),
            buffer_overflows: AtomicU64::new(0),
        });
        Ok(Client { inner })
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The client's runtime, for hosts that bridge futures.
    pub fn runtime_handle(&self) -> Handle {
        self.inner.handle.clone()
    }

    /// The cache key of `(endpoint, arg)` (K1). Fails for an unknown endpoint.
    pub fn cache_key(&self, endpoint: &str, arg: Option<&Value>) -> Result<String> {
        drop(self.inner.lock_open()?);
        self.inner.endpoint(endpoint)?;
        Ok(cache_key(endpoint, arg))
    }

    /// Subscribes to `(endpoint, arg)`; `arg` `None` is "no arg". The first subscriber of a key
    /// creates its entry and starts its query and stream (L1).
    pub fn subscribe(
        &self,
        endpoint: &str,
        arg: Option<Value>,
        callback: impl Fn(&Event) + Send + Sync + 'static,
    ) -> Result<Subscription> {
        self.inner.subscribe(endpoint, arg, Box::new(callback))
    }

    /// The entry state of `(endpoint, arg)` (SPEC §5); `NotFound` without an entry.
    pub fn snapshot(&self, endpoint: &str, arg: Option<&Value>) -> Result<EntryState> {
        let key = self.inner.key_of(endpoint, arg)?;
        self.inner.entry_state(&key, None)
    }

    /// `updateQueryData`: runs `recipe` on a draft of the data (mutate it, or return a new value).
    pub fn update_query_data(
        &self,
        endpoint: &str,
        arg: Option<&Value>,
        recipe: impl FnOnce(&mut Value) -> Option<Value>,
    ) -> Result<HostUpdate> {
        let key = self.inner.key_of(endpoint, arg)?;
        self.inner.update_entry(&key, None, recipe)
    }

    /// `patchQueryData`: applies RFC 6902 operations, all or nothing.
    pub fn patch_query_data(&self, endpoint: &str, arg: Option<&Value>, patches: &[PatchOp]) -> Result<HostUpdate> {
        let key = self.inner.key_of(endpoint, arg)?;
        self.inner.patch_entry(&key, patches)
    }

    /// `patchQueryData` with the patch as a JSON value (an operation array).
    pub fn patch_query_data_value(&self, endpoint: &str, arg: Option<&Value>, patches: &Value) -> Result<HostUpdate> {
        let ops = crate::patch::parse_patch(patches).map_err(|e| Error::Patch(e.to_string()))?;
        self.patch_query_data(endpoint, arg, &ops)
    }

    /// `upsertQueryData`: sets the data, creating a fulfilled entry (with no subscriber, L7) if absent.
    pub fn upsert_query_data(&self, endpoint: &str, arg: Option<Value>, data: Value) -> Result<()> {
        self.inner.upsert(endpoint, arg, data)
    }

    /// Re-runs the query (L5).
    pub fn refetch(&self, endpoint: &str, arg: Option<&Value>) -> Result<()> {
        let key = self.inner.key_of(endpoint, arg)?;
        let mut st = self.inner.lock_open()?;
        self.inner.start_fetch(&mut st, &key)
    }

    /// `pushMessage` (L10): one message through the endpoint's stream pipeline.
    pub fn push_message(&self, endpoint: &str, arg: Option<&Value>, message: RawMessage) -> Result<()> {
        let key = self.inner.key_of(endpoint, arg)?;
        let mut st = self.inner.lock_open()?;
        let entry = st.entries.get_mut(&*key).ok_or_else(|| Error::NotFound(key.to_string()))?;
        self.inner.count_received();
        let _ = self.inner.inbox(entry).send(Inbound::Raw(message));
        Ok(())
    }

    /// Counters (SPEC §5).
    pub fn stats(&self) -> Result<Stats> {
        let st = self.inner.lock_open()?;
        Ok(self.inner.stats_of(&st))
    }

    /// Pull mode: runs queued callbacks on this thread, waiting up to `timeout` for one.
    pub fn poll(&self, timeout: Duration) -> Result<usize> {
        if self.inner.state.lock().closed {
            return Err(Error::Closed);
        }
        Ok(self.inner.dispatcher.poll(timeout))
    }

    /// Pull mode: `f` is called (from any thread) when callbacks become ready to run.
    pub fn set_ready_notifier(&self, f: Option<Arc<dyn Fn() + Send + Sync>>) {
        self.inner.dispatcher.set_on_ready(f);
    }

    /// True when callbacks wait for `poll`.
    pub fn has_ready_events(&self) -> bool {
        self.inner.dispatcher.has_ready()
    }

    pub fn is_closed(&self) -> bool {
        self.inner.state.lock().closed
    }

    /// Removes every entry, closes every stream with a close handshake and stops every callback
    /// before returning (SPEC §8). A second call does nothing.
    pub fn close(&self) {
        self.inner.close();
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.inner.close();
    }
}

impl Subscription {
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The entry's current state.
    pub fn snapshot(&self) -> Result<EntryState> {
        self.inner.entry_state(&self.key, None)
    }

    /// `loaded()` (L2): the data, at once if present, else when it first arrives; bound to the
    /// entry now, so it rejects with `CacheEntryRemoved` if that entry goes first.
    pub fn loaded(&self) -> impl Future<Output = Result<Value>> + Send + 'static {
        let key = self.key.clone();
        let ready: std::result::Result<oneshot::Receiver<Result<Loaded>>, Result<Value>> = {
            let mut st = self.inner.state.lock();
            match st.entries.get_mut(&*self.key).filter(|e| e.id == self.entry_id) {
                None => Err(Err(Error::CacheEntryRemoved(self.key.to_string()))),
                Some(e) => match &e.data {
                    Some(d) => Err(Ok((**d).clone())),
                    None => {
                        let (tx, rx) = oneshot::channel();
                        e.load_waiters.push(tx);
                        Ok(rx)
                    }
                },
            }
        };
        async move {
            match ready {
                Err(done) => done,
                Ok(rx) => match rx.await {
                    Ok(r) => r.map(|l| l.data),
                    Err(_) => Err(Error::CacheEntryRemoved(key.to_string())),
                },
            }
        }
    }

    /// Stops this subscription: no callback of it starts after this returns, and a running one
    /// on another thread has finished (SPEC §5). Idempotent; also done on drop.
    pub fn unsubscribe(&self) {
        if self.done.swap(true, Ordering::SeqCst) {
            return;
        }
        self.inner.unsubscribe(&self.key, self.entry_id, self.queue.id);
        self.queue.close();
    }

    pub fn is_active(&self) -> bool {
        !self.done.load(Ordering::SeqCst)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.unsubscribe();
    }
}

/// The stream side of one entry, handed to the stream driver.
struct EntrySink {
    inner: Weak<Inner>,
    key: Arc<str>,
    entry_id: u64,
    inbox: mpsc::UnboundedSender<Inbound>,
    config: Arc<StreamConfig>,
    filter: MessageFilter,
    /// Prepared messages of the frames read so far, handed on at `flush`.
    batch: Mutex<Vec<pipeline::Prepared>>,
    /// An emptied batch vector the pipeline gave back, reused for the next batch.
    spare: Arc<Mutex<Vec<pipeline::Prepared>>>,
}

impl EntrySink {
    fn prepared(&self, prepared: pipeline::Prepared) {
        let Some(inner) = self.inner.upgrade() else { return };
        inner.count_received();
        match prepared {
            pipeline::Prepared::Filtered => inner.count_filtered(),
            prepared => {
                let mut batch = self.batch.lock();
                if batch.capacity() == 0 {
                    // The vector the pipeline gave back, or one allocation for the batch.
                    *batch = std::mem::take(&mut *self.spare.lock());
                    batch.reserve(crate::ws::READ_BATCH);
                }
                batch.push(prepared);
            }
        }
    }
}

impl StreamSink for EntrySink {
    /// Parse, schema and filter run here, on the stream's thread, so they overlap with the
    /// entry's pipeline applying the messages before this one.
    fn message(&self, message: RawMessage) {
        self.prepared(pipeline::prepare(message, &self.config, &self.filter));
        self.flush();
    }

    /// Held with the frames read before it until `flush`: the pipeline is woken once per batch.
    fn text(&self, text: &str) {
        self.prepared(pipeline::prepare_text(text, &self.config, &self.filter));
    }

    fn flush(&self) {
        let batch = std::mem::take(&mut *self.batch.lock());
        if !batch.is_empty() {
            let _ = self.inbox.send(Inbound::Prepared(batch, self.spare.clone()));
        }
    }

    fn state(&self, state: StreamState, error: Option<String>) {
        // The messages read before the change come before it.
        self.flush();
        if let Some(inner) = self.inner.upgrade() {
            inner.stream_state(&self.key, self.entry_id, state, error);
        }
    }

    fn error(&self, reason: ErrorReason, message: String) {
        self.flush();
        if let Some(inner) = self.inner.upgrade() {
            inner.report_error(&self.key, self.entry_id, reason, message);
        }
    }
}

/// Turns a whole new value into a change against the old one (hooks and recipes may diff).
fn diff_change(old: &Value, new: &Value) -> Change {
    let patch = json_patch::diff(old, new);
    let mut ops = Vec::with_capacity(patch.0.len());
    for op in serde_json::to_value(&patch).ok().and_then(|v| v.as_array().cloned()).unwrap_or_default() {
        match PatchOp::from_value(&op) {
            Ok(op) if op.path().is_empty() => return Change::Replaced,
            Ok(op) => ops.push(op),
            Err(_) => return Change::Replaced,
        }
    }
    if ops.is_empty() {
        Change::Unchanged
    } else {
        Change::Patch(ops)
    }
}

/// `transformResponse` hook, then `entityAdapter`, then the depth bound; failures reject the fetch.
fn postprocess(
    data: Value,
    transform: Option<&crate::hooks::TransformFn>,
    adapter_cfg: Option<&crate::config::EntityAdapterConfig>,
    arg: Option<Value>,
) -> std::result::Result<Value, Value> {
    let custom = |m: String| serde_json::json!({"status": "CUSTOM_ERROR", "error": m});
    let mut data = match transform {
        Some(t) => match std::panic::catch_unwind(AssertUnwindSafe(|| t(data, arg))) {
            Ok(Ok(d)) => d,
            Ok(Err(m)) => return Err(custom(format!("transformResponse: {m}"))),
            Err(_) => return Err(custom("transformResponse panicked".into())),
        },
        None => data,
    };
    if let Some(cfg) = adapter_cfg {
        data = adapter::normalize(cfg, data).map_err(|m| custom(format!("entityAdapter: {m}")))?;
    }
    if !json::within_depth(&data, MAX_DEPTH) {
        return Err(serde_json::json!({"status": "PARSING_ERROR", "error": format!("data nested deeper than {MAX_DEPTH} levels")}));
    }
    Ok(data)
}

type FetchStart = Box<dyn FnOnce() -> BoxFuture<'static, std::result::Result<FetchResponse, Value>> + Send>;

impl Inner {
    fn endpoint(&self, name: &str) -> Result<&Arc<EndpointConfig>> {
        self.config.endpoints.get(name).ok_or_else(|| Error::UnknownEndpoint(name.to_owned()))
    }

    fn key_of(&self, endpoint: &str, arg: Option<&Value>) -> Result<Arc<str>> {
        self.endpoint(endpoint)?;
        Ok(cache_key(endpoint, arg).into())
    }

    fn lock_open(&self) -> Result<parking_lot::MutexGuard<'_, State>> {
        let st = self.state.lock();
        if st.closed {
            return Err(Error::Closed);
        }
        Ok(st)
    }

    fn stats_of(&self, st: &State) -> Stats {
        let mut s = st.stats.clone();
        s.entries = st.entries.len() as u64;
        s.subscriptions = st.entries.values().map(|e| e.subscribers.len() as u64).sum();
        s.messages_received = self.received.load(Ordering::Relaxed);
        s.messages_filtered = self.filtered.load(Ordering::Relaxed);
        s.messages_buffered = self.buffered.load(Ordering::Relaxed);
        s.buffer_overflows = self.buffer_overflows.load(Ordering::Relaxed);
        s.events_delivered = self.dispatcher.delivered.load(Ordering::Relaxed);
        s
    }

    /// The entry's message pipeline, started on first use: one task per entry applies its
    /// messages in arrival order.
    pub(crate) fn inbox<'e>(self: &Arc<Self>, entry: &'e mut Entry) -> &'e mpsc::UnboundedSender<Inbound> {
        entry.inbox.get_or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            // Rendered once already when the entry was created, so this cannot fail.
            let filter = MessageFilter::new(&entry.stream_config, entry.arg.as_ref()).unwrap_or_else(|_| MessageFilter::none());
            // Without a query the first message (applied to null) is the data: nothing is
            // buffered. With one, messages wait for the first data (L4).
            let has_query = entry.hooks.query_fn.is_some() || entry.endpoint.query.is_some();
            let mode = crate::pipeline::Mode {
                loaded: entry.data.is_some() || !has_query,
                batched: entry.stream_config.apply.is_none() && entry.hooks.on_messages.is_some(),
            };
            let run = crate::pipeline::run(Arc::downgrade(self), entry.key.clone(), entry.id, entry.stream_config.clone(), filter, rx, mode);
            self.handle.spawn(run);
            tx
        })
    }

    pub(crate) fn count_received(&self) {
        self.received.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn count_filtered(&self) {
        self.filtered.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn count_buffered(&self) {
        self.buffered.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn count_buffer_overflow(&self) {
        self.buffer_overflows.fetch_add(1, Ordering::Relaxed);
    }

    /// Holds delivery wake-ups while the pipeline applies a burst (see `WakeHold`).
    pub(crate) fn hold_wakes(&self) -> crate::dispatch::WakeHold {
        self.dispatcher.hold()
    }

    fn subscribe(self: &Arc<Self>, endpoint: &str, arg: Option<Value>, callback: Callback) -> Result<Subscription> {
        let ep = self.endpoint(endpoint)?.clone();
        if let Some(a) = &arg {
            if !json::within_depth(a, MAX_DEPTH) {
                return Err(Error::InvalidArgument(format!("the arg is nested deeper than {MAX_DEPTH} levels")));
            }
        }
        let key: Arc<str> = cache_key(endpoint, arg.as_ref()).into();
        let queue = SubscriberQueue::new(self.next_id.fetch_add(1, Ordering::Relaxed), self.config.queue_limit, callback);
        let mut guard = self.lock_open()?;
        if !guard.entries.contains_key(&*key) {
            self.create_entry(&mut guard, &ep, key.clone(), arg, None)?;
        }
        let State { entries, stats, .. } = &mut *guard;
        let entry = entries.get_mut(&*key).expect("entry exists");
        entry.removal_deadline = None;
        entry.subscribers.push(queue.clone());
        let none = || entry.catch_up_event();
        self.dispatcher.enqueue(&queue, entry.catch_up_event(), &none);
        if entry.has_stream_url {
            self.dispatcher.enqueue(&queue, entry.stream_event(), &none);
        }
        let _ = stats;
        Ok(Subscription { inner: Arc::clone(self), queue, key, entry_id: entry.id, done: AtomicBool::new(false) })
    }

    /// L1: creates the entry and, in the same step, starts its query, stream and lifecycle hook.
    fn create_entry(
        self: &Arc<Self>,
        st: &mut State,
        ep: &Arc<EndpointConfig>,
        key: Arc<str>,
        arg: Option<Value>,
        initial: Option<Value>,
    ) -> Result<()> {
        let hooks = self.hooks.get(&ep.name).cloned().unwrap_or_default();
        let stream_config = self.stream_configs[&ep.name].clone();
        // Templates are rendered now so a missing arg field fails the call (SPEC §2).
        let filter = MessageFilter::new(&stream_config, arg.as_ref()).map_err(Error::InvalidArgument)?;
        if hooks.query_fn.is_none() {
            if let Some(q) = &ep.query {
                q.render_url(arg.as_ref()).map_err(Error::InvalidArgument)?;
            }
        }
        let stream_url = match &stream_config.url {
            Some(t) => Some(t.render_url(arg.as_ref()).map_err(Error::InvalidArgument)?),
            None => None,
        };
        let has_query = hooks.query_fn.is_some() || ep.query.is_some();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (removed, removed_rx) = watch::channel(false);
        let shutdown = CancellationToken::new();
        let mut entry = Entry {
            id,
            key: key.clone(),
            endpoint: ep.clone(),
            stream_config: stream_config.clone(),
            hooks: hooks.clone(),
            arg: arg.clone(),
            status: Status::Pending,
            data: None,
            version: 0,
            error: None,
            stream_state: if stream_url.is_some() { StreamState::Connecting } else { StreamState::Closed },
            stream_error: None,
            stream_opened: false,
            has_stream_url: stream_url.is_some(),
            subscribers: Vec::new(),
            removal_deadline: None,
            removal_timer: false,
            latest_request: 0,
            refetch_in_flight: false,
            reapply: Vec::new(),
            refetch_when_open: false,
            load_waiters: Vec::new(),
            removed,
            inbox: None,
            stream_shutdown: shutdown.clone(),
            stream_task: None,
        };
        if let Some(data) = initial {
            entry.data = Some(Arc::new(data));
            entry.status = Status::Fulfilled;
            entry.version = 1;
        }
        let weak = Arc::downgrade(self);
        if let (Some(url), Some(source)) = (stream_url, &self.stream_source) {
            let inbox = self.inbox(&mut entry).clone();
            let config = stream_config.clone();
            let (batch, spare) = (Mutex::new(Vec::new()), Arc::default());
            let sink = Arc::new(EntrySink { inner: weak.clone(), key: key.clone(), entry_id: id, inbox, config, filter, batch, spare });
            let request = StreamRequest { key: key.to_string(), url, config: stream_config };
            entry.stream_task = Some(self.io_handle.spawn(source.run(request, sink, shutdown)));
        }
        if let Some(hook) = &hooks.on_cache_entry_added {
            let (tx, rx) = oneshot::channel();
            match &entry.data {
                Some(d) => {
                    let _ = tx.send(Ok(Loaded { data: (**d).clone(), meta: Value::Null }));
                }
                None => entry.load_waiters.push(tx),
            }
            let lifecycle = Lifecycle {
                inner: weak.clone(),
                key: key.clone(),
                entry_id: id,
                loaded: shared_loaded(rx, key.clone()),
                removed: removed_rx,
            };
            let hook = hook.clone();
            let (weak, key, arg) = (weak.clone(), key.clone(), arg.clone());
            self.handle.spawn(async move {
                let outcome = AssertUnwindSafe(async move { hook(arg, lifecycle).await }).catch_unwind().await;
                let message = match outcome {
                    Ok(Ok(())) => return,
                    Ok(Err(m)) => format!("onCacheEntryAdded: {m}"),
                    Err(_) => "onCacheEntryAdded panicked".to_owned(),
                };
                if let Some(inner) = weak.upgrade() {
                    inner.report_error(&key, id, ErrorReason::Hook, message);
                }
            });
        }
        let needs_fetch = entry.data.is_none() && has_query;
        st.entries.insert(key.clone(), Box::new(entry));
        st.stats.entries_created += 1;
        if needs_fetch {
            self.start_fetch(st, &key)?;
        }
        Ok(())
    }

    /// Starts a request for `key` (L1, L5). The newest request wins.
    fn start_fetch(self: &Arc<Self>, st: &mut State, key: &Arc<str>) -> Result<()> {
        let State { entries, stats, .. } = st;
        let entry = entries.get_mut(&**key).ok_or_else(|| Error::NotFound(key.to_string()))?;
        let start = self.fetch_start(entry)?;
        entry.latest_request += 1;
        let request = entry.latest_request;
        entry.refetch_in_flight = entry.data.is_some();
        entry.reapply.clear();
        if entry.status != Status::Pending {
            entry.status = Status::Pending;
            let event = Event::Status { key: key.clone(), status: Status::Pending, error: None };
            entry.broadcast(&self.dispatcher, stats, event);
        }
        stats.fetches += 1;
        let transform = entry.hooks.transform_response.clone();
        let adapter_cfg = entry.endpoint.entity_adapter.clone();
        let arg = entry.arg.clone();
        let (weak, key, id) = (Arc::downgrade(self), key.clone(), entry.id);
        self.handle.spawn(async move {
            let fetched = AssertUnwindSafe(async move { start().await }).catch_unwind().await;
            let result = match fetched {
                Ok(r) => r,
                Err(_) => Err(serde_json::json!({"status": "CUSTOM_ERROR", "error": "queryFn panicked"})),
            };
            // Transforms run here, outside the engine lock (user code).
            let result = result.and_then(|resp| {
                let data = postprocess(resp.data, transform.as_ref(), adapter_cfg.as_ref(), arg)?;
                Ok(FetchResponse { data, meta: resp.meta })
            });
            if let Some(inner) = weak.upgrade() {
                inner.complete_fetch(&key, id, request, result);
            }
        });
        Ok(())
    }

    /// What starts one request of an entry: the host `queryFn`, else HTTP GET of `query`.
    fn fetch_start(&self, entry: &Entry) -> Result<FetchStart> {
        let arg = entry.arg.clone();
        if let Some(query_fn) = entry.hooks.query_fn.clone() {
            return Ok(Box::new(move || {
                async move {
                    query_fn(arg).await.map(|data| FetchResponse { data, meta: Value::Null })
                }
                .boxed()
            }));
        }
        let Some(query) = &entry.endpoint.query else {
            return Err(Error::InvalidArgument(format!(
                "endpoint {:?} has no query or queryFn to fetch with",
                entry.endpoint.name
            )));
        };
        let path = query.render_url(arg.as_ref()).map_err(Error::InvalidArgument)?;
        let request = FetchRequest {
            key: entry.key.to_string(),
            endpoint: entry.endpoint.name.clone(),
            arg,
            url: join_url(self.config.base_url.as_deref(), &path),
        };
        let source = self.query_source.clone();
        Ok(Box::new(move || match source {
            Some(s) => s.fetch(request),
            None => std::future::ready(Err(serde_json::json!({
                "status": "FETCH_ERROR",
                "error": "no HTTP transport in this build"
            })))
            .boxed(),
        }))
    }

    fn complete_fetch(&self, key: &Arc<str>, id: u64, request: u64, result: std::result::Result<FetchResponse, Value>) {
        let mut guard = self.state.lock();
        let State { entries, stats, .. } = &mut *guard;
        let Some(entry) = entries.get_mut(&**key).filter(|e| e.id == id) else { return };
        if request != entry.latest_request {
            stats.stale_responses += 1;
            return;
        }
        match result {
            Ok(FetchResponse { mut data, meta }) => {
                let refetch = std::mem::take(&mut entry.refetch_in_flight);
                let logged = std::mem::take(&mut entry.reapply);
                if entry.data.is_none() {
                    entry.first_data(data, meta, &self.dispatcher, stats);
                    return;
                }
                // L5: messages the response may predate are applied again (idempotent rules only).
                if refetch {
                    if let Some(rule) = entry.stream_config.apply.as_ref().filter(|r| r.is_idempotent()) {
                        for m in logged {
                            let _ = apply_rule(rule, entry.endpoint.entity_adapter.as_ref(), &mut data, m, MAX_DEPTH);
                            stats.messages_reapplied += 1;
                        }
                    }
                }
                entry.data = Some(Arc::new(data));
                entry.status = Status::Fulfilled;
                entry.error = None;
                entry.commit(Change::Replaced, &self.dispatcher, stats);
            }
            Err(error) => {
                stats.fetch_errors += 1;
                entry.refetch_in_flight = false;
                entry.reapply.clear();
                entry.status = Status::Rejected;
                entry.error = Some(error.clone());
                let event = Event::Status { key: key.clone(), status: Status::Rejected, error: Some(error) };
                entry.broadcast(&self.dispatcher, stats, event);
            }
        }
    }

    fn stream_state(self: &Arc<Self>, key: &Arc<str>, id: u64, state: StreamState, error: Option<String>) {
        let mut guard = self.state.lock();
        let refetch = {
            let State { entries, stats, .. } = &mut *guard;
            let Some(entry) = entries.get_mut(&**key).filter(|e| e.id == id) else { return };
            if entry.stream_state == state && entry.stream_error == error {
                return;
            }
            entry.stream_state = state;
            entry.stream_error = error;
            let event = entry.stream_event();
            entry.broadcast(&self.dispatcher, stats, event);
            if state != StreamState::Open {
                return;
            }
            let reconnected = std::mem::replace(&mut entry.stream_opened, true);
            if reconnected {
                stats.reconnects += 1;
            }
            let can_fetch = entry.hooks.query_fn.is_some() || entry.endpoint.query.is_some();
            let resync = entry.stream_config.resync_on_reconnect;
            // L8: after a reconnect, refetch what was missed. On the first open, a fetch that
            // finished before the socket opened may have missed messages in between: same cure.
            let gap = resync && (reconnected || entry.data.is_some());
            let overflow = std::mem::take(&mut entry.refetch_when_open);
            can_fetch && (gap || overflow)
        };
        if refetch {
            let _ = self.start_fetch(&mut guard, key);
        }
    }

    /// L4: the pre-load buffer overflowed; refetch now if the stream is open, else when it opens.
    pub(crate) fn refetch_when_open(self: &Arc<Self>, key: &Arc<str>, id: u64) {
        let mut guard = self.state.lock();
        let Some(entry) = guard.entries.get_mut(&**key).filter(|e| e.id == id) else { return };
        if entry.has_stream_url && entry.stream_state != StreamState::Open {
            entry.refetch_when_open = true;
        } else {
            let _ = self.start_fetch(&mut guard, key);
        }
    }

    pub(crate) fn report_error(&self, key: &Arc<str>, id: u64, reason: ErrorReason, message: String) {
        let mut guard = self.state.lock();
        let State { entries, stats, .. } = &mut *guard;
        stats.reject(reason);
        if let Some(entry) = entries.get_mut(&**key).filter(|e| e.id == id) {
            let event = Event::Error { key: key.clone(), reason, message };
            entry.broadcast(&self.dispatcher, stats, event);
        }
    }

    pub(crate) fn entry_state(&self, key: &str, id: Option<u64>) -> Result<EntryState> {
        let st = self.lock_open()?;
        st.entries
            .get(key)
            .filter(|e| id.is_none_or(|id| e.id == id))
            .map(|e| e.state())
            .ok_or_else(|| Error::NotFound(key.to_owned()))
    }

    /// L9 `updateQueryData`: the recipe runs on a draft with no lock held.
    pub(crate) fn update_entry(
        &self,
        key: &Arc<str>,
        id: Option<u64>,
        recipe: impl FnOnce(&mut Value) -> Option<Value>,
    ) -> Result<HostUpdate> {
        let (base, version) = {
            let st = self.lock_open()?;
            let entry = st.entries.get(&**key).filter(|e| id.is_none_or(|id| e.id == id)).ok_or_else(|| Error::NotFound(key.to_string()))?;
            let data = entry.data.clone().ok_or_else(|| Error::NotLoaded(key.to_string()))?;
            (data, entry.version)
        };
        let mut draft = (*base).clone();
        if let Some(replacement) = recipe(&mut draft) {
            draft = replacement;
        }
        if !json::within_depth(&draft, MAX_DEPTH) {
            return Err(Error::Patch(format!("the update would make the data deeper than {MAX_DEPTH} levels")));
        }
        let change = diff_change(&base, &draft);
        let inverse = match diff_change(&draft, &base) {
            Change::Patch(ops) => ops,
            Change::Replaced => vec![PatchOp::Replace { path: String::new(), value: (*base).clone() }],
            Change::Unchanged => Vec::new(),
        };
        let patches = match &change {
            Change::Patch(ops) => ops.clone(),
            Change::Replaced => vec![PatchOp::Replace { path: String::new(), value: draft.clone() }],
            Change::Unchanged => Vec::new(),
        };
        let mut guard = self.lock_open()?;
        let State { entries, stats, .. } = &mut *guard;
        let entry = entries.get_mut(&**key).filter(|e| id.is_none_or(|id| e.id == id)).ok_or_else(|| Error::NotFound(key.to_string()))?;
        if entry.version == version {
            if change != Change::Unchanged {
                entry.data = Some(Arc::new(draft));
                stats.host_updates += 1;
                entry.commit(change, &self.dispatcher, stats);
            }
        } else {
            // The data moved while the recipe ran: apply its patch to the current data, all or nothing.
            let data = entry.data.as_mut().ok_or_else(|| Error::NotLoaded(key.to_string()))?;
            let applied = apply_patch(Arc::make_mut(data), &patches, MAX_DEPTH).map_err(|e| Error::Patch(e.to_string()))?;
            stats.host_updates += 1;
            let change = if applied.replaced_root { Change::Replaced } else { Change::Patch(applied.patches) };
            entry.commit(change, &self.dispatcher, stats);
        }
        drop(guard);
        Ok(HostUpdate { patches, inverse_patches: inverse, target: Some((self.weak_self(), key.clone())) })
    }

    /// L9 `patchQueryData`: RFC 6902 operations under the lock, all or nothing.
    pub(crate) fn patch_entry(&self, key: &Arc<str>, ops: &[PatchOp]) -> Result<HostUpdate> {
        let mut guard = self.lock_open()?;
        let State { entries, stats, .. } = &mut *guard;
        let entry = entries.get_mut(&**key).ok_or_else(|| Error::NotFound(key.to_string()))?;
        let data = entry.data.as_mut().ok_or_else(|| Error::NotLoaded(key.to_string()))?;
        let applied = apply_patch(Arc::make_mut(data), ops, MAX_DEPTH).map_err(|e| Error::Patch(e.to_string()))?;
        stats.host_updates += 1;
        let change = if applied.replaced_root { Change::Replaced } else { Change::Patch(applied.patches.clone()) };
        entry.commit(change, &self.dispatcher, stats);
        drop(guard);
        Ok(HostUpdate { patches: applied.patches, inverse_patches: applied.inverse, target: Some((self.weak_self(), key.clone())) })
    }

    fn weak_self(&self) -> Weak<Inner> {
        self.self_ref.clone()
    }

    fn upsert(self: &Arc<Self>, endpoint: &str, arg: Option<Value>, data: Value) -> Result<()> {
        let ep = self.endpoint(endpoint)?.clone();
        if !json::within_depth(&data, MAX_DEPTH) {
            return Err(Error::Patch(format!("data nested deeper than {MAX_DEPTH} levels")));
        }
        let key: Arc<str> = cache_key(endpoint, arg.as_ref()).into();
        let mut guard = self.lock_open()?;
        if !guard.entries.contains_key(&*key) {
            self.create_entry(&mut guard, &ep, key.clone(), arg, Some(data))?;
            guard.stats.host_updates += 1;
            let entry = guard.entries.get_mut(&*key).expect("entry");
            self.schedule_removal(entry);
            return Ok(());
        }
        let State { entries, stats, .. } = &mut *guard;
        let entry = entries.get_mut(&*key).expect("entry");
        stats.host_updates += 1;
        if entry.data.is_none() {
            entry.first_data(data, Value::Null, &self.dispatcher, stats);
        } else {
            entry.data = Some(Arc::new(data));
            entry.status = Status::Fulfilled;
            entry.commit(Change::Replaced, &self.dispatcher, stats);
        }
        Ok(())
    }

    fn unsubscribe(self: &Arc<Self>, key: &Arc<str>, id: u64, queue_id: u64) {
        let mut guard = self.state.lock();
        let Some(entry) = guard.entries.get_mut(&**key).filter(|e| e.id == id) else { return };
        entry.subscribers.retain(|s| s.id != queue_id);
        if entry.subscribers.is_empty() {
            self.schedule_removal(entry);
        }
    }

    /// L7: when the last subscriber leaves, the entry goes after `keepUnusedDataFor`; each new
    /// start restarts the timer at full length. One timer task per entry at most, re-armed by
    /// moving the deadline, so subscribe/unsubscribe churn never piles up sleeping tasks.
    fn schedule_removal(self: &Arc<Self>, entry: &mut Entry) {
        let KeepUnused::Seconds(secs) = self.config.keep_unused_for(&entry.endpoint) else { return };
        let Some(deadline) =
            Duration::try_from_secs_f64(secs).ok().and_then(|d| tokio::time::Instant::now().checked_add(d))
        else {
            // Too far to represent: the same as never.
            return;
        };
        entry.removal_deadline = Some(deadline);
        if entry.removal_timer {
            return;
        }
        entry.removal_timer = true;
        let (weak, key, id) = (Arc::downgrade(self), entry.key.clone(), entry.id);
        self.handle.spawn(async move {
            // `0` removes on the next turn of the engine.
            tokio::task::yield_now().await;
            loop {
                let Some(inner) = weak.upgrade() else { return };
                let Some(deadline) = inner.removal_due(&key, id) else { return };
                drop(inner);
                const STEP: Duration = Duration::from_secs(86_400);
                let now = tokio::time::Instant::now();
                tokio::time::sleep_until(deadline.min(now + STEP)).await;
            }
        });
    }

    /// The removal timer's turn: removes the entry when its deadline has passed with no
    /// subscriber; else says how long to sleep. `None` ends the timer.
    fn removal_due(&self, key: &Arc<str>, id: u64) -> Option<tokio::time::Instant> {
        let mut guard = self.state.lock();
        let State { entries, stats, .. } = &mut *guard;
        let entry = entries.get_mut(&**key).filter(|e| e.id == id)?;
        match entry.removal_deadline {
            Some(deadline) if entry.subscribers.is_empty() => {
                if tokio::time::Instant::now() < deadline {
                    return Some(deadline);
                }
                let mut entry = entries.remove(&**key).expect("entry");
                entry.finish(&self.dispatcher, stats);
                None
            }
            _ => {
                entry.removal_timer = false;
                None
            }
        }
    }

    fn close(&self) {
        let stream_tasks: Vec<_> = {
            let mut guard = self.state.lock();
            if guard.closed {
                return;
            }
            guard.closed = true;
            let State { entries, stats, .. } = &mut *guard;
            entries
                .drain()
                .filter_map(|(_, mut entry)| {
                    entry.finish(&self.dispatcher, stats);
                    entry.stream_task.take()
                })
                .collect()
        };
        let io_runtime = self.io_runtime.lock().take();
        if let Some(runtime) = self.runtime.lock().take() {
            if ON_ENGINE_THREAD.with(|f| f.get()) {
                // From the engine's own threads nothing can be awaited: stop them from another.
                std::thread::spawn(move || {
                    runtime.shutdown_background();
                    if let Some(io) = io_runtime {
                        io.shutdown_background();
                    }
                });
                self.dispatcher.shutdown();
                return;
            }
            let wind_down = move || {
                // Streams get a bounded moment for their close handshakes (L7) before the runtime stops.
                runtime.block_on(async {
                    let all = futures_util::future::join_all(stream_tasks);
                    let _ = tokio::time::timeout(Duration::from_secs(2), all).await;
                });
                if let Some(io) = io_runtime {
                    io.shutdown_timeout(Duration::from_secs(1));
                }
                runtime.shutdown_timeout(Duration::from_secs(1));
            };
            if Handle::try_current().is_ok() {
                let _ = std::thread::spawn(wind_down).join();
            } else {
                wind_down();
            }
        }
        self.dispatcher.shutdown();
    }
}
