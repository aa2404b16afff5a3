//! What a host update returns (L9), and the seam through which it and a lifecycle reach their
//! entry again: `undo()`, `updateCachedData`, `getCacheEntry` hold a weak `EntryHost`, so they
//! fail with `Closed` once the client is gone instead of keeping it alive.

use std::sync::{Arc, Weak};

use serde_json::Value;

use crate::entry::EntryState;
use crate::error::{Error, Result};
use crate::patch::PatchOp;

/// A recipe run on a draft of an entry's data: mutate it, or return the new data.
pub(crate) type BoxedRecipe<'a> = Box<dyn FnOnce(&mut Value) -> Option<Value> + 'a>;

/// The client side a host update, a lifecycle or an undo goes back to.
pub(crate) trait EntryHost: Send + Sync {
    fn patch_entry(&self, key: &Arc<str>, ops: &[PatchOp]) -> Result<HostUpdate>;
    fn update_entry(&self, key: &Arc<str>, id: Option<u64>, recipe: BoxedRecipe<'_>) -> Result<HostUpdate>;
    fn entry_state(&self, key: &str, id: Option<u64>) -> Result<EntryState>;
}

/// What a host update did (L9): the patches applied and the patches that undo them.
#[derive(Clone)]
pub struct HostUpdate {
    pub patches: Vec<PatchOp>,
    pub inverse_patches: Vec<PatchOp>,
    target: Option<(Weak<dyn EntryHost>, Arc<str>)>,
}

impl std::fmt::Debug for HostUpdate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostUpdate").field("patches", &self.patches).field("inverse_patches", &self.inverse_patches).finish()
    }
}

impl HostUpdate {
    pub(crate) fn new(result: livecache_engine::host_update::UpdateResult, host: Weak<dyn EntryHost>, key: Arc<str>) -> HostUpdate {
        HostUpdate { patches: result.patches, inverse_patches: result.inverse_patches, target: Some((host, key)) }
    }

    /// Applies `inverse_patches` to the same entry, as a new host update.
    pub fn undo(&self) -> Result<HostUpdate> {
        let (host, key) = self.target.as_ref().ok_or_else(|| Error::InvalidArgument("nothing to undo".into()))?;
        let host = host.upgrade().ok_or(Error::Closed)?;
        host.patch_entry(key, &self.inverse_patches)
    }
}
