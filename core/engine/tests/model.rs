//! Model-based check of the engine: random sequences of inputs (subscribe, unsubscribe, fetch
//! answers in any order, messages before and after the data, refetches, host patches, time)
//! against a small reference model of what SPEC §4 says must happen — the data, the version, the
//! subscriber count and the removal deadline of every entry — and every subscriber's events
//! replayed with the json-patch crate onto its last snapshot (E1).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use livecache_engine::Output;
use livecache_engine::PatchOp;
use proptest::prelude::*;
use serde_json::{json, Value};
use support::*;

const KEEP_MS: u64 = 10_000;
const SUBS: [&str; 4] = ["s0", "s1", "s2", "s3"];

#[derive(Clone, Debug)]
enum Op {
    Subscribe(usize, u8),
    Unsubscribe(usize),
    /// Answer the `nth` oldest open request of an arg's entry with messages `0..len`.
    Respond(u8, usize, u8),
    Fail(u8, usize),
    Push(u8, u8),
    Refetch(u8),
    Patch(u8),
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..SUBS.len(), 0..2u8).prop_map(|(s, a)| Op::Subscribe(s, a)),
        2 => (0..SUBS.len()).prop_map(Op::Unsubscribe),
        3 => (0..2u8, 0..3usize, 0..4u8).prop_map(|(a, n, l)| Op::Respond(a, n, l)),
        1 => (0..2u8, 0..3usize).prop_map(|(a, n)| Op::Fail(a, n)),
        4 => (0..2u8, 0..6u8).prop_map(|(a, id)| Op::Push(a, id)),
        1 => (0..2u8).prop_map(Op::Refetch),
        1 => (0..2u8).prop_map(Op::Patch),
        2 => (0..15_000u64).prop_map(Op::Advance),
    ]
}

/// What SPEC §4 says one entry is.
#[derive(Debug, Default)]
struct ModelEntry {
    subscribers: BTreeSet<usize>,
    data: Option<Vec<Value>>,
    version: u64,
    latest: u64,
    open: Vec<u64>,
    refetching: bool,
    reapply: Vec<Value>,
    buffer: Vec<Value>,
    deadline: Option<Duration>,
}

impl ModelEntry {
    /// `append` with `dedupeBy: "id"`: true when the message changed the data.
    fn append(data: &mut Vec<Value>, m: &Value) -> bool {
        if data.iter().any(|d| d["id"] == m["id"]) {
            return false;
        }
        data.push(m.clone());
        true
    }
}

