//! The cache as a deterministic state machine: the driver hands it what happened (a subscriber
//! came or left, a response or frames arrived, the stream changed state, a hook answered, time is
//! now T) and takes back what to do (deliver an event, start a fetch, open or close a stream, call
//! a hook with its base version, wake at T, settle a waiter). Nothing here blocks, sleeps, locks or
//! reads a clock: `now` is whatever the driver says, so tests drive virtual time.
//!
//! The rules live in the files named after them: `fetch` (L1, L5, L6), `messages` (L4, E3,
//! apply), `on_message` (§6), `stream` (L8), `removal` (L7), `host_update` (L9).

use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::config::{Config, EndpointConfig, StreamConfig};
use crate::entry::{Entry, EntryState};
use crate::protocol::{EntryId, HostHooks, Loaded, Output, StreamTarget, SubscriberId, WaiterId};
use crate::error::{Error, Result};
use crate::event::{ErrorReason, Event, Status, StreamState};
use crate::json::{self, MAX_DEPTH};
use crate::key::cache_key;
use crate::message::{MessageFilter, Prepared};
use crate::on_message::HookResult;
use crate::protocol::MessageBase;
use crate::stats::Stats;

/// What happened, for `handle`: the asynchronous inputs in one shape (tests, model checks).
#[derive(Debug)]
pub enum Input<S> {
    Subscribe { endpoint: String, arg: Option<Value>, subscriber: SubscriberId, handle: S },
    Unsubscribe { key: Arc<str>, entry: EntryId, subscriber: SubscriberId },
    FetchDone { key: Arc<str>, entry: EntryId, request: u64, result: std::result::Result<Fetched, Value> },
    Messages { key: Arc<str>, entry: EntryId, messages: Vec<Prepared> },
    StreamState { key: Arc<str>, entry: EntryId, state: StreamState, error: Option<String> },
    StreamError { key: Arc<str>, entry: EntryId, reason: ErrorReason, message: String },
    HookDone { key: Arc<str>, base: MessageBase, result: HookResult },
    Refetch { key: Arc<str> },
    Upsert { endpoint: String, arg: Option<Value>, data: Value, tags: Option<crate::protocol::HostTags> },
    Tick,
}

/// A successful fetch, after `transformResponse` and `entityAdapter`: the data and transport
/// metadata (`meta` of `cacheDataLoaded`).
#[derive(Clone, Debug)]
pub struct Fetched {
    pub data: Value,
    pub meta: Value,
    /// W2: the `providesTags` host hook's answer for this data (`None` without the hook).
    pub tags: Option<crate::protocol::HostTags>,
    /// T6: what `resume.initial` points at in the response as the server sent it (before
    /// `transformResponse`, which may drop it); `None`: the pointer is read from `data`.
    pub initial: Option<Value>,
}

impl Fetched {
    /// A result whose tags (if any) come from the config's `providesTags`, and whose
    /// `resume.initial` (if any) is read from `data`.
    pub fn new(data: Value, meta: Value) -> Fetched {
        Fetched { data, meta, tags: None, initial: None }
    }
}

/// One entry's place in the removal heap (L7): the soonest first.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Timer(pub std::cmp::Reverse<(Duration, EntryId)>, pub Arc<str>);

/// The engine: every entry of one client, its counters and its timers.
pub struct Engine<S> {
    pub(crate) config: Arc<Config>,
    hooks: HashMap<String, HostHooks>,
    /// Per endpoint: its `stream` config, or a default one for `pushMessage`-only use.
    stream_configs: HashMap<String, Arc<StreamConfig>>,
    /// Boxed: the map keeps spare capacity after removals, a pointer per slot rather than an entry.
    pub(crate) entries: HashMap<Arc<str>, Box<Entry<S>>>,
    pub(crate) stats: Stats,
    next_id: u64,
    pub(crate) timers: BinaryHeap<Timer>,
    pub(crate) armed: Option<Duration>,
    closed: bool,
    pub(crate) out: Vec<Output<S>>,
    /// W1: mutations not yet settled.
    pub(crate) mutations: HashMap<crate::protocol::MutationId, crate::pending_mutation::Mutation>,
    /// W3: entries that carry (or carried) layers, looked at after each call.
    pub(crate) layered: Vec<(Arc<str>, EntryId)>,
    /// W3: when each successful mutation's layers time out unconfirmed, soonest first.
    pub(crate) layer_timers: BinaryHeap<std::cmp::Reverse<(Duration, crate::protocol::MutationId)>>,
    /// P1: each polled entry's next poll (stale ones are skipped when they come up).
    pub(crate) poll_timers: BinaryHeap<Timer>,
}

