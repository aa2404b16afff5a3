//! One cache entry (SPEC §3 K2, §4): its data, version, status, stream state and subscribers,
//! and the rules for turning a change into events (E1).

use std::collections::VecDeque;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use crate::apply::Change;
use crate::config::{EndpointConfig, StreamConfig};
use crate::error::Error;
use crate::event::{ErrorReason, Event, Status, StreamState};
use crate::protocol::{EntryId, HostHooks, HostTags, Output, SubscriberId, WaiterId};
// `cacheDataLoaded`'s value, at the path it always had.
pub use crate::protocol::Loaded;

/// The stream part of an entry's state.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StreamInfo {
    pub state: StreamState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// An entry's state as `snapshot()` returns it (SPEC §5):
/// `{key, status, version, data, error?, stream: {state, error?}}`; an uninitialized one (SPEC §6)
/// is `{key, status: "uninitialized"}`.
#[derive(Clone, Debug, PartialEq)]
pub struct EntryState {
    pub key: String,
    pub status: Status,
    pub version: u64,
    pub data: Value,
    pub error: Option<Value>,
    pub stream: StreamInfo,
    /// W3: pending optimistic layers (shown when there are some).
    pub optimistic: usize,
}

impl Serialize for EntryState {
    fn serialize<Z: serde::Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
        use serde::ser::SerializeMap;
        let uninitialized = self.status == Status::Uninitialized;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("key", &self.key)?;
        map.serialize_entry("status", &self.status)?;
        if !uninitialized {
            map.serialize_entry("version", &self.version)?;
            map.serialize_entry("data", &self.data)?;
            if let Some(error) = &self.error {
                map.serialize_entry("error", error)?;
            }
            map.serialize_entry("stream", &self.stream)?;
            if self.optimistic > 0 {
                map.serialize_entry("optimistic", &self.optimistic)?;
            }
        }
        map.end()
    }
}

impl EntryState {
    /// The entry as RTK Query shows one that is not in the cache (SPEC §6).
    pub fn uninitialized(key: &str) -> EntryState {
        EntryState {
            key: key.to_owned(),
            status: Status::Uninitialized,
            version: 0,
            data: Value::Null,
            error: None,
            stream: StreamInfo { state: StreamState::Closed, error: None },
            optimistic: 0,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("entry state always serialises")
    }
}

pub(crate) struct Entry<S> {
    pub id: EntryId,
    pub key: Arc<str>,
    pub endpoint: Arc<EndpointConfig>,
    pub stream_config: Arc<StreamConfig>,
    pub hooks: HostHooks,
    pub arg: Option<Value>,
    pub status: Status,
    /// Shared so hooks and host recipes can read it without the engine; mutated in place when unshared.
    pub data: Option<Arc<Value>>,
    pub version: u64,
    pub error: Option<Value>,
    pub stream_state: StreamState,
    pub stream_error: Option<String>,
    pub stream_opened: bool,
    pub has_stream_url: bool,
    pub subscribers: Vec<(SubscriberId, S)>,
    /// L7: when the entry goes if still unused; `None` while subscribed or kept forever.
    pub removal_deadline: Option<std::time::Duration>,
    /// Whether the entry has a place in the engine's timer heap (at most one).
    pub removal_timer: bool,
    /// L5: the newest request; responses to older ones are discarded.
    pub latest_request: u64,
    /// A refetch is running while data exists: messages applied now are logged for re-application.
    pub refetch_in_flight: bool,
    pub reapply: Vec<Value>,
    /// L4: the pre-load buffer overflowed; refetch once the stream is open.
    pub refetch_when_open: bool,
    pub load_waiters: Vec<WaiterId>,
    /// L4: messages apply once the entry has data (or at once when nothing fetches it).
    pub messages_ready: bool,
    pub buffer: VecDeque<Value>,
    pub buffer_overflowed: bool,
    pub hook: HookState,
    /// T6: where the stream is in the server's history (`resume`, `sequence`).
    pub position: Option<crate::position::Position>,
    /// W2: what the last fetch result or upsert provides.
    pub tags: Vec<crate::tags::Tag>,
    /// W3: pending optimistic layers, in mutation order, and the data they make visible.
    pub layers: Vec<crate::layer::Layer>,
    pub visible: Option<Arc<Value>>,
    /// W3: mutations whose layers left this entry since the engine last looked.
    pub layers_gone: Vec<crate::protocol::MutationId>,
    /// P2/P3: when the last successful fetch ended.
    pub fetched_at: Option<std::time::Duration>,
    /// P1: each polling subscriber's interval, and when the next poll is due.
    pub polls: Vec<(SubscriberId, std::time::Duration)>,
    pub poll_due: Option<std::time::Duration>,
    /// P1: when the wait for the next poll began (the last fetch's end).
    pub poll_since: Option<std::time::Duration>,
}

impl<S: Clone> Entry<S> {
    /// W2: the tags of the data (from a fetch or an upsert): the `providesTags` hook's answer
    /// when the host gave one, else the config's specs. An id template the arg cannot fill leaves
    /// the entry without tags (the arg was checked when the entry was created). A hook that failed
    /// or answered a tag type not in `tagTypes` leaves it without tags too, and gives the `error`
    /// event (reason `hook`) to send after the data's own event: the data is kept.
    pub fn retag(&mut self, host: Option<HostTags>, tag_types: &[String]) -> Option<Event> {
        if let Some(answer) = host {
            let tags = match answer {
                Ok(v) => crate::tags::from_host(&v, tag_types).map_err(|m| format!("providesTags answered a bad tag {m}")),
                Err(m) => Err(format!("providesTags failed: {m}")),
            };
            return match tags {
                Ok(tags) => {
                    self.tags = tags;
                    None
                }
                Err(message) => {
                    self.tags.clear();
                    Some(Event::Error { key: self.key.clone(), reason: ErrorReason::Hook, message })
                }
            };
        }
        let specs = &self.endpoint.provides_tags;
        if specs.is_empty() {
            return None;
        }
        let data = self.data.as_deref();
        self.tags = crate::tags::resolve(specs, self.arg.as_ref(), data, self.endpoint.default_select_id()).unwrap_or_default();
        None
    }

