//! livecache-engine: the part of livecache that decides, with no IO. Cache keys (K1), config
//! (SPEC §2), update rules, RFC 6902 patches, events and counters, the message pipeline's pure
//! steps, and `Engine`: entries, versions and the lifecycle (L1–L10) as a state machine.
//! No tokio, sockets, threads, locks or clocks: the driver crate `livecache-core` owns the runtime and the transports and feeds this crate what happened.

pub mod adapter;
pub mod apply;
pub mod config;
pub mod engine;
pub mod entry;
pub mod error;
pub mod event;
mod fetch;
mod layer;
mod layers;
pub mod graphql;
pub mod headers;
pub mod host_update;
pub mod json;
pub mod key;
pub mod message;
mod messages;
pub mod mutation;
pub mod on_message;
mod optimistic;
pub mod patch;
mod pending_mutation;
pub mod plan;
mod position;
pub mod protocol;
mod refetch_policy;
mod removal;
pub mod request;
mod resume;
pub mod stats;
mod stream;
pub mod tags;
pub mod template;
mod value_builder;

pub use config::Config;
pub use engine::{Engine, Fetched, Input, LoadedNow};
pub use entry::{EntryState, StreamInfo};
pub use protocol::{EntryId, HookCall, HookShape, HostHooks, HostTags, Loaded, MessageBase, MutateOptions, MutationId, MutationRequest, Output, StreamTarget, SubscriberId, WaiterId};
pub use error::{Error, Result};
pub use event::{ErrorReason, Event, Status, StreamState};
pub use message::{Prepared, RawMessage};
pub use tags::Tag;
pub use on_message::{HookFailure, HookResult, MessageUpdate};
pub use patch::PatchOp;
pub use stats::Stats;
pub use refetch_policy::{PrefetchOptions, SubscribeOptions};