/// Cross-checks config and hooks: what a config alone cannot tell (SPEC §2, §6).
fn validate(config: &Config, hooks: &HashMap<String, HostHooks>) -> Result<()> {
    for name in hooks.keys() {
        if !config.endpoints.contains_key(name) {
            return Err(Error::config(format!("hooks.{name}"), "hooks given for an endpoint the config does not have"));
        }
    }
    for (name, ep) in &config.endpoints {
        let h = hooks.get(name).copied().unwrap_or_default();
        if h.mutation_fn {
            let other = if ep.is_mutation() { Some("mutation") } else if ep.query.is_some() { Some("query") } else if ep.stream.is_some() { Some("stream") } else { None };
            if let Some(key) = other {
                return Err(Error::config(format!("hooks.{name}.mutationFn"), format!("the endpoint has a `{key}` too: a mutationFn endpoint is a mutation without one")));
            }
        }
        // W2: a tags hook stands in for the config key of its name, so not beside it.
        if h.provides_tags && !ep.provides_tags.is_empty() {
            return Err(Error::config(format!("hooks.{name}.providesTags"), "the endpoint has `providesTags` in its config too: give one of them"));
        }
        if h.invalidates_tags && !ep.invalidates_tags.is_empty() {
            return Err(Error::config(format!("hooks.{name}.invalidatesTags"), "the endpoint has `invalidatesTags` in its config too: give one of them"));
        }
        if h.invalidates_tags && !ep.is_mutation() && !h.mutation_fn {
            return Err(Error::config(
                format!("hooks.{name}.invalidatesTags"),
                "invalidatesTags belongs to a mutation endpoint (a `mutation`, or a mutationFn hook)",
            ));
        }
        if !ep.is_mutation() && !h.mutation_fn {
            let writes = !ep.invalidates_tags.is_empty() || !ep.optimistic.layers.is_empty() || !ep.optimistic.confirm.is_empty();
            if writes {
                return Err(Error::config(
                    format!("endpoints.{name}"),
                    "invalidatesTags, optimistic and confirm belong to a mutation endpoint (a `mutation`, or a mutationFn hook)",
                ));
            }
        }
        if ep.is_mutation() || h.mutation_fn {
            if h.query_fn || h.on_message.is_some() || h.on_cache_entry_added || h.provides_tags {
                return Err(Error::config(format!("hooks.{name}"), "a mutation endpoint has no cache entry for query, stream or providesTags hooks"));
            }
            continue;
        }
        if ep.query.is_none() && !h.query_fn && ep.stream.is_none() {
            return Err(Error::config(
                format!("endpoints.{name}"),
                "needs a `query`, a `queryFn` hook or a `stream` to get its data",
            ));
        }
        if let Some(stream) = &ep.stream {
            if stream.apply.is_none() && h.on_message.is_none() {
                return Err(Error::config(
                    format!("endpoints.{name}.stream.apply"),
                    "missing: give an apply rule or an onMessage hook",
                ));
            }
            if stream.apply.is_some() && h.on_message.is_some() {
                return Err(Error::config(
                    format!("endpoints.{name}.stream.apply"),
                    "both an apply rule and an onMessage hook: choose one",
                ));
            }
        }
    }
    Ok(())
}

/// A host's arg within the depth bound (E3), for every call that takes one.
pub(crate) fn check_arg(arg: Option<&Value>) -> Result<()> {
    match arg {
        Some(a) if !json::within_depth(a, MAX_DEPTH) => Err(Error::InvalidArgument(format!("the arg is nested deeper than {MAX_DEPTH} levels"))),
        _ => Ok(()),
    }
}

/// What `loaded()` finds (L2).
#[derive(Debug)]
pub enum LoadedNow {
    Ready(Value),
    /// Settled later by `Output::Settle`.
    Waiting(WaiterId),
}

