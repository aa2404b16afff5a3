//! W3 optimistic layers on one entry. While layers are pending the entry keeps two values: its
//! server data (`data`, what every server change applies to) and what subscribers see
//! (`visible`: the server data with the layers applied in mutation order). A server change is
//! carried over to `visible` by taking the layers off (each layer's recorded undo), applying the
//! change, and putting the layers back (a message through the endpoint's apply rule, a host
//! recipe's patch as it is) on the new data, so the
//! cost is the layers' size plus the change, never the document's. The event is the patch from
//! the old visible data to the new one (E1 holds for the visible data); a layer confirmed in the
//! same step is simply not put back, so a confirmed item never disappears and comes back.

use std::sync::Arc;

use serde_json::Value;

use crate::apply::Change;
use crate::entry::Entry;
use crate::event::{ErrorReason, Event};
use crate::json::MAX_DEPTH;
use crate::message::MessageFilter;
use crate::patch::{apply_patch, Applied, PatchOp};
use crate::plan::{plan_rule, Planned};
use crate::layer::{Layer, LayerBody};
use crate::protocol::{MutationId, Output};

/// Why layers left (for the caller's bookkeeping of its mutations).
pub(crate) struct Dropped {
    pub mutations: Vec<MutationId>,
}

impl<S: Clone> Entry<S> {
    /// What subscribers see: the visible data while layers are pending, else the data.
    pub fn shown(&self) -> Option<&Arc<Value>> {
        self.visible.as_ref().or(self.data.as_ref())
    }

    /// W3: puts `body` on as a new layer above the others. `Err` when it does not apply
    /// (nothing changed; the caller reports it).
    pub fn add_layer(&mut self, mutation: MutationId, body: LayerBody, early: Option<MessageFilter>, out: &mut Vec<Output<S>>) -> Result<(), String> {
        let rule = self.stream_config.apply.clone();
        if rule.is_none() && matches!(body, LayerBody::Message(_)) {
            return Err(format!("endpoint {:?} has no apply rule for an optimistic message", self.endpoint.name));
        }
        let data = self.data.clone().ok_or_else(|| format!("cache entry {} has no data yet", self.key))?;
        // The one copy of the document a layer costs: when the first layer goes on.
        let visible = self.visible.get_or_insert_with(|| Arc::new((*data).clone()));
        let body = match body {
            LayerBody::Patch(ops) => LayerBody::Patch(keep_appends(visible, ops)),
            message => message,
        };
        let applied = match apply_layer(rule.as_ref(), self.endpoint.entity_adapter.as_ref(), Arc::make_mut(visible), &body) {
            Ok(a) => a,
            Err(e) => {
                if self.layers.is_empty() {
                    self.visible = None;
                }
                return Err(e);
            }
        };
        let (ops, root) = applied.as_ref().map_or((Vec::new(), false), |a| (a.patches.clone(), a.replaced_root));
        let reach = reach(applied.as_ref(), self.endpoint.entity_adapter.is_some());
        self.layers.push(Layer { mutation, body, applied, reach, confirm: None, refetch_after: None, deadline: None, confirmed: false, early });
        self.publish(ops, root, out);
        Ok(())
    }

