//! W3's rebase property: random interleavings of other users' messages, posts with optimistic
//! layers, the server storing them (their echo queued on the stream, so it may beat the
//! response), responses (success or failure, in any order), refetches and time. After every step:
//! the visible data is the server data with the pending layers applied in mutation order; every
//! event replays (json-patch crate) onto the subscriber's last snapshot; a layer that is
//! confirmed never disappears and comes back (every state of that step shows its text); a
//! mutation settles exactly when it was answered and its layer has left (W4).

mod support;

use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

use livecache_engine::apply::apply_rule;
use livecache_engine::config::ApplyRule;
use livecache_engine::Error;
use proptest::prelude::*;
use serde_json::{json, Value};
use support::*;

const TIMEOUT_MS: u64 = 3_000;

#[derive(Clone, Debug)]
enum Act {
    Post,
    /// The server stores the `n`th post not yet stored (its echo is queued).
    Accept(usize),
    /// The `n`th unanswered post gets its response.
    Respond(usize, bool),
    Other,
    Deliver,
    RefetchStart,
    RefetchRespond,
    Advance(u64),
}

fn act() -> impl Strategy<Value = Act> {
    prop_oneof![
        3 => Just(Act::Post),
        2 => (0..3usize).prop_map(Act::Accept),
        3 => (0..3usize, proptest::bool::weighted(0.75)).prop_map(|(n, ok)| Act::Respond(n, ok)),
        2 => Just(Act::Other),
        4 => Just(Act::Deliver),
        1 => Just(Act::RefetchStart),
        1 => Just(Act::RefetchRespond),
        1 => (0..2_000u64).prop_map(Act::Advance),
    ]
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Layer {
    Pending,
    Awaiting { deadline: Duration, after: u64 },
    Gone,
}

struct Post {
    id: u64,
    client: String,
    text: String,
    stored: bool,
    answered: bool,
    layer: Layer,
}

struct World {
    h: Harness,
    key: std::sync::Arc<str>,
    entry: u64,
    posts: Vec<Post>,
    queue: VecDeque<Value>,
    truth: Vec<Value>,
    next_server_id: u64,
    latest_request: u64,
    open_refetch: Option<(u64, Vec<Value>)>,
    settled: BTreeSet<u64>,
}

fn config() -> Value {
    json!({"endpoints": {
        "getMessages": {"query": "messages", "stream": {"url": "ws://127.0.0.1:1/", "apply": {"append": {"dedupeBy": "id"}}}},
        "send": {"mutation": {"url": "messages", "body": "{arg}"},
                 "optimistic": [{"endpoint": "getMessages", "message": {"id": "{arg.clientId}", "clientId": "{arg.clientId}", "text": "{arg.text}"}}],
                 "confirm": {"clientId": "{arg.clientId}"},
                 "confirmTimeoutMs": TIMEOUT_MS}
    }})
}

impl World {
    fn new() -> World {
        let mut h = Harness::new(config(), &[]);
        let (key, entry) = h.subscribe("s", "getMessages", None);
        let (_, _, request) = h.fetches().pop().unwrap();
        let first = json!({"id": 1, "text": "seed"});
        h.respond(&key, entry, request, json!([first.clone()]));
        World {
            h,
            key,
            entry,
            posts: Vec::new(),
            queue: VecDeque::new(),
            truth: vec![first],
            next_server_id: 2,
            latest_request: request,
            open_refetch: None,
            settled: BTreeSet::new(),
        }
    }

    fn store(&mut self, message: Value) {
        self.truth.push(message.clone());
        self.queue.push_back(message);
    }

    fn server_message(&mut self, client: Option<&str>, text: &str) -> Value {
        let id = self.next_server_id;
        self.next_server_id += 1;
        match client {
            Some(c) => json!({"id": id, "clientId": c, "text": text}),
            None => json!({"id": id, "text": text}),
        }
    }

    /// Runs one step; returns the texts whose layer this step confirmed.
    fn step(&mut self, act: &Act) -> Vec<String> {
        let mut confirmed = Vec::new();
        match *act {
            Act::Post => {
                let n = self.posts.len();
                let (client, text) = (format!("c{n}"), format!("post {n}"));
                let id = self.h.engine.mutate("send", Some(json!({"clientId": client, "text": text}))).expect("mutate");
                self.posts.push(Post { id, client, text, stored: false, answered: false, layer: Layer::Pending });
            }
            Act::Accept(n) => {
                if let Some(i) = (0..self.posts.len()).filter(|&i| !self.posts[i].stored && !self.posts[i].answered).nth(n) {
                    self.posts[i].stored = true;
                    let (client, text) = (self.posts[i].client.clone(), self.posts[i].text.clone());
                    let m = self.server_message(Some(&client), &text);
                    self.store(m);
                }
            }
            Act::Respond(n, ok) => {
                let Some(i) = (0..self.posts.len()).filter(|&i| !self.posts[i].answered).nth(n) else { return confirmed };
                // A stored post succeeded; one not stored may go either way.
                let ok = ok || self.posts[i].stored;
                if ok && !self.posts[i].stored {
                    self.posts[i].stored = true;
                    let (client, text) = (self.posts[i].client.clone(), self.posts[i].text.clone());
                    let m = self.server_message(Some(&client), &text);
                    self.store(m);
                }
                self.posts[i].answered = true;
                let result = if ok { Ok(json!({"ok": true})) } else { Err(Error::Mutation(json!({"status": 500, "data": null}))) };
                let now = self.h.now;
                self.h.engine.mutation_done(now, self.posts[i].id, result);
                self.posts[i].layer = match (self.posts[i].layer, ok) {
                    (Layer::Gone, _) => Layer::Gone,
                    (_, false) => Layer::Gone,
                    (_, true) => Layer::Awaiting { deadline: now + Duration::from_millis(TIMEOUT_MS), after: self.latest_request },
                };
            }
            Act::Other => {
                let m = self.server_message(None, "other");
                self.store(m);
            }
            Act::Deliver => {
                let Some(m) = self.queue.pop_front() else { return confirmed };
                if let Some(c) = m.get("clientId").and_then(Value::as_str) {
                    if let Some(p) = self.posts.iter_mut().find(|p| p.client == c && p.layer != Layer::Gone) {
                        p.layer = Layer::Gone;
                        confirmed.push(p.text.clone());
                    }
                }
                let (key, entry) = (self.key.clone(), self.entry);
                self.h.push(&key, entry, vec![m]);
            }
            Act::RefetchStart => {
                if self.open_refetch.is_none() {
                    self.h.engine.refetch(&self.key).unwrap();
                    let (_, _, request) = self.h.fetches().pop().expect("a refetch");
                    self.latest_request = request;
                    self.open_refetch = Some((request, self.truth.clone()));
                }
            }
            Act::RefetchRespond => {
                let Some((request, snapshot)) = self.open_refetch.take() else { return confirmed };
                for p in &mut self.posts {
                    if let Layer::Awaiting { after, .. } = p.layer {
                        if request > after {
                            p.layer = Layer::Gone;
                            confirmed.push(p.text.clone());
                        }
                    }
                }
                let (key, entry) = (self.key.clone(), self.entry);
                self.h.respond(&key, entry, request, Value::Array(snapshot));
            }
            Act::Advance(by) => {
                self.h.advance(ms(by));
                let now = self.h.now;
                for p in &mut self.posts {
                    if matches!(p.layer, Layer::Awaiting { deadline, .. } if deadline <= now) {
                        p.layer = Layer::Gone;
                    }
                }
            }
        }
        self.h.drain();
        confirmed
    }

    /// The server data with the pending layers on top, in mutation order (the reference).
    fn expected_visible(&self) -> Value {
        let (server, _) = self.h.engine.host_base(&self.key, None).expect("loaded");
        let mut v = (*server).clone();
        let rule = ApplyRule::Append { max_len: None, dedupe_by: Some("id".into()) };
        for p in self.posts.iter().filter(|p| p.layer != Layer::Gone) {
            let message = json!({"id": p.client, "clientId": p.client, "text": p.text});
            apply_rule(&rule, None, &mut v, message, 128).expect("a layer applies");
        }
        v
    }
}

fn has_text(v: &Value, text: &str) -> bool {
    v.as_array().is_some_and(|a| a.iter().any(|m| m["text"] == text))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn w3_visible_is_server_plus_pending_layers_at_every_step(acts in proptest::collection::vec(act(), 1..60)) {
        let mut w = World::new();
        for act in &acts {
            let before_events = w.h.events["s"].len();
            let before = w.h.engine.entry_state(&w.key, None).unwrap().data;
            let confirmed = w.step(act);
            let state = w.h.engine.entry_state(&w.key, None).unwrap();
            prop_assert_eq!(&state.data, &w.expected_visible(), "after {:?}", act);
            let pending = w.posts.iter().filter(|p| p.layer != Layer::Gone).count();
            prop_assert_eq!(state.optimistic, pending, "after {:?}", act);
            let (replayed, version) = w.h.replay("s");
            prop_assert_eq!(&replayed, &state.data, "replay after {:?}", act);
            prop_assert_eq!(version, state.version);
            for text in &confirmed {
                prop_assert!(has_text(&before, text), "{} was shown before its confirmation", text);
                for s in w.h.states_from("s", before_events) {
                    prop_assert!(has_text(&s, text), "{} flickered at its confirmation ({:?}): {}", text, act, s);
                }
            }
            for (id, _) in settled(&mut w.h) {
                w.settled.insert(id);
            }
            let expect: BTreeSet<u64> = w.posts.iter().filter(|p| p.answered && p.layer == Layer::Gone).map(|p| p.id).collect();
            prop_assert_eq!(&w.settled, &expect, "settled after {:?}", act);
        }
    }
}

// ---- the same property where most server changes skip the rebase: an entity-adapter state,
// layers setting a field of some entities (or adding one), stream upserts of any entity.

#[derive(Clone, Debug)]
enum EntityAct {
    /// Set `online` on entity `id` optimistically (ids 20.. are new entities).
    Mark(u8),
    /// The `n`th open mutation fails (its layer goes) or is confirmed by its echo.
    Fail(usize),
    Echo(usize),
    /// A stream upsert of entity `id`: its `score`, or its `online`.
    Score(u8),
    Online(u8, bool),
    /// A stream upsert of a field the layers set too, to a value they do not.
    Tag(u8),
}

fn entity_act() -> impl Strategy<Value = EntityAct> {
    prop_oneof![
        2 => (0..24u8).prop_map(EntityAct::Mark),
        1 => (0..3usize).prop_map(EntityAct::Fail),
        1 => (0..3usize).prop_map(EntityAct::Echo),
        5 => (0..24u8).prop_map(EntityAct::Score),
        1 => (0..24u8, proptest::bool::ANY).prop_map(|(i, b)| EntityAct::Online(i, b)),
        1 => (0..24u8).prop_map(EntityAct::Tag),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn w3_skipping_the_rebase_gives_what_the_rebase_gives(acts in proptest::collection::vec(entity_act(), 1..60)) {
        let config = json!({"endpoints": {
            "getUsers": {"query": "users", "transformResponse": {"entityAdapter": {}}, "stream": {"url": "ws://127.0.0.1:1/", "apply": "upsert"}},
            "mark": {"mutation": "mark/{arg}", "optimistic": [{"endpoint": "getUsers", "message": {"id": "{arg}", "online": true, "tag": "m"}}],
                     "confirm": {"id": "{arg}", "online": true}}
        }});
        let mut h = Harness::new(config, &[]);
        let (key, entry) = h.subscribe("s", "getUsers", None);
        let (_, _, request) = h.fetches().pop().unwrap();
        let users: Vec<Value> = (0..20).map(|i| json!({"id": i, "score": 0, "online": false, "tag": "m"})).collect();
        let state = livecache_engine::adapter::normalize(&livecache_engine::config::EntityAdapterConfig { select_id: "id".into(), sort_by: None }, Value::Array(users)).unwrap();
        h.respond(&key, entry, request, state);
        let mut open: Vec<(u64, u8)> = Vec::new();
        let mut pending: Vec<(u64, u8)> = Vec::new();
        let mut n = 0u64;
        for act in &acts {
            match *act {
                EntityAct::Mark(id) => {
                    let m = h.engine.mutate("mark", Some(json!(id))).unwrap();
                    open.push((m, id));
                    pending.push((m, id));
                }
                EntityAct::Fail(i) => {
                    if i < open.len() {
                        let (m, _) = open.remove(i);
                        h.engine.mutation_done(h.now, m, Err(Error::Mutation(json!({"status": 500}))));
                        pending.retain(|(p, _)| *p != m);
                    }
                }
                EntityAct::Echo(i) => {
                    if i < open.len() {
                        let (m, id) = open.remove(i);
                        h.engine.mutation_done(h.now, m, Ok(json!({})));
                        let (key, entry) = (key.clone(), entry);
                        h.push(&key, entry, vec![json!({"id": id, "online": true})]);
                        // The echo confirms every pending layer on that entity.
                        pending.retain(|(_, p)| *p != id);
                    }
                }
                EntityAct::Score(id) => {
                    n += 1;
                    let (key, entry) = (key.clone(), entry);
                    h.push(&key, entry, vec![json!({"id": id, "score": n})]);
                }
                EntityAct::Tag(id) => {
                    let (key, entry) = (key.clone(), entry);
                    h.push(&key, entry, vec![json!({"id": id, "tag": "s"})]);
                }
                EntityAct::Online(id, on) => {
                    let (key, entry) = (key.clone(), entry);
                    h.push(&key, entry, vec![json!({"id": id, "online": on})]);
                    if on {
                        pending.retain(|(_, p)| *p != id);
                    }
                }
            }
            h.drain();
            let (server, _) = h.engine.host_base(&key, None).unwrap();
            let mut expected = (*server).clone();
            let rule = ApplyRule::Upsert { select_id: None };
            let cfg = livecache_engine::config::EntityAdapterConfig { select_id: "id".into(), sort_by: None };
            for (_, id) in &pending {
                apply_rule(&rule, Some(&cfg), &mut expected, json!({"id": id, "online": true, "tag": "m"}), 128).unwrap();
            }
            let state = h.engine.entry_state(&key, None).unwrap();
            prop_assert_eq!(&state.data, &expected, "after {:?}", act);
            prop_assert_eq!(state.optimistic, pending.len());
            let (replayed, version) = h.replay("s");
            prop_assert_eq!(&replayed, &state.data, "replay after {:?}", act);
            prop_assert_eq!(version, state.version);
        }
    }
}
