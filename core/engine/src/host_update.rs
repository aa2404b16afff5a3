//! Host updates (L9): `updateQueryData` (a recipe on a draft), `patchQueryData` (RFC 6902, all or
//! nothing) and `upsertQueryData`. Synchronous: when the call returns the engine holds the change;
//! its events follow. A failed update changes nothing and sends no `error` event.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::apply::{change_between, Change};
use crate::engine::Engine;
use crate::protocol::{EntryId, HostTags};
use crate::error::{Error, Result};
use crate::event::Status;
use crate::json::{self, MAX_DEPTH};
use crate::key::cache_key;
use crate::patch::{apply_patch, PatchOp};

/// What a host update did: the patches applied and the patches that undo them.
#[derive(Clone, Debug, PartialEq)]
pub struct UpdateResult {
    pub patches: Vec<PatchOp>,
    pub inverse_patches: Vec<PatchOp>,
}

/// A recipe's draft against the data it was given (computed with the engine untouched, since a
/// recipe is host code).
#[derive(Debug)]
pub struct Recipe {
    pub version: u64,
    pub draft: Value,
    change: Change,
    pub result: UpdateResult,
}

impl Recipe {
    /// Diffs `draft` against `base`, the data at `version`.
    pub fn new(base: &Value, version: u64, draft: Value) -> Result<Recipe> {
        if !json::within_depth(&draft, MAX_DEPTH) {
            return Err(Error::Patch(format!("the update would make the data deeper than {MAX_DEPTH} levels")));
        }
        let change = change_between(base, &draft);
        let inverse_patches = match change_between(&draft, base) {
            Change::Patch(ops) => ops,
            Change::Replaced => vec![PatchOp::Replace { path: String::new(), value: base.clone() }],
            Change::Unchanged => Vec::new(),
        };
        let patches = match &change {
            Change::Patch(ops) => ops.clone(),
            Change::Replaced => vec![PatchOp::Replace { path: String::new(), value: draft.clone() }],
            Change::Unchanged => Vec::new(),
        };
        Ok(Recipe { version, draft, change, result: UpdateResult { patches, inverse_patches } })
    }
}

impl<S: Clone> Engine<S> {
    /// The data a recipe runs on, and its version.
    pub fn host_base(&self, key: &str, id: Option<EntryId>) -> Result<(Arc<Value>, u64)> {
        let entry = self.find(key, id)?;
        let data = entry.data.clone().ok_or_else(|| Error::NotLoaded(key.to_owned()))?;
        Ok((data, entry.version))
    }

    fn find(&self, key: &str, id: Option<EntryId>) -> Result<&crate::entry::Entry<S>> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        self.entries
            .get(key)
            .filter(|e| id.is_none_or(|id| e.id == id))
            .map(|e| &**e)
            .ok_or_else(|| Error::NotFound(key.to_owned()))
    }

    /// Commits a recipe's draft. If the data moved while the recipe ran, its patch is applied to
    /// the current data instead, all or nothing.
    pub fn commit_recipe(&mut self, key: &str, id: Option<EntryId>, recipe: Recipe) -> Result<UpdateResult> {
        self.find(key, id)?;
        let entry = self.entries.get_mut(key).expect("found");
        if entry.version == recipe.version {
            if recipe.change != Change::Unchanged {
                entry.data = Some(Arc::new(recipe.draft));
                self.stats.host_updates += 1;
                entry.commit(recipe.change, &mut self.out);
            }
        } else {
            let data = entry.data.as_mut().ok_or_else(|| Error::NotLoaded(key.to_owned()))?;
            let applied = apply_patch(Arc::make_mut(data), &recipe.result.patches, MAX_DEPTH).map_err(|e| Error::Patch(e.to_string()))?;
            self.stats.host_updates += 1;
            let change = if applied.replaced_root { Change::Replaced } else { Change::Patch(applied.patches) };
            entry.commit(change, &mut self.out);
        }
        Ok(recipe.result)
    }

    /// `patchQueryData`: RFC 6902 operations, all or nothing.
    pub fn patch(&mut self, key: &str, id: Option<EntryId>, ops: &[PatchOp]) -> Result<UpdateResult> {
        self.find(key, id)?;
        let entry = self.entries.get_mut(key).expect("found");
        let data = entry.data.as_mut().ok_or_else(|| Error::NotLoaded(key.to_owned()))?;
        let applied = apply_patch(Arc::make_mut(data), ops, MAX_DEPTH).map_err(|e| Error::Patch(e.to_string()))?;
        self.stats.host_updates += 1;
        let change = if applied.replaced_root { Change::Replaced } else { Change::Patch(applied.patches.clone()) };
        entry.commit(change, &mut self.out);
        Ok(UpdateResult { patches: applied.patches, inverse_patches: applied.inverse })
    }

    /// `upsertQueryData`: sets the data, creating a fulfilled entry (with no subscriber, so L7
    /// applies) if absent.
    pub fn upsert(&mut self, now: Duration, endpoint: &str, arg: Option<Value>, data: Value) -> Result<()> {
        self.upsert_tagged(now, endpoint, arg, data, None)
    }

    /// `upsert` with the `providesTags` host hook's answer for `data` (W2). A hook that failed or
    /// answered a tag type not in `tagTypes` fails the call, and nothing changes.
    pub fn upsert_tagged(&mut self, now: Duration, endpoint: &str, arg: Option<Value>, data: Value, tags: Option<HostTags>) -> Result<()> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let ep = self.query_endpoint(endpoint)?.clone();
        if !json::within_depth(&data, MAX_DEPTH) {
            return Err(Error::Patch(format!("data nested deeper than {MAX_DEPTH} levels")));
        }
        if let Some(answer) = &tags {
            let checked = answer.as_ref().map_err(|m| format!("providesTags failed: {m}"));
            checked
                .and_then(|v| crate::tags::from_host(v, &self.config.tag_types).map_err(|m| format!("providesTags answered a bad tag {m}")))
                .map_err(Error::Patch)?;
        }
        let key: Arc<str> = cache_key(endpoint, arg.as_ref()).into();
        if !self.entries.contains_key(&*key) {
            self.create_entry(&ep, key.clone(), arg, Some(data))?;
            let entry = self.entries.get_mut(&*key).expect("created");
            entry.retag(tags, &self.config.tag_types);
            self.stats.host_updates += 1;
            self.schedule_removal(now, &key);
            return Ok(());
        }
        let entry = self.entries.get_mut(&*key).expect("entry");
        self.stats.host_updates += 1;
        let id = entry.id;
        // Checked above: retag gives no error event here.
        if entry.data.is_none() {
            entry.first_data(data, Value::Null, &mut self.out);
            entry.retag(tags, &self.config.tag_types);
            self.flush_buffer(&key, id);
        } else {
            entry.data = Some(Arc::new(data));
            entry.retag(tags, &self.config.tag_types);
            entry.status = Status::Fulfilled;
            entry.commit(Change::Replaced, &mut self.out);
        }
        Ok(())
    }
}
