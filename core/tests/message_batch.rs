//! Bursts of queued messages. The batched `onMessage` hook (`EndpointHooks::on_messages`, SPEC §6):
//! the messages queued for an entry go to the host in one call, outcomes apply in order, and every
//! failure is reported for its own message without losing or doubling the others. Built-in rules
//! apply a burst under one lock: the same versions, data and patches as message by message.

mod support;

use std::sync::Arc;

use futures_util::future::FutureExt;
use livecache_core::hooks::{MessageBatch, MessageUpdate, OnMessagesFn};
use livecache_core::{EndpointHooks, ErrorReason, Event, Hooks, PatchOp, RawMessage};
use parking_lot::Mutex;
use serde_json::{json, Value};
use support::util::{block_on, client, wait_until, ManualQuery, Recorder};
use tokio::sync::oneshot;

/// What a test hook does with one message: its outcome, given the message.
type Outcome = fn(&Value) -> Result<MessageUpdate, String>;

fn append(m: &Value) -> Result<MessageUpdate, String> {
    Ok(MessageUpdate::Ops(vec![PatchOp::Add { path: "/-".into(), value: m.clone() }]))
}

/// A batched hook that logs the messages and the base version of each call, answers at most `answer` of them with
/// `outcome`, and holds its first call until the returned sender fires (or is dropped).
struct Batched {
    calls: Arc<Mutex<Vec<Vec<Value>>>>,
    bases: Arc<Mutex<Vec<u64>>>,
    gate: Arc<Mutex<Option<oneshot::Receiver<()>>>>,
}

impl Batched {
    fn new(outcome: Outcome, answer: usize) -> (Batched, OnMessagesFn, oneshot::Sender<()>) {
        let (tx, rx) = oneshot::channel();
        let me = Batched { calls: Arc::default(), bases: Arc::default(), gate: Arc::new(Mutex::new(Some(rx))) };
        let (calls, bases, gate) = (me.calls.clone(), me.bases.clone(), me.gate.clone());
        let hook: OnMessagesFn = Arc::new(move |batch: MessageBatch| {
            let messages = batch.messages;
            bases.lock().push(batch.base.version);
            calls.lock().push(messages.clone());
            let wait = gate.lock().take();
            async move {
                if let Some(rx) = wait {
                    let _ = rx.await;
                }
                Ok(messages.iter().take(answer).map(outcome).collect())
            }
            .boxed()
        });
        (me, hook, tx)
    }

    fn calls(&self) -> Vec<Vec<Value>> {
        self.calls.lock().clone()
    }

    fn bases(&self) -> Vec<u64> {
        self.bases.lock().clone()
    }
}

fn hooks(hook: OnMessagesFn) -> Hooks {
    let mut eh = EndpointHooks::default().query_fn_sync(|_| Ok(json!([])));
    eh.on_messages = Some(hook);
    Hooks::new().endpoint("getLog", eh)
}

/// Pushes `messages` before the data is loaded (L4 buffers them), then loads it: the buffer
/// goes to the hook in bursts. Waits until every message is applied or reported.
fn run(hook: OnMessagesFn, messages: &[Value]) -> (livecache_core::Client, Recorder) {
    let query = ManualQuery::default();
    let mut eh = query.hooks();
    eh.on_messages = Some(hook);
    let c = client(json!({"endpoints": {"getLog": {"stream": {"bufferBeforeLoaded": 1000}}}}), Hooks::new().endpoint("getLog", eh));
    let rec = Recorder::default();
    let sub = c.subscribe("getLog", None, rec.callback()).unwrap();
    for m in messages {
        c.push_message("getLog", None, RawMessage::Value(m.clone())).unwrap();
    }
    wait_until("messages buffered", || c.stats().unwrap().messages_buffered as usize == messages.len());
    query.resolve(json!([]));
    let n = messages.len() as u64;
    wait_until("every message applied or reported", || {
        let s = c.stats().unwrap();
        s.messages_applied + s.messages_rejected_total() == n
    });
    std::mem::forget(sub);
    (c, rec)
}

