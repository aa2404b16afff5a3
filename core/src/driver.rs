//! The driver around the engine (SPEC §1, §8): it owns the runtimes, the timer, delivery and the
//! transports, feeds the engine what happened and carries out what the engine answers.
//! The engine runs under one lock; its outputs are carried out in order. Queueing an event,
//! settling a waiter and bookkeeping of streams happen before the lock is released (they run no
//! user code, and doing them in order keeps every subscriber's events in version order);
//! everything that runs host code or waits — fetches, `onMessage`, `onCacheEntryAdded` — starts
//! after it is released (SPEC §5).

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::future::{BoxFuture, FutureExt};
use livecache_engine::engine::{Engine, Fetched, LoadedNow};
use livecache_engine::protocol::{HookCall, Output};
use livecache_engine::host_update::Recipe;
use livecache_engine::on_message::{HookFailure, HookResult};
use livecache_engine::HookShape;
use parking_lot::{Mutex, MutexGuard};
use serde_json::Value;
use tokio::runtime::{Handle, Runtime};
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::adapter;
use crate::config::{Config, EndpointConfig, StreamConfig};
use crate::dispatch::{Dispatcher, Enqueued, SubscriberQueue, WakeHold};
use crate::entry::{EntryState, Loaded};
use crate::error::{Error, Result};
use crate::event::{ErrorReason, StreamState};
use crate::hooks::{EndpointHooks, Hooks};
use crate::host_update::{BoxedRecipe, EntryHost, HostUpdate};
use crate::json::{self, MAX_DEPTH};
use crate::lifecycle::{shared_loaded, Lifecycle};
use crate::message::{self, MessageFilter, Prepared};
use crate::patch::PatchOp;
use crate::hooks::PrepareHeadersFn;
use crate::pipeline::{Inbound, MessageSink, Piped};
use crate::prepare_headers::{prepare as prepare_headers, HeaderContext};
use crate::stats::Stats;
use crate::template::join_url;
use crate::transport::{
    CommandSender, FetchError, FetchRequest, FetchResponse, QuerySource, RawMessage, StreamCommand, StreamControl, StreamMember, StreamRequest, StreamSink, StreamSource,
    StreamTarget,
};

std::thread_local! {
    /// Set on the client's runtime threads: `close` from there cannot block on the runtime.
    pub(crate) static ON_ENGINE_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

type Queue = Arc<SubscriberQueue>;

/// The IO side of one entry: what the engine knows of only by its id.
struct EntryIo {
    /// L3: `cacheEntryRemoved`, made with the entry's lifecycle if it has one (a watch channel
    /// costs about 300 bytes).
    removed: Option<watch::Sender<bool>>,
    stream: Option<Stream>,
    /// `pushMessage`'s pipeline steps before the data (parse, schema, filter), built on first use.
    push: Option<Arc<(Arc<StreamConfig>, MessageFilter)>>,
}

impl EntryIo {
    fn new() -> EntryIo {
        EntryIo { removed: None, stream: None, push: None }
    }

    /// L7: the entry's stream stops (a task is cancelled, a member leaves its connection). The
    /// future is done when it has; only `close` waits for it.
    fn stop_stream(&mut self) -> Option<BoxFuture<'static, ()>> {
        match self.stream.take()? {
            Stream::Task { shutdown, task, .. } => {
                shutdown.cancel();
                Some(Box::pin(async move {
                    let _ = task.await;
                }))
            }
            Stream::Member(member) => Some(member.leave()),
        }
    }
}

/// An entry's running stream, as the driver steers it.
enum Stream {
    /// A task of its own: stopped by `shutdown`; `send` and `reconnect` go through `commands`.
    Task { shutdown: CancellationToken, task: JoinHandle<()>, commands: CommandSender },
    /// A member of a shared connection (T3): no task, no queue of its own.
    Member(Box<dyn StreamMember>),
}

impl Stream {
    /// T1/T2: `Err` gives the command back when the stream is gone.
    fn command(&self, command: StreamCommand) -> std::result::Result<(), StreamCommand> {
        match self {
            Stream::Task { commands, .. } => commands.send(command),
            Stream::Member(member) => member.command(command),
        }
    }
}

pub(crate) struct State {
    pub engine: Engine<Queue>,
    io: HashMap<u64, EntryIo>,
    waiters: HashMap<u64, oneshot::Sender<Result<Loaded>>>,
    /// W1: the callers of the mutations not yet settled.
    pub mutations: HashMap<u64, oneshot::Sender<Result<Value>>>,
    /// Stream tasks of removed entries are awaited by `close` no longer; these are the live ones.
    outputs: Vec<Output<Queue>>,
}

/// IO work taken out of the engine's outputs, started once the lock is released.
enum Work {
    Fetch { key: Arc<str>, entry: u64, request: u64, endpoint: Arc<EndpointConfig>, arg: Option<Value> },
    Lifecycle { key: Arc<str>, entry: u64, endpoint: Arc<EndpointConfig>, arg: Option<Value>, lifecycle: Lifecycle },
    Hook(HookCall),
    Mutate { mutation: u64, endpoint: Arc<EndpointConfig>, arg: Option<Value>, request: livecache_engine::MutationRequest },
}

