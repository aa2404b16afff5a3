//! livecache-core: a query cache whose entries are kept live by streams, in the model of RTK
//! Query's `onCacheEntryAdded` lifecycle. See SPEC.md for the contract; rule ids (K1, L4, E3…)
//! in comments point there.
//!
//! ```no_run
//! use livecache_core::{Client, Config, Hooks};
//! let config = Config::from_value(&serde_json::json!({
//!     "baseUrl": "http://127.0.0.1:8080/",
//!     "endpoints": {"getMessages": {
//!         "query": "messages/{arg}",
//!         "stream": {"url": "ws://127.0.0.1:8080/", "filter": {"channel": "{arg}"}, "apply": "append"}
//!     }}
//! })).unwrap();
//! let client = Client::new(config, Hooks::new()).unwrap();
//! let sub = client.subscribe("getMessages", Some("redux".into()), |event| println!("{}", event.to_json())).unwrap();
//! # drop(sub);
//! ```

// The engine's modules, at the paths they always had.
pub use livecache_engine::{adapter, apply, config, entry, error, event, json, key, message, patch, stats, template};

mod backoff;
mod bounded;
pub mod client;
mod clock;
pub mod completion;
mod control;
mod dispatch;
mod driver;
pub mod event_tap;
pub mod hooks;
pub mod host_update;
pub mod http;
pub mod lifecycle;
mod mailbox;
pub mod mutate;
pub mod graphql_ws;
mod pipeline;
mod prepare_headers;
mod shared;
mod socket;
pub mod sse;
mod tls;
pub mod transport;
pub mod transports;
pub mod ws;

pub use client::{Client, ClientOptions, Clock, Delivery, HostUpdate, MutateOptions, PrefetchOptions, SubscribeOptions, Subscription};
pub use completion::Completion;
pub use config::Config;
pub use entry::{EntryState, Loaded};
pub use error::{Error, Result};
pub use event::{ErrorReason, Event, Status, StreamState};
pub use hooks::{EndpointHooks, Hooks, MessageBase, MessageBatch, MessageUpdate};
pub use mutate::{LayerRecipe, OptimisticLayer};
pub use lifecycle::Lifecycle;
pub use patch::PatchOp;
pub use stats::Stats;
pub use transport::RawMessage;

use std::sync::Arc;

/// The built-in HTTP query source.
pub(crate) fn default_query_source() -> Option<Arc<dyn transport::QuerySource>> {
    // Without a TLS/HTTP client (a broken system setup) `query` endpoints reject with FETCH_ERROR.
    http::HttpQuerySource::new().ok().map(|s| Arc::new(s) as Arc<dyn transport::QuerySource>)
}

/// The built-in stream sources: WebSocket, and SSE where `stream.transport` says so.
pub(crate) fn default_stream_source() -> Option<Arc<dyn transport::StreamSource>> {
    Some(Arc::new(transports::BuiltinStreamSource::default()))
}
