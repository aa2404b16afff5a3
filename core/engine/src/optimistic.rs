//! W3 on the engine: a mutation's optimistic layers go on the entries they name when `mutate`
//! is called, are dropped when it fails, and once it succeeds wait for the server to confirm
//! them (a matching stream message, the first refetch that starts after the response, or
//! `confirmTimeoutMs`, after which they go with an `unconfirmed` error). The layers themselves,
//! and the rebase on every server change, are `layers`' business.

use std::cmp::Reverse;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::config::EndpointConfig;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::event::{ErrorReason, Event};
use crate::key::cache_key;
use crate::layer::LayerBody;
use crate::message::MessageFilter;
use crate::pending_mutation::Confirm;
use crate::protocol::{EntryId, MutateOptions, MutationId};

/// One layer to put on, rendered: the entry's endpoint and arg, and the message or patch.
pub(crate) struct LayerTarget {
    endpoint: String,
    arg: Option<Value>,
    body: LayerBody,
}

impl<S: Clone> Engine<S> {
    /// The layers of a `mutate` call and how they are confirmed; checked before anything is sent.
    pub(crate) fn layer_plan(&self, ep: &EndpointConfig, arg: Option<&Value>, options: &MutateOptions) -> Result<(Vec<LayerTarget>, Confirm)> {
        let bad = |m: String| Error::InvalidArgument(m);
        let targets = match &options.optimistic {
            Some(items) => items.iter().map(|item| self.layer_from_value(item)).collect::<Result<Vec<_>>>()?,
            None => ep
                .optimistic
                .layers
                .iter()
                .map(|t| {
                    Ok(LayerTarget {
                        endpoint: t.endpoint.clone(),
                        arg: t.arg.as_ref().map(|a| a.render(arg)).transpose().map_err(|m| bad(format!("optimistic: {m}")))?,
                        body: LayerBody::Message(t.message.render(arg).map_err(|m| bad(format!("optimistic: {m}")))?),
                    })
                })
                .collect::<Result<Vec<_>>>()?,
        };
        let fields = match &options.confirm {
            Some(c) => crate::config::parse_confirm(c, "confirm").map_err(|e| bad(e.to_string()))?,
            None => ep.optimistic.confirm.clone(),
        };
        let ms = options.confirm_timeout_ms.unwrap_or(ep.optimistic.confirm_timeout_ms);
        Ok((targets, Confirm { fields, timeout: Duration::from_millis(ms) }))
    }

    /// A host's `{endpoint, arg?, message}` (a query endpoint whose apply rule takes the
    /// message), or `{endpoint, arg?, patch}` (RFC 6902 operations on the entry's visible data:
    /// what a host recipe made, for any query endpoint).
    fn layer_from_value(&self, item: &Value) -> Result<LayerTarget> {
        let bad = |m: String| Error::InvalidArgument(format!("optimistic: {m}"));
        let Value::Object(o) = item else { return Err(bad(format!("a layer is {{endpoint, arg, message}} or {{endpoint, arg, patch}}, found {item}"))) };
        if let Some(k) = o.keys().find(|k| !["endpoint", "arg", "message", "patch"].contains(&k.as_str())) {
            return Err(bad(format!("a layer has no key {k:?} (expected endpoint, arg, and message or patch)")));
        }
        let endpoint = o.get("endpoint").and_then(Value::as_str).ok_or_else(|| bad("a layer needs a string `endpoint`".into()))?;
        let target = self.query_endpoint(endpoint)?;
        let body = match (o.get("message"), o.get("patch")) {
            (Some(_), Some(_)) => return Err(bad("give a layer a `message` or a `patch`, not both".into())),
            (None, None) => return Err(bad("a layer needs a `message` (or a recipe's `patch`)".into())),
            (None, Some(patch)) => LayerBody::Patch(crate::patch::parse_patch(patch).map_err(|e| bad(format!("the layer's patch: {e}")))?),
            (Some(message), None) => {
                if target.stream.as_ref().is_none_or(|s| s.apply.is_none()) {
                    return Err(bad(format!("endpoint {endpoint:?} has no stream.apply rule for the layer's message")));
                }
                LayerBody::Message(message.clone())
            }
        };
        Ok(LayerTarget { endpoint: endpoint.to_owned(), arg: o.get("arg").cloned(), body })
    }

