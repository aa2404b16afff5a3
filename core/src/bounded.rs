//! A bounded queue of one reader's events (E2, E4, E5): a burst of patches becomes one patch
//! event, and past the limit the unread events become one snapshot of the entry's state. A
//! subscriber's delivery queue and an `events()` reader's queue (`event_tap`) are both one.

use std::collections::VecDeque;

use crate::event::Event;

/// What a push did, for `stats`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pushed {
    Queued,
    Coalesced,
    /// E5: the queue was full and collapsed into one snapshot.
    Overflowed,
}

#[derive(Default)]
pub(crate) struct Bounded {
    pub events: VecDeque<Event>,
    /// The version of the last collapse snapshot (E5): events at or below it are in it already.
    floor: u64,
}

impl Bounded {
    /// Queues `event`, bounded by `limit`. `snapshot` builds the event that replaces a full queue:
    /// the entry's state now, so it may be newer than `event` (what it already holds is dropped
    /// as it comes).
    pub fn push(&mut self, event: Event, limit: usize, snapshot: &dyn Fn() -> Event) -> Pushed {
        if let Event::Patch { version, .. } | Event::Snapshot { version, .. } = &event {
            if *version <= self.floor {
                return Pushed::Coalesced;
            }
        }
        // A patch from before the snapshot to after it cannot apply to it: a newer snapshot can.
        let straddles = matches!(&event, Event::Patch { from, .. } if *from < self.floor);
        let unmerged = match (self.events.back_mut(), event) {
            // E2: a burst becomes one patch event spanning several versions (its patches moved,
            // not copied).
            (Some(Event::Patch { version: last_version, patches: last_patches, .. }), Event::Patch { from, version, patches, .. })
                if *last_version == from =>
            {
                last_patches.extend(patches);
                *last_version = version;
                None
            }
            (_, event) => Some(event),
        };
        match unmerged {
            None => Pushed::Coalesced,
            Some(event) if straddles || self.events.len() >= limit => {
                self.collapse(event, snapshot);
                Pushed::Overflowed
            }
            Some(event) => {
                self.events.push_back(event);
                Pushed::Queued
            }
        }
    }

    /// E5: the snapshot carries the data, version and status; the stream state and a removal
    /// are not in it, so the newest of each survives the collapse.
    fn collapse(&mut self, event: Event, snapshot: &dyn Fn() -> Event) {
        let stream = match &event {
            Event::Stream { .. } => Some(event.clone()),
            _ => self.events.iter().rev().find(|e| matches!(e, Event::Stream { .. })).cloned(),
        };
        self.events.clear();
        let snapshot = snapshot();
        if let Event::Snapshot { version, .. } = &snapshot {
            self.floor = *version;
        }
        self.events.push_back(snapshot);
        self.events.extend(stream);
        if matches!(event, Event::Removed { .. }) {
            self.events.push_back(event);
        }
    }
}
