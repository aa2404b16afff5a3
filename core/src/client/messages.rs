//! Applying an entry's stream messages (SPEC §2 `apply`, §6 `onMessage`): a built-in rule under
//! the lock, a burst of them at once, or the host's hook with the lock released.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::future::FutureExt;
use serde_json::Value;

use super::{diff_change, Inner, State};
use crate::apply::{apply_rule, apply_rule_in_burst, finish_burst, Change};
use crate::dispatch::Dispatcher;
use crate::entry::Entry;
use crate::event::{ErrorReason, Event};
use crate::hooks::MessageUpdate;
use crate::json::{self, MAX_DEPTH};
use crate::patch::{apply_patch, PatchOp};
use crate::stats::Stats;

/// An endpoint's `onMessage` hook in the form the engine calls.
#[derive(Clone)]
enum MessageHook {
    One(crate::hooks::OnMessageFn),
    Many(crate::hooks::OnMessagesFn),
}

impl MessageHook {
    fn of(hooks: &crate::hooks::EndpointHooks) -> Option<MessageHook> {
        match (&hooks.on_messages, &hooks.on_message) {
            (Some(h), _) => Some(MessageHook::Many(h.clone())),
            (None, Some(h)) => Some(MessageHook::One(h.clone())),
            (None, None) => None,
        }
    }
}

/// Commits one `onMessage` outcome to the entry's current data (SPEC §6, E1).
fn commit_update(
    entry: &mut Entry,
    stats: &mut Stats,
    dispatcher: &Dispatcher,
    update: MessageUpdate,
) -> std::result::Result<(), (ErrorReason, String)> {
    let first = entry.data.is_none();
    let change = match update {
        MessageUpdate::Unchanged => Change::Unchanged,
        MessageUpdate::Data(new) => {
            if !json::within_depth(&new, MAX_DEPTH) {
                return Err((ErrorReason::TooDeep, format!("onMessage made the data deeper than {MAX_DEPTH} levels")));
            }
            match entry.data.as_deref() {
                None => {
                    entry.data = Some(Arc::new(new));
                    Change::Replaced
                }
                Some(old) => {
                    let change = diff_change(old, &new);
                    if change != Change::Unchanged {
                        entry.data = Some(Arc::new(new));
                    }
                    change
                }
            }
        }
        MessageUpdate::Ops(ops) => {
            let target = entry.data.get_or_insert_with(|| Arc::new(Value::Null));
            match apply_patch(Arc::make_mut(target), &ops, MAX_DEPTH) {
                Ok(applied) if applied.replaced_root || first => Change::Replaced,
                Ok(applied) => Change::Patch(applied.patches),
                Err(e) => {
                    if first {
                        entry.data = None;
                    }
                    let reason = if e.is_too_deep() { ErrorReason::TooDeep } else { ErrorReason::Apply };
                    return Err((reason, format!("onMessage patch: {e}")));
                }
            }
        }
    };
    stats.messages_applied += 1;
    if first {
        if let (Some(d), true) = (entry.data.take(), change != Change::Unchanged) {
            entry.first_data(Arc::unwrap_or_clone(d), Value::Null, dispatcher, stats);
        }
    } else {
        entry.commit(change, dispatcher, stats);
    }
    Ok(())
}

impl Inner {
    /// Applies one prepared message: a built-in rule under the lock, or the host's `onMessage`
    /// with the lock released (retried if the data moved meanwhile).
    pub(crate) async fn apply_message(self: &Arc<Self>, key: &Arc<str>, id: u64, message: Value) {
        let hook = {
            let mut guard = self.state.lock();
            let State { entries, stats, .. } = &mut *guard;
            let Some(entry) = entries.get_mut(&**key).filter(|e| e.id == id) else { return };
            match entry.stream_config.apply {
                Some(_) => {
                    self.apply_rule_once(entry, stats, message);
                    return;
                }
                None => match MessageHook::of(&entry.hooks) {
                    Some(h) => h,
                    None => {
                        drop(guard);
                        self.report_error(key, id, ErrorReason::Apply, "no apply rule or onMessage hook for this endpoint".into());
                        return;
                    }
                },
            }
        };
        self.apply_with_hook(key, id, hook, VecDeque::from([message])).await;
    }

