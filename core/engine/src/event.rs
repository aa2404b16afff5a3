//! The one event shape (SPEC §5). Every binding adapts this enum; its serde form is the JSON
//! that C callbacks and `livecache watch` print.

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use crate::patch::PatchOp;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Fulfilled,
    Rejected,
    /// An entry that is not (or no longer) in the cache: what a lifecycle's `getCacheEntry()`
    /// gives after the removal (SPEC §6). Never the status of a live entry.
    Uninitialized,
}

/// Stream state (L8). An endpoint without `stream.url` stays `Closed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamState {
    Connecting,
    Open,
    Reconnecting,
    Closed,
}

/// Why a message or update was refused (E3). Each has a counter in `stats`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorReason {
    /// Not valid JSON text (or not valid UTF-8).
    InvalidJson,
    /// A binary WebSocket frame.
    BinaryFrame,
    /// Over `maxMessageBytes`.
    TooLarge,
    /// Nested deeper than 128 levels, or an update that would make the data so.
    TooDeep,
    /// NaN or ±Infinity.
    NotFinite,
    /// Failed the endpoint's JSON Schema.
    Schema,
    /// The `apply` rule could not apply the message (patch failed, wrong data shape, missing id).
    Apply,
    /// A host hook (`onMessage`, `transformResponse`, `onCacheEntryAdded`) raised.
    Hook,
    /// The WebSocket protocol itself failed (the driver reconnects and the engine resyncs).
    Protocol,
    /// T5: a GraphQL result with `errors`, or an `error` message for the operation.
    Graphql,
    /// W3: an optimistic layer no longer applies to the server data and was dropped.
    OptimisticConflict,
    /// W3: the server did not confirm an optimistic layer within `confirmTimeoutMs` (or its
    /// `confirm` template could not be rendered); it was dropped.
    Unconfirmed,
}

impl ErrorReason {
    /// The reasons a message is refused for (each a `messagesRejected` counter); the W3 layer
    /// reasons are not among them.
    pub const ALL: [ErrorReason; 10] = [
        ErrorReason::InvalidJson,
        ErrorReason::BinaryFrame,
        ErrorReason::TooLarge,
        ErrorReason::TooDeep,
        ErrorReason::NotFinite,
        ErrorReason::Schema,
        ErrorReason::Apply,
        ErrorReason::Hook,
        ErrorReason::Protocol,
        ErrorReason::Graphql,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorReason::InvalidJson => "invalid_json",
            ErrorReason::BinaryFrame => "binary_frame",
            ErrorReason::TooLarge => "too_large",
            ErrorReason::TooDeep => "too_deep",
            ErrorReason::NotFinite => "not_finite",
            ErrorReason::Schema => "schema",
            ErrorReason::Apply => "apply",
            ErrorReason::Hook => "hook",
            ErrorReason::Protocol => "protocol",
            ErrorReason::Graphql => "graphql",
            ErrorReason::OptimisticConflict => "optimistic_conflict",
            ErrorReason::Unconfirmed => "unconfirmed",
        }
    }
}

/// One event to one subscriber (SPEC §5).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Event {
    Snapshot {
        key: Arc<str>,
        version: u64,
        status: Status,
        data: Value,
    },
    Patch {
        key: Arc<str>,
        from: u64,
        version: u64,
        patches: Vec<PatchOp>,
    },
    Status {
        key: Arc<str>,
        status: Status,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<Value>,
    },
    Stream {
        key: Arc<str>,
        state: StreamState,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    Error {
        key: Arc<str>,
        reason: ErrorReason,
        message: String,
    },
    Removed {
        key: Arc<str>,
    },
}

impl Event {
    /// The key, shared (no copy).
    pub fn key_arc(&self) -> &Arc<str> {
        match self {
            Event::Snapshot { key, .. }
            | Event::Patch { key, .. }
            | Event::Status { key, .. }
            | Event::Stream { key, .. }
            | Event::Error { key, .. }
            | Event::Removed { key } => key,
        }
    }

    pub fn key(&self) -> &str {
        self.key_arc()
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Event::Snapshot { .. } => "snapshot",
            Event::Patch { .. } => "patch",
            Event::Status { .. } => "status",
            Event::Stream { .. } => "stream",
            Event::Error { .. } => "error",
            Event::Removed { .. } => "removed",
        }
    }

    /// Compact JSON text, as C callbacks and `livecache watch` receive it.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("events always serialise")
    }
}
