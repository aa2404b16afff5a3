//! A mutation the engine has started and not yet settled (W1, W4).

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::config::{EndpointConfig, FilterValue};
use crate::error::Result;
use crate::protocol::EntryId;

/// A mutation between `mutate` and its settling.
pub(crate) struct Mutation {
    pub endpoint: Arc<EndpointConfig>,
    pub arg: Option<Value>,
    /// Set once the driver reported the outcome.
    pub outcome: Option<Result<Value>>,
    /// W4: the refetches its invalidation started, as `(key, entry, request)`; the mutation
    /// settles when each has ended (that request or a newer one answered, or the entry went).
    pub waiting: Vec<(Arc<str>, EntryId, u64)>,
    /// W3: the entries its optimistic layers are on; it settles when they have all left.
    pub layers: Vec<(Arc<str>, EntryId)>,
    pub confirm: Confirm,
}

/// W3: how a mutation's layers are confirmed, from the call or the endpoint's config.
pub(crate) struct Confirm {
    pub fields: Vec<(String, FilterValue)>,
    pub timeout: Duration,
}