impl<S: Clone> Engine<S> {
    /// An engine for `config`, with the hooks the host gives per endpoint (by presence only).
    pub fn new(config: Arc<Config>, hooks: HashMap<String, HostHooks>) -> Result<Engine<S>> {
        validate(&config, &hooks)?;
        let stream_configs = config
            .endpoints
            .iter()
            .map(|(name, ep)| (name.clone(), ep.stream.clone().unwrap_or_else(|| Arc::new(StreamConfig::default()))))
            .collect();
        Ok(Engine {
            config,
            hooks,
            stream_configs,
            entries: HashMap::new(),
            stats: Stats::new(),
            next_id: 1,
            timers: BinaryHeap::new(),
            armed: None,
            closed: false,
            out: Vec::new(),
            mutations: HashMap::new(),
            layered: Vec::new(),
            layer_timers: BinaryHeap::new(),
            poll_timers: BinaryHeap::new(),
        })
    }

    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The outputs of the calls since the last take, in order. Reuse `into` across calls.
    pub fn take_outputs(&mut self, into: &mut Vec<Output<S>>) {
        self.settle_layers();
        into.append(&mut self.out);
    }

    /// Runs one input and returns its outputs (errors of the synchronous calls are dropped:
    /// the typed methods return them).
    pub fn handle(&mut self, now: Duration, input: Input<S>) -> Vec<Output<S>> {
        match input {
            Input::Subscribe { endpoint, arg, subscriber, handle } => {
                let _ = self.subscribe(now, &endpoint, arg, subscriber, handle);
            }
            Input::Unsubscribe { key, entry, subscriber } => self.unsubscribe(now, &key, entry, subscriber),
            Input::FetchDone { key, entry, request, result } => self.fetch_done_at(now, &key, entry, request, result),
            Input::Messages { key, entry, mut messages } => self.messages(&key, entry, &mut messages),
            Input::StreamState { key, entry, state, error } => self.stream_state(&key, entry, state, error),
            Input::StreamError { key, entry, reason, message } => self.stream_error(&key, entry, reason, message),
            Input::HookDone { key, base, result } => self.hook_done(&key, base, result),
            Input::Refetch { key } => {
                let _ = self.refetch(&key);
            }
            Input::Upsert { endpoint, arg, data, tags } => {
                let _ = self.upsert_tagged(now, &endpoint, arg, data, tags);
            }
            Input::Tick => self.tick(now),
        }
        self.settle_layers();
        std::mem::take(&mut self.out)
    }

    fn open(&self) -> Result<()> {
        if self.closed {
            return Err(Error::Closed);
        }
        Ok(())
    }

    pub fn endpoint(&self, name: &str) -> Result<&Arc<EndpointConfig>> {
        self.config.endpoints.get(name).ok_or_else(|| Error::UnknownEndpoint(name.to_owned()))
    }

    /// W1: a mutation endpoint: `mutation` in the config, or a `mutationFn` hook.
    pub fn is_mutation(&self, ep: &EndpointConfig) -> bool {
        ep.is_mutation() || self.hooks.get(&ep.name).is_some_and(|h| h.mutation_fn)
    }

    /// A query endpoint: one with cache entries. `WrongEndpointKind` for a mutation (W1).
    pub fn query_endpoint(&self, name: &str) -> Result<&Arc<EndpointConfig>> {
        let ep = self.endpoint(name)?;
        if self.is_mutation(ep) {
            return Err(Error::WrongEndpointKind(format!("endpoint {name:?} is a mutation endpoint; call mutate, it has no cache entry")));
        }
        Ok(ep)
    }

    /// The cache key of `(endpoint, arg)` (K1); fails for an unknown endpoint or a closed engine.
    pub fn key_of(&self, endpoint: &str, arg: Option<&Value>) -> Result<Arc<str>> {
        self.open()?;
        self.query_endpoint(endpoint)?;
        Ok(cache_key(endpoint, arg).into())
    }

    pub(crate) fn entry_mut(&mut self, key: &str, id: EntryId) -> Option<&mut Entry<S>> {
        self.entries.get_mut(key).filter(|e| e.id == id).map(|e| &mut **e)
    }

