//! Applying an entry's stream messages (SPEC §2 `apply`, §6 `onMessage`, L4, E2, E3): built-in
//! rules apply a burst at once, the host's hook gets the queued messages in one call, and
//! messages that arrive before the data wait in a bounded buffer.

use std::sync::Arc;

use serde_json::Value;

use crate::apply::{apply_rule, apply_rule_in_burst, finish_burst, Change};
use crate::engine::Engine;
use crate::protocol::Output;
use crate::entry::Entry;
use crate::protocol::EntryId;
use crate::event::{ErrorReason, Event};
use crate::json::MAX_DEPTH;
use crate::message::Prepared;
use crate::on_message::{HookResult, HookStep};
use crate::protocol::MessageBase;
use crate::position::Admit;
use crate::resume::Behind;
use crate::patch::PatchOp;
use crate::stats::Stats;

impl<S: Clone> Engine<S> {
    /// Messages of one entry that went through parse, schema and filter, in arrival order
    /// (`batch` is drained, so the driver can reuse it). Rejected ones are `error` events in
    /// their place (E3); a run of messages under a built-in rule is one burst: each message one
    /// version, consecutive patches one event (what E2 merges them into anyway).
    pub fn messages(&mut self, key: &str, id: EntryId, batch: &mut Vec<Prepared>) {
        let Some(entry) = self.entries.get_mut(key).filter(|e| e.id == id) else {
            batch.clear();
            return;
        };
        let entry = &mut **entry;
        let mut run: Vec<Value> = Vec::new();
        let mut behind = None;
        for prepared in batch.drain(..) {
            match prepared {
                Prepared::Message(m) if entry.messages_ready => {
                    if entry.position.is_none() {
                        run.push(m);
                    } else if let Some(b) = admit(entry, &mut self.stats, &mut self.out, &mut run, m) {
                        behind = Some(b);
                    }
                }
                Prepared::Message(m) => buffer(entry, &mut self.stats, m),
                Prepared::Filtered => self.stats.messages_filtered += 1,
                Prepared::Rejected(reason, message) => {
                    apply_run(entry, &mut self.stats, &mut self.out, &mut run);
                    self.stats.reject(reason);
                    let event = Event::Error { key: entry.key.clone(), reason, message };
                    entry.broadcast(&mut self.out, event);
                }
            }
        }
        apply_run(entry, &mut self.stats, &mut self.out, &mut run);
        self.pump_hook(key, id);
        if let Some(behind) = behind {
            self.catch_up(key, id, behind);
        }
    }

    /// L4: the entry has its first data: the buffered messages apply now, in arrival order, and
    /// a buffer that overflowed is made good by a refetch once the stream is open.
    pub(crate) fn flush_buffer(&mut self, key: &str, id: EntryId) {
        let Some(entry) = self.entry_mut(key, id) else { return };
        if entry.messages_ready {
            return;
        }
        entry.messages_ready = true;
        let buffered = std::mem::take(&mut entry.buffer);
        let overflowed = std::mem::take(&mut entry.buffer_overflowed);
        let entry = self.entries.get_mut(key).expect("entry");
        let mut behind = None;
        let mut run: Vec<Value> = if entry.position.is_none() {
            buffered.into()
        } else {
            // T6: what the response already holds (at or below its sequence) is dropped now.
            let mut run = Vec::with_capacity(buffered.len());
            for m in buffered {
                if let Some(b) = admit(entry, &mut self.stats, &mut self.out, &mut run, m) {
                    behind = Some(b);
                }
            }
            run
        };
        apply_run(entry, &mut self.stats, &mut self.out, &mut run);
        self.pump_hook(key, id);
        if let Some(behind) = behind {
            self.catch_up(key, id, behind);
        } else if overflowed {
            self.refetch_when_open(key, id);
        }
    }

    /// Starts the entry's next `onMessage` call if none is out (SPEC §6).
    pub(crate) fn pump_hook(&mut self, key: &str, id: EntryId) {
        let Some(entry) = self.entries.get_mut(key).filter(|e| e.id == id) else { return };
        if entry.hook.is_busy() {
            return;
        }
        let mut refused = Vec::new();
        let call = entry.next_hook_call(&mut refused);
        for (reason, message) in refused {
            self.stats.reject(reason);
            let event = Event::Error { key: entry.key.clone(), reason, message };
            entry.broadcast(&mut self.out, event);
        }
        if let Some(call) = call {
            self.out.push(Output::CallHook(call));
        }
    }

