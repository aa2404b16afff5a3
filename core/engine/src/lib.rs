//! livecache-engine: the part of livecache that decides, with no IO. Cache keys (K1), config
//! (SPEC §2), update rules, RFC 6902 patches, events and counters, and the message pipeline's
//! pure steps. No tokio, sockets, threads, locks or clocks: the driver crate `livecache-core`
//! owns the runtime and the transports and feeds this crate what happened.

pub mod adapter;
pub mod apply;
pub mod config;
pub mod error;
pub mod event;
pub mod json;
pub mod key;
pub mod message;
pub mod patch;
pub mod stats;
pub mod template;

pub use config::Config;
pub use error::{Error, Result};
pub use event::{ErrorReason, Event, Status, StreamState};
pub use message::RawMessage;
pub use patch::PatchOp;
pub use stats::Stats;