    /// The stream config and arg of `key`'s entry, for the driver's message pipeline.
    pub fn stream_of(&self, key: &str) -> Option<(Arc<StreamConfig>, Option<Value>)> {
        self.entries.get(key).map(|e| (e.stream_config.clone(), e.arg.clone()))
    }

    /// The live entry of `key`.
    pub fn entry_id(&self, key: &str) -> Result<EntryId> {
        self.open()?;
        self.entries.get(key).map(|e| e.id).ok_or_else(|| Error::NotFound(key.to_owned()))
    }

    /// Subscribes: the first subscriber of a key creates its entry and, in the same step, its
    /// fetch, stream and lifecycle (L1). The new subscriber gets the catch-up event (a snapshot,
    /// or the status) and the stream state when the entry has a stream.
    pub fn subscribe(
        &mut self,
        now: Duration,
        endpoint: &str,
        arg: Option<Value>,
        subscriber: SubscriberId,
        handle: S,
    ) -> Result<(Arc<str>, EntryId)> {
        self.open()?;
        let ep = self.query_endpoint(endpoint)?.clone();
        check_arg(arg.as_ref())?;
        let key: Arc<str> = cache_key(endpoint, arg.as_ref()).into();
        if !self.entries.contains_key(&*key) {
            self.create_entry(&ep, key.clone(), arg, None)?;
        }
        let _ = now;
        let entry = self.entries.get_mut(&*key).expect("entry exists");
        entry.removal_deadline = None;
        self.out.push(Output::Deliver { to: handle.clone(), event: entry.catch_up_event() });
        if entry.has_stream_url {
            self.out.push(Output::Deliver { to: handle.clone(), event: entry.stream_event() });
        }
        entry.subscribers.push((subscriber, handle));
        Ok((key, entry.id))
    }

    /// A subscriber leaves; the last one starts the removal timer (L7).
    pub fn unsubscribe(&mut self, now: Duration, key: &str, entry: EntryId, subscriber: SubscriberId) {
        let Some(e) = self.entry_mut(key, entry) else { return };
        e.subscribers.retain(|(id, _)| *id != subscriber);
        let pollers = e.polls.len();
        e.polls.retain(|(id, _)| *id != subscriber);
        let left_polling = e.polls.len() != pollers;
        if e.subscribers.is_empty() {
            self.schedule_removal(now, key);
        }
        if left_polling {
            self.reschedule_poll(key);
        }
    }

    /// L1: creates the entry and, in the same step, starts its query, stream and lifecycle hook.
    pub(crate) fn create_entry(
        &mut self,
        ep: &Arc<EndpointConfig>,
        key: Arc<str>,
        arg: Option<Value>,
        initial: Option<Value>,
    ) -> Result<()> {
        let hooks = self.hooks.get(&ep.name).copied().unwrap_or_default();
        let stream_config = self.stream_configs[&ep.name].clone();
        // Templates are rendered now so a missing arg field fails the call (SPEC §2).
        MessageFilter::new(&stream_config, arg.as_ref()).map_err(Error::InvalidArgument)?;
        if !hooks.query_fn {
            if let Some(q) = &ep.query {
                q.render(arg.as_ref()).map_err(Error::InvalidArgument)?;
                ep.headers.render(arg.as_ref()).map_err(Error::InvalidArgument)?;
            }
        }
        let stream_target = match &stream_config.url {
            Some(_) => Some(StreamTarget::render(&stream_config, arg.as_ref()).map_err(Error::InvalidArgument)?),
            None => None,
        };
        let stream_url = stream_target.as_ref().map(|t| t.url.clone());
        let id = self.next_id();
        let has_query = hooks.query_fn || ep.query.is_some();
        let mut entry = Entry {
            id,
            key: key.clone(),
            endpoint: ep.clone(),
            stream_config: stream_config.clone(),
            hooks,
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
            // Without a query the first message (applied to null) is the data: nothing is
            // buffered. With one, messages wait for the first data (L4).
            messages_ready: !has_query || initial.is_some(),
            buffer: Default::default(),
            buffer_overflowed: false,
            hook: Default::default(),
            position: crate::position::Position::new(&stream_config, arg.as_ref()),
            tags: Vec::new(),
            layers: Vec::new(),
            visible: None,
            layers_gone: Vec::new(),
            fetched_at: None,
            polls: Vec::new(),
            poll_due: None,
            poll_since: None,
        };
        if let Some(data) = initial {
            entry.data = Some(Arc::new(data));
            entry.status = Status::Fulfilled;
            entry.version = 1;
            entry.retag(None, &self.config.tag_types);
        }
        if let Some(target) = stream_target {
            self.out.push(Output::OpenStream { key: key.clone(), entry: id, endpoint: ep.clone(), target, config: stream_config, arg: arg.clone() });
        }
        if hooks.on_cache_entry_added {
            let waiter = self.next_id();
            self.out.push(Output::StartLifecycle { key: key.clone(), entry: id, endpoint: ep.clone(), arg, waiter });
            match &entry.data {
                Some(d) => self.out.push(Output::Settle {
                    waiters: vec![waiter],
                    result: Ok(Loaded { data: (**d).clone(), meta: Value::Null }),
                }),
                None => entry.load_waiters.push(waiter),
            }
        }
        let needs_fetch = entry.data.is_none() && has_query;
        self.entries.insert(key.clone(), Box::new(entry));
        self.stats.entries_created += 1;
        if needs_fetch {
            self.start_fetch(&key)?;
        }
        Ok(())
    }