fn message(id: u8) -> Value {
    json!({"id": id})
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_the_model(ops in prop::collection::vec(op(), 1..60)) {
        let config = chat_config(json!({"keepUnusedDataFor": KEEP_MS as f64 / 1000.0}));
        let mut h = Harness::new(config, &[("getMessages", query_fn())]);
        let mut model: BTreeMap<u8, ModelEntry> = BTreeMap::new();
        let mut subscribed: BTreeMap<usize, u8> = BTreeMap::new();
        let key = |a: u8| format!("getMessages({a})");
        for op in ops {
            match op {
                Op::Subscribe(s, a) => {
                    if subscribed.contains_key(&s) { continue; }
                    // A subscriber name is reused only after its old events are forgotten.
                    h.events.remove(SUBS[s]);
                    h.subscribe(SUBS[s], "getMessages", Some(json!(a)));
                    subscribed.insert(s, a);
                    let e = model.entry(a).or_default();
                    if e.subscribers.is_empty() && e.latest == 0 {
                        e.latest = 1;
                        e.open.push(1);
                    }
                    e.subscribers.insert(s);
                    e.deadline = None;
                }
                Op::Unsubscribe(s) => {
                    let Some(a) = subscribed.remove(&s) else { continue };
                    h.unsubscribe(SUBS[s]);
                    let e = model.get_mut(&a).unwrap();
                    e.subscribers.remove(&s);
                    if e.subscribers.is_empty() {
                        e.deadline = Some(h.now + Duration::from_millis(KEEP_MS));
                    }
                }
                Op::Respond(a, n, _) | Op::Fail(a, n) if model.get(&a).is_some_and(|e| !e.open.is_empty()) => {
                    let e = model.get_mut(&a).unwrap();
                    let request = e.open.remove(n % e.open.len());
                    let entry = h.engine.entry_id(&key(a)).unwrap();
                    let ok = matches!(op, Op::Respond(..));
                    let data: Vec<Value> = match op { Op::Respond(_, _, l) => (0..l).map(message).collect(), _ => vec![] };
                    if ok {
                        h.respond(&key(a), entry, request, Value::Array(data.clone()));
                    } else {
                        h.engine.fetch_done(&key(a), entry, request, Err(json!({"status": 500})));
                        h.drain();
                    }
                    if request != e.latest { continue; }
                    let refetch = std::mem::take(&mut e.refetching);
                    let logged = std::mem::take(&mut e.reapply);
                    if !ok { continue; }
                    let mut data = data;
                    if e.data.is_none() {
                        e.version += 1;
                        for m in std::mem::take(&mut e.buffer) {
                            if ModelEntry::append(&mut data, &m) { e.version += 1; }
                        }
                    } else {
                        if refetch {
                            for m in &logged { ModelEntry::append(&mut data, m); }
                        }
                        e.version += 1;
                    }
                    e.data = Some(data);
                }
                Op::Respond(..) | Op::Fail(..) => {}
                Op::Push(a, id) => {
                    let Some(e) = model.get_mut(&a) else { continue };
                    let entry = h.engine.entry_id(&key(a)).unwrap();
                    h.push(&key(a), entry, vec![message(id)]);
                    let m = message(id);
                    match &mut e.data {
                        None => e.buffer.push(m),
                        Some(d) => {
                            if ModelEntry::append(d, &m) { e.version += 1; }
                            if e.refetching { e.reapply.push(m); }
                        }
                    }
                }
                Op::Refetch(a) => {
                    let Some(e) = model.get_mut(&a) else { continue };
                    h.engine.refetch(&key(a)).unwrap();
                    h.drain();
                    e.latest += 1;
                    e.open.push(e.latest);
                    e.refetching = e.data.is_some();
                    e.reapply.clear();
                }
                Op::Patch(a) => {
                    let Some(e) = model.get_mut(&a) else { continue };
                    let op = [PatchOp::Add { path: "/-".into(), value: json!({"id": "host"}) }];
                    let r = h.engine.patch(&key(a), None, &op);
                    h.drain();
                    match &mut e.data {
                        None => prop_assert_eq!(r.unwrap_err().kind(), "NotLoaded"),
                        Some(d) => {
                            r.unwrap();
                            d.push(json!({"id": "host"}));
                            e.version += 1;
                            if e.refetching { /* host updates are not reapplied (L9 vs L5) */ }
                        }
                    }
                }
                Op::Advance(by) => {
                    h.advance(Duration::from_millis(by));
                    model.retain(|_, e| !(e.subscribers.is_empty() && e.deadline.is_some_and(|d| d <= h.now)));
                }
            }
            // Requests the driver would start: the engine numbers them as the model does.
            for (k, _, request) in h.fetches() {
                let a: u8 = k["getMessages(".len()..k.len() - 1].parse().unwrap();
                prop_assert_eq!(request, model[&a].latest);
            }
            h.actions.retain(|o| !matches!(o, Output::Removed { .. } | Output::ArmTimer { .. }));
            // The engine is the model.
            prop_assert_eq!(h.engine.stats().entries as usize, model.len());
            prop_assert_eq!(h.engine.stats().subscriptions as usize, subscribed.len());
            for (a, e) in &model {
                let state = h.engine.entry_state(&key(*a), None).unwrap();
                prop_assert_eq!(state.version, e.version, "version of {}", key(*a));
                let want = e.data.clone().map(Value::Array).unwrap_or(Value::Null);
                prop_assert_eq!(&state.data, &want, "data of {}", key(*a));
            }
            let deadline = model.values().filter(|e| e.subscribers.is_empty()).filter_map(|e| e.deadline).min();
            if let (Some(d), Some(next)) = (deadline, h.engine.next_deadline()) {
                prop_assert!(next <= d, "the engine wakes no later than the soonest deadline");
            }
            // Every subscriber's replica is the engine's data (E1).
            for (s, a) in &subscribed {
                let state = h.engine.entry_state(&key(*a), None).unwrap();
                if state.version > 0 {
                    prop_assert_eq!(h.replay(SUBS[*s]), (state.data, state.version));
                }
            }
        }
    }
}