    /// A hook call's answer (SPEC §6): outcomes commit in order on the data the call was given;
    /// if the data moved meanwhile the same messages are offered again.
    pub fn hook_done(&mut self, key: &str, base: MessageBase, result: HookResult) {
        let Engine { entries, stats, out, .. } = self;
        let Some(entry) = entries.get_mut(key).filter(|e| e.id == base.entry_id) else { return };
        entry.hook_answered(base, result, |e, step| match step {
            HookStep::Refuse(reason, message) => {
                stats.reject(reason);
                let event = Event::Error { key: e.key.clone(), reason, message };
                e.broadcast(out, event);
                Ok(())
            }
            HookStep::Commit(update) => {
                let first = e.data.is_none();
                let change = e.change_of(update)?;
                stats.messages_applied += 1;
                if first {
                    if let (Some(d), true) = (e.data.take(), change != Change::Unchanged) {
                        e.first_data(Arc::unwrap_or_clone(d), Value::Null, out);
                    }
                } else {
                    e.commit(change, out);
                }
                Ok(())
            }
        });
        self.pump_hook(key, base.entry_id);
    }
}

/// L4: a message before the data is held, up to `bufferBeforeLoaded`; past it the buffer goes
/// and a refetch once the stream is open brings what it held.
/// T6: one ready message through the entry's position. Applied ones join `run`; a refused one
/// ends the run first, so what came before it applies before its error. `Some`: the entry is
/// behind the server and must catch up.
fn admit<S: Clone>(entry: &mut Entry<S>, stats: &mut Stats, out: &mut Vec<Output<S>>, run: &mut Vec<Value>, m: Value) -> Option<Behind> {
    let position = entry.position.as_mut().expect("an entry with a position");
    match position.admit(&entry.stream_config, &m) {
        Admit::Apply => {
            run.push(m);
            None
        }
        Admit::Duplicate => {
            stats.messages_duplicate += 1;
            None
        }
        Admit::Gap { .. } => Some(Behind::Gap),
        Admit::MustRefetch => Some(Behind::MustRefetch),
        Admit::NoSequence(message) => {
            apply_run(entry, stats, out, run);
            stats.reject(ErrorReason::Protocol);
            let event = Event::Error { key: entry.key.clone(), reason: ErrorReason::Protocol, message };
            entry.broadcast(out, event);
            None
        }
    }
}

fn buffer<S>(entry: &mut Entry<S>, stats: &mut Stats, message: Value) {
    let bound = entry.stream_config.buffer_before_loaded;
    if entry.buffer.len() >= bound {
        entry.buffer.clear();
        if !entry.buffer_overflowed {
            entry.buffer_overflowed = true;
            stats.buffer_overflows += 1;
        }
    }
    if bound > 0 {
        entry.buffer.push_back(message);
        stats.messages_buffered += 1;
    } else {
        entry.buffer_overflowed = true;
    }
}

/// Applies a run of ready messages: a built-in rule as one burst, else into the hook's queue.
fn apply_run<S: Clone>(entry: &mut Entry<S>, stats: &mut Stats, out: &mut Vec<Output<S>>, run: &mut Vec<Value>) {
    if run.is_empty() {
        return;
    }
    if entry.stream_config.apply.is_some() && !entry.layers.is_empty() {
        apply_rule_layered(entry, stats, out, run);
    } else if entry.stream_config.apply.is_some() {
        apply_rule_burst(entry, stats, out, run);
    } else if entry.hooks.on_message.is_some() {
        for m in run.drain(..) {
            entry.hook.offer(m);
        }
    } else {
        for _ in run.drain(..) {
            stats.reject(ErrorReason::Apply);
            let event = Event::Error {
                key: entry.key.clone(),
                reason: ErrorReason::Apply,
                message: "no apply rule or onMessage hook for this endpoint".into(),
            };
            entry.broadcast(out, event);
        }
    }
}

/// A built-in rule over one message.
fn apply_rule_once<S: Clone>(entry: &mut Entry<S>, stats: &mut Stats, out: &mut Vec<Output<S>>, message: Value) {
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
                    entry.first_data(Arc::unwrap_or_clone(data), Value::Null, out);
                }
            } else {
                entry.commit(change, out);
            }
        }
        Err(m) => {
            if first {
                entry.data = None;
            }
            // E3: an update that would make the data too deep has its own reason.
            stats.reject(m.reason);
            let event = Event::Error { key: entry.key.clone(), reason: m.reason, message: m.message };
            entry.broadcast(out, event);
        }
    }
}