pub(crate) struct Driver {
    self_ref: Weak<Driver>,
    pub config: Arc<Config>,
    hooks: Hooks,
    pub(crate) query_source: Option<Arc<dyn QuerySource>>,
    stream_source: Option<Arc<dyn StreamSource>>,
    state: Mutex<State>,
    pub dispatcher: Arc<Dispatcher>,
    pub runtime: Mutex<Option<Runtime>>,
    pub handle: Handle,
    /// Where stream drivers run: a flood on a socket is read and parsed there while the engine
    /// applies what came before.
    pub io_runtime: Mutex<Option<Runtime>>,
    pub io_handle: Handle,
    next_queue: AtomicU64,
    received: AtomicU64,
    filtered: AtomicU64,
    /// T3: transport connections open now, and ever opened.
    connections: AtomicU64,
    connections_opened: AtomicU64,
    /// The engine's clock: time since the client started, or the manual clock's reading (ns).
    start: tokio::time::Instant,
    clock: crate::clock::Clock,
    manual_now: AtomicU64,
    /// Wakes the timer task when the engine asks for an earlier tick.
    timer: Arc<Notify>,
    /// Every entry's stream frames, in arrival order, to the pipeline task.
    pipeline: mpsc::UnboundedSender<Piped>,
    /// Emptied batch vectors the pipeline gave back, for any stream's next batch: a flood
    /// allocates none, and an idle entry holds none.
    batches: Mutex<Vec<Vec<Prepared>>>,
}

/// How many emptied batch vectors the client keeps for reuse.
const SPARE_BATCHES: usize = 16;

/// What a host's hooks mean to the engine: which exist, not what they do.
fn host_hooks(hooks: &Hooks) -> HashMap<String, livecache_engine::HostHooks> {
    hooks
        .endpoints
        .iter()
        .map(|(name, h)| {
            let on_message = match (&h.on_messages, &h.on_message) {
                (Some(_), _) => Some(HookShape::Batched),
                (None, Some(_)) => Some(HookShape::One),
                (None, None) => None,
            };
            let present = livecache_engine::HostHooks {
                query_fn: h.query_fn.is_some(),
                on_message,
                on_cache_entry_added: h.on_cache_entry_added.is_some(),
                mutation_fn: h.mutation_fn.is_some(),
                provides_tags: h.provides_tags.is_some(),
                invalidates_tags: h.invalidates_tags.is_some(),
            };
            (name.clone(), present)
        })
        .collect()
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

/// Runs a W2 tags hook; a panic is its failure.
pub(crate) fn call_tags_hook(name: &str, f: impl FnOnce() -> std::result::Result<Value, String>) -> livecache_engine::HostTags {
    std::panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| Err(format!("{name} panicked")))
}

pub(crate) struct Parts {
    pub config: Config,
    pub hooks: Hooks,
    pub query_source: Option<Arc<dyn QuerySource>>,
    pub stream_source: Option<Arc<dyn StreamSource>>,
    pub dispatcher: Arc<Dispatcher>,
    pub runtime: Runtime,
    pub io_runtime: Runtime,
    pub clock: crate::clock::Clock,
}

impl Driver {
    pub fn new(parts: Parts) -> Result<Arc<Driver>> {
        let config = Arc::new(parts.config);
        let engine = Engine::new(config.clone(), host_hooks(&parts.hooks))?;
        let handle = parts.runtime.handle().clone();
        let io_handle = parts.io_runtime.handle().clone();
        let start = {
            let _enter = handle.enter();
            tokio::time::Instant::now()
        };
        let (pipeline, piped) = mpsc::unbounded_channel();
        let driver = Arc::new_cyclic(|self_ref| Driver {
            self_ref: self_ref.clone(),
            config,
            hooks: parts.hooks,
            query_source: parts.query_source,
            stream_source: parts.stream_source,
            state: Mutex::new(State { engine, io: HashMap::new(), waiters: HashMap::new(), mutations: HashMap::new(), outputs: Vec::new() }),
            dispatcher: parts.dispatcher,
            runtime: Mutex::new(Some(parts.runtime)),
            handle,
            io_runtime: Mutex::new(Some(parts.io_runtime)),
            io_handle,
            next_queue: AtomicU64::new(1),
            received: AtomicU64::new(0),
            filtered: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            connections_opened: AtomicU64::new(0),
            start,
            clock: parts.clock,
            manual_now: AtomicU64::new(0),
            timer: Arc::new(Notify::new()),
            pipeline,
            batches: Mutex::new(Vec::new()),
        });
        driver.handle.spawn(crate::pipeline::run(Arc::downgrade(&driver), piped));
        if parts.clock == crate::clock::Clock::System {
            driver.handle.spawn(timer_task(Arc::downgrade(&driver), driver.timer.clone()));
        }
        Ok(driver)
    }

    fn weak(&self) -> Weak<Driver> {
        self.self_ref.clone()
    }

    fn host(&self) -> Weak<dyn EntryHost> {
        self.self_ref.clone()
    }

    /// The engine's clock.
    pub(crate) fn now(&self) -> Duration {
        match self.clock {
            crate::clock::Clock::System => self.start.elapsed(),
            crate::clock::Clock::Manual => Duration::from_nanos(self.manual_now.load(Ordering::SeqCst)),
        }
    }