    /// Carries a server change (already applied to `data`) over to the visible data, dropping
    /// the layers marked `confirmed` or matched by `drop`. Layers that no longer apply are
    /// dropped with an `optimistic_conflict` error. Returns the mutations whose layers left.
    pub fn rebase(&mut self, change: Change, drop: impl Fn(&Layer) -> bool, out: &mut Vec<Output<S>>) -> Dropped {
        let mut dropped = Dropped { mutations: Vec::new() };
        if matches!(change, Change::Unchanged) && !self.layers.iter().any(|l| l.confirmed || drop(l)) {
            return dropped;
        }
        let Some(visible) = self.visible.as_mut() else { return dropped };
        let rule = self.stream_config.apply.clone();
        let v = Arc::make_mut(visible);
        if let (Change::Patch(p), Some(r)) = (&change, rule.as_ref()) {
            let leaving = self.layers.iter().any(|l| l.confirmed || drop(l));
            if !leaving && commutes(r, self.endpoint.entity_adapter.as_ref(), &self.layers, p, v) {
                // The change touches nothing the layers touch or read: it applies to the visible
                // data as it is, and the layers stay as they were applied.
                if let Ok(a) = apply_patch(v, p, usize::MAX) {
                    self.publish(a.patches, a.replaced_root, out);
                    return dropped;
                }
            }
        }
        let mut ops: Vec<PatchOp> = Vec::new();
        let mut root = false;
        // Off, newest first: each undo applies to exactly the value its layer left.
        let mut exact = true;
        for layer in self.layers.iter().rev() {
            if let Some(a) = &layer.applied {
                match a.undo(v, usize::MAX) {
                    Ok(u) => {
                        root |= u.replaced_root;
                        ops.extend(u.patches);
                    }
                    Err(_) => exact = false,
                }
            }
        }
        let server = self.data.as_ref().expect("an entry with layers has data");
        match change {
            Change::Unchanged => {}
            Change::Patch(p) if exact => match apply_patch(v, &p, usize::MAX) {
                Ok(a) => ops.extend(a.patches),
                Err(_) => exact = false,
            },
            Change::Patch(_) => {}
            Change::Replaced => exact = false,
        }
        if !exact {
            // A whole new document (a refetch, an upsert): start the visible data from it.
            *v = (**server).clone();
            root = true;
        }
        let mut conflicts = Vec::new();
        let adapter = self.endpoint.entity_adapter.clone();
        let mut kept = Vec::with_capacity(self.layers.len());
        for mut layer in std::mem::take(&mut self.layers) {
            if layer.confirmed || drop(&layer) {
                dropped.mutations.push(layer.mutation);
                continue;
            }
            match apply_layer(rule.as_ref(), adapter.as_ref(), v, &layer.body) {
                Ok(applied) => {
                    if let Some(a) = &applied {
                        root |= a.replaced_root;
                        ops.extend(a.patches.iter().cloned());
                    }
                    layer.reach = reach(applied.as_ref(), adapter.is_some());
                    layer.applied = applied;
                    kept.push(layer);
                }
                Err(e) => {
                    dropped.mutations.push(layer.mutation);
                    conflicts.push(e);
                }
            }
        }
        self.layers = kept;
        if self.layers.is_empty() {
            self.visible = None;
        }
        self.publish(ops, root, out);
        for message in conflicts {
            let event = Event::Error {
                key: self.key.clone(),
                reason: ErrorReason::OptimisticConflict,
                message: format!("an optimistic update no longer applies to the server data and was dropped: {message}"),
            };
            self.broadcast(out, event);
        }
        dropped
    }

    /// One event for a change of the visible data: a patch, or a snapshot when the root moved.
    fn publish(&mut self, ops: Vec<PatchOp>, root: bool, out: &mut Vec<Output<S>>) {
        if root {
            self.version += 1;
            let event = self.catch_up_event();
            self.broadcast(out, event);
        } else if !ops.is_empty() {
            let from = self.version;
            self.version += 1;
            let event = Event::Patch { key: self.key.clone(), from, version: self.version, patches: ops };
            self.broadcast(out, event);
        }
    }

    /// W3: stream messages about to apply confirm the successful mutations' layers they match.
    pub fn confirm_by_message(&mut self, message: &Value) {
        for layer in &mut self.layers {
            // Before the response, `early` (the arg's part of `confirm`) stands in: the server
            // data then holds the write already.
            let filter = layer.confirm.as_ref().or(layer.early.as_ref());
            if filter.is_some_and(|c| c.matches(message)) {
                layer.confirmed = true;
            }
        }
    }

    /// W3: the response to request `request` is about to apply: layers whose mutation answered
    /// before that request started are in it.
    pub fn confirm_by_refetch(&mut self, request: u64) {
        for layer in &mut self.layers {
            if layer.refetch_after.is_some_and(|after| request > after) {
                layer.confirmed = true;
            }
        }
    }
}

/// Applies a layer with `apply_patch`, which records its undo: a message through the rule, a
/// recipe's patch as it is.
fn apply_layer(
    rule: Option<&crate::config::ApplyRule>,
    adapter: Option<&crate::config::EntityAdapterConfig>,
    v: &mut Value,
    body: &LayerBody,
) -> Result<Option<Applied>, String> {
    let ops = match body {
        LayerBody::Patch(ops) if ops.is_empty() => return Ok(None),
        LayerBody::Patch(ops) => return apply_patch(v, ops, MAX_DEPTH).map(Some).map_err(|e| e.to_string()),
        LayerBody::Message(message) => {
            let rule = rule.ok_or("the endpoint has no apply rule for an optimistic message")?;
            match plan_rule(rule, adapter, v, message).map_err(|e| e.message)? {
                Planned::Unchanged => return Ok(None),
                Planned::Ops(ops) => ops,
                Planned::Root(value) => vec![PatchOp::Replace { path: String::new(), value }],
            }
        }
    };
    apply_patch(v, &ops, MAX_DEPTH).map(Some).map_err(|e| e.to_string())
}