    pub(crate) fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// `loaded()` (L2): the data now, or a waiter settled when it first arrives or the entry goes.
    pub fn loaded(&mut self, key: &str, entry: EntryId) -> Result<LoadedNow> {
        let id = self.next_id;
        let Some(e) = self.entry_mut(key, entry) else {
            return Err(Error::CacheEntryRemoved(key.to_owned()));
        };
        if let Some(d) = &e.data {
            return Ok(LoadedNow::Ready((**d).clone()));
        }
        e.load_waiters.push(id);
        self.next_id += 1;
        Ok(LoadedNow::Waiting(id))
    }

    /// The entry state of `key` (SPEC §5); `NotFound` without an entry (of lifetime `id`).
    pub fn entry_state(&self, key: &str, id: Option<EntryId>) -> Result<EntryState> {
        self.open()?;
        self.entries
            .get(key)
            .filter(|e| id.is_none_or(|id| e.id == id))
            .map(|e| e.state())
            .ok_or_else(|| Error::NotFound(key.to_owned()))
    }

    /// The event that replaces a collapsed queue (E5): the entry's state now.
    pub fn catch_up_event(&self, key: &str) -> Option<Event> {
        self.entries.get(key).map(|e| e.catch_up_event())
    }

    /// Counters (SPEC §5), with the live sizes; the driver adds what it counts itself.
    pub fn stats(&self) -> Stats {
        let mut s = self.stats.clone();
        s.entries = self.entries.len() as u64;
        s.subscriptions = self.entries.values().map(|e| e.subscribers.len() as u64).sum();
        s
    }

    /// E5 counted by the driver's queues.
    pub fn count_queue_overflow(&mut self) {
        self.stats.queue_overflows += 1;
    }

    /// Removes every entry (SPEC §8); later calls fail with `Closed`. A second call does nothing.
    /// Every subscriber of every entry (the driver's delivery queues), e.g. to end their
    /// readers when the client closes.
    pub fn subscribers(&self) -> Vec<S>
    where
        S: Clone,
    {
        self.entries.values().flat_map(|e| e.subscribers.iter().map(|(_, s)| s.clone())).collect()
    }

    pub fn close(&mut self) {
        if std::mem::replace(&mut self.closed, true) {
            return;
        }
        let mut entries: Vec<_> = self.entries.drain().map(|(_, e)| e).collect();
        entries.sort_by_key(|e| e.id);
        for mut entry in entries {
            entry.finish(&mut self.out);
            self.stats.entries_removed += 1;
        }
        self.timers.clear();
        self.close_mutations();
    }

    /// Reports a refused message or input as one `error` event (E3) and its counter.
    pub(crate) fn refuse(&mut self, key: &str, entry: EntryId, reason: ErrorReason, message: String) {
        self.stats.reject(reason);
        if let Some(e) = self.entries.get(key).filter(|e| e.id == entry) {
            let event = Event::Error { key: e.key.clone(), reason, message };
            e.broadcast(&mut self.out, event);
        }
    }
}