    /// Moves the manual clock and ticks the engine at the new time.
    pub fn advance(self: &Arc<Self>, by: Duration) -> Result<()> {
        if self.clock != crate::clock::Clock::Manual {
            return Err(Error::InvalidArgument("advance needs a client with the manual clock".into()));
        }
        let mut guard = self.lock_open()?;
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        let now = self.manual_now.load(Ordering::SeqCst).saturating_add(by);
        self.manual_now.store(now, Ordering::SeqCst);
        guard.engine.tick(Duration::from_nanos(now));
        self.run(guard);
        Ok(())
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    pub fn lock_open(&self) -> Result<MutexGuard<'_, State>> {
        let st = self.state.lock();
        if st.engine.is_closed() {
            return Err(Error::Closed);
        }
        Ok(st)
    }

    pub fn is_closed(&self) -> bool {
        self.state.lock().engine.is_closed()
    }

    /// Carries out the engine's outputs: in order under the lock, then the IO work after it.
    pub(crate) fn run(self: &Arc<Self>, mut guard: MutexGuard<'_, State>) {
        let st = &mut *guard;
        st.engine.take_outputs(&mut st.outputs);
        if st.outputs.is_empty() {
            return;
        }
        let mut work = Vec::new();
        let mut outputs = std::mem::take(&mut st.outputs);
        for output in outputs.drain(..) {
            match output {
                Output::Deliver { to, event } => {
                    let engine = &st.engine;
                    let key = event.key_arc().clone();
                    let snapshot = || engine.catch_up_event(&key).unwrap_or_else(|| event_removed(&key));
                    if self.dispatcher.enqueue(&to, event, &snapshot) == Enqueued::Overflowed {
                        st.engine.count_queue_overflow();
                    }
                }
                Output::Settle { waiters, result } => {
                    for w in waiters {
                        if let Some(tx) = st.waiters.remove(&w) {
                            let _ = tx.send(result.clone());
                        }
                    }
                }
                Output::Removed { entry, .. } => {
                    if let Some(mut io) = st.io.remove(&entry) {
                        drop(io.stop_stream());
                        if let Some(removed) = &io.removed {
                            let _ = removed.send(true);
                        }
                    }
                }
                Output::ArmTimer { .. } => self.timer.notify_one(),
                Output::ReconnectStream { entry, .. } => {
                    if let Some(stream) = st.io.get(&entry).and_then(|io| io.stream.as_ref()) {
                        let _ = stream.command(StreamCommand::Reconnect);
                    }
                }
                Output::OpenStream { key, entry, endpoint, target, config, arg } => {
                    // Spawned here: its handle must be in place before a removal can look for it.
                    let io = st.io.entry(entry).or_insert_with(EntryIo::new);
                    let prepare = self.endpoint_hooks(&endpoint.name).and_then(|h| h.prepare_headers.clone());
                    let prepare = prepare.map(|hook| Box::new(Prepare { hook, endpoint: endpoint.name.clone(), arg: arg.clone(), target: target.clone() }));
                    self.open_stream(io, key, entry, target, config, arg, prepare);
                }
                Output::StartLifecycle { key, entry, endpoint, arg, waiter } => {
                    let (tx, rx) = oneshot::channel();
                    st.waiters.insert(waiter, tx);
                    let io = st.io.entry(entry).or_insert_with(EntryIo::new);
                    let lifecycle = Lifecycle {
                        host: self.host(),
                        key: key.clone(),
                        entry_id: entry,
                        loaded: shared_loaded(rx, key.clone()),
                        removed: io.removed.get_or_insert_with(|| watch::channel(false).0).subscribe(),
                        runtime: self.handle.clone(),
                    };
                    work.push(Work::Lifecycle { key, entry, endpoint, arg, lifecycle });
                }
                Output::Fetch { key, entry, request, endpoint, arg } => work.push(Work::Fetch { key, entry, request, endpoint, arg }),
                Output::CallHook(call) => work.push(Work::Hook(call)),
                Output::Mutate { mutation, endpoint, arg, request } => work.push(Work::Mutate { mutation, endpoint, arg, request }),
                Output::MutationSettled { mutation, result } => {
                    if let Some(tx) = st.mutations.remove(&mutation) {
                        let _ = tx.send(result);
                    }
                }
            }
        }
        st.outputs = outputs;
        drop(guard);
        for w in work {
            match w {
                Work::Fetch { key, entry, request, endpoint, arg } => self.start_fetch(key, entry, request, endpoint, arg),
                Work::Lifecycle { key, entry, endpoint, arg, lifecycle } => self.start_lifecycle(key, entry, &endpoint, arg, lifecycle),
                Work::Hook(call) => self.call_hook(call),
                Work::Mutate { mutation, endpoint, arg, request } => self.start_mutation(mutation, endpoint, arg, request),
            }
        }
    }

    pub(crate) fn endpoint_hooks(&self, endpoint: &str) -> Option<&EndpointHooks> {
        self.hooks.get(endpoint)
    }

