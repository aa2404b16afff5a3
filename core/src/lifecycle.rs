//! The handle `onCacheEntryAdded(arg, lifecycle)` receives (SPEC §6, L2, L3): bound to one
//! entry lifetime, like RTK Query's `cacheDataLoaded` / `cacheEntryRemoved` / `updateCachedData`.

use std::sync::{Arc, Weak};

use futures_util::future::{BoxFuture, FutureExt, Shared};
use serde_json::Value;
use tokio::sync::watch;

use crate::completion::Completion;
use crate::entry::{EntryState, Loaded};
use crate::error::{Error, Result};
use crate::host_update::{EntryHost, HostUpdate};

#[derive(Clone)]
pub struct Lifecycle {
    pub(crate) host: Weak<dyn EntryHost>,
    pub(crate) key: Arc<str>,
    pub(crate) entry_id: u64,
    pub(crate) loaded: Shared<BoxFuture<'static, Result<Loaded>>>,
    pub(crate) removed: watch::Receiver<bool>,
    /// The client's runtime, which drives the completions above for a host callback.
    pub(crate) runtime: tokio::runtime::Handle,
}

impl Lifecycle {
    pub fn key(&self) -> &str {
        &self.key
    }

    /// L2: resolves once with the first data and its `meta`; rejects with `CacheEntryRemoved`
    /// when the entry goes first. Failed fetches leave it pending.
    pub fn cache_data_loaded(&self) -> Completion<Loaded> {
        Completion::new(self.runtime.clone(), self.loaded.clone())
    }

    /// L3: resolves when the entry is removed.
    pub fn cache_entry_removed(&self) -> Completion<()> {
        let mut removed = self.removed.clone();
        Completion::new(self.runtime.clone(), async move {
            // A closed channel means the entry (and its sender) is gone: removed too.
            let _ = removed.wait_for(|r| *r).await;
            Ok(())
        })
    }

    /// True once the entry is removed.
    pub fn is_removed(&self) -> bool {
        *self.removed.borrow()
    }

    /// `updateCachedData(recipe)`: a host update of this entry lifetime (L9); `CacheEntryRemoved`
    /// once the entry is gone (with the client too).
    pub fn update_cached_data(&self, recipe: impl FnOnce(&mut Value) -> Option<Value>) -> Result<HostUpdate> {
        let removed = || Error::CacheEntryRemoved(self.key.to_string());
        let host = self.host.upgrade().ok_or_else(removed)?;
        host.update_entry(&self.key, Some(self.entry_id), Box::new(recipe)).map_err(|e| match e {
            Error::NotFound(_) | Error::Closed => removed(),
            e => e,
        })
    }

    /// `getCacheEntry()`: the entry's current state; once it is removed (with the client too),
    /// the uninitialized entry RTK Query gives, `{key, status: "uninitialized"}` (SPEC §6).
    pub fn get_cache_entry(&self) -> Result<EntryState> {
        let Some(host) = self.host.upgrade() else { return Ok(EntryState::uninitialized(&self.key)) };
        match host.entry_state(&self.key, Some(self.entry_id)) {
            Err(Error::NotFound(_) | Error::Closed) => Ok(EntryState::uninitialized(&self.key)),
            other => other,
        }
    }
}

pub(crate) fn shared_loaded(rx: tokio::sync::oneshot::Receiver<Result<Loaded>>, key: Arc<str>) -> Shared<BoxFuture<'static, Result<Loaded>>> {
    async move { rx.await.unwrap_or_else(|_| Err(Error::CacheEntryRemoved(key.to_string()))) }.boxed().shared()
}