/// A recipe's `add` at the end of an array (index = its length, counting the adds before it
/// there) becomes an append (`/-`): re-applied over server data that grew, the item stays last,
/// as the recipe put it. An array any other op of the patch touches is left as it is.
fn keep_appends(v: &Value, mut ops: Vec<PatchOp>) -> Vec<PatchOp> {
    use std::collections::HashMap;
    let split = |path: &str| path.rfind('/').map(|i| (path[..i].to_owned(), path[i + 1..].to_owned()));
    let mut touched: HashMap<String, bool> = HashMap::new(); // array path -> only appends so far
    let mut appended: HashMap<String, usize> = HashMap::new();
    for op in &ops {
        let path = match op {
            PatchOp::Add { path, .. } | PatchOp::Remove { path } | PatchOp::Replace { path, .. } => path,
            _ => return ops, // move/copy/test: positions are the recipe's own business
        };
        let Some((parent, last)) = split(path) else { continue };
        let Some(Value::Array(items)) = v.pointer(&parent) else { continue };
        let n = appended.entry(parent.clone()).or_insert(0);
        let append = matches!(op, PatchOp::Add { .. }) && last.parse::<usize>().is_ok_and(|i| i == items.len() + *n);
        *n += usize::from(append);
        let only = touched.entry(parent).or_insert(true);
        *only &= append;
    }
    for op in &mut ops {
        if let PatchOp::Add { path, .. } = op {
            if let Some((parent, _)) = split(path) {
                if touched.get(&parent) == Some(&true) {
                    *path = format!("{parent}/-");
                }
            }
        }
    }
    ops
}

/// Whether the server change `p` can skip the rebase: the layers' rule plans from what their
/// own ops touch (append, upsert and remove, without a sorted entity adapter, whose positions
/// depend on other entities), and no op of `p` touches, contains or shares an array with an op
/// of a layer (an array index moves when its array changes). Then taking the layers off, applying
/// `p` and putting them back gives the same layers and the same data as applying `p` on top.
fn commutes(
    rule: &crate::config::ApplyRule,
    adapter: Option<&crate::config::EntityAdapterConfig>,
    layers: &[Layer],
    p: &[PatchOp],
    v: &Value,
) -> bool {
    use crate::config::ApplyRule;
    let local = matches!(rule, ApplyRule::Append { .. } | ApplyRule::Upsert { .. } | ApplyRule::Remove { .. });
    // A layer that changed nothing still read the data to find that out: it has no ops to
    // compare with, so it is rebased.
    // A recipe's patch is positional (array indexes): it is always rebased.
    let recipes = layers.iter().any(|l| matches!(l.body, LayerBody::Patch(_)));
    if !local || recipes || adapter.is_some_and(|a| a.sort_by.is_some()) || layers.iter().any(|l| l.applied.is_none()) {
        return false;
    }
    let Some(theirs) = op_paths(p.iter()) else { return false };
    let mut mine = layers.iter().map(|l| l.reach.as_deref());
    mine.all(|reach| reach.is_some_and(|r| theirs.iter().all(|a| r.iter().all(|b| apart(a, b, v)))))
}

/// The path tokens of each op (add, remove and replace only: `None` otherwise).
fn op_paths<'p>(ops: impl Iterator<Item = &'p PatchOp>) -> Option<Vec<Vec<String>>> {
    ops.map(|op| match op {
        PatchOp::Add { path, .. } | PatchOp::Remove { path } | PatchOp::Replace { path, .. } => {
            crate::patch::parse_pointer(path).ok().map(|t| t.into_iter().map(|c| c.into_owned()).collect())
        }
        _ => None,
    })
    .collect()
}

/// What a layer's ops reach, for `commutes`: a layer reads the whole record its message is about
/// (an upsert compares every field of the message), so its ops stand for their record:
/// `/entities/<id>` in an adapter state, `/<i>` in an array.
fn reach(applied: Option<&Applied>, adapter: bool) -> Option<Vec<Vec<String>>> {
    let record = if adapter { 2 } else { 1 };
    let mut paths = op_paths(applied?.patches.iter())?;
    for path in &mut paths {
        path.truncate(record);
    }
    Some(paths)
}

/// Two op paths that neither contain each other nor meet inside an array of `v`.
fn apart(a: &[String], b: &[String], v: &Value) -> bool {
    let common = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    if common == a.len() || common == b.len() {
        return false;
    }
    let mut at = v;
    for token in &a[..common] {
        match at.get(token.as_str()) {
            Some(next) => at = next,
            None => return false,
        }
    }
    at.is_object()
}