fn errors(rec: &Recorder) -> Vec<(ErrorReason, String)> {
    rec.events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Error { reason, message, .. } => Some((reason, message)),
            _ => None,
        })
        .collect()
}

fn numbered(n: usize) -> Vec<Value> {
    (0..n).map(|i| json!({"i": i})).collect()
}

#[test]
fn a_burst_goes_to_the_host_in_few_calls_and_applies_in_order() {
    let (b, hook, _) = Batched::new(append, usize::MAX);
    let messages = numbered(600);
    let (c, rec) = run(hook, &messages);
    let snap = c.snapshot("getLog", None).unwrap();
    assert_eq!(snap.data, Value::Array(messages.clone()), "each message once, in order");
    wait_until("replica caught up", || rec.version() == snap.version);
    rec.assert_replica(&snap.data, snap.version);
    let calls = b.calls();
    let given: Vec<Value> = calls.iter().flatten().cloned().collect();
    assert_eq!(given, messages, "each message offered exactly once");
    assert_eq!(calls.iter().map(Vec::len).collect::<Vec<_>>(), [256, 256, 88], "the buffered messages go in bursts");
    assert!(calls.iter().all(|c| (1..=256).contains(&c.len())), "bursts are bounded");
    // Each call names the version it was given: the data's first version, then that version
    // moved by the outcomes of the calls before it.
    assert_eq!(b.bases(), [1, 257, 513], "the base version travels with each call");
    assert!(errors(&rec).is_empty());
    c.close();
}

#[test]
fn a_failed_outcome_is_reported_for_its_message_only() {
    fn odd_fails(m: &Value) -> Result<MessageUpdate, String> {
        if m["i"].as_u64().unwrap() % 3 == 1 {
            Err(format!("cannot take {}", m["i"]))
        } else {
            append(m)
        }
    }
    let (_b, hook, _) = Batched::new(odd_fails, usize::MAX);
    let messages = numbered(90);
    let (c, rec) = run(hook, &messages);
    let kept: Vec<Value> = messages.iter().filter(|m| m["i"].as_u64().unwrap() % 3 != 1).cloned().collect();
    assert_eq!(c.snapshot("getLog", None).unwrap().data, Value::Array(kept));
    assert_eq!(c.stats().unwrap().messages_rejected.get("hook"), Some(&30), "one error per failed message");
    wait_until("30 error events", || errors(&rec).len() == 30);
    let errs = errors(&rec);
    assert!(errs.iter().all(|(r, m)| *r == ErrorReason::Hook && m.starts_with("onMessage: cannot take ")));
    assert_eq!(errs[0].1, "onMessage: cannot take 1");
    c.close();
}

#[test]
fn a_short_answer_offers_the_rest_again() {
    let (b, hook, _) = Batched::new(append, 7);
    let messages = numbered(100);
    let (c, _rec) = run(hook, &messages);
    assert_eq!(c.snapshot("getLog", None).unwrap().data, Value::Array(messages.clone()));
    let calls = b.calls();
    // The first call had all 100; each later one starts where the answers stopped.
    let starts: Vec<u64> = calls.iter().map(|c| c[0]["i"].as_u64().unwrap()).collect();
    assert_eq!(starts, (0..100).step_by(7).collect::<Vec<_>>());
    c.close();
}

#[test]
fn an_outcome_the_engine_cannot_apply_stops_the_burst_and_the_rest_is_offered_again() {
    fn bad_remove(m: &Value) -> Result<MessageUpdate, String> {
        if m["i"] == json!(5) {
            Ok(MessageUpdate::Ops(vec![PatchOp::Remove { path: "/999".into() }]))
        } else {
            append(m)
        }
    }
    let (b, hook, _) = Batched::new(bad_remove, usize::MAX);
    let messages = numbered(20);
    let (c, rec) = run(hook, &messages);
    let kept: Vec<Value> = messages.iter().filter(|m| m["i"] != json!(5)).cloned().collect();
    assert_eq!(c.snapshot("getLog", None).unwrap().data, Value::Array(kept));
    wait_until("the error event", || !errors(&rec).is_empty());
    let errs = errors(&rec);
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].0, ErrorReason::Apply);
    assert!(errs[0].1.starts_with("onMessage patch:"), "{}", errs[0].1);
    // Messages 6.. were computed on data that had message 5's change: offered again.
    let calls = b.calls();
    assert_eq!(calls[0].len(), 20);
    assert_eq!(calls[1][0], json!({"i": 6}));
    c.close();
}

