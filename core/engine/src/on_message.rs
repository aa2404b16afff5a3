//! The `onMessage` protocol (SPEC §6), once for every host: the engine hands the hook the data
//! at a version with the messages queued for the entry, the host answers one outcome per message,
//! and the engine commits them in order only if the data is still at that version (else it asks
//! again). While a call is out, newer messages wait in the entry's queue, so they apply in
//! arrival order.

use std::sync::Arc;

use serde_json::Value;

use crate::apply::{change_between, Change};
use crate::entry::{Entry, InFlight};
use crate::protocol::{HookCall, HookShape, MessageBase};
use crate::event::ErrorReason;
use crate::json::{self, MAX_DEPTH};
use crate::patch::{apply_patch, PatchOp};

/// What an `onMessage` hook made of one message.
#[derive(Debug)]
pub enum MessageUpdate {
    /// The new data (a mutated draft or a returned value); the engine derives the patch by diff.
    Data(Value),
    /// RFC 6902 operations to apply to the current data (recording drafts, C updaters).
    Ops(Vec<PatchOp>),
    /// Nothing to change.
    Unchanged,
}

/// How a whole hook call ended, when it did not give outcomes.
#[derive(Clone, Debug, PartialEq)]
pub enum HookFailure {
    /// The hook raised / returned an error.
    Failed(String),
    /// The hook panicked (a Rust host), caught by the driver.
    Panicked,
}

/// A call's answer: one outcome per message, in order (possibly fewer than the messages: the rest
/// are offered again), or a failure of the whole call.
pub type HookResult = Result<Vec<Result<MessageUpdate, String>>, HookFailure>;

/// How many queued messages a batched hook is given in one call.
pub const HOOK_BATCH: usize = 256;

/// Times a call's answer may find the data moved before its first message is given up.
const ATTEMPTS: usize = 3;

/// A hook outcome that could not be committed: its reason and message.
pub(crate) type Refused = (ErrorReason, String);

/// One outcome of a call, for the engine to commit or report.
pub(crate) enum HookStep {
    Commit(MessageUpdate),
    Refuse(ErrorReason, String),
}

impl<S: Clone> Entry<S> {
    /// Starts the next hook call when none is out. Messages given up on come back as errors.
    pub(crate) fn next_hook_call(&mut self, errors: &mut Vec<Refused>) -> Option<HookCall> {
        let shape = self.hooks.on_message?;
        loop {
            if self.hook.in_flight.is_some() || self.hook.queue.is_empty() {
                return None;
            }
            if self.hook.stale == ATTEMPTS {
                self.hook.stale = 0;
                self.hook.queue.pop_front();
                errors.push((ErrorReason::Apply, "the data kept changing while onMessage ran".into()));
                continue;
            }
            let count = match shape {
                HookShape::One => 1,
                HookShape::Batched => self.hook.queue.len().min(HOOK_BATCH),
            };
            self.hook.in_flight = Some(InFlight { version: self.version, had_data: self.data.is_some(), count });
            return Some(HookCall {
                key: self.key.clone(),
                endpoint: self.endpoint.clone(),
                base: MessageBase { entry_id: self.id, version: self.version },
                shape,
                data: self.data.clone().unwrap_or_else(|| Arc::new(Value::Null)),
                messages: self.hook.queue.iter().take(count).cloned().collect(),
                arg: self.arg.clone(),
            });
        }
    }

    /// Takes a call's answer: each outcome, in order, goes to `step` as a commit or a refusal
    /// (the engine's: it knows first data from later changes and owns the events).
    pub(crate) fn hook_answered(
        &mut self,
        base: MessageBase,
        result: HookResult,
        mut step: impl FnMut(&mut Self, HookStep) -> Result<(), Refused>,
    ) {
        let Some(in_flight) = self.hook.in_flight.take() else { return };
        if in_flight.version != base.version {
            // An answer to a call this entry no longer waits for.
            self.hook.in_flight = Some(in_flight);
            return;
        }
        let outcomes = match result {
            Ok(o) if !o.is_empty() && o.len() <= in_flight.count => o,
            Ok(o) => {
                self.hook.queue.pop_front();
                let m = format!("onMessage gave {} outcomes for {} messages", o.len(), in_flight.count);
                let _ = step(self, HookStep::Refuse(ErrorReason::Hook, m));
                return;
            }
            // A whole call failed: each of its messages is reported (E3: one error each).
            Err(failure) => {
                let message = match failure {
                    HookFailure::Failed(m) => format!("onMessage: {m}"),
                    HookFailure::Panicked => "onMessage panicked".to_owned(),
                };
                for _ in 0..in_flight.count {
                    self.hook.queue.pop_front();
                    let _ = step(self, HookStep::Refuse(ErrorReason::Hook, message.clone()));
                }
                return;
            }
        };
        if self.version != in_flight.version || self.data.is_some() != in_flight.had_data {
            // The data moved while the hook ran (a host update, a refetch): ask again.
            self.hook.stale += 1;
            return;
        }
        self.hook.stale = 0;
        for outcome in outcomes {
            self.hook.queue.pop_front();
            let update = match outcome {
                Ok(u) => u,
                Err(m) => {
                    let _ = step(self, HookStep::Refuse(ErrorReason::Hook, format!("onMessage: {m}")));
                    continue;
                }
            };
            if let Err((reason, m)) = step(self, HookStep::Commit(update)) {
                let _ = step(self, HookStep::Refuse(reason, m));
                // The outcomes after this one were computed on data the engine does not have:
                // their messages are offered again.
                break;
            }
        }
    }

    /// Turns one outcome into the new data and its change (E1); the data is unchanged on Err.
    pub(crate) fn change_of(&mut self, update: MessageUpdate) -> Result<Change, Refused> {
        let first = self.data.is_none();
        Ok(match update {
            MessageUpdate::Unchanged => Change::Unchanged,
            MessageUpdate::Data(new) => {
                if !json::within_depth(&new, MAX_DEPTH) {
                    return Err((ErrorReason::TooDeep, format!("onMessage made the data deeper than {MAX_DEPTH} levels")));
                }
                match self.data.as_deref() {
                    None => {
                        self.data = Some(Arc::new(new));
                        Change::Replaced
                    }
                    Some(old) => {
                        let change = change_between(old, &new);
                        if change != Change::Unchanged {
                            self.data = Some(Arc::new(new));
                        }
                        change
                    }
                }
            }
            MessageUpdate::Ops(ops) => {
                let target = self.data.get_or_insert_with(|| Arc::new(Value::Null));
                match apply_patch(Arc::make_mut(target), &ops, MAX_DEPTH) {
                    Ok(applied) if applied.replaced_root || first => Change::Replaced,
                    Ok(applied) => Change::Patch(applied.patches),
                    Err(e) => {
                        if first {
                            self.data = None;
                        }
                        let reason = if e.is_too_deep() { ErrorReason::TooDeep } else { ErrorReason::Apply };
                        return Err((reason, format!("onMessage patch: {e}")));
                    }
                }
            }
        })
    }

}
