//! A mutation the engine has started and not yet settled (W1, W4).

use std::sync::Arc;

use serde_json::Value;

use crate::config::EndpointConfig;
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
}
