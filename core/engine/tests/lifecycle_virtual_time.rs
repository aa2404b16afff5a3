//! The lifecycle rules on the engine alone, on virtual time: nothing here sleeps or opens a
//! socket; time moves when a test says so (L1–L8, L9, §6's onMessage protocol).

mod support;

use livecache_engine::engine::LoadedNow;
use livecache_engine::{HookShape, HostHooks, Output};
use livecache_engine::message::Prepared;
use livecache_engine::on_message::{HookFailure, MessageUpdate};
use livecache_engine::{ErrorReason, Event, Status, StreamState};
use serde_json::{json, Value};
use support::*;

fn removed(h: &mut Harness) -> usize {
    h.take().iter().filter(|a| matches!(a, Output::Removed { .. })).count()
}

#[test]
fn l7_removal_waits_keep_unused_data_for_on_virtual_time() {
    let mut h = Harness::new(chat_config(json!({"keepUnusedDataFor": 60})), &[("getMessages", query_fn())]);
    let (key, entry) = h.subscribe("s1", "getMessages", Some(json!("redux")));
    let (_, _, request) = h.fetches()[0].clone();
    h.respond(&key, entry, request, json!([]));
    h.take();
    h.unsubscribe("s1");
    let armed: Vec<_> = h.take().into_iter().filter_map(|a| match a { Output::ArmTimer { at } => Some(at), _ => None }).collect();
    assert_eq!(armed, [ms(60_000)], "the driver is asked to wake at the deadline");
    h.advance(ms(59_999));
    assert_eq!(removed(&mut h), 0);
    assert!(h.engine.entry_state(&key, None).is_ok());
    h.advance(ms(1));
    assert_eq!(removed(&mut h), 1);
    assert!(h.engine.entry_state(&key, None).is_err());
    assert_eq!(h.engine.stats().entries_removed, 1);
    assert_eq!(h.engine.next_deadline(), None);
}

#[test]
fn l7_timer_restarts_at_full_length_on_each_unsubscribe() {
    let mut h = Harness::new(chat_config(json!({"keepUnusedDataFor": 60})), &[("getMessages", query_fn())]);
    let (key, _) = h.subscribe("s1", "getMessages", Some(json!(1)));
    h.unsubscribe("s1");
    h.advance(ms(30_000));
    h.subscribe("s2", "getMessages", Some(json!(1)));
    h.advance(ms(10_000));
    h.unsubscribe("s2");
    // First deadline (60 s) passes: the entry was restarted at 40 s, so it lives until 100 s.
    h.advance(ms(25_000));
    assert_eq!(removed(&mut h), 0);
    h.advance(ms(34_999));
    assert_eq!(removed(&mut h), 0);
    h.advance(ms(1));
    assert_eq!(removed(&mut h), 1);
    assert!(h.engine.entry_state(&key, None).is_err());
    assert_eq!(h.engine.stats().fetches, 1, "the resubscribe reused the entry (no refetch)");
}

#[test]
fn l7_resubscribe_before_expiry_keeps_the_entry_and_its_stream() {
    let config = json!({"keepUnusedDataFor": 5, "endpoints": {"getMessages": {"stream": {"url": "ws://127.0.0.1:1/", "apply": "append"}}}});
    let mut h = Harness::new(config, &[("getMessages", query_fn())]);
    h.subscribe("s1", "getMessages", None);
    let opened = h.take().iter().filter(|a| matches!(a, Output::OpenStream { .. })).count();
    assert_eq!(opened, 1);
    h.unsubscribe("s1");
    h.advance(ms(4_000));
    h.subscribe("s2", "getMessages", None);
    h.advance(ms(10_000));
    let actions = h.take();
    assert!(!actions.iter().any(|a| matches!(a, Output::OpenStream { .. } | Output::Removed { .. } | Output::Fetch { .. })));
}

