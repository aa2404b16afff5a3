//! Driving the engine by hand: inputs in, outputs collected, time virtual.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use livecache_engine::engine::{Engine, Fetched};
use livecache_engine::{Error, HostHooks, MutationRequest, Output};
use livecache_engine::message::Prepared;
use livecache_engine::{Config, EntryId, Event};
use serde_json::{json, Value};

/// A subscriber handle: just its name.
pub type Sub = &'static str;

pub struct Harness {
    pub engine: Engine<Sub>,
    pub now: Duration,
    /// Every event delivered, per subscriber, in order.
    pub events: HashMap<Sub, Vec<Event>>,
    /// The outputs other than deliveries, in order, since the last `take`.
    pub actions: Vec<Output<Sub>>,
    pub next_sub: u64,
    pub subs: HashMap<Sub, (Arc<str>, EntryId, u64)>,
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

impl Harness {
    pub fn new(config: Value, hooks: &[(&str, HostHooks)]) -> Harness {
        let config = Arc::new(Config::from_value(&config).expect("config"));
        let hooks = hooks.iter().map(|(n, h)| (n.to_string(), *h)).collect();
        Harness {
            engine: Engine::new(config, hooks).expect("engine"),
            now: Duration::ZERO,
            events: HashMap::new(),
            actions: Vec::new(),
            next_sub: 1,
            subs: HashMap::new(),
        }
    }

    /// Collects the outputs of the last calls: deliveries by subscriber, the rest as actions.
    pub fn drain(&mut self) {
        let mut out = Vec::new();
        self.engine.take_outputs(&mut out);
        for o in out {
            match o {
                Output::Deliver { to, event } => self.events.entry(to).or_default().push(event),
                other => self.actions.push(other),
            }
        }
    }

    pub fn take(&mut self) -> Vec<Output<Sub>> {
        self.drain();
        std::mem::take(&mut self.actions)
    }

    pub fn subscribe(&mut self, name: Sub, endpoint: &str, arg: Option<Value>) -> (Arc<str>, EntryId) {
        let id = self.next_sub;
        self.next_sub += 1;
        let (key, entry) = self.engine.subscribe(self.now, endpoint, arg, id, name).expect("subscribe");
        self.subs.insert(name, (key.clone(), entry, id));
        self.drain();
        (key, entry)
    }

    pub fn unsubscribe(&mut self, name: Sub) {
        let (key, entry, id) = self.subs.remove(name).expect("subscribed");
        self.engine.unsubscribe(self.now, &key, entry, id);
        self.drain();
    }

    pub fn advance(&mut self, by: Duration) {
        self.now += by;
        self.engine.tick(self.now);
        self.drain();
    }

    /// The requests started, as (key, entry, request).
    pub fn fetches(&mut self) -> Vec<(Arc<str>, EntryId, u64)> {
        self.drain();
        let mut found = Vec::new();
        self.actions.retain(|a| match a {
            Output::Fetch { key, entry, request, .. } => {
                found.push((key.clone(), *entry, *request));
                false
            }
            _ => true,
        });
        found
    }

    pub fn respond(&mut self, key: &str, entry: EntryId, request: u64, data: Value) {
        self.engine.fetch_done(key, entry, request, Ok(Fetched::new(data, Value::Null)));
        self.drain();
    }

    pub fn push(&mut self, key: &str, entry: EntryId, messages: Vec<Value>) {
        let mut batch: Vec<Prepared> = messages.into_iter().map(Prepared::Message).collect();
        self.engine.messages(key, entry, &mut batch);
        self.drain();
    }

    /// The data after each snapshot or patch event of `sub` from event `from` on, replayed
    /// with the json-patch crate from the start.
    pub fn states_from(&self, sub: Sub, from: usize) -> Vec<Value> {
        let mut data = Value::Null;
        let mut out = Vec::new();
        for (i, e) in self.events.get(sub).into_iter().flatten().enumerate() {
            match e {
                Event::Snapshot { data: d, .. } => data = d.clone(),
                Event::Patch { patches, .. } => {
                    let p: json_patch::Patch = serde_json::from_value(serde_json::to_value(patches).unwrap()).unwrap();
                    json_patch::patch(&mut data, &p.0).expect("the patch applies to the replica");
                }
                _ => continue,
            }
            if i >= from {
                out.push(data.clone());
            }
        }
        out
    }

    pub fn types(&self, sub: Sub) -> Vec<&'static str> {
        self.events.get(sub).map(|e| e.iter().map(Event::type_name).collect()).unwrap_or_default()
    }

    pub fn data(&self, key: &str) -> Value {
        self.engine.entry_state(key, None).expect("entry").data
    }

    /// Replays a subscriber's events with the json-patch crate (an implementation other than
    /// the engine's): the data it ends with, and its version.
    pub fn replay(&self, sub: Sub) -> (Value, u64) {
        let mut data = Value::Null;
        let mut version = 0;
        for e in self.events.get(sub).into_iter().flatten() {
            match e {
                Event::Snapshot { version: v, data: d, .. } => {
                    data = d.clone();
                    version = *v;
                }
                Event::Patch { from, version: v, patches, .. } => {
                    assert_eq!(*from, version, "{sub}: a patch from {from} on a replica at {version}");
                    let p: json_patch::Patch = serde_json::from_value(serde_json::to_value(patches).unwrap()).unwrap();
                    json_patch::patch(&mut data, &p.0).expect("the patch applies to the replica");
                    version = *v;
                }
                _ => {}
            }
        }
        (data, version)
    }
}

pub fn query_fn() -> HostHooks {
    HostHooks { query_fn: true, ..Default::default() }
}

pub fn chat_config(extra: Value) -> Value {
    let mut c = json!({"endpoints": {"getMessages": {"stream": {"apply": {"append": {"dedupeBy": "id"}}}}}});
    if let (Some(c), Some(e)) = (c.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            c.insert(k.clone(), v.clone());
        }
    }
    c
}

/// The mutations asked for since the last look, as (id, request).
pub fn mutations(h: &mut Harness) -> Vec<(u64, MutationRequest)> {
    h.drain();
    let mut found = Vec::new();
    h.actions.retain(|a| match a {
        Output::Mutate { mutation, request, .. } => {
            found.push((*mutation, request.clone()));
            false
        }
        _ => true,
    });
    found
}

/// The mutations settled since the last look.
pub fn settled(h: &mut Harness) -> Vec<(u64, Result<Value, Error>)> {
    h.drain();
    let mut found = Vec::new();
    h.actions.retain(|a| match a {
        Output::MutationSettled { mutation, result } => {
            found.push((*mutation, result.clone()));
            false
        }
        _ => true,
    });
    found
}
