//! One cache entry (SPEC §3 K2, §4): its data, version, status, stream state and subscribers,
//! and the rules for turning a change into events (E1).

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::apply::Change;
use crate::config::{EndpointConfig, StreamConfig};
use crate::dispatch::{Dispatcher, Enqueued, SubscriberQueue};
use crate::error::Error;
use crate::event::{Event, Status, StreamState};
use crate::hooks::EndpointHooks;
use crate::pipeline::Inbound;
use crate::stats::Stats;

/// `cacheDataLoaded`'s value (L2): the first data and its transport metadata.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Loaded {
    pub data: Value,
    pub meta: Value,
}

/// The stream part of an entry's state.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StreamInfo {
    pub state: StreamState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// An entry's state as `snapshot()` returns it (SPEC §5):
/// `{key, status, version, data, error?, stream: {state, error?}}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EntryState {
    pub key: String,
    pub status: Status,
    pub version: u64,
    pub data: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
    pub stream: StreamInfo,
}

impl EntryState {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("entry state always serialises")
    }
}

pub(crate) struct Entry {
    /// Unique per entry lifetime, so late work for a removed entry never touches a new one.
    pub id: u64,
    pub key: Arc<str>,
    pub endpoint: Arc<EndpointConfig>,
    pub stream_config: Arc<StreamConfig>,
    pub hooks: EndpointHooks,
    pub arg: Option<Value>,
    pub status: Status,
    /// Shared so hooks can read it without a lock; mutated in place when unshared.
    pub data: Option<Arc<Value>>,
    pub version: u64,
    pub error: Option<Value>,
    pub stream_state: StreamState,
    pub stream_error: Option<String>,
    pub stream_opened: bool,
    pub has_stream_url: bool,
    pub subscribers: Vec<Arc<SubscriberQueue>>,
    /// L7: when the entry goes if still unused; `None` while subscribed or kept forever.
    pub removal_deadline: Option<tokio::time::Instant>,
    /// Whether a removal timer task is alive for this entry (at most one).
    pub removal_timer: bool,
    /// L5: the newest request; responses to older ones are discarded.
    pub latest_request: u64,
    /// A refetch is running while data exists: messages applied now are logged for re-application.
    pub refetch_in_flight: bool,
    pub reapply: Vec<Value>,
    /// L4: the pre-load buffer overflowed; refetch once the stream is open.
    pub refetch_when_open: bool,
    pub load_waiters: Vec<oneshot::Sender<Result<Loaded, Error>>>,
    pub removed: watch::Sender<bool>,
    /// The message pipeline's inbox; the pipeline starts with the stream, or on the first
    /// `pushMessage` (an entry that never gets a message costs no task).
    pub inbox: Option<mpsc::UnboundedSender<Inbound>>,
    pub stream_shutdown: CancellationToken,
    pub stream_task: Option<JoinHandle<()>>,
}

impl Entry {
    pub fn state(&self) -> EntryState {
        EntryState {
            key: self.key.to_string(),
            status: self.status,
            version: self.version,
            data: self.data.as_deref().cloned().unwrap_or(Value::Null),
            error: self.error.clone(),
            stream: StreamInfo { state: self.stream_state, error: self.stream_error.clone() },
        }
    }

    /// The event that brings a subscriber up to date: a snapshot when data exists, else the status.
    pub fn catch_up_event(&self) -> Event {
        match &self.data {
            Some(data) => Event::Snapshot {
                key: self.key.clone(),
                version: self.version,
                status: self.status,
                data: (**data).clone(),
            },
            None => Event::Status { key: self.key.clone(), status: self.status, error: self.error.clone() },
        }
    }

    pub fn stream_event(&self) -> Event {
        Event::Stream { key: self.key.clone(), state: self.stream_state, error: self.stream_error.clone() }
    }

    /// Queues `event` for every subscriber (moving it into the last one).
    pub fn broadcast(&self, dispatcher: &Dispatcher, stats: &mut Stats, event: Event) {
        let n = self.subscribers.len();
        if n == 0 {
            return;
        }
        let snapshot = || self.catch_up_event();
        let mut event = Some(event);
        for (i, sub) in self.subscribers.iter().enumerate() {
            let ev = if i + 1 == n { event.take().expect("event") } else { event.clone().expect("event") };
            if dispatcher.enqueue(sub, ev, &snapshot) == Enqueued::Overflowed {
                stats.queue_overflows += 1;
            }
        }
    }

    /// Turns an applied change into a new version and its event (E1): a patch, or a snapshot
    /// when the whole data changed.
    pub fn commit(&mut self, change: Change, dispatcher: &Dispatcher, stats: &mut Stats) {
        match change {
            Change::Unchanged => {}
            Change::Patch(ops) if ops.is_empty() => {}
            Change::Patch(patches) => {
                let from = self.version;
                self.version += 1;
                let event = Event::Patch { key: self.key.clone(), from, version: self.version, patches };
                self.broadcast(dispatcher, stats, event);
            }
            Change::Replaced => {
                self.version += 1;
                let event = self.catch_up_event();
                self.broadcast(dispatcher, stats, event);
            }
        }
    }

    /// The first data of this entry lifetime (L2): status fulfilled, a snapshot, waiters resolved,
    /// and the pipeline told to flush its pre-load buffer (L4).
    pub fn first_data(&mut self, data: Value, meta: Value, dispatcher: &Dispatcher, stats: &mut Stats) {
        self.data = Some(Arc::new(data));
        self.status = Status::Fulfilled;
        self.error = None;
        self.version += 1;
        let event = self.catch_up_event();
        self.broadcast(dispatcher, stats, event);
        self.resolve_waiters(&meta);
        if let Some(inbox) = &self.inbox {
            let _ = inbox.send(Inbound::Loaded);
        }
    }

    pub fn resolve_waiters(&mut self, meta: &Value) {
        let Some(data) = self.data.as_deref() else { return };
        for waiter in self.load_waiters.drain(..) {
            let _ = waiter.send(Ok(Loaded { data: data.clone(), meta: meta.clone() }));
        }
    }

    /// L7 / close: the entry is gone. Its stream closes, waiters reject, `cacheEntryRemoved` resolves.
    pub fn finish(&mut self, dispatcher: &Dispatcher, stats: &mut Stats) {
        self.stream_shutdown.cancel();
        for waiter in self.load_waiters.drain(..) {
            let _ = waiter.send(Err(Error::CacheEntryRemoved(self.key.to_string())));
        }
        let _ = self.removed.send(true);
        let event = Event::Removed { key: self.key.clone() };
        self.broadcast(dispatcher, stats, event);
        stats.entries_removed += 1;
    }
}