    #[allow(clippy::too_many_arguments)]
    fn open_stream(
        self: &Arc<Self>,
        io: &mut EntryIo,
        key: Arc<str>,
        entry: u64,
        target: StreamTarget,
        config: Arc<StreamConfig>,
        arg: Option<Value>,
        prepare: Option<Box<Prepare>>,
    ) {
        let Some(source) = &self.stream_source else { return };
        // Rendered once already when the entry was created, so this cannot fail.
        let filter = MessageFilter::new(&config, arg.as_ref()).unwrap_or_else(|_| MessageFilter::none());
        let inbox = self.pipeline.clone();
        let sink = Arc::new(EntrySink {
            driver: self.weak(),
            key: key.clone(),
            entry_id: entry,
            inbox,
            config: config.clone(),
            filter,
            batch: Mutex::new(Vec::new()),
            prepare,
        });
        let sink: Arc<dyn StreamSink> = sink;
        let request = StreamRequest { key: key.to_string(), target, config };
        // A member of a shared connection is a record in it (T3): no task, token or queue.
        let member = {
            let _runtime = self.io_handle.enter();
            source.join(&request, &sink)
        };
        io.stream = Some(match member {
            Some(member) => Stream::Member(member),
            None => {
                let (commands, rx) = crate::transport::command_channel();
                let shutdown = CancellationToken::new();
                let control = StreamControl { shutdown: shutdown.clone(), commands: rx };
                Stream::Task { shutdown, task: self.io_handle.spawn(source.run(request, sink, control)), commands }
            }
        });
    }

    /// `pushMessage` (L10): one message through the entry's pipeline, handed to the engine before
    /// this returns, so a message pushed before the data is buffered (L4) whatever the fetch does
    /// meanwhile. Parse, schema and filter run on the caller's thread with no lock held.
    pub fn push_message(self: &Arc<Self>, key: &Arc<str>, message: RawMessage) -> Result<()> {
        self.push_messages(key, vec![message])
    }

    /// L10 for a burst: the messages go through the pipeline in order, as frames that arrived
    /// back to back, applied in one step (one lock, one event for the burst, E2).
    pub fn push_messages(self: &Arc<Self>, key: &Arc<str>, messages: Vec<RawMessage>) -> Result<()> {
        let (entry, steps) = {
            let mut guard = self.lock_open()?;
            let st = &mut *guard;
            let entry = st.engine.entry_id(key)?;
            let (config, arg) = st.engine.stream_of(key).expect("entry");
            let io = st.io.entry(entry).or_insert_with(EntryIo::new);
            let steps = io.push.get_or_insert_with(|| {
                // Rendered once already when the entry was created, so this cannot fail.
                let filter = MessageFilter::new(&config, arg.as_ref()).unwrap_or_else(|_| MessageFilter::none());
                Arc::new((config, filter))
            });
            (entry, steps.clone())
        };
        self.received.fetch_add(messages.len() as u64, Ordering::Relaxed);
        let mut batch: Vec<_> = messages.into_iter().map(|m| message::prepare(m, &steps.0, &steps.1)).collect();
        let mut guard = self.lock_open()?;
        guard.engine.messages(key, entry, &mut batch);
        self.run(guard);
        Ok(())
    }

    pub fn count_filtered(&self) {
        self.filtered.fetch_add(1, Ordering::Relaxed);
    }

    fn count_received(&self) {
        self.received.fetch_add(1, Ordering::Relaxed);
    }

    fn count_connection(&self, open: bool) {
        if open {
            self.connections.fetch_add(1, Ordering::Relaxed);
            self.connections_opened.fetch_add(1, Ordering::Relaxed);
        } else {
            self.connections.fetch_sub(1, Ordering::Relaxed);
        }
    }

    pub fn stats(&self) -> Result<Stats> {
        let st = self.lock_open()?;
        let mut s = st.engine.stats();
        s.messages_received = self.received.load(Ordering::Relaxed);
        s.messages_filtered += self.filtered.load(Ordering::Relaxed);
        s.events_delivered = self.dispatcher.delivered.load(Ordering::Relaxed);
        s.connections = self.connections.load(Ordering::Relaxed);
        s.connections_opened = self.connections_opened.load(Ordering::Relaxed);
        Ok(s)
    }

    pub fn subscribe(
        self: &Arc<Self>,
        endpoint: &str,
        arg: Option<Value>,
        callback: crate::dispatch::Callback,
        options: livecache_engine::SubscribeOptions,
        reader: Option<&Arc<crate::event_tap::Tap>>,
    ) -> Result<(Queue, Arc<str>, u64)> {
        let queue = SubscriberQueue::new(self.next_queue.fetch_add(1, Ordering::Relaxed), self.config.queue_limit, callback);
        if let Some(tap) = reader {
            // Before the engine makes the subscription's first event, so the reader gets it.
            queue.add_tap(tap);
        }
        let mut guard = self.lock_open()?;
        let now = self.now();
        let (key, entry) = guard.engine.subscribe_with(now, endpoint, arg, queue.id, queue.clone(), options)?;
        self.run(guard);
        Ok((queue, key, entry))
    }

    pub fn unsubscribe(self: &Arc<Self>, key: &str, entry: u64, queue: u64) {
        let mut guard = self.state.lock();
        let now = self.now();
        guard.engine.unsubscribe(now, key, entry, queue);
        self.run(guard);
    }

    /// `loaded()` (L2), bound to the entry lifetime now.
    pub fn loaded(&self, key: &str, entry: u64) -> std::result::Result<oneshot::Receiver<Result<Loaded>>, Result<Value>> {
        let mut guard = self.state.lock();
        let st = &mut *guard;
        match st.engine.loaded(key, entry) {
            Err(e) => Err(Err(e)),
            Ok(LoadedNow::Ready(data)) => Err(Ok(data)),
            Ok(LoadedNow::Waiting(w)) => {
                let (tx, rx) = oneshot::channel();
                st.waiters.insert(w, tx);
                Ok(rx)
            }
        }
    }