#[test]
fn no_outcome_or_a_failed_call_is_an_error_per_message() {
    let (_b, hook, _) = Batched::new(append, 0);
    let (c, rec) = run(hook, &numbered(4));
    wait_until("4 error events", || errors(&rec).len() == 4);
    let errs: Vec<String> = errors(&rec).into_iter().map(|(r, m)| format!("{r:?}: {m}")).collect();
    // Each call loses its first message only: the rest are offered again.
    assert_eq!(errs, (1..=4).rev().map(|n| format!("Hook: onMessage gave 0 outcomes for {n} messages")).collect::<Vec<_>>());
    assert_eq!(c.snapshot("getLog", None).unwrap().data, json!([]));
    c.close();

    let calls = Arc::new(Mutex::new(0));
    let n = calls.clone();
    let hook: OnMessagesFn = Arc::new(move |_| {
        *n.lock() += 1;
        std::future::ready(Err("the host is gone".to_string())).boxed()
    });
    let (c, rec) = run(hook, &numbered(3));
    wait_until("3 error events", || errors(&rec).len() == 3);
    let errs = errors(&rec);
    assert_eq!(errs.len(), 3, "{errs:?}");
    assert!(errs.iter().all(|(r, m)| *r == ErrorReason::Hook && m == "onMessage: the host is gone"));
    c.close();
}

#[test]
fn push_messages_hands_the_hook_the_whole_burst_in_one_call() {
    // pushMessages (L10 for a burst) queues its messages in one engine step: a batched hook with
    // no call in flight gets them all at once, in order.
    let (b, hook, gate) = Batched::new(append, usize::MAX);
    drop(gate);
    let c = client(json!({"endpoints": {"getLog": {"stream": {}}}}), hooks(hook));
    let rec = Recorder::default();
    let sub = c.subscribe("getLog", None, rec.callback()).unwrap();
    block_on(sub.loaded()).unwrap();
    c.push_messages("getLog", None, numbered(50).into_iter().map(RawMessage::Value).collect()).unwrap();
    wait_until("applied", || c.stats().unwrap().messages_applied == 50);
    assert_eq!(c.snapshot("getLog", None).unwrap().data, Value::Array(numbered(50)));
    let calls = b.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0], numbered(50));
    assert!(errors(&rec).is_empty());
    assert!(matches!(c.push_messages("getLog", Some(&json!(1)), vec![]), Err(livecache_core::Error::NotFound(_))));
    assert!(matches!(c.push_messages("nope", None, vec![]), Err(livecache_core::Error::UnknownEndpoint(_))));
    drop(sub);
    c.close();
}

#[test]
fn a_host_update_during_the_call_makes_the_engine_ask_again() {
    // The first call is answered only after a host update moved the data: its outcomes were
    // computed on old data, so the same messages are offered again on the new data.
    let (b, hook, gate) = Batched::new(append, usize::MAX);
    let c = client(json!({"endpoints": {"getLog": {"stream": {}}}}), hooks(hook));
    let rec = Recorder::default();
    let sub = c.subscribe("getLog", None, rec.callback()).unwrap();
    block_on(sub.loaded()).unwrap();
    for m in numbered(3) {
        c.push_message("getLog", None, RawMessage::Value(m)).unwrap();
    }
    wait_until("the first hook call", || !b.calls().is_empty());
    c.update_query_data("getLog", None, |d| {
        d.as_array_mut().unwrap().push(json!("host"));
        None
    })
    .unwrap();
    let _ = gate.send(());
    wait_until("applied", || c.stats().unwrap().messages_applied == 3);
    assert_eq!(c.snapshot("getLog", None).unwrap().data, json!(["host", {"i": 0}, {"i": 1}, {"i": 2}]));
    let calls = b.calls();
    assert_eq!(calls.iter().flatten().filter(|m| **m == json!({"i": 0})).count(), 2, "{calls:?}");
    drop(sub);
    c.close();
}

