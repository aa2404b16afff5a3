//! The client: the public operations of SPEC §4 and §7 over the driver, which runs the engine on
//! the client's own threads (engine workers, a stream thread, a delivery thread).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::runtime::{Handle, Runtime};

use crate::completion::Completion;
use crate::config::Config;
use crate::dispatch::{Dispatcher, SubscriberQueue};
use crate::driver::{Driver, Parts, ON_ENGINE_THREAD};
use crate::entry::EntryState;
use crate::error::{Error, Result};
use crate::event::Event;
use crate::hooks::Hooks;
use crate::host_update::EntryHost;
use crate::patch::PatchOp;
use crate::stats::Stats;
use crate::transport::{QuerySource, RawMessage, StreamSource};

pub use crate::clock::Clock;
pub use livecache_engine::{MutateOptions, PrefetchOptions, SubscribeOptions};
pub use crate::host_update::HostUpdate;

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
    pub clock: Clock,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions { query_source: None, stream_source: None, delivery: Delivery::Thread, worker_threads: 2, clock: Clock::System }
    }
}

/// A livecache client: entries, streams and subscriptions, on its own threads (SPEC §8).
/// Dropping it closes it.
pub struct Client {
    driver: Arc<Driver>,
}

/// One subscriber of one cache key. Dropping it unsubscribes.
pub struct Subscription {
    driver: Arc<Driver>,
    queue: Arc<SubscriberQueue>,
    key: Arc<str>,
    entry_id: u64,
    done: AtomicBool,
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
        let runtime = engine_runtime("livecache-engine", options.worker_threads.max(1))?;
        // Streams read and parse on their own thread: a flood on a socket then overlaps with the
        // engine applying what came before. (Within one runtime the pipeline task, woken by
        // the stream task, would wait on the same worker until the stream task stops reading.)
        let io_runtime = engine_runtime("livecache-io", 1)?;
        let dispatcher = Dispatcher::new();
        let query_source = options.query_source.or_else(crate::default_query_source);
        let stream_source = options.stream_source.or_else(crate::default_stream_source);
        let parts = Parts { config, hooks, query_source, stream_source, dispatcher: dispatcher.clone(), runtime, io_runtime, clock: options.clock };
        let driver = Driver::new(parts)?;
        if options.delivery == Delivery::Thread {
            if let Err(e) = dispatcher.spawn_thread("livecache-delivery".into()) {
                driver.close();
                return Err(Error::InvalidArgument(format!("cannot start the delivery thread: {e}")));
            }
        }
        Ok(Client { driver })
    }

    pub fn config(&self) -> &Config {
        &self.driver.config
    }

    /// The client's runtime, for Rust hosts that run their own futures beside the engine's
    /// (bindings use `Completion` instead).
    pub fn runtime_handle(&self) -> Handle {
        self.driver.handle.clone()
    }

    fn completion<T: Send + 'static>(&self, done: impl Future<Output = Result<T>> + Send + 'static) -> Completion<T> {
        Completion::new(self.driver.handle.clone(), done)
    }

    /// The cache key of `(endpoint, arg)` (K1). Fails for an unknown endpoint.
    pub fn cache_key(&self, endpoint: &str, arg: Option<&Value>) -> Result<String> {
        self.key_of(endpoint, arg).map(|k| k.to_string())
    }

    fn key_of(&self, endpoint: &str, arg: Option<&Value>) -> Result<Arc<str>> {
        self.driver.lock().engine.key_of(endpoint, arg)
    }

    /// Subscribes to `(endpoint, arg)`; `arg` `None` is "no arg". The first subscriber of a key
    /// creates its entry and starts its query and stream (L1).
    pub fn subscribe(
        &self,
        endpoint: &str,
        arg: Option<Value>,
        callback: impl Fn(&Event) + Send + Sync + 'static,
    ) -> Result<Subscription> {
        self.subscribe_with(endpoint, arg, SubscribeOptions::default(), callback)
    }

    /// `subscribe` with options: P1 `polling_interval` (this subscriber polls; the entry refetches
    /// at the smallest interval of its pollers) and P2 `refetch_on_mount_or_arg_change`.
    pub fn subscribe_with(
        &self,
        endpoint: &str,
        arg: Option<Value>,
        options: SubscribeOptions,
        callback: impl Fn(&Event) + Send + Sync + 'static,
    ) -> Result<Subscription> {
        let (queue, key, entry_id) = self.driver.subscribe(endpoint, arg, Box::new(callback), options, None)?;
        Ok(Subscription { driver: self.driver.clone(), queue, key, entry_id, done: AtomicBool::new(false) })
    }

    /// A subscription read through its reader only, from its first event on: the same events a
    /// callback would get, in the same order, in a queue bounded by `queueLimit` (E4, E5) that the
    /// host drains at its own pace. For a host that runs callbacks on a thread of its own (an
    /// event loop): waking it once per burst keeps the host's own queue from growing with the
    /// flood. `wake` runs on the delivery thread when the queue fills from empty and when the
    /// subscription ends.
    pub fn subscribe_reader(
        &self,
        endpoint: &str,
        arg: Option<Value>,
        options: SubscribeOptions,
        wake: crate::event_tap::Wake,
    ) -> Result<(Subscription, crate::event_tap::EventTap)> {
        let tap = crate::event_tap::Tap::new(self.driver.queue_limit(), wake);
        let (queue, key, entry_id) = self.driver.subscribe(endpoint, arg, Box::new(|_: &Event| {}), options, Some(&tap))?;
        let sub = Subscription { driver: self.driver.clone(), queue, key, entry_id, done: AtomicBool::new(false) };
        Ok((sub, crate::event_tap::EventTap::new(tap)))
    }

    /// P3 `prefetch`: creates and fetches the entry without subscribing (L7 then removes it), or
    /// refetches an existing one when `force`, or when its data is older than `if_older_than`.
    pub fn prefetch(&self, endpoint: &str, arg: Option<Value>, options: PrefetchOptions) -> Result<()> {
        self.driver.prefetch(endpoint, arg, options)
    }

    /// P3 `resetApiState`: removes every entry (subscribers get `removed`, streams close with a
    /// close handshake, `cacheEntryRemoved` resolves); the client stays usable.
    pub fn reset_api_state(&self) -> Result<()> {
        self.driver.reset_api_state()
    }

    /// The entry state of `(endpoint, arg)` (SPEC §5); `NotFound` without an entry.
    pub fn snapshot(&self, endpoint: &str, arg: Option<&Value>) -> Result<EntryState> {
        let key = self.key_of(endpoint, arg)?;
        self.driver.entry_state(&key, None)
    }

    /// `updateQueryData`: runs `recipe` on a draft of the data (mutate it, or return a new value).
    pub fn update_query_data(
        &self,
        endpoint: &str,
        arg: Option<&Value>,
        recipe: impl FnOnce(&mut Value) -> Option<Value>,
    ) -> Result<HostUpdate> {
        let key = self.key_of(endpoint, arg)?;
        self.driver.update_entry(&key, None, Box::new(recipe))
    }

    /// `patchQueryData`: applies RFC 6902 operations, all or nothing.
    pub fn patch_query_data(&self, endpoint: &str, arg: Option<&Value>, patches: &[PatchOp]) -> Result<HostUpdate> {
        let key = self.key_of(endpoint, arg)?;
        self.driver.patch_entry(&key, patches)
    }

    /// `patchQueryData` with the patch as a JSON value (an operation array).
    pub fn patch_query_data_value(&self, endpoint: &str, arg: Option<&Value>, patches: &Value) -> Result<HostUpdate> {
        let ops = crate::patch::parse_patch(patches).map_err(|e| Error::Patch(e.to_string()))?;
        self.patch_query_data(endpoint, arg, &ops)
    }

    /// `upsertQueryData`: sets the data, creating a fulfilled entry (with no subscriber, L7) if absent.
    /// The endpoint's `providesTags` hook (W2), if any, runs in this call.
    pub fn upsert_query_data(&self, endpoint: &str, arg: Option<Value>, data: Value) -> Result<()> {
        self.driver.upsert(endpoint, arg, data, None)
    }

    /// `upsertQueryData` with the `providesTags` answer the host already computed for `data`
    /// (W2), for a host whose hooks cannot be called from inside its own call (a JavaScript
    /// thread): `Some` is used instead of running the hook; `None` is `upsert_query_data`.
    pub fn upsert_query_data_tagged(&self, endpoint: &str, arg: Option<Value>, data: Value, tags: Option<crate::hooks::HostTags>) -> Result<()> {
        self.driver.upsert(endpoint, arg, data, tags)
    }

    /// W1 `mutate`: runs the mutation endpoint's request with `arg`; resolves with the
    /// response data once the refetches its invalidation started have ended (W4), or with
    /// `MutationError` (`{status, data}`). `WrongEndpointKind` for a query endpoint.
    pub fn mutate(&self, endpoint: &str, arg: Option<Value>) -> Completion<Value> {
        self.mutate_with(endpoint, arg, &MutateOptions::default())
    }

    /// `mutate` with per-call options (W3): optimistic layers `{endpoint, arg, message}`, shown
    /// at once above the server data until the server confirms them, and how it confirms them.
    /// The future resolves once the layers are confirmed or dropped (W4).
    pub fn mutate_with(&self, endpoint: &str, arg: Option<Value>, options: &MutateOptions) -> Completion<Value> {
        let started = self.driver.start_mutate(endpoint, arg, options);
        self.completion(async move { started?.await })
    }

    /// `mutate_with` in two steps: `Err` at once when the mutation is refused before anything is
    /// sent (a wrong endpoint kind, a bad arg or option, a closed client), else the future of its
    /// outcome, which failures of the write itself reach.
    pub fn start_mutation(&self, endpoint: &str, arg: Option<Value>, options: &MutateOptions) -> Result<Completion<Value>> {
        self.driver.start_mutate(endpoint, arg, options).map(|done| self.completion(done))
    }

    /// `start_mutation` with the call's optimistic layers, host recipes among them (W3
    /// `{endpoint, arg, recipe}`): they replace `options.optimistic` and the endpoint's config.
    /// A recipe runs once, here, on a draft of its entry's visible data; the patch it made is the
    /// layer. A recipe that fails (or a layer that does not apply) refuses the call at once:
    /// nothing is sent, no layer stays on.
    pub fn start_mutation_with_layers(
        &self,
        endpoint: &str,
        arg: Option<Value>,
        options: &MutateOptions,
        layers: Vec<crate::mutate::OptimisticLayer>,
    ) -> Result<Completion<Value>> {
        self.driver.start_mutate_layers(endpoint, arg, options, layers).map(|done| self.completion(done))
    }

    /// W2 `invalidateTags`: refetches the subscribed entries providing a matching tag and
    /// removes the unused ones. Tags are `"Type"` or `{"type", "id"}`.
    pub fn invalidate_tags(&self, tags: &[Value]) -> Result<()> {
        self.driver.invalidate_tags(tags)
    }

    /// Re-runs the query (L5).
    pub fn refetch(&self, endpoint: &str, arg: Option<&Value>) -> Result<()> {
        let key = self.key_of(endpoint, arg)?;
        self.driver.refetch(&key)
    }

    /// T2 `send`: writes `message` as one JSON text frame on the entry's open stream and
    /// resolves once it is written. `NotConnected` when the stream is not open (nothing is
    /// queued), `NotFound` without an entry.
    pub fn send(&self, endpoint: &str, arg: Option<&Value>, message: &Value) -> Completion<()> {
        let sent = self.key_of(endpoint, arg).map(|key| self.driver.send(&key, message));
        self.completion(async move { sent?.await })
    }

    /// T1 `reconnect`: closes the entry's stream (close handshake) and connects again at once,
    /// with freshly rendered headers; the reopened stream resyncs (L8).
    pub fn reconnect(&self, endpoint: &str, arg: Option<&Value>) -> Result<()> {
        let key = self.key_of(endpoint, arg)?;
        self.driver.reconnect(&key)
    }

    /// `pushMessage` (L10): one message through the endpoint's stream pipeline.
    pub fn push_message(&self, endpoint: &str, arg: Option<&Value>, message: RawMessage) -> Result<()> {
        let key = self.key_of(endpoint, arg)?;
        self.driver.push_message(&key, message)
    }

    /// `pushMessages` (L10 for a burst): the messages in order, as frames that arrived back to back,
    /// in one step (one event for the burst, E2). Each fails or passes the pipeline on its own.
    pub fn push_messages(&self, endpoint: &str, arg: Option<&Value>, messages: Vec<RawMessage>) -> Result<()> {
        let key = self.key_of(endpoint, arg)?;
        self.driver.push_messages(&key, messages)
    }

    /// Moves the manual clock (`Clock::Manual`) forward by `by` and runs what is due then (L7
    /// removals); `InvalidArgument` on the system clock.
    pub fn advance(&self, by: Duration) -> Result<()> {
        self.driver.advance(by)
    }

    /// Counters (SPEC §5).
    pub fn stats(&self) -> Result<Stats> {
        self.driver.stats()
    }

    /// Pull mode: runs queued callbacks on this thread, waiting up to `timeout` for one.
    pub fn poll(&self, timeout: Duration) -> Result<usize> {
        if self.driver.is_closed() {
            return Err(Error::Closed);
        }
        Ok(self.driver.dispatcher.poll(timeout))
    }

    /// Pull mode: `f` is called (from any thread) when callbacks become ready to run.
    pub fn set_ready_notifier(&self, f: Option<Arc<dyn Fn() + Send + Sync>>) {
        self.driver.dispatcher.set_on_ready(f);
    }

    /// True when callbacks wait for `poll`.
    pub fn has_ready_events(&self) -> bool {
        self.driver.dispatcher.has_ready()
    }

    pub fn is_closed(&self) -> bool {
        self.driver.is_closed()
    }

    /// Removes every entry, closes every stream with a close handshake and stops every callback
    /// before returning (SPEC §8). A second call does nothing.
    pub fn close(&self) {
        self.driver.close();
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.driver.close();
    }
}