    pub fn refetch(self: &Arc<Self>, key: &str) -> Result<()> {
        let mut guard = self.lock_open()?;
        guard.engine.refetch(key)?;
        self.run(guard);
        Ok(())
    }

    /// Hands `command` to `key`'s running stream: `NotFound` without an entry, `NotConnected`
    /// when the entry has no stream to write on.
    fn stream_command(&self, key: &str, command: StreamCommand) -> Result<()> {
        let st = self.lock_open()?;
        let entry = st.engine.entry_id(key)?;
        let stream = st.io.get(&entry).and_then(|io| io.stream.as_ref()).ok_or_else(|| Error::NotConnected(key.to_owned()))?;
        stream.command(command).map_err(|_| Error::NotConnected(key.to_owned()))
    }

    /// T2 `send`: one JSON text frame on the entry's open stream; resolves once written.
    pub fn send(&self, key: &str, message: &Value) -> impl std::future::Future<Output = Result<()>> + Send + 'static {
        let (done, rx) = oneshot::channel();
        let sent = self.stream_command(key, StreamCommand::Send { text: message.to_string(), done }).map(|()| (rx, key.to_owned()));
        async move {
            let (rx, key) = sent?;
            // A driver that ended before answering was not connected.
            rx.await.unwrap_or(Err(Error::NotConnected(key)))
        }
    }

    /// T1 `reconnect`: close the entry's connection and open another now (fresh headers).
    pub fn reconnect(&self, key: &str) -> Result<()> {
        self.stream_command(key, StreamCommand::Reconnect)
    }

    /// P3 `prefetch`.
    pub fn prefetch(self: &Arc<Self>, endpoint: &str, arg: Option<Value>, options: livecache_engine::PrefetchOptions) -> Result<()> {
        let mut guard = self.lock_open()?;
        let now = self.now();
        guard.engine.prefetch(now, endpoint, arg, options)?;
        self.run(guard);
        Ok(())
    }

    /// P3 `resetApiState`.
    pub fn reset_api_state(self: &Arc<Self>) -> Result<()> {
        let mut guard = self.lock_open()?;
        guard.engine.reset_api_state()?;
        self.run(guard);
        Ok(())
    }

    pub fn upsert(self: &Arc<Self>, endpoint: &str, arg: Option<Value>, data: Value, tags: Option<livecache_engine::HostTags>) -> Result<()> {
        // W2: the host's tags for the data, computed before the lock is taken (host code).
        let tags = tags.or_else(|| {
            let provides = self.endpoint_hooks(endpoint).and_then(|h| h.provides_tags.clone())?;
            Some(call_tags_hook("providesTags", || provides(&data, arg.as_ref())))
        });
        let mut guard = self.lock_open()?;
        let now = self.now();
        guard.engine.upsert_tagged(now, endpoint, arg, data, tags)?;
        self.run(guard);
        Ok(())
    }

    /// The stream driver's report of a state change (L8).
    fn stream_state(self: &Arc<Self>, key: &str, entry: u64, state: StreamState, error: Option<String>) {
        let mut guard = self.state.lock();
        guard.engine.stream_state(key, entry, state, error);
        self.run(guard);
    }

    fn stream_target(self: &Arc<Self>, key: &str, entry: u64) -> Option<StreamTarget> {
        self.state.lock().engine.stream_target(key, entry)
    }

    fn resume_refused(self: &Arc<Self>, key: &str, entry: u64) {
        let mut guard = self.state.lock();
        guard.engine.resume_refused(key, entry);
        self.run(guard);
    }

    fn stream_error(self: &Arc<Self>, key: &str, entry: u64, reason: ErrorReason, message: String) {
        let mut guard = self.state.lock();
        guard.engine.stream_error(key, entry, reason, message);
        self.run(guard);
    }

    fn tick(self: &Arc<Self>) -> Option<Duration> {
        let mut guard = self.state.lock();
        let now = self.now();
        guard.engine.tick(now);
        let next = guard.engine.next_deadline();
        self.run(guard);
        next.map(|at| at.saturating_sub(self.now()))
    }

    fn patch(self: &Arc<Self>, key: &Arc<str>, ops: &[PatchOp]) -> Result<HostUpdate> {
        let mut guard = self.lock_open()?;
        let result = guard.engine.patch(key, None, ops)?;
        self.run(guard);
        Ok(HostUpdate::new(result, self.host(), key.clone()))
    }

    /// L9 `updateQueryData`: the recipe runs on a draft with no lock held.
    fn update(self: &Arc<Self>, key: &Arc<str>, id: Option<u64>, recipe: BoxedRecipe<'_>) -> Result<HostUpdate> {
        let (base, version) = self.lock_open()?.engine.host_base(key, id)?;
        let mut draft = (*base).clone();
        if let Some(replacement) = recipe(&mut draft) {
            draft = replacement;
        }
        let recipe = Recipe::new(&base, version, draft)?;
        drop(base);
        let mut guard = self.lock_open()?;
        let result = guard.engine.commit_recipe(key, id, recipe)?;
        self.run(guard);
        Ok(HostUpdate::new(result, self.host(), key.clone()))
    }

    /// The HTTP request of a rendered `query` or `mutation`, its URL joined to `baseUrl`.
    pub(crate) fn fetch_request(
        &self,
        key: String,
        endpoint: &EndpointConfig,
        arg: Option<Value>,
        query: livecache_engine::request::RenderedQuery,
        headers: livecache_engine::headers::Headers,
    ) -> FetchRequest {
        FetchRequest {
            key,
            endpoint: endpoint.name.clone(),
            arg,
            url: join_url(self.config.base_url.as_deref(), &query.url),
            headers,
            method: query.method,
            body: query.body,
            policy: endpoint.policy,
            graphql: query.graphql,
        }
    }

    /// What starts one request of an entry: the host `queryFn`, else HTTP GET of `query`.
    fn start_fetch(self: &Arc<Self>, key: Arc<str>, entry: u64, request: u64, endpoint: Arc<EndpointConfig>, arg: Option<Value>) {
        let hooks = self.endpoint_hooks(&endpoint.name);
        let transform = hooks.and_then(|h| h.transform_response.clone());
        let provides = hooks.and_then(|h| h.provides_tags.clone());
        let query_fn = hooks.and_then(|h| h.query_fn.clone());
        let prepare = hooks.and_then(|h| h.prepare_headers.clone());
        let adapter_cfg = endpoint.entity_adapter.clone();
        let initial = endpoint.stream.as_ref().and_then(|s| s.resume.as_ref()).and_then(|r| r.initial.clone());
        let fetch = match query_fn {
            Some(query_fn) => {
                let arg = arg.clone();
                async move { query_fn(arg).await.map(|data| FetchResponse { data, meta: Value::Null }) }.boxed()
            }
            None => {
                // T1: the headers are rendered per request (checked when the entry was created).
                let url = endpoint.query.as_ref().map(|q| {
                    let query = q.render(arg.as_ref())?;
                    Ok::<_, String>((query, endpoint.headers.render(arg.as_ref())?))
                });
                match (url, &self.query_source) {
                    (Some(Ok((query, headers))), Some(source)) => {
                        let request = self.fetch_request(key.to_string(), &endpoint, arg.clone(), query, headers);
                        match prepare {
                            None => source.fetch(request),
                            Some(hook) => prepared_fetch(hook, source.clone(), request, "query"),
                        }
                    }
                    (Some(Err(e)), _) => std::future::ready(Err(serde_json::json!({"status": "CUSTOM_ERROR", "error": e}))).boxed(),
                    _ => std::future::ready(Err(serde_json::json!({
                        "status": "FETCH_ERROR",
                        "error": "no HTTP transport in this build"
                    })))
                    .boxed(),
                }
            }
        };
        let weak = self.weak();
        self.handle.spawn(async move {
            let fetched = AssertUnwindSafe(fetch).catch_unwind().await;
            let result = match fetched {
                Ok(r) => r,
                Err(_) => Err(serde_json::json!({"status": "CUSTOM_ERROR", "error": "queryFn panicked"})),
            };
            // Transforms run here, outside the engine lock (user code).
            let result = result.and_then(|resp| {
                // T6: `resume.initial` points into the response as the server sent it.
                let initial = initial.and_then(|p| resp.data.pointer(&p).cloned());
                let data = postprocess(resp.data, transform.as_ref(), adapter_cfg.as_ref(), arg.clone())?;
                let tags = provides.map(|f| call_tags_hook("providesTags", || f(&data, arg.as_ref())));
                Ok(Fetched { data, meta: resp.meta, tags, initial })
            });
            if let Some(driver) = weak.upgrade() {
                let mut guard = driver.state.lock();
                let now = driver.now();
                guard.engine.fetch_done_at(now, &key, entry, request, result);
                driver.run(guard);
            }
        });
    }

    fn start_lifecycle(self: &Arc<Self>, key: Arc<str>, entry: u64, endpoint: &EndpointConfig, arg: Option<Value>, lifecycle: Lifecycle) {
        let Some(hook) = self.endpoint_hooks(&endpoint.name).and_then(|h| h.on_cache_entry_added.clone()) else { return };
        let weak = self.weak();
        self.handle.spawn(async move {
            let outcome = AssertUnwindSafe(async move { hook(arg, lifecycle).await }).catch_unwind().await;
            let message = match outcome {
                Ok(Ok(())) => return,
                Ok(Err(m)) => format!("onCacheEntryAdded: {m}"),
                Err(_) => "onCacheEntryAdded panicked".to_owned(),
            };
            if let Some(driver) = weak.upgrade() {
                driver.stream_error(&key, entry, ErrorReason::Hook, message);
            }
        });
    }

    /// Runs `onMessage` with no lock held; its answer goes back to the engine (SPEC §6).
    fn call_hook(self: &Arc<Self>, call: HookCall) {
        let Some(hooks) = self.endpoint_hooks(&call.endpoint.name) else { return };
        let (one, many) = (hooks.on_message.clone(), hooks.on_messages.clone());
        let weak = self.weak();
        self.handle.spawn(async move {
            let HookCall { key, base, shape, data, messages, arg, .. } = call;
            // A panic in the call itself or in its future is the hook's failure, not the driver's.
            let called = std::panic::catch_unwind(AssertUnwindSafe(|| {
                match (shape, &many, &one) {
                    (HookShape::Batched, Some(h), _) => Some(h(crate::hooks::MessageBatch { base, data, messages, arg })),
                    (_, _, Some(h)) => {
                        let message = messages.into_iter().next().unwrap_or(Value::Null);
                        Some(h(data, message, arg).map(|r| Ok(vec![r])).boxed())
                    }
                    _ => None,
                }
            }));
            let result: HookResult = match called {
                Ok(Some(future)) => match AssertUnwindSafe(future).catch_unwind().await {
                    Ok(Ok(outcomes)) => Ok(outcomes),
                    Ok(Err(m)) => Err(HookFailure::Failed(m)),
                    Err(_) => Err(HookFailure::Panicked),
                },
                Ok(None) => Err(HookFailure::Failed("no onMessage hook".into())),
                Err(_) => Err(HookFailure::Panicked),
            };
            if let Some(driver) = weak.upgrade() {
                let mut guard = driver.state.lock();
                guard.engine.hook_done(&key, base, result);
                driver.run(guard);
            }
        });
    }

    /// Removes every entry, closes every stream with a close handshake and stops every callback
    /// before returning (SPEC §8). A second call does nothing.
    pub fn close(self: &Arc<Self>) {
        // Their `events()` readers end once what was delivered is read (SPEC §8).
        let closing;
        let stopping: Vec<BoxFuture<'static, ()>> = {
            let mut guard = self.state.lock();
            if guard.engine.is_closed() {
                return;
            }
            closing = guard.engine.subscribers();
            guard.engine.close();
            let tasks = guard.io.values_mut().filter_map(EntryIo::stop_stream).collect();
            self.run(guard);
            tasks
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
                closing.iter().for_each(|q| q.end_readers());
                return;
            }
            let wind_down = move || {
                // Streams get a bounded moment for their close handshakes (L7) before the runtime stops.
                runtime.block_on(async {
                    let all = futures_util::future::join_all(stopping);
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
        closing.iter().for_each(|q| q.end_readers());
    }
}

fn event_removed(key: &str) -> crate::event::Event {
    crate::event::Event::Removed { key: key.into() }
}

impl MessageSink for Driver {
    /// Frames of one entry, parsed and checked: applied under the lock, as one burst.
    fn apply_batch(self: &Arc<Self>, key: &str, entry: u64, batch: &mut Vec<Prepared>) {
        let mut guard = self.state.lock();
        guard.engine.messages(key, entry, batch);
        self.run(guard);
    }

    fn hold_wakes(&self) -> WakeHold {
        self.dispatcher.hold()
    }

    fn recycle(&self, batch: Vec<Prepared>) {
        let mut spare = self.batches.lock();
        if spare.len() < SPARE_BATCHES {
            spare.push(batch);
        }
    }
}

impl EntryHost for Driver {
    fn patch_entry(&self, key: &Arc<str>, ops: &[PatchOp]) -> Result<HostUpdate> {
        self.self_ref.upgrade().ok_or(Error::Closed)?.patch(key, ops)
    }

    fn update_entry(&self, key: &Arc<str>, id: Option<u64>, recipe: BoxedRecipe<'_>) -> Result<HostUpdate> {
        self.self_ref.upgrade().ok_or(Error::Closed)?.update(key, id, recipe)
    }

    fn entry_state(&self, key: &str, id: Option<u64>) -> Result<EntryState> {
        self.lock_open()?.engine.entry_state(key, id)
    }
}

impl Driver {
    /// Adds an `events()` reader to a subscription, seeded with the entry's state now. Under the
    /// engine's lock, as every enqueue is: the reader misses no later event and gets none twice.
    /// `false` when the entry or the subscription is gone.
    pub(crate) fn add_reader(&self, queue: &Arc<SubscriberQueue>, key: &str, tap: &Arc<crate::event_tap::Tap>) -> bool {
        let st = self.state.lock();
        let Some(seed) = st.engine.catch_up_event(key) else { return false };
        tap.seed(seed);
        queue.add_tap(tap)
    }

    pub(crate) fn queue_limit(&self) -> usize {
        self.config.queue_limit
    }
}

/// One task per client sleeps until the engine's next removal deadline (L7) and ticks it.
async fn timer_task(driver: Weak<Driver>, wake: Arc<Notify>) {
    // A day at most per sleep: `keepUnusedDataFor` may be far beyond what a timer holds.
    const STEP: Duration = Duration::from_secs(86_400);
    let mut wait: Option<Duration> = None;
    loop {
        match wait {
            Some(d) => {
                tokio::select! {
                    _ = tokio::time::sleep(d.min(STEP)) => {}
                    _ = wake.notified() => {}
                }
            }
            None => wake.notified().await,
        }
        let Some(d) = driver.upgrade() else { return };
        if d.is_closed() {
            return;
        }
        wait = d.tick();
    }
}

/// The stream side of one entry, handed to the stream driver.
struct EntrySink {
    driver: Weak<Driver>,
    key: Arc<str>,
    entry_id: u64,
    /// The client's stream pipeline (one for every entry).
    inbox: mpsc::UnboundedSender<Piped>,
    config: Arc<StreamConfig>,
    filter: MessageFilter,
    /// Prepared messages of the frames read so far, handed on at `flush`.
    batch: Mutex<Vec<Prepared>>,
    /// T1: the endpoint's `prepareHeaders`, run before every connect.
    /// Boxed: most streams have none, and a sink lives as long as its entry.
    prepare: Option<Box<Prepare>>,
}

/// T1: a fetch whose headers the host's `prepareHeaders` has the last word on; its failure is
/// the fetch's (`CUSTOM_ERROR`, rejected).
pub(crate) fn prepared_fetch(
    hook: PrepareHeadersFn,
    source: Arc<dyn QuerySource>,
    mut request: FetchRequest,
    kind: &'static str,
) -> futures_util::future::BoxFuture<'static, Result<FetchResponse, FetchError>> {
    async move {
        let context = HeaderContext { endpoint: &request.endpoint, arg: request.arg.as_ref(), url: &request.url, kind };
        match prepare_headers(&hook, &request.headers, context).await {
            Ok(headers) => {
                request.headers = headers;
                source.fetch(request).await
            }
            Err(error) => Err(serde_json::json!({"status": "CUSTOM_ERROR", "error": error})),
        }
    }
    .boxed()
}

