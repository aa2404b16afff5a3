//! One W3 optimistic layer: its body (a message or a host recipe's patch) and what ends it (the
//! rebase is in `layers`).

use std::time::Duration;

use serde_json::Value;

use crate::message::MessageFilter;
use crate::patch::{Applied, PatchOp};
use crate::protocol::MutationId;

/// What a layer puts on the server data, again on every rebase.
#[derive(Clone, Debug, PartialEq)]
pub enum LayerBody {
    /// `{endpoint, arg, message}`: already rendered; goes through the endpoint's apply rule.
    Message(Value),
    /// `{endpoint, arg, recipe}` from a host: the RFC 6902 operations its recipe made on the data
    /// it saw (host code runs once, in the host's call; only its patch is re-applied). An `add`
    /// that appended to an array is kept as an append (`/-`), so it stays last when the server
    /// appends too.
    Patch(Vec<PatchOp>),
}

/// One pending optimistic layer.
pub struct Layer {
    pub mutation: MutationId,
    pub body: LayerBody,
    /// How the layer was applied to the visible data last (`None`: it changed nothing).
    pub applied: Option<Applied>,
    /// The records `applied` touches, as path tokens (see `layers::commutes`), parsed once per
    /// application rather than once per server message; `None` when they cannot be told.
    pub reach: Option<Vec<Vec<String>>>,
    /// Set once the mutation succeeded: a stream message matching it confirms the layer.
    pub confirm: Option<MessageFilter>,
    /// Set once the mutation succeeded: a refetch numbered above this confirms the layer.
    pub refetch_after: Option<u64>,
    pub deadline: Option<Duration>,
    /// Confirmed by what is being applied now: dropped by the next rebase.
    pub confirmed: bool,
    /// `confirm` as the arg alone renders it (when it names no `{result…}`): an echo that
    /// arrives before the response confirms too.
    pub early: Option<MessageFilter>,
}