impl Subscription {
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The entry's current state.
    pub fn snapshot(&self) -> Result<EntryState> {
        self.driver.entry_state(&self.key, None)
    }

    /// `loaded()` (L2): the data, at once if present, else when it first arrives; bound to the
    /// entry now, so it rejects with `CacheEntryRemoved` if that entry goes first.
    pub fn loaded(&self) -> Completion<Value> {
        let key = self.key.clone();
        let ready = self.driver.loaded(&self.key, self.entry_id);
        Completion::new(self.driver.handle.clone(), async move {
            match ready {
                Err(done) => done,
                Ok(rx) => match rx.await {
                    Ok(r) => r.map(|l| l.data),
                    Err(_) => Err(Error::CacheEntryRemoved(key.to_string())),
                },
            }
        })
    }

    /// An `events()` reader (SPEC §5): the entry's state now (a snapshot, or the status while
    /// there is no data), then every event the engine makes for this subscription, in a queue of
    /// its own bounded by `queueLimit` (E4, E5). `wake` runs on the delivery thread when the queue
    /// fills from empty and when the subscription ends; the reader then calls `next` until it
    /// finds nothing.
    pub fn events(&self, wake: crate::event_tap::Wake) -> crate::event_tap::EventTap {
        let tap = crate::event_tap::Tap::new(self.driver.queue_limit(), wake);
        if self.done.load(Ordering::SeqCst) || !self.driver.add_reader(&self.queue, &self.key, &tap) {
            tap.end();
        }
        crate::event_tap::EventTap::new(tap)
    }

    /// Stops this subscription: no callback of it starts after this returns, and a running one
    /// on another thread has finished (SPEC §5). Idempotent; also done on drop.
    pub fn unsubscribe(&self) {
        if self.done.swap(true, Ordering::SeqCst) {
            return;
        }
        self.driver.unsubscribe(&self.key, self.entry_id, self.queue.id);
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
