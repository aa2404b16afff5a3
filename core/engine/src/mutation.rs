//! W1 mutations, W2 invalidation, W4 read-your-writes. A mutation is not cached: the engine
//! renders its request, the driver runs it, and when it settles the engine invalidates its tags
//! (on success and on failure, as RTK Query does). `mutate` settles only after the refetches that
//! invalidation started have ended, so the host then sees the server's new state.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::config::MutationConfig;
use crate::engine::{check_arg, Engine};
use crate::error::{Error, Result};
use crate::key::cache_key;
use crate::pending_mutation::Mutation;
use crate::protocol::{EntryId, HostTags, MutateOptions, MutationId, MutationRequest, Output};
use crate::tags::{self, Tag};

impl<S: Clone> Engine<S> {
    /// W1: starts a mutation of `endpoint` with `arg`. Templates are rendered now, so a bad arg
    /// fails the call and nothing is sent. `WrongEndpointKind` for a query endpoint.
    pub fn mutate(&mut self, endpoint: &str, arg: Option<Value>) -> Result<MutationId> {
        self.mutate_with(endpoint, arg, &MutateOptions::default())
    }

    /// `mutate` with per-call options (W3 layers and their confirmation). The layers go on at
    /// once; a layer that does not apply fails the call and nothing is sent.
    pub fn mutate_with(&mut self, endpoint: &str, arg: Option<Value>, options: &MutateOptions) -> Result<MutationId> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let ep = self.endpoint(endpoint)?.clone();
        if !self.is_mutation(&ep) {
            return Err(Error::WrongEndpointKind(format!("endpoint {endpoint:?} is a query endpoint; mutate needs a mutation endpoint")));
        }
        check_arg(arg.as_ref())?;
        let request = match &ep.mutation {
            None => MutationRequest::Hook,
            Some(MutationConfig::Request(q)) => MutationRequest::Http {
                query: q.render(arg.as_ref()).map_err(Error::InvalidArgument)?,
                headers: ep.headers.render(arg.as_ref()).map_err(Error::InvalidArgument)?,
            },
            Some(MutationConfig::Send { endpoint: target, arg: target_arg, message }) => {
                let target_arg = target_arg.as_ref().map(|t| t.render(arg.as_ref())).transpose().map_err(Error::InvalidArgument)?;
                MutationRequest::Send {
                    key: cache_key(target, target_arg.as_ref()).into(),
                    message: message.render(arg.as_ref()).map_err(Error::InvalidArgument)?,
                }
            }
        };
        // The invalidated ids are rendered now too: a template naming a missing arg field is
        // the caller's error, not a silent skip after the write.
        tags::resolve(&ep.invalidates_tags, arg.as_ref(), None, "id").map_err(Error::InvalidArgument)?;
        let (targets, confirm) = self.layer_plan(&ep, arg.as_ref(), options)?;
        let id = self.next_id();
        let layers = self.put_layers(id, targets, &confirm, arg.as_ref())?;
        self.stats.mutations += 1;
        self.mutations.insert(id, Mutation { endpoint: ep.clone(), arg: arg.clone(), outcome: None, waiting: Vec::new(), layers, confirm });
        self.out.push(Output::Mutate { mutation: id, endpoint: ep, arg, request });
        Ok(id)
    }

    /// The driver's report: the response data, or the failure (`Error::Mutation` with the
    /// server's `{status, data}`, or a local error such as `NotConnected`).
    pub fn mutation_done(&mut self, now: Duration, id: MutationId, result: Result<Value>) {
        self.mutation_done_tagged(now, id, result, None)
    }

    /// `mutation_done` with the `invalidatesTags` host hook's answer for this outcome (W2). A
    /// hook that failed or answered a tag type not in `tagTypes` invalidates nothing and makes
    /// the mutation fail with `{status: "CUSTOM_ERROR", error, data}`, `data` being what the write
    /// answered: the write itself happened, so its layers still wait for their confirmation.
    pub fn mutation_done_tagged(&mut self, now: Duration, id: MutationId, result: Result<Value>, host_tags: Option<HostTags>) {
        if self.mutations.get(&id).is_none_or(|m| m.outcome.is_some()) {
            return;
        }
        // W3 first: the layers' confirmation is set before the invalidation's refetches start.
        self.layers_answered(now, id, &result);
        let m = self.mutations.get_mut(&id).expect("checked above");
        let (invalidated, result) = match host_tags {
            None => {
                let select_id = m.endpoint.default_select_id().to_owned();
                (tags::resolve(&m.endpoint.invalidates_tags, m.arg.as_ref(), result.as_ref().ok(), &select_id).unwrap_or_default(), result)
            }
            Some(answer) => {
                let checked = match answer {
                    Ok(v) => tags::from_host(&v, &self.config.tag_types).map_err(|e| format!("invalidatesTags answered a bad tag {e}")),
                    Err(e) => Err(format!("invalidatesTags failed: {e}")),
                };
                match checked {
                    Ok(tags) => (tags, result),
                    Err(message) => {
                        let data = match &result {
                            Ok(v) => v.clone(),
                            Err(Error::Mutation(v)) => v.clone(),
                            Err(other) => Value::String(other.to_string()),
                        };
                        (Vec::new(), Err(Error::Mutation(serde_json::json!({"status": "CUSTOM_ERROR", "error": message, "data": data}))))
                    }
                }
            }
        };
        if result.is_err() {
            self.stats.mutation_errors += 1;
        }
        m.outcome = Some(result);
        let waiting = self.invalidate(&invalidated);
        if let Some(m) = self.mutations.get_mut(&id) {
            m.waiting = waiting;
        }
        self.try_settle(id);
    }

    /// W2 `invalidateTags` from the host: `"Type"` or `{type, id}` values.
    pub fn invalidate_tags(&mut self, tags: &[Value]) -> Result<()> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let mut parsed = Vec::with_capacity(tags.len());
        for t in tags {
            let tag = Tag::from_value(t).map_err(Error::InvalidArgument)?;
            if !self.config.tag_types.contains(&tag.kind) {
                return Err(Error::InvalidArgument(format!("tag type {:?} is not in tagTypes", tag.kind)));
            }
            parsed.push(tag);
        }
        self.invalidate(&parsed);
        Ok(())
    }

    /// W2: entries providing a matching tag are refetched when subscribed (L5; their streams keep
    /// running) and removed at once when not (L7's removal). Returns the refetches started.
    fn invalidate(&mut self, tags: &[Tag]) -> Vec<(Arc<str>, EntryId, u64)> {
        if tags.is_empty() {
            return Vec::new();
        }
        let mut hit: Vec<(EntryId, Arc<str>)> = self
            .entries
            .values()
            .filter(|e| e.tags.iter().any(|p| tags.iter().any(|t| t.matches(p))))
            .map(|e| (e.id, e.key.clone()))
            .collect();
        hit.sort(); // creation order: events come out the same on every run
        let mut started = Vec::new();
        for (id, key) in hit {
            self.stats.invalidations += 1;
            let entry = self.entries.get(&*key).expect("matched entry");
            if entry.subscribers.is_empty() {
                let mut entry = self.entries.remove(&*key).expect("matched entry");
                entry.finish(&mut self.out);
                self.stats.entries_removed += 1;
                self.entry_gone(&key, id);
            } else if entry.has_query() && self.start_fetch(&key).is_ok() {
                started.push((key.clone(), id, self.entries[&*key].latest_request));
            }
        }
        started
    }

    /// W4: request `request` of an entry ended (answered, failed or stale).
    pub(crate) fn fetch_ended(&mut self, key: &str, entry: EntryId, request: u64) {
        self.release(|k, e, r| k == key && e == entry && request >= r);
    }

    /// W4: the entry is gone; no refetch of it is awaited any more.
    pub(crate) fn entry_gone(&mut self, key: &str, entry: EntryId) {
        self.release(|k, e, _| k == key && e == entry);
        self.layers_gone_with(key, entry);
    }

    fn release(&mut self, ended: impl Fn(&str, EntryId, u64) -> bool) {
        if self.mutations.is_empty() {
            return;
        }
        let mut done = Vec::new();
        for (id, m) in self.mutations.iter_mut() {
            let before = m.waiting.len();
            m.waiting.retain(|(k, e, r)| !ended(k, *e, *r));
            if m.waiting.len() != before && m.waiting.is_empty() {
                done.push(*id);
            }
        }
        done.sort();
        for id in done {
            self.try_settle(id);
        }
    }

    pub(crate) fn try_settle(&mut self, id: MutationId) {
        let ready = self.mutations.get(&id).is_some_and(|m| m.outcome.is_some() && m.waiting.is_empty() && m.layers.is_empty());
        if !ready {
            return;
        }
        let m = self.mutations.remove(&id).expect("ready mutation");
        self.out.push(Output::MutationSettled { mutation: id, result: m.outcome.expect("settled outcome") });
    }

    /// `close`: every pending mutation settles with `Closed` (a response may never come).
    pub(crate) fn close_mutations(&mut self) {
        let mut ids: Vec<MutationId> = self.mutations.keys().copied().collect();
        ids.sort();
        for id in ids {
            let m = self.mutations.remove(&id).expect("pending mutation");
            let result = match m.outcome {
                Some(Ok(v)) => Ok(v),
                Some(Err(e)) => Err(e),
                None => Err(Error::Closed),
            };
            self.out.push(Output::MutationSettled { mutation: id, result });
        }
    }
}