#[test]
fn l7_zero_removes_at_the_next_tick_and_forever_never() {
    let config = json!({"endpoints": {
        "now": {"keepUnusedDataFor": 0},
        "never": {"keepUnusedDataFor": null},
        "far": {"keepUnusedDataFor": 1e300}
    }});
    let hooks = [("now", query_fn()), ("never", query_fn()), ("far", query_fn())];
    let mut h = Harness::new(config, &hooks);
    for (name, ep) in [("a", "now"), ("b", "never"), ("c", "far")] {
        h.subscribe(name, ep, None);
        h.unsubscribe(name);
    }
    assert_eq!(h.engine.next_deadline(), Some(ms(0)), "only `0` has a deadline; 1e300 s does not fit and is never");
    assert_eq!(removed(&mut h), 0, "not within the unsubscribe call itself");
    h.advance(ms(0));
    assert_eq!(removed(&mut h), 1);
    h.advance(std::time::Duration::from_secs(10 * 365 * 86_400));
    assert_eq!(removed(&mut h), 0);
    assert_eq!(h.engine.stats().entries, 2);
}

#[test]
fn l1_first_subscribe_starts_fetch_stream_and_lifecycle_in_one_step() {
    let config = json!({"endpoints": {"getMessages": {"stream": {"url": "ws://127.0.0.1:1/{arg}", "apply": "append"}}}});
    let hooks = HostHooks { query_fn: true, on_cache_entry_added: true, ..Default::default() };
    let mut h = Harness::new(config, &[("getMessages", hooks)]);
    h.subscribe("s1", "getMessages", Some(json!("general")));
    let actions = h.take();
    let kinds: Vec<&str> = actions
        .iter()
        .map(|a| match a {
            Output::OpenStream { target, .. } => {
                assert_eq!(target.url, "ws://127.0.0.1:1/general");
                "open"
            }
            Output::StartLifecycle { .. } => "lifecycle",
            Output::Fetch { request: 1, .. } => "fetch",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["open", "lifecycle", "fetch"]);
    assert_eq!(h.types("s1"), ["status", "stream"]);
    // A second subscriber shares the entry: no second fetch, stream or lifecycle (K2).
    h.subscribe("s2", "getMessages", Some(json!("general")));
    assert!(h.take().is_empty());
}

#[test]
fn l2_loaded_waits_for_the_first_success_and_rejects_on_removal() {
    let mut h = Harness::new(chat_config(json!({"keepUnusedDataFor": 0})), &[("getMessages", query_fn())]);
    let (key, entry) = h.subscribe("s1", "getMessages", None);
    let LoadedNow::Waiting(w) = h.engine.loaded(&key, entry).unwrap() else { panic!("no data yet") };
    let (_, _, r1) = h.fetches()[0].clone();
    h.engine.fetch_done(&key, entry, r1, Err(json!({"status": 500})));
    assert!(h.take().is_empty(), "a failed fetch does not settle loaded() (L2)");
    assert_eq!(h.engine.entry_state(&key, None).unwrap().status, Status::Rejected);
    h.engine.refetch(&key).unwrap();
    let (_, _, r2) = h.fetches()[0].clone();
    h.respond(&key, entry, r2, json!([1]));
    match &h.take()[..] {
        [Output::Settle { waiters, result: Ok(l) }] => {
            assert_eq!(waiters, &[w]);
            assert_eq!(l.data, json!([1]));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(h.engine.loaded(&key, entry).unwrap(), LoadedNow::Ready(d) if d == json!([1])));
    // A waiter of an entry that goes first rejects with CacheEntryRemoved.
    let (key2, entry2) = h.subscribe("s2", "getMessages", Some(json!(2)));
    let LoadedNow::Waiting(w2) = h.engine.loaded(&key2, entry2).unwrap() else { panic!() };
    h.take();
    h.unsubscribe("s2");
    h.advance(ms(0));
    let settled = h.take().into_iter().find_map(|a| match a {
        Output::Settle { waiters, result: Err(e) } => Some((waiters, e.kind())),
        _ => None,
    });
    assert_eq!(settled, Some((vec![w2], "CacheEntryRemoved")));
}

#[test]
fn l4_messages_before_the_data_are_buffered_then_applied_in_order() {
    let mut h = Harness::new(chat_config(json!({})), &[("getMessages", query_fn())]);
    let (key, entry) = h.subscribe("s1", "getMessages", None);
    h.push(&key, entry, vec![json!({"id": 2}), json!({"id": 3})]);
    assert_eq!(h.engine.stats().messages_buffered, 2);
    assert_eq!(h.types("s1"), ["status"], "nothing applied before the data");
    let (_, _, r) = h.fetches()[0].clone();
    h.respond(&key, entry, r, json!([{"id": 1}]));
    assert_eq!(h.data(&key), json!([{"id": 1}, {"id": 2}, {"id": 3}]));
    assert_eq!(h.types("s1"), ["status", "snapshot", "patch"]);
    assert_eq!(h.replay("s1"), (h.data(&key), 3));
}

#[test]
fn l4_overflow_drops_the_buffer_and_refetches_once_the_stream_opens() {
    let config = json!({"endpoints": {"getMessages": {"stream": {"url": "ws://127.0.0.1:1/", "apply": "append", "bufferBeforeLoaded": 2}}}});
    let mut h = Harness::new(config, &[("getMessages", query_fn())]);
    let (key, entry) = h.subscribe("s1", "getMessages", None);
    h.push(&key, entry, vec![json!(1), json!(2), json!(3)]);
    let (_, _, r1) = h.fetches()[0].clone();
    h.respond(&key, entry, r1, json!([0]));
    assert!(h.fetches().is_empty(), "the stream is not open yet: the refetch waits for it");
    h.engine.stream_state(&key, entry, StreamState::Open, None);
    let refetch = h.fetches();
    assert_eq!(refetch.len(), 1);
    h.respond(&key, entry, refetch[0].2, json!([0, 1, 2, 3]));
    assert_eq!(h.data(&key), json!([0, 1, 2, 3]));
    assert_eq!(h.engine.stats().buffer_overflows, 1);
}

#[test]
fn l5_the_last_request_wins_and_idempotent_messages_are_reapplied() {
    let config = json!({"endpoints": {"getMessages": {"stream": {"apply": {"upsert": {"selectId": "id"}}}}}});
    let mut h = Harness::new(config, &[("getMessages", query_fn())]);
    let (key, entry) = h.subscribe("s1", "getMessages", None);
    let (_, _, r1) = h.fetches()[0].clone();
    h.respond(&key, entry, r1, json!([{"id": 1, "v": 0}]));
    h.engine.refetch(&key).unwrap();
    h.engine.refetch(&key).unwrap();
    let requests: Vec<u64> = h.fetches().into_iter().map(|f| f.2).collect();
    assert_eq!(requests, [2, 3]);
    // A message while the refetch runs applies now and again on top of the response.
    h.push(&key, entry, vec![json!({"id": 1, "v": 9})]);
    h.respond(&key, entry, 2, json!([{"id": 1, "v": 1}]));
    assert_eq!(h.engine.stats().stale_responses, 1, "request 2 is older than request 3");
    h.respond(&key, entry, 3, json!([{"id": 1, "v": 2}, {"id": 2, "v": 2}]));
    assert_eq!(h.data(&key), json!([{"id": 1, "v": 9}, {"id": 2, "v": 2}]));
    assert_eq!(h.engine.stats().messages_reapplied, 1);
    assert_eq!(h.replay("s1"), (h.data(&key), h.engine.entry_state(&key, None).unwrap().version));
}

#[test]
fn l8_a_reconnect_resyncs_and_every_state_is_an_event() {
    let config = json!({"endpoints": {"getMessages": {"stream": {"url": "ws://127.0.0.1:1/", "apply": "append"}}}});
    let mut h = Harness::new(config, &[("getMessages", query_fn())]);
    let (key, entry) = h.subscribe("s1", "getMessages", None);
    h.engine.stream_state(&key, entry, StreamState::Open, None);
    let (_, _, r) = h.fetches()[0].clone();
    h.respond(&key, entry, r, json!([]));
    assert!(h.fetches().is_empty(), "the first open came before the data: no resync needed");
    h.engine.stream_state(&key, entry, StreamState::Reconnecting, Some("connection reset".into()));
    h.engine.stream_state(&key, entry, StreamState::Open, None);
    assert_eq!(h.fetches().len(), 1, "L8: reopened, so refetched");
    assert_eq!(h.engine.stats().reconnects, 1);
    let streams: Vec<StreamState> = h.events["s1"].iter().filter_map(|e| match e { Event::Stream { state, .. } => Some(*state), _ => None }).collect();
    assert_eq!(streams, [StreamState::Connecting, StreamState::Open, StreamState::Reconnecting, StreamState::Open]);
}

#[test]
fn e3_rejected_input_keeps_its_place_between_the_patches() {
    let mut h = Harness::new(chat_config(json!({})), &[("getMessages", query_fn())]);
    let (key, entry) = h.subscribe("s1", "getMessages", None);
    let (_, _, r) = h.fetches()[0].clone();
    h.respond(&key, entry, r, json!([]));
    let mut batch = vec![
        Prepared::Message(json!({"id": 1})),
        Prepared::Rejected(ErrorReason::InvalidJson, "bad".into()),
        Prepared::Message(json!({"id": 2})),
    ];
    h.engine.messages(&key, entry, &mut batch);
    h.drain();
    assert_eq!(h.types("s1"), ["status", "snapshot", "patch", "error", "patch"]);
    assert_eq!(h.engine.stats().messages_rejected["invalid_json"], 1);
}

fn hook_engine(shape: HookShape) -> (Harness, std::sync::Arc<str>, u64) {
    let config = json!({"endpoints": {"getLog": {"stream": {}}}});
    let hooks = HostHooks { on_message: Some(shape), ..Default::default() };
    let mut h = Harness::new(config, &[("getLog", hooks)]);
    let (key, entry) = h.subscribe("s1", "getLog", None);
    (h, key, entry)
}

fn hook_call(h: &mut Harness) -> livecache_engine::HookCall {
    let mut calls: Vec<_> = h.take().into_iter().filter_map(|a| match a { Output::CallHook(c) => Some(c), _ => None }).collect();
    assert_eq!(calls.len(), 1, "one call out at a time");
    calls.pop().unwrap()
}

#[test]
fn on_message_batched_one_call_per_burst_with_its_base_version() {
    let (mut h, key, entry) = hook_engine(HookShape::Batched);
    h.push(&key, entry, vec![json!(1), json!(2)]);
    let call = hook_call(&mut h);
    assert_eq!((call.base.entry_id, call.base.version), (entry, 0));
    assert_eq!(call.messages, [json!(1), json!(2)]);
    assert_eq!(*call.data, Value::Null);
    // Messages while the call is out wait: they go in the next call, in order.
    h.push(&key, entry, vec![json!(3)]);
    assert!(h.take().is_empty());
    let outcomes = vec![Ok(MessageUpdate::Data(json!([1]))), Ok(MessageUpdate::Data(json!([1, 2])))];
    h.engine.hook_done(&key, call.base, Ok(outcomes));
    let next = hook_call(&mut h);
    assert_eq!(next.base.version, 2, "one version per outcome");
    assert_eq!(next.messages, [json!(3)]);
    assert_eq!(*next.data, json!([1, 2]));
    h.engine.hook_done(&key, next.base, Ok(vec![Ok(MessageUpdate::Ops(vec![livecache_engine::PatchOp::Add { path: "/-".into(), value: json!(3) }]))]));
    h.drain();
    assert_eq!(h.data(&key), json!([1, 2, 3]));
    assert_eq!(h.replay("s1"), (json!([1, 2, 3]), 3));
}

#[test]
fn on_message_answer_on_moved_data_is_asked_again_then_given_up() {
    let (mut h, key, entry) = hook_engine(HookShape::One);
    h.push(&key, entry, vec![json!({"x": 1})]);
    let first = hook_call(&mut h);
    h.engine.hook_done(&key, first.base, Ok(vec![Ok(MessageUpdate::Data(json!({"x": 1})))]));
    h.push(&key, entry, vec![json!(2)]);
    for attempt in 0..3 {
        let call = hook_call(&mut h);
        assert_eq!(call.messages, [json!(2)], "attempt {attempt}: the same message again");
        // A host update moves the data while the hook runs.
        h.engine.patch(&key, None, &[livecache_engine::PatchOp::Add { path: format!("/h{attempt}"), value: json!(attempt) }]).unwrap();
        h.engine.hook_done(&key, call.base, Ok(vec![Ok(MessageUpdate::Unchanged)]));
    }
    h.drain();
    let errors: Vec<_> = h.events["s1"].iter().filter_map(|e| match e { Event::Error { reason, message, .. } => Some((*reason, message.clone())), _ => None }).collect();
    assert_eq!(errors, [(ErrorReason::Apply, "the data kept changing while onMessage ran".to_owned())]);
}

#[test]
fn on_message_failures_are_one_error_per_message_and_the_next_call_goes_on() {
    let (mut h, key, entry) = hook_engine(HookShape::Batched);
    h.push(&key, entry, vec![json!(1), json!(2), json!(3)]);
    let call = hook_call(&mut h);
    h.engine.hook_done(&key, call.base, Err(HookFailure::Panicked));
    h.push(&key, entry, vec![json!(4)]);
    let call = hook_call(&mut h);
    assert_eq!(call.messages, [json!(4)]);
    // A failed outcome is that message's error; the next call has the messages after it.
    h.push(&key, entry, vec![json!(5)]);
    h.engine.hook_done(&key, call.base, Ok(vec![Err("boom".into())]));
    let call = hook_call(&mut h);
    assert_eq!(call.messages, [json!(5)]);
    h.drain();
    let reasons: Vec<_> = h.events["s1"].iter().filter_map(|e| match e { Event::Error { message, .. } => Some(message.as_str()), _ => None }).collect();
    assert_eq!(reasons, ["onMessage panicked", "onMessage panicked", "onMessage panicked", "onMessage: boom"]);
    assert_eq!(h.engine.stats().messages_rejected["hook"], 4);
}

#[test]
fn l9_a_recipe_on_moved_data_applies_its_patch_to_the_current_data() {
    let mut h = Harness::new(chat_config(json!({})), &[("getMessages", query_fn())]);
    let (key, entry) = h.subscribe("s1", "getMessages", None);
    let (_, _, r) = h.fetches()[0].clone();
    h.respond(&key, entry, r, json!([{"id": 1}]));
    let (base, version) = h.engine.host_base(&key, None).unwrap();
    let mut draft = (*base).clone();
    draft.as_array_mut().unwrap().push(json!({"id": "local"}));
    let recipe = livecache_engine::host_update::Recipe::new(&base, version, draft).unwrap();
    h.push(&key, entry, vec![json!({"id": 2})]);
    let result = h.engine.commit_recipe(&key, None, recipe).unwrap();
    assert_eq!(result.inverse_patches.len(), 1);
    // The recipe's patch (`add /1`) lands on the data as it is now, not on a stale copy.
    assert_eq!(h.data(&key), json!([{"id": 1}, {"id": "local"}, {"id": 2}]));
    h.drain();
    assert_eq!(h.replay("s1"), (h.data(&key), 3));
    assert_eq!(h.engine.patch(&key, None, &[livecache_engine::PatchOp::Remove { path: "/9".into() }]).unwrap_err().kind(), "PatchError");
    assert_eq!(h.data(&key), json!([{"id": 1}, {"id": "local"}, {"id": 2}]), "a failed update changes nothing");
}
