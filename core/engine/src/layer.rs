//! One W3 optimistic layer: its message and what ends it (the rebase is in `layers`).

use std::time::Duration;

use serde_json::Value;

use crate::message::MessageFilter;
use crate::patch::Applied;
use crate::protocol::MutationId;

/// One pending optimistic layer.
pub struct Layer {
    pub mutation: MutationId,
    /// Already rendered; goes through the endpoint's apply rule on every rebase.
    pub message: Value,
    /// How the layer was applied to the visible data last (`None`: it changed nothing).
    pub applied: Option<Applied>,
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
