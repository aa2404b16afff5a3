//! Fetches (L1, L2, L5, L6): the engine numbers each request of an entry; only the newest one's
//! response counts. A refetch while data exists logs the messages applied meanwhile, and applies
//! the idempotent ones again on top of the response, so a message the response predates is not lost.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::apply::{apply_rule, Change};
use crate::engine::{Engine, Fetched};
use crate::protocol::Output;
use crate::protocol::EntryId;
use crate::error::{Error, Result};
use crate::event::{Event, Status};
use crate::json::MAX_DEPTH;

impl<S: Clone> Engine<S> {
    /// Re-runs the query of `key` (L5).
    pub fn refetch(&mut self, key: &str) -> Result<()> {
        self.entry_id(key)?;
        self.start_fetch(key)
    }

    /// Starts a request for `key` (L1, L5). The newest request wins.
    pub(crate) fn start_fetch(&mut self, key: &str) -> Result<()> {
        let entry = self.entries.get_mut(key).ok_or_else(|| Error::NotFound(key.to_owned()))?;
        if !entry.has_query() {
            return Err(Error::InvalidArgument(format!(
                "endpoint {:?} has no query or queryFn to fetch with",
                entry.endpoint.name
            )));
        }
        entry.latest_request += 1;
        let request = entry.latest_request;
        entry.refetch_in_flight = entry.data.is_some();
        entry.reapply.clear();
        if entry.status != Status::Pending {
            entry.status = Status::Pending;
            let event = Event::Status { key: entry.key.clone(), status: Status::Pending, error: None };
            entry.broadcast(&mut self.out, event);
        }
        self.stats.fetches += 1;
        self.out.push(Output::Fetch {
            key: entry.key.clone(),
            entry: entry.id,
            request,
            endpoint: entry.endpoint.clone(),
            arg: entry.arg.clone(),
        });
        Ok(())
    }

    /// A request's answer: `Err` carries the error value the entry's `error` shows (L6).
    pub fn fetch_done(&mut self, key: &str, id: EntryId, request: u64, result: std::result::Result<Fetched, Value>) {
        self.fetch_done_at(Duration::ZERO, key, id, request, result)
    }

    /// `fetch_done` at time `now` (P1 counts the next poll from it, P2/P3 the data's age).
    pub fn fetch_done_at(&mut self, now: Duration, key: &str, id: EntryId, request: u64, result: std::result::Result<Fetched, Value>) {
        let latest = self.entries.get(key).is_some_and(|e| e.id == id && e.latest_request == request);
        let ok = result.is_ok();
        self.apply_response(key, id, request, result);
        if latest {
            if ok {
                if let Some(e) = self.entries.get_mut(key) {
                    e.fetched_at = Some(now);
                }
            }
            self.fetch_ended_at(now, key, id);
        }
        // W4 after the response's events, so a mutation settles behind what it caused.
        self.fetch_ended(key, id, request);
    }

    fn apply_response(&mut self, key: &str, id: EntryId, request: u64, result: std::result::Result<Fetched, Value>) {
        let Some(entry) = self.entries.get_mut(key).filter(|e| e.id == id) else { return };
        if request != entry.latest_request {
            self.stats.stale_responses += 1;
            return;
        }
        match result {
            Ok(Fetched { mut data, meta, tags, initial }) => {
                let refetch = std::mem::take(&mut entry.refetch_in_flight);
                let logged = std::mem::take(&mut entry.reapply);
                if let Some(position) = entry.position.as_mut() {
                    position.fetched(&entry.stream_config, initial, &data);
                }
                if entry.data.is_none() {
                    entry.first_data(data, meta, &mut self.out);
                    let bad_tags = entry.retag(tags, &self.config.tag_types);
                    entry.report(bad_tags, &mut self.out);
                    self.flush_buffer(key, id);
                    return;
                }
                // L5: messages the response may predate are applied again (idempotent rules only).
                if refetch {
                    if let Some(rule) = entry.stream_config.apply.as_ref().filter(|r| r.is_idempotent()) {
                        for m in logged {
                            let _ = apply_rule(rule, entry.endpoint.entity_adapter.as_ref(), &mut data, m, MAX_DEPTH);
                            self.stats.messages_reapplied += 1;
                        }
                    }
                }
                entry.data = Some(Arc::new(data));
                let bad_tags = entry.retag(tags, &self.config.tag_types);
                entry.status = Status::Fulfilled;
                entry.error = None;
                // W3: what this response holds includes the writes answered before it started.
                entry.confirm_by_refetch(request);
                entry.commit(Change::Replaced, &mut self.out);
                entry.report(bad_tags, &mut self.out);
            }
            Err(error) => {
                self.stats.fetch_errors += 1;
                entry.refetch_in_flight = false;
                entry.reapply.clear();
                entry.status = Status::Rejected;
                entry.error = Some(error.clone());
                let event = Event::Status { key: entry.key.clone(), status: Status::Rejected, error: Some(error) };
                entry.broadcast(&mut self.out, event);
            }
        }
    }
}