    /// Applies several prepared messages in order: a batched `onMessage` hook takes them in one
    /// call (one host round trip for the burst); anything else goes message by message.
    pub(crate) async fn apply_messages(self: &Arc<Self>, key: &Arc<str>, id: u64, messages: Vec<Value>) {
        let hook = {
            let mut guard = self.state.lock();
            let State { entries, stats, .. } = &mut *guard;
            let Some(entry) = entries.get_mut(&**key).filter(|e| e.id == id) else { return };
            if entry.stream_config.apply.is_some() {
                return self.apply_rule_burst(entry, stats, messages);
            }
            match MessageHook::of(&entry.hooks) {
                Some(h @ MessageHook::Many(_)) => Some(h),
                _ => None,
            }
        };
        match hook {
            Some(hook) => self.apply_with_hook(key, id, hook, messages.into()).await,
            None => {
                for message in messages {
                    self.apply_message(key, id, message).await;
                }
            }
        }
    }

    /// A built-in rule over one message, under the lock.
    fn apply_rule_once(&self, entry: &mut Entry, stats: &mut Stats, message: Value) {
        let config = entry.stream_config.clone();
        let Some(rule) = config.apply.as_ref() else { return };
        let logged = (entry.refetch_in_flight && rule.is_idempotent()).then(|| message.clone());
        let first = entry.data.is_none();
        let data = entry.data.get_or_insert_with(|| Arc::new(Value::Null));
        match apply_rule(rule, entry.endpoint.entity_adapter.as_ref(), Arc::make_mut(data), message, MAX_DEPTH) {
            Ok(change) => {
                stats.messages_applied += 1;
                if let Some(m) = logged {
                    entry.reapply.push(m);
                }
                if first {
                    let data = entry.data.take().expect("data");
                    if change != Change::Unchanged {
                        entry.first_data(Arc::unwrap_or_clone(data), Value::Null, &self.dispatcher, stats);
                    }
                } else {
                    entry.commit(change, &self.dispatcher, stats);
                }
            }
            Err(m) => {
                if first {
                    entry.data = None;
                }
                // E3: an update that would make the data too deep has its own reason.
                stats.reject(m.reason);
                let event = Event::Error { key: entry.key.clone(), reason: m.reason, message: m.message };
                entry.broadcast(&self.dispatcher, stats, event);
            }
        }
    }

    /// A built-in rule over a burst of messages, under one lock: each message is applied and
    /// counted as one version, as `apply_message` would, and the patches of consecutive messages
    /// go out as one event (what E2 would merge them into anyway). Rejected messages get their
    /// error event in order. `maxLen` trims once per burst (see `apply_rule_in_burst`).
    fn apply_rule_burst(&self, entry: &mut Entry, stats: &mut Stats, messages: Vec<Value>) {
        let config = entry.stream_config.clone();
        let endpoint = entry.endpoint.clone();
        let Some(rule) = config.apply.as_ref() else { return };
        let adapter = endpoint.entity_adapter.as_ref();
        let mut from = entry.version;
        let mut ops: Vec<PatchOp> = Vec::new();
        let mut untrimmed = 0;
        // Sends the patches gathered so far; the data must be exact before anything is broadcast
        // (a collapse, E5, snapshots it).
        let flush = |entry: &mut Entry, stats: &mut Stats, ops: &mut Vec<PatchOp>, untrimmed: &mut usize, from: &mut u64| {
            if let Some(data) = entry.data.as_mut() {
                if *untrimmed > 0 {
                    finish_burst(Arc::make_mut(data), untrimmed);
                }
            }
            if !ops.is_empty() {
                let event = Event::Patch { key: entry.key.clone(), from: *from, version: entry.version, patches: std::mem::take(ops) };
                entry.broadcast(&self.dispatcher, stats, event);
            }
            *from = entry.version;
        };
        for message in messages {
            let logged = (entry.refetch_in_flight && rule.is_idempotent()).then(|| message.clone());
            let Some(data) = entry.data.as_mut() else {
                // The first data of the entry: the one-message path sends its snapshot.
                flush(entry, stats, &mut ops, &mut untrimmed, &mut from);
                self.apply_rule_once(entry, stats, message);
                from = entry.version;
                continue;
            };
            match apply_rule_in_burst(rule, adapter, Arc::make_mut(data), message, MAX_DEPTH, &mut untrimmed) {
                Ok(change) => {
                    stats.messages_applied += 1;
                    if let Some(m) = logged {
                        entry.reapply.push(m);
                    }
                    match change {
                        Change::Unchanged => {}
                        Change::Patch(p) if p.is_empty() => {}
                        Change::Patch(p) => {
                            entry.version += 1;
                            ops.extend(p);
                        }
                        Change::Replaced => {
                            // Only `replace` (and rules on a non-array) replace the root; nothing
                            // is left untrimmed by them.
                            let before = entry.version;
                            flush(entry, stats, &mut ops, &mut untrimmed, &mut from);
                            debug_assert_eq!(before, entry.version);
                            entry.commit(Change::Replaced, &self.dispatcher, stats);
                            from = entry.version;
                        }
                    }
                }
                Err(m) => {
                    flush(entry, stats, &mut ops, &mut untrimmed, &mut from);
                    stats.reject(m.reason);
                    let event = Event::Error { key: entry.key.clone(), reason: m.reason, message: m.message };
                    entry.broadcast(&self.dispatcher, stats, event);
                }
            }
        }
        flush(entry, stats, &mut ops, &mut untrimmed, &mut from);
    }