/// What `prepareHeaders` needs for one entry's stream.
struct Prepare {
    hook: PrepareHeadersFn,
    endpoint: String,
    arg: Option<Value>,
    /// As rendered when the entry was created (the target when the stream does not resume).
    target: StreamTarget,
}

impl EntrySink {
    fn prepared(&self, prepared: Prepared) {
        let Some(driver) = self.driver.upgrade() else { return };
        driver.count_received();
        match prepared {
            Prepared::Filtered => driver.count_filtered(),
            prepared => {
                let mut batch = self.batch.lock();
                if batch.capacity() == 0 {
                    // A vector the pipeline gave back, or one allocation for the batch.
                    *batch = driver.batches.lock().pop().unwrap_or_default();
                    batch.reserve(crate::socket::READ_BATCH);
                }
                batch.push(prepared);
            }
        }
    }
}

impl StreamSink for EntrySink {
    /// Parse, schema and filter run here, on the stream's thread, so they overlap with the
    /// engine applying the messages before this one.
    fn message(&self, raw: RawMessage) {
        self.prepared(message::prepare(raw, &self.config, &self.filter));
        self.flush();
    }

    /// Held with the frames read before it until `flush`: the pipeline is woken once per batch.
    fn text(&self, text: &str) {
        self.prepared(message::prepare_text(text, &self.config, &self.filter));
    }

