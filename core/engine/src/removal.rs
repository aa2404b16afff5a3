//! L7: when the last subscriber leaves, the entry goes after `keepUnusedDataFor`; each new start
//! restarts the wait at full length. An entry has at most one place in the timer heap, moved by
//! changing its deadline, so subscribe/unsubscribe churn never piles up timers.

use std::cmp::Reverse;
use std::time::Duration;

use crate::config::KeepUnused;
use crate::engine::{Engine, Timer};
use crate::protocol::Output;

impl<S: Clone> Engine<S> {
    /// The entry has no subscriber now (or was created without one).
    pub(crate) fn schedule_removal(&mut self, now: Duration, key: &str) {
        let Some(entry) = self.entries.get_mut(key) else { return };
        let KeepUnused::Seconds(secs) = self.config.keep_unused_for(&entry.endpoint) else { return };
        // Too far to represent is the same as never.
        let Some(deadline) = Duration::try_from_secs_f64(secs).ok().and_then(|d| now.checked_add(d)) else { return };
        entry.removal_deadline = Some(deadline);
        if entry.removal_timer {
            return;
        }
        entry.removal_timer = true;
        let item = Timer(Reverse((deadline, entry.id)), entry.key.clone());
        self.timers.push(item);
        self.arm();
    }

    /// Asks the driver to wake at the soonest deadline when that is sooner than asked before.
    pub(crate) fn arm(&mut self) {
        let Some(at) = self.next_deadline() else { return };
        if self.armed.is_none_or(|armed| at < armed) {
            self.armed = Some(at);
            self.out.push(Output::ArmTimer { at });
        }
    }

    /// Time is `now`: entries whose deadline passed with no subscriber are removed. `0` removes
    /// at the first tick after the last subscriber left ("the next turn of the engine").
    pub fn tick(&mut self, now: Duration) {
        if self.armed.is_some_and(|at| at <= now) {
            self.armed = None;
        }
        while let Some(Timer(Reverse((at, id)), _)) = self.timers.peek() {
            if *at > now {
                break;
            }
            let id = *id;
            let Timer(_, key) = self.timers.pop().expect("peeked");
            let Some(entry) = self.entries.get_mut(&*key).filter(|e| e.id == id) else { continue };
            match entry.removal_deadline {
                Some(deadline) if entry.subscribers.is_empty() => {
                    if deadline > now {
                        // Restarted since: wait again, from the new deadline.
                        self.timers.push(Timer(Reverse((deadline, id)), key));
                        continue;
                    }
                    let mut entry = self.entries.remove(&*key).expect("entry");
                    entry.finish(&mut self.out);
                    self.stats.entries_removed += 1;
                    self.entry_gone(&key, id);
                }
                _ => entry.removal_timer = false,
            }
        }
        self.expire_layers(now);
        self.run_polls(now);
        self.arm();
    }

    /// When the next removal (L7) or layer timeout (W3) is due, if any.
    pub fn next_deadline(&self) -> Option<Duration> {
        let removal = self.timers.peek().map(|Timer(Reverse((at, _)), _)| *at);
        [removal, self.next_layer_deadline(), self.next_poll()].into_iter().flatten().min()
    }
}