    /// Runs `onMessage` with the lock released and commits its outcomes in order, but only on
    /// the data the hook was given: if the data moved meanwhile (a host update, a refetch) the
    /// hook is called again for the same messages (SPEC §6).
    async fn apply_with_hook(self: &Arc<Self>, key: &Arc<str>, id: u64, hook: MessageHook, mut rest: VecDeque<Value>) {
        const ATTEMPTS: usize = 3;
        let mut stale = 0;
        while !rest.is_empty() {
            if stale == ATTEMPTS {
                stale = 0;
                rest.pop_front();
                self.report_error(key, id, ErrorReason::Apply, "the data kept changing while onMessage ran".into());
                continue;
            }
            let (had_data, version, current, arg) = {
                let st = self.state.lock();
                let Some(entry) = st.entries.get(&**key).filter(|e| e.id == id) else { return };
                let current = entry.data.clone().unwrap_or_else(|| Arc::new(Value::Null));
                (entry.data.is_some(), entry.version, current, entry.arg.clone())
            };
            let base = crate::hooks::MessageBase { entry_id: id, version };
            // A panic in the call itself or in its future is the hook's failure, not the pipeline's.
            let call = std::panic::catch_unwind(AssertUnwindSafe(|| {
                crate::hooks::with_message_base(base, || match &hook {
                    MessageHook::One(h) => h(current, rest[0].clone(), arg).map(|r| Ok(vec![r])).boxed(),
                    MessageHook::Many(h) => h(current, rest.iter().cloned().collect(), arg),
                })
            }));
            let called = match call {
                Ok(future) => AssertUnwindSafe(future).catch_unwind().await,
                Err(panic) => Err(panic),
            };
            let outcomes = match called {
                Ok(Ok(o)) if !o.is_empty() && o.len() <= rest.len() => o,
                Ok(Ok(o)) => {
                    rest.pop_front();
                    let m = format!("onMessage gave {} outcomes for {} messages", o.len(), rest.len() + 1);
                    self.report_error(key, id, ErrorReason::Hook, m);
                    continue;
                }
                // A whole call failed: each of its messages is reported (E3: one error each).
                failed => {
                    let message = match failed {
                        Ok(Err(m)) => format!("onMessage: {m}"),
                        _ => "onMessage panicked".to_owned(),
                    };
                    let n = if matches!(hook, MessageHook::One(_)) { 1 } else { rest.len() };
                    for _ in 0..n {
                        rest.pop_front();
                        self.report_error(key, id, ErrorReason::Hook, message.clone());
                    }
                    continue;
                }
            };
            let mut guard = self.state.lock();
            let State { entries, stats, .. } = &mut *guard;
            let Some(entry) = entries.get_mut(&**key).filter(|e| e.id == id) else { return };
            if entry.version != version || entry.data.is_some() != had_data {
                stale += 1;
                continue;
            }
            stale = 0;
            for outcome in outcomes {
                rest.pop_front();
                let update = match outcome {
                    Ok(u) => u,
                    Err(m) => {
                        stats.reject(ErrorReason::Hook);
                        let event = Event::Error { key: key.clone(), reason: ErrorReason::Hook, message: format!("onMessage: {m}") };
                        entry.broadcast(&self.dispatcher, stats, event);
                        continue;
                    }
                };
                if let Err((reason, m)) = commit_update(entry, stats, &self.dispatcher, update) {
                    stats.reject(reason);
                    let event = Event::Error { key: key.clone(), reason, message: m };
                    entry.broadcast(&self.dispatcher, stats, event);
                    // The outcomes after this one were computed on data the engine does not
                    // have: their messages are offered again.
                    break;
                }
            }
        }
    }
}