    /// Sends `retag`'s `error` event, if it gave one.
    pub fn report(&self, event: Option<Event>, out: &mut Vec<Output<S>>) {
        if let Some(event) = event {
            self.broadcast(out, event);
        }
    }

    pub fn has_query(&self) -> bool {
        self.hooks.query_fn || self.endpoint.query.is_some()
    }

    pub fn state(&self) -> EntryState {
        EntryState {
            key: self.key.to_string(),
            status: self.status,
            version: self.version,
            data: self.shown().map(|d| (**d).clone()).unwrap_or(Value::Null),
            error: self.error.clone(),
            stream: StreamInfo { state: self.stream_state, error: self.stream_error.clone() },
            optimistic: self.layers.len(),
        }
    }

    /// The event that brings a subscriber up to date: a snapshot when data exists, else the status.
    pub fn catch_up_event(&self) -> Event {
        match self.shown() {
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

    /// One `Deliver` per subscriber (the event moved into the last one).
    pub fn broadcast(&self, out: &mut Vec<Output<S>>, event: Event) {
        let n = self.subscribers.len();
        if n == 0 {
            return;
        }
        let mut event = Some(event);
        for (i, (_, sub)) in self.subscribers.iter().enumerate() {
            let ev = if i + 1 == n { event.take().expect("event") } else { event.clone().expect("event") };
            out.push(Output::Deliver { to: sub.clone(), event: ev });
        }
    }

    /// Turns an applied change into a new version and its event (E1): a patch, or a snapshot
    /// when the whole data changed.
    pub fn commit(&mut self, change: Change, out: &mut Vec<Output<S>>) {
        if !self.layers.is_empty() {
            // W3: the change went to the server data; the layers go back on above it.
            let dropped = self.rebase(change, |_| false, out);
            self.layers_gone.extend(dropped.mutations);
            return;
        }
        match change {
            Change::Unchanged => {}
            Change::Patch(ops) if ops.is_empty() => {}
            Change::Patch(patches) => {
                let from = self.version;
                self.version += 1;
                let event = Event::Patch { key: self.key.clone(), from, version: self.version, patches };
                self.broadcast(out, event);
            }
            Change::Replaced => {
                self.version += 1;
                let event = self.catch_up_event();
                self.broadcast(out, event);
            }
        }
    }

    /// The first data of this entry lifetime (L2): status fulfilled, a snapshot, waiters settled.
    /// The pre-load buffer (L4) is the caller's to flush.
    pub fn first_data(&mut self, data: Value, meta: Value, out: &mut Vec<Output<S>>) {
        self.data = Some(Arc::new(data));
        self.status = Status::Fulfilled;
        self.error = None;
        self.version += 1;
        let event = self.catch_up_event();
        self.broadcast(out, event);
        if !self.load_waiters.is_empty() {
            let loaded = Loaded { data: self.data.as_deref().cloned().unwrap_or(Value::Null), meta };
            out.push(Output::Settle { waiters: std::mem::take(&mut self.load_waiters), result: Ok(loaded) });
        }
    }

    /// L7 / close: the entry is gone. Waiters reject, subscribers get `removed`, and the driver
    /// closes the stream and resolves `cacheEntryRemoved`.
    pub fn finish(&mut self, out: &mut Vec<Output<S>>) {
        if !self.load_waiters.is_empty() {
            let result = Err(Error::CacheEntryRemoved(self.key.to_string()));
            out.push(Output::Settle { waiters: std::mem::take(&mut self.load_waiters), result });
        }
        let event = Event::Removed { key: self.key.clone() };
        self.broadcast(out, event);
        out.push(Output::Removed { key: self.key.clone(), entry: self.id });
    }
}

pub(crate) struct InFlight {
    pub version: u64,
    pub had_data: bool,
    pub count: usize,
}

/// An entry's messages waiting for, or out at, its `onMessage` hook.
#[derive(Default)]
pub(crate) struct HookState {
    pub queue: VecDeque<Value>,
    pub in_flight: Option<InFlight>,
    pub stale: usize,
}

impl HookState {
    pub fn offer(&mut self, message: Value) {
        self.queue.push_back(message);
    }

    pub fn is_busy(&self) -> bool {
        self.in_flight.is_some()
    }
}