    fn value(&self, value: Value) {
        self.prepared(message::prepare(RawMessage::Value(value), &self.config, &self.filter));
    }

    fn parsed(&self, parsed: &livecache_engine::message::Parsed) {
        self.prepared(message::prepare_parsed(parsed, &self.config, &self.filter));
    }

    fn flush(&self) {
        let batch = std::mem::take(&mut *self.batch.lock());
        if !batch.is_empty() {
            let _ = self.inbox.send((self.key.clone(), self.entry_id, Inbound::Prepared(batch)));
        }
    }

    fn filtered(&self) {
        self.prepared(Prepared::Filtered);
    }

    fn connection(&self, open: bool) {
        if let Some(driver) = self.driver.upgrade() {
            driver.count_connection(open);
        }
    }

    fn state(&self, state: StreamState, error: Option<String>) {
        // The messages read before the change come before it.
        self.flush();
        if let Some(driver) = self.driver.upgrade() {
            driver.stream_state(&self.key, self.entry_id, state, error);
        }
    }

    fn error(&self, reason: ErrorReason, message: String) {
        self.flush();
        if let Some(driver) = self.driver.upgrade() {
            driver.stream_error(&self.key, self.entry_id, reason, message);
        }
    }

    fn target(&self) -> futures_util::future::BoxFuture<'static, Result<Option<StreamTarget>, String>> {
        let resumes = self.config.resume.is_some();
        let prepare = self.prepare.as_ref().map(|p| (p.hook.clone(), p.endpoint.clone(), p.arg.clone(), p.target.clone()));
        if !resumes && prepare.is_none() {
            return Box::pin(async { Ok(None) });
        }
        // What was read before this connect is in the engine before it picks the cursor.
        let applied = resumes.then(|| {
            self.flush();
            let (done, applied) = oneshot::channel();
            let _ = self.inbox.send((self.key.clone(), self.entry_id, Inbound::Barrier(done)));
            applied
        });
        let (driver, key, entry) = (self.driver.clone(), self.key.clone(), self.entry_id);
        Box::pin(async move {
            let mut target = match applied {
                Some(applied) => {
                    let _ = applied.await;
                    driver.upgrade().and_then(|d| d.stream_target(&key, entry))
                }
                None => None,
            };
            // T1: the host's headers, fresh for every connect (a refreshed token).
            if let Some((hook, endpoint, arg, original)) = prepare {
                let mut t = target.take().unwrap_or(original);
                let context = HeaderContext { endpoint: &endpoint, arg: arg.as_ref(), url: &t.url, kind: "stream" };
                t.headers = prepare_headers(&hook, &t.headers, context).await?;
                target = Some(t);
            }
            Ok(target)
        })
    }

    fn resume_refused(&self) {
        self.flush();
        if let Some(driver) = self.driver.upgrade() {
            driver.resume_refused(&self.key, self.entry_id);
        }
    }
}