    /// W3: the data a host recipe for a layer on `(endpoint, arg)` runs on: the entry's visible
    /// data (server data and the layers pending), `None` when there is no entry or no data yet
    /// (the layer is then skipped, as a message layer is).
    pub fn layer_base(&self, endpoint: &str, arg: Option<&Value>) -> Result<Option<Arc<Value>>> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        self.query_endpoint(endpoint)?;
        let key = cache_key(endpoint, arg);
        Ok(self.entries.get(key.as_str()).and_then(|e| e.shown().cloned()))
    }

    /// Puts mutation `id`'s layers on their entries (an entry that does not exist or has no data
    /// yet gets none, as `updateQueryData` does nothing there). All or nothing: a layer that does
    /// not apply takes the ones put on before it off again and fails the call.
    pub(crate) fn put_layers(&mut self, id: MutationId, targets: Vec<LayerTarget>, confirm: &Confirm, arg: Option<&Value>) -> Result<Vec<(Arc<str>, EntryId)>> {
        let mut on: Vec<(Arc<str>, EntryId)> = Vec::new();
        // Without `{result…}` the confirmation is known now, so an echo may beat the response.
        let early = if confirm.fields.is_empty() { None } else { MessageFilter::from_fields_in(&confirm.fields, arg, None).ok() };
        for t in targets {
            let key: Arc<str> = cache_key(&t.endpoint, t.arg.as_ref()).into();
            let Some(entry) = self.entries.get_mut(&*key).filter(|e| e.data.is_some()) else { continue };
            if let Err(message) = entry.add_layer(id, t.body, early.clone(), &mut self.out) {
                for (k, e) in &on {
                    if let Some(entry) = self.entries.get_mut(&**k).filter(|x| x.id == *e) {
                        entry.rebase(crate::apply::Change::Unchanged, |l| l.mutation == id, &mut self.out);
                    }
                }
                return Err(Error::InvalidArgument(format!("optimistic: the layer for {key} does not apply: {message}")));
            }
            let place = (key.clone(), entry.id);
            if !on.contains(&place) {
                on.push(place.clone());
            }
            if !self.layered.contains(&place) {
                self.layered.push(place);
            }
        }
        Ok(on)
    }

    /// The mutation answered: on success its layers wait for confirmation; on failure they go.
    pub(crate) fn layers_answered(&mut self, now: Duration, id: MutationId, result: &Result<Value>) {
        let Some(m) = self.mutations.get(&id) else { return };
        if m.layers.is_empty() {
            return;
        }
        let (places, arg) = (m.layers.clone(), m.arg.clone());
        let Ok(data) = result else {
            for (key, entry) in places {
                self.drop_layers(&key, entry, id, None);
            }
            return;
        };
        let confirm = MessageFilter::from_fields_in(&m.confirm.fields, arg.as_ref(), Some(data));
        let deadline = now.saturating_add(m.confirm.timeout);
        let confirm = match confirm {
            Ok(c) => c,
            Err(e) => {
                let message = format!("confirm could not be rendered for the mutation's result: {e}");
                for (key, entry) in places {
                    self.drop_layers(&key, entry, id, Some(message.clone()));
                }
                return;
            }
        };
        for (key, entry) in &places {
            let Some(e) = self.entries.get_mut(&**key).filter(|e| e.id == *entry) else { continue };
            let after = e.latest_request;
            for layer in e.layers.iter_mut().filter(|l| l.mutation == id) {
                layer.confirm = (!confirm.is_empty()).then(|| confirm.clone());
                layer.refetch_after = Some(after);
                layer.deadline = Some(deadline);
            }
        }
        self.layer_timers.push(Reverse((deadline, id)));
        self.arm();
    }

    /// Takes mutation `id`'s layers off one entry; `unconfirmed` names why, as an error event.
    fn drop_layers(&mut self, key: &str, entry: EntryId, id: MutationId, unconfirmed: Option<String>) {
        let Some(e) = self.entries.get_mut(key).filter(|e| e.id == entry) else { return };
        let dropped = e.rebase(crate::apply::Change::Unchanged, |l| l.mutation == id, &mut self.out);
        e.layers_gone.extend(dropped.mutations);
        if let Some(message) = unconfirmed {
            let event = Event::Error { key: e.key.clone(), reason: ErrorReason::Unconfirmed, message };
            e.broadcast(&mut self.out, event);
        }
    }

    /// Time is `now`: layers of successful mutations still unconfirmed past their deadline go.
    pub(crate) fn expire_layers(&mut self, now: Duration) {
        while let Some(Reverse((at, id))) = self.layer_timers.peek().copied() {
            if at > now {
                break;
            }
            self.layer_timers.pop();
            let Some(m) = self.mutations.get(&id) else { continue };
            let timeout = m.confirm.timeout;
            for (key, entry) in m.layers.clone() {
                let message = format!("the server did not confirm the optimistic update within {} ms; it was dropped", timeout.as_millis());
                self.drop_layers(&key, entry, id, Some(message));
            }
        }
    }

    /// The next layer deadline, for the timer.
    pub(crate) fn next_layer_deadline(&self) -> Option<Duration> {
        self.layer_timers.peek().map(|Reverse((at, _))| *at)
    }

    /// After each call: mutations whose layers have all left an entry may settle (W4).
    pub(crate) fn settle_layers(&mut self) {
        if self.layered.is_empty() {
            return;
        }
        let mut settle = Vec::new();
        let mut still = Vec::with_capacity(self.layered.len());
        for (key, entry) in std::mem::take(&mut self.layered) {
            let Some(e) = self.entries.get_mut(&*key).filter(|e| e.id == entry) else { continue };
            for id in std::mem::take(&mut e.layers_gone) {
                if e.layers.iter().any(|l| l.mutation == id) {
                    continue;
                }
                if let Some(m) = self.mutations.get_mut(&id) {
                    m.layers.retain(|p| !(p.0 == key && p.1 == entry));
                    settle.push(id);
                }
            }
            if !e.layers.is_empty() {
                still.push((key, entry));
            }
        }
        self.layered = still;
        settle.sort();
        settle.dedup();
        for id in settle {
            self.try_settle(id);
        }
    }

    /// The entry went: its layers went with it.
    pub(crate) fn layers_gone_with(&mut self, key: &str, entry: EntryId) {
        let mut settle = Vec::new();
        for (id, m) in self.mutations.iter_mut() {
            let before = m.layers.len();
            m.layers.retain(|p| !(&*p.0 == key && p.1 == entry));
            if m.layers.len() != before {
                settle.push(*id);
            }
        }
        self.layered.retain(|p| !(&*p.0 == key && p.1 == entry));
        settle.sort();
        for id in settle {
            self.try_settle(id);
        }
    }
}
