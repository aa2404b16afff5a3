//! SPEC §12 refetch policies: P1 `pollingInterval` (per subscription; the smallest of an entry's
//! subscribers wins, a poll never starts while the entry's fetch is in flight, and the next one is
//! counted from when the last fetch ended), P2 `refetchOnMountOrArgChange` (a subscribe to an
//! existing entry refetches when it is `true`, or when the last successful fetch is older than
//! its seconds), P3 `prefetch` and `resetApiState`.

use std::cmp::Reverse;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::config::RefetchOnMount;
use crate::engine::{check_arg, Engine, Timer};
use crate::error::{Error, Result};
use crate::event::Status;
use crate::key::cache_key;
use crate::protocol::{EntryId, SubscriberId};

/// What a `subscribe` call may set (P1, P2).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SubscribeOptions {
    pub polling_interval: Option<Duration>,
    /// `None`: the endpoint's (or the top level's) setting.
    pub refetch_on_mount_or_arg_change: Option<RefetchOnMount>,
}

/// P3 `prefetch`'s options.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PrefetchOptions {
    /// Refetch an existing entry whose last successful fetch is older than this.
    pub if_older_than: Option<Duration>,
    /// Refetch an existing entry whatever its age.
    pub force: bool,
}

/// Milliseconds (or seconds) as a positive finite number.
fn positive(v: &Value, what: &str) -> std::result::Result<f64, String> {
    match v.as_f64() {
        Some(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err(format!("{what}: expected a positive number, found {v}")),
    }
}

impl SubscribeOptions {
    /// `{pollingInterval?: ms, refetchOnMountOrArgChange?: true | false | seconds}` (`null`: none).
    pub fn from_value(v: &Value) -> std::result::Result<SubscribeOptions, String> {
        let Value::Object(o) = v else {
            return match v {
                Value::Null => Ok(SubscribeOptions::default()),
                other => Err(format!("subscribe options are an object, found {other}")),
            };
        };
        let mut options = SubscribeOptions::default();
        for (key, value) in o {
            if value.is_null() {
                continue;
            }
            match key.as_str() {
                "pollingInterval" => options.polling_interval = Some(Duration::from_secs_f64(positive(value, "pollingInterval")? / 1000.0)),
                "refetchOnMountOrArgChange" => options.refetch_on_mount_or_arg_change = Some(RefetchOnMount::from_value(value)?),
                other => return Err(format!("unknown subscribe option {other:?} (expected pollingInterval, refetchOnMountOrArgChange)")),
            }
        }
        Ok(options)
    }
}

impl PrefetchOptions {
    /// `{ifOlderThan?: seconds, force?: bool}` (`null`: none).
    pub fn from_value(v: &Value) -> std::result::Result<PrefetchOptions, String> {
        let Value::Object(o) = v else {
            return match v {
                Value::Null => Ok(PrefetchOptions::default()),
                other => Err(format!("prefetch options are an object, found {other}")),
            };
        };
        let mut options = PrefetchOptions::default();
        for (key, value) in o {
            if value.is_null() {
                continue;
            }
            match key.as_str() {
                "ifOlderThan" => options.if_older_than = Some(Duration::from_secs_f64(positive(value, "ifOlderThan")?)),
                "force" => options.force = value.as_bool().ok_or_else(|| format!("force: expected true or false, found {value}"))?,
                other => return Err(format!("unknown prefetch option {other:?} (expected ifOlderThan, force)")),
            }
        }
        Ok(options)
    }
}

impl<S: Clone> Engine<S> {
    /// `subscribe` with options: P2 on an existing entry, then P1 polling for this subscriber.
    pub fn subscribe_with(
        &mut self,
        now: Duration,
        endpoint: &str,
        arg: Option<Value>,
        subscriber: SubscriberId,
        handle: S,
        options: SubscribeOptions,
    ) -> Result<(Arc<str>, EntryId)> {
        let existed = self.key_of(endpoint, arg.as_ref()).ok().is_some_and(|k| self.entries.contains_key(&*k));
        let (key, id) = self.subscribe(now, endpoint, arg, subscriber, handle)?;
        let ep = self.endpoint(endpoint)?.clone();
        let policy = options.refetch_on_mount_or_arg_change.or(ep.refetch_on_mount).or(self.config.refetch_on_mount);
        if existed {
            let entry = self.entries.get(&*key).expect("subscribed");
            let stale = match policy {
                None => false,
                Some(RefetchOnMount::Always) => true,
                Some(RefetchOnMount::OlderThan(age)) => entry.fetched_at.is_none_or(|t| now.saturating_sub(t) >= age),
            };
            if stale && entry.has_query() && entry.status != Status::Pending {
                self.start_fetch(&key)?;
            }
        }
        if let Some(interval) = options.polling_interval {
            let entry = self.entries.get_mut(&*key).expect("subscribed");
            entry.polls.push((subscriber, interval));
            // A wait already under way keeps its start; the new smallest interval counts from it.
            match (entry.status, entry.poll_since) {
                (Status::Pending, _) => {}
                (_, Some(_)) => self.reschedule_poll(&key),
                (_, None) => self.schedule_poll(now, &key),
            }
        }
        Ok((key, id))
    }

    /// P1: the entry's next poll, the smallest interval of its subscribers from now; none when
    /// no subscriber polls.
    pub(crate) fn schedule_poll(&mut self, now: Duration, key: &str) {
        if let Some(entry) = self.entries.get_mut(key) {
            entry.poll_since = Some(now);
        }
        self.reschedule_poll(key);
    }

    /// P1: the pollers changed: the next poll is due one (new) smallest interval after the wait
    /// began. A poll already passed by that is due at once (the next tick).
    pub(crate) fn reschedule_poll(&mut self, key: &str) {
        let Some(entry) = self.entries.get_mut(key) else { return };
        let (Some(interval), Some(since)) = (entry.polls.iter().map(|(_, i)| *i).min(), entry.poll_since) else {
            entry.poll_due = None;
            return;
        };
        if !entry.has_query() || entry.status == Status::Pending {
            return;
        }
        let due = since.saturating_add(interval);
        entry.poll_due = Some(due);
        self.poll_timers.push(Timer(Reverse((due, entry.id)), entry.key.clone()));
        self.arm();
    }

    /// P1: polls due by `now` start their fetch (one whose entry is fetching waits for it).
    pub(crate) fn run_polls(&mut self, now: Duration) {
        while let Some(Timer(Reverse((at, id)), _)) = self.poll_timers.peek() {
            if *at > now {
                break;
            }
            let (at, id) = (*at, *id);
            let Timer(_, key) = self.poll_timers.pop().expect("peeked");
            let Some(entry) = self.entries.get_mut(&*key).filter(|e| e.id == id && e.poll_due == Some(at)) else { continue };
            entry.poll_due = None;
            if entry.polls.is_empty() || entry.status == Status::Pending {
                continue; // no poller left, or a fetch in flight: its end schedules the next poll
            }
            self.stats.polls += 1;
            let _ = self.start_fetch(&key);
        }
    }

    pub(crate) fn next_poll(&self) -> Option<Duration> {
        self.poll_timers.peek().map(|Timer(Reverse((at, _)), _)| *at)
    }

    /// P1: a fetch of the entry ended at `now`: its pollers wait a full interval from here.
    pub(crate) fn fetch_ended_at(&mut self, now: Duration, key: &str, id: EntryId) {
        let Some(entry) = self.entries.get_mut(key).filter(|e| e.id == id) else { return };
        if !entry.polls.is_empty() && entry.status != Status::Pending {
            self.schedule_poll(now, key);
        }
    }

    /// P3 `prefetch`: creates and fetches the entry without a subscriber (L7 then applies), or
    /// refetches an existing one when `force`, or when its data is older than `if_older_than`.
    pub fn prefetch(&mut self, now: Duration, endpoint: &str, arg: Option<Value>, options: PrefetchOptions) -> Result<()> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let ep = self.query_endpoint(endpoint)?.clone();
        check_arg(arg.as_ref())?;
        let key: Arc<str> = cache_key(endpoint, arg.as_ref()).into();
        let Some(entry) = self.entries.get(&*key) else {
            self.create_entry(&ep, key.clone(), arg, None)?;
            self.schedule_removal(now, &key);
            return Ok(());
        };
        let stale = options.force || options.if_older_than.is_some_and(|age| entry.fetched_at.is_none_or(|t| now.saturating_sub(t) >= age));
        if stale && entry.has_query() && entry.status != Status::Pending {
            self.start_fetch(&key)?;
        }
        Ok(())
    }

    /// P3 `resetApiState`: every entry goes as L7 removes one (subscribers get `removed`, streams
    /// close with a close handshake, `cacheEntryRemoved` resolves); the client stays usable.
    pub fn reset_api_state(&mut self) -> Result<()> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let mut entries: Vec<_> = self.entries.drain().map(|(_, e)| e).collect();
        entries.sort_by_key(|e| e.id);
        for mut entry in entries {
            entry.finish(&mut self.out);
            self.stats.entries_removed += 1;
            self.entry_gone(&entry.key, entry.id);
        }
        Ok(())
    }
}