/// W3: a burst on an entry with optimistic layers. The messages apply to the server data one by
/// one (a message that applies confirms the layers whose `confirm` it matches); the layers are
/// rebased once for the whole burst, so it reaches subscribers as one event, and a confirmed
/// layer is taken off in the same step its confirmation lands in.
fn apply_rule_layered<S: Clone>(entry: &mut Entry<S>, stats: &mut Stats, out: &mut Vec<Output<S>>, messages: &mut Vec<Value>) {
    let config = entry.stream_config.clone();
    let endpoint = entry.endpoint.clone();
    let Some(rule) = config.apply.as_ref() else { return };
    let mut ops: Vec<PatchOp> = Vec::new();
    let mut replaced = false;
    let flush = |entry: &mut Entry<S>, out: &mut Vec<Output<S>>, ops: &mut Vec<PatchOp>, replaced: &mut bool| {
        let change = if std::mem::take(replaced) {
            ops.clear();
            Change::Replaced
        } else if ops.is_empty() {
            Change::Unchanged
        } else {
            Change::Patch(std::mem::take(ops))
        };
        entry.commit(change, out);
    };
    for message in messages.drain(..) {
        let logged = (entry.refetch_in_flight && rule.is_idempotent()).then(|| message.clone());
        let probe = (!entry.layers.is_empty()).then(|| message.clone());
        let data = entry.data.as_mut().expect("an entry with layers has data");
        match apply_rule(rule, endpoint.entity_adapter.as_ref(), Arc::make_mut(data), message, MAX_DEPTH) {
            Ok(change) => {
                stats.messages_applied += 1;
                if let Some(m) = logged {
                    entry.reapply.push(m);
                }
                if let Some(m) = probe {
                    entry.confirm_by_message(&m);
                }
                match change {
                    Change::Unchanged => {}
                    Change::Patch(p) => ops.extend(p),
                    Change::Replaced => replaced = true,
                }
            }
            Err(m) => {
                flush(entry, out, &mut ops, &mut replaced);
                stats.reject(m.reason);
                let event = Event::Error { key: entry.key.clone(), reason: m.reason, message: m.message };
                entry.broadcast(out, event);
            }
        }
    }
    flush(entry, out, &mut ops, &mut replaced);
}

/// A built-in rule over a burst: each message is applied and counted as one version, and the
/// patches of consecutive messages go out as one event. Rejected messages get their error event
/// in order. `maxLen` trims once per burst (see `apply_rule_in_burst`).
fn apply_rule_burst<S: Clone>(entry: &mut Entry<S>, stats: &mut Stats, out: &mut Vec<Output<S>>, messages: &mut Vec<Value>) {
    let config = entry.stream_config.clone();
    let endpoint = entry.endpoint.clone();
    let Some(rule) = config.apply.as_ref() else { return };
    let adapter = endpoint.entity_adapter.as_ref();
    let mut from = entry.version;
    let mut ops: Vec<PatchOp> = Vec::new();
    let mut untrimmed = 0;
    // Sends the patches gathered so far; the data must be exact before anything is broadcast
    // (a collapse, E5, snapshots it).
    let flush = |entry: &mut Entry<S>, out: &mut Vec<Output<S>>, ops: &mut Vec<PatchOp>, untrimmed: &mut usize, from: &mut u64| {
        if let Some(data) = entry.data.as_mut() {
            if *untrimmed > 0 {
                finish_burst(Arc::make_mut(data), untrimmed);
            }
        }
        if !ops.is_empty() {
            let event = Event::Patch { key: entry.key.clone(), from: *from, version: entry.version, patches: std::mem::take(ops) };
            entry.broadcast(out, event);
        }
        *from = entry.version;
    };
    for message in messages.drain(..) {
        let logged = (entry.refetch_in_flight && rule.is_idempotent()).then(|| message.clone());
        let Some(data) = entry.data.as_mut() else {
            // The first data of the entry: the one-message path sends its snapshot.
            flush(entry, out, &mut ops, &mut untrimmed, &mut from);
            apply_rule_once(entry, stats, out, message);
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
                        flush(entry, out, &mut ops, &mut untrimmed, &mut from);
                        entry.commit(Change::Replaced, out);
                        from = entry.version;
                    }
                }
            }
            Err(m) => {
                flush(entry, out, &mut ops, &mut untrimmed, &mut from);
                stats.reject(m.reason);
                let event = Event::Error { key: entry.key.clone(), reason: m.reason, message: m.message };
                entry.broadcast(out, event);
            }
        }
    }
    flush(entry, out, &mut ops, &mut untrimmed, &mut from);
}