#[test]
fn a_rule_burst_with_rejections_and_a_collapsing_queue_replays_exactly() {
    // 300 buffered messages flushed in bursts into `append` with `maxLen`, every 7th too deep
    // (E3), and a subscriber queue of 3 events that collapses mid-burst (E5): the replica
    // replays to the data, each accepted message is one version.
    let query = ManualQuery::default();
    let config = json!({
        "queueLimit": 3,
        "endpoints": {"getLog": {"stream": {"apply": {"append": {"maxLen": 5}}, "bufferBeforeLoaded": 1000}}}
    });
    let c = client(config, Hooks::new().endpoint("getLog", query.hooks()));
    let rec = Recorder::default();
    // The callback stops at the first event of the flush until every message is handled, so the
    // queue of 3 overflows whatever the machine's speed (a delivery thread on another core can
    // otherwise keep up with the engine).
    let (open, gate) = std::sync::mpsc::channel::<()>();
    let gate = Mutex::new(Some(gate));
    let record = rec.callback();
    let callback = move |e: &Event| {
        if matches!(e, Event::Patch { .. } | Event::Error { .. }) {
            if let Some(gate) = gate.lock().take() {
                let _ = gate.recv();
            }
        }
        record(e)
    };
    let _sub = c.subscribe("getLog", None, callback).unwrap();
    // 128 levels: a valid message (E3 bound), but one level too deep inside the array.
    let deep = (0..128).fold(json!(1), |v, _| json!([v]));
    for i in 0..300 {
        let m = if i % 7 == 3 { deep.clone() } else { json!({"i": i}) };
        c.push_message("getLog", None, RawMessage::Value(m)).unwrap();
    }
    wait_until("buffered", || c.stats().unwrap().messages_buffered == 300);
    query.resolve(json!([{"i": "initial"}]));
    wait_until("all handled", || {
        let s = c.stats().unwrap();
        s.messages_applied + s.messages_rejected_total() == 300
    });
    open.send(()).unwrap();
    let kept: Vec<i64> = (0..300).filter(|i| i % 7 != 3).collect();
    let snap = c.snapshot("getLog", None).unwrap();
    let last5: Vec<Value> = kept[kept.len() - 5..].iter().map(|i| json!({"i": i})).collect();
    assert_eq!(snap.data, Value::Array(last5));
    assert_eq!(snap.version, 1 + kept.len() as u64, "one version per accepted message");
    wait_until("replica caught up", || rec.version() == snap.version);
    rec.assert_replica(&snap.data, snap.version);
    assert!(c.stats().unwrap().queue_overflows > 0, "the queue collapsed during the bursts");
    assert_eq!(c.stats().unwrap().messages_rejected.get("too_deep"), Some(&43));
    c.close();
}

#[test]
fn a_panicking_batched_hook_is_an_error_per_message_and_the_stream_goes_on() {
    let hook: OnMessagesFn = Arc::new(|batch: MessageBatch| {
        let messages = batch.messages;
        if messages.iter().any(|m| m["i"] == json!(1)) {
            panic!("hook bug");
        }
        std::future::ready(Ok(messages.iter().map(append).collect())).boxed()
    });
    let (c, rec) = run(hook, &numbered(3));
    wait_until("3 error events", || errors(&rec).len() == 3);
    assert!(errors(&rec).iter().all(|(r, m)| *r == ErrorReason::Hook && m == "onMessage panicked"));
    c.push_message("getLog", None, RawMessage::Value(json!({"i": 7}))).unwrap();
    wait_until("applied after the panic", || c.snapshot("getLog", None).unwrap().data == json!([{"i": 7}]));
    c.close();
}
