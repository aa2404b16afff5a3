//! Client-level rules (SPEC §2, §5, §8): closing, errors of every call, argument checks, hook
//! validation and the `stats` counters.

#[path = "support/util.rs"]
mod util;

use std::time::Duration;

use livecache_core::{Client, ClientOptions, Config, Delivery, EndpointHooks, Error, ErrorReason, Hooks, RawMessage};
use serde_json::{json, Value};
use util::{block_on, client, wait_until, ManualQuery, Recorder};

fn data_hooks(ep: &str, data: Value) -> Hooks {
    Hooks::new().endpoint(ep, EndpointHooks::default().query_fn_sync(move |_| Ok(data.clone())))
}

#[test]
fn s8_close_twice_and_every_call_after_close_is_closed() {
    let c = client(json!({"endpoints": {"getX": {"stream": {"apply": "replace"}}}}), data_hooks("getX", json!({"n": 1})));
    let sub = c.subscribe("getX", None, |_| {}).unwrap();
    block_on(sub.loaded()).unwrap();
    let update = c.patch_query_data_value("getX", None, &json!([{"op": "replace", "path": "/n", "value": 2}])).unwrap();
    c.close();
    c.close(); // a second close does nothing
    assert!(c.is_closed());
    let closed = |r: Result<(), Error>, what: &str| assert_eq!(r, Err(Error::Closed), "{what}");
    closed(c.subscribe("getX", None, |_| {}).map(drop), "subscribe");
    closed(c.snapshot("getX", None).map(drop), "snapshot");
    closed(c.update_query_data("getX", None, |_| None).map(drop), "updateQueryData");
    closed(c.patch_query_data_value("getX", None, &json!([])).map(drop), "patchQueryData");
    closed(c.upsert_query_data("getX", None, json!(1)), "upsertQueryData");
    closed(c.refetch("getX", None), "refetch");
    closed(c.push_message("getX", None, RawMessage::Value(json!(1))), "pushMessage");
    closed(c.push_message("getX", None, RawMessage::Text("1".into())), "pushMessage text");
    closed(c.push_messages("getX", None, vec![RawMessage::Value(json!(1))]), "pushMessages");
    closed(c.stats().map(drop), "stats");
    closed(c.poll(Duration::ZERO).map(drop), "poll");
    closed(c.cache_key("getX", None).map(drop), "cache_key");
    closed(update.undo().map(drop), "undo");
    closed(sub.snapshot().map(drop), "Subscription::snapshot");
    // The entry went with the client: a loaded() now rejects, and unsubscribing is harmless.
    assert!(matches!(block_on(sub.loaded()), Err(Error::CacheEntryRemoved(_))));
    sub.unsubscribe();
    drop(c); // Drop closes again: still nothing happens
}

#[test]
fn s8_close_rejects_pending_loaded() {
    let q = ManualQuery::default();
    let c = client(json!({"endpoints": {"getX": {}}}), Hooks::new().endpoint("getX", q.hooks()));
    let sub = c.subscribe("getX", None, |_| {}).unwrap();
    let p = sub.loaded();
    c.close();
    assert!(matches!(block_on(p), Err(Error::CacheEntryRemoved(_))));
}

#[test]
fn s2_subscribe_with_an_arg_missing_a_templated_field_is_invalid_argument() {
    let c = client(
        json!({"baseUrl": "http://127.0.0.1:9/", "endpoints": {
            "getPost": {"query": "posts/{arg.id}"},
            "getRoom": {"stream": {"filter": {"room": "{arg.room}"}, "apply": "append"}},
            "getFeed": {"query": "feed", "stream": {"url": "ws://127.0.0.1:9/{arg.topic}", "apply": "append"}},
            "getHosted": {"query": "posts/{arg.id}"},
            "getPlain": {"stream": {"apply": "append"}}
        }}),
        data_hooks("getHosted", json!("from the queryFn")),
    );
    let invalid = |ep: &str, arg: Option<Value>| match c.subscribe(ep, arg.clone(), |_| {}) {
        Err(Error::InvalidArgument(m)) => m,
        other => panic!("{ep} {arg:?}: expected InvalidArgument, got {:?}", other.map(|s| s.key().to_owned())),
    };
    invalid("getPost", Some(json!({"slug": "x"})));
    invalid("getPost", None);
    invalid("getPost", Some(json!("a string has no fields")));
    invalid("getRoom", Some(json!({"id": 1})));
    invalid("getFeed", Some(json!({})));
    // An arg nested deeper than 128 levels, even where no template reads it.
    let deep = (0..200).fold(json!(1), |v, _| json!([v]));
    invalid("getPlain", Some(deep));
    // Nothing was created by a refused subscribe.
    let stats = c.stats().unwrap();
    assert_eq!((stats.entries, stats.subscriptions, stats.fetches), (0, 0, 0));
    // A queryFn replaces the query: its template is not rendered.
    let s = c.subscribe("getHosted", Some(json!({"slug": "x"})), |_| {}).unwrap();
    assert_eq!(block_on(s.loaded()).unwrap(), json!("from the queryFn"));
    // A filled template works.
    let ok = c.subscribe("getRoom", Some(json!({"room": 7})), |_| {}).unwrap();
    assert_eq!(ok.key(), r#"getRoom({"room":7})"#);
    assert!(matches!(c.subscribe("nope", None, |_| {}), Err(Error::UnknownEndpoint(_))));
    c.close();
}

fn config_error(config: Value, hooks: Hooks) -> String {
    match Config::from_value(&config).and_then(|c| Client::new(c, hooks)) {
        Err(Error::Config { path, .. }) => path,
        Err(other) => panic!("expected a ConfigError, got {other:?}"),
        Ok(_) => panic!("expected a ConfigError, the client was built"),
    }
}

#[test]
fn s6_hooks_for_an_unknown_endpoint_are_a_config_error() {
    let config = json!({"endpoints": {"getX": {"query": "x"}}});
    assert_eq!(config_error(config.clone(), Hooks::new().endpoint("x", EndpointHooks::default())), "hooks.x");
    let with_on_message = || EndpointHooks::default().on_message_draft(|_, _, _| Ok(None));
    // An apply rule and an onMessage hook: one too many; a stream with neither: one too few.
    assert_eq!(
        config_error(json!({"endpoints": {"getX": {"stream": {"apply": "append"}}}}), Hooks::new().endpoint("getX", with_on_message())),
        "endpoints.getX.stream.apply"
    );
    assert_eq!(config_error(json!({"endpoints": {"getX": {"stream": {}}}}), Hooks::new()), "endpoints.getX.stream.apply");
    // The same config with the hook it needs is fine.
    Client::new(Config::from_value(&json!({"endpoints": {"getX": {"stream": {}}}})).unwrap(), Hooks::new().endpoint("getX", with_on_message()))
        .unwrap()
        .close();
    match Client::from_json("{\"endpoints\": ", Hooks::new()) {
        Err(Error::Config { .. }) => {}
        other => panic!("bad JSON text: expected a ConfigError, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn e5_stats_counters() {
    let q = ManualQuery::default();
    let c = client(
        json!({"keepUnusedDataFor": 0, "endpoints": {"getLog": {"stream": {
            "apply": {"append": {"dedupeBy": "id"}}, "filter": {"room": "{arg}"},
            "schema": {"type": "object"}, "bufferBeforeLoaded": 1
        }}}}),
        Hooks::new().endpoint("getLog", q.hooks()),
    );
    let s = c.stats().unwrap();
    assert_eq!(s.messages_rejected.len(), ErrorReason::ALL.len(), "every reason is present, zero or not: {:?}", s.messages_rejected);
    assert!(s.messages_rejected.values().all(|n| *n == 0));
    let rec = Recorder::default();
    let sub = c.subscribe("getLog", Some(json!("r")), rec.callback()).unwrap();
    let arg = Some(json!("r"));
    let push = |m: Value| c.push_message("getLog", arg.as_ref(), RawMessage::Value(m)).unwrap();
    push(json!({"room": "r", "id": 1})); // buffered
    push(json!({"room": "r", "id": 2})); // past the bound of 1: buffer dropped, this one held
    push(json!({"room": "x", "id": 3})); // filtered
    push(json!([1])); // schema
    wait_until("four messages processed", || {
        let s = c.stats().unwrap();
        s.messages_filtered + s.messages_rejected_total() == 2 && s.buffer_overflows == 1
    });
    q.resolve(json!([{"room": "r", "id": 0}]));
    wait_until("the overflow's refetch", || q.calls_made() == 2);
    q.reject(json!({"status": 500}));
    wait_until("the refetch failed", || c.stats().unwrap().fetch_errors == 1);
    c.refetch("getLog", arg.as_ref()).unwrap();
    wait_until("third call", || q.calls_made() == 3);
    c.refetch("getLog", arg.as_ref()).unwrap();
    wait_until("fourth call", || q.calls_made() == 4);
    push(json!({"room": "r", "id": 5})); // applied while the refetch runs, then re-applied
    wait_until("applied", || c.stats().unwrap().messages_applied == 2);
    q.resolve(json!("stale")); // the third call: discarded
    q.resolve(json!([{"room": "r", "id": 4}]));
    // The two answers are handled by tasks of their own: the stale one may come in second.
    wait_until("fetched, and the stale answer discarded", || {
        let s = c.stats().unwrap();
        s.messages_reapplied == 1 && s.stale_responses == 1
    });
    c.patch_query_data_value("getLog", arg.as_ref(), &json!([{"op": "remove", "path": "/0"}])).unwrap();
    let version = c.snapshot("getLog", arg.as_ref()).unwrap().version;
    rec.wait_version(version);
    let s = c.stats().unwrap();
    assert_eq!(s.entries, 1);
    assert_eq!(s.subscriptions, 1);
    assert_eq!(s.entries_created, 1);
    assert_eq!(s.messages_received, 5);
    assert_eq!(s.messages_buffered, 2);
    assert_eq!(s.buffer_overflows, 1);
    assert_eq!(s.messages_filtered, 1);
    assert_eq!(s.messages_rejected["schema"], 1);
    assert_eq!(s.messages_rejected_total(), 1);
    assert_eq!(s.messages_applied, 2, "the held message after the data loaded, and id 5");
    assert_eq!(s.messages_reapplied, 1);
    assert_eq!((s.fetches, s.fetch_errors, s.stale_responses), (4, 1, 1));
    assert_eq!(s.host_updates, 1);
    assert_eq!(s.queue_overflows, 0);
    assert!(s.events_delivered >= 5 && s.events_delivered as usize <= rec.count(), "{} vs {}", s.events_delivered, rec.count());
    assert_eq!(c.snapshot("getLog", arg.as_ref()).unwrap().data, json!([{"room": "r", "id": 5}]));
    sub.unsubscribe();
    wait_until("removed", || c.stats().unwrap().entries == 0);
    let s = c.stats().unwrap();
    assert_eq!((s.entries, s.subscriptions, s.entries_removed), (0, 0, 1));
    // Counters serialise with the documented camelCase names.
    let v = serde_json::to_value(&s).unwrap();
    for key in [
        "entries", "subscriptions", "entriesCreated", "entriesRemoved", "messagesReceived", "messagesApplied",
        "messagesFiltered", "messagesBuffered", "messagesReapplied", "messagesRejected", "bufferOverflows", "fetches",
        "fetchErrors", "staleResponses", "reconnects", "queueOverflows", "eventsDelivered", "hostUpdates",
    ] {
        assert!(v.get(key).is_some(), "stats has no {key}: {v}");
    }
    c.close();
}

#[test]
fn s5_hooks_and_recipes_may_call_the_client() {
    // User code never runs under the engine lock: a recipe and an onMessage hook that read the
    // client do not deadlock.
    let slot: std::sync::Arc<parking_lot::Mutex<Option<std::sync::Weak<Client>>>> = Default::default();
    let s = slot.clone();
    let hooks = Hooks::new().endpoint(
        "getLog",
        EndpointHooks::default().query_fn_sync(|_| Ok(json!([]))).on_message_draft(move |draft, message, _| {
            let c = s.lock().clone().and_then(|w| w.upgrade()).ok_or("no client")?;
            let version = c.snapshot("getLog", None).map_err(|e| e.to_string())?.version;
            draft.as_array_mut().unwrap().push(json!({"m": message, "seen": version}));
            Ok(None)
        }),
    );
    let c = std::sync::Arc::new(client(json!({"endpoints": {"getLog": {"stream": {}}}}), hooks));
    *slot.lock() = Some(std::sync::Arc::downgrade(&c));
    let sub = c.subscribe("getLog", None, |_| {}).unwrap();
    block_on(sub.loaded()).unwrap();
    c.push_message("getLog", None, RawMessage::Value(json!("hi"))).unwrap();
    wait_until("applied", || c.snapshot("getLog", None).unwrap().version == 2);
    let inner = c.clone();
    c.update_query_data("getLog", None, move |draft| {
        let now = inner.snapshot("getLog", None).unwrap();
        draft.as_array_mut().unwrap().push(json!({"recipe saw": now.version}));
        None
    })
    .unwrap();
    assert_eq!(
        c.snapshot("getLog", None).unwrap().data,
        json!([{"m": "hi", "seen": 1}, {"recipe saw": 2}])
    );
    c.close();
}

#[test]
fn s7_poll_delivery_runs_callbacks_on_the_calling_thread() {
    let config = Config::from_value(&json!({"endpoints": {"getX": {}}})).unwrap();
    let options = ClientOptions { delivery: Delivery::Poll, ..Default::default() };
    let c = Client::with_options(config, data_hooks("getX", json!(1)), options).unwrap();
    let me = std::thread::current().id();
    let on = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
    let o = on.clone();
    let _s = c.subscribe("getX", None, move |e| o.lock().push((std::thread::current().id(), e.type_name()))).unwrap();
    wait_until("fulfilled", || c.snapshot("getX", None).unwrap().version == 1);
    assert!(on.lock().is_empty(), "nothing runs before poll");
    util::wait_until("both events polled", || {
        c.poll(Duration::from_millis(20)).unwrap();
        on.lock().len() == 2
    });
    assert!(on.lock().iter().all(|(t, _)| *t == me));
    assert_eq!(on.lock().iter().map(|(_, t)| *t).collect::<Vec<_>>(), ["status", "snapshot"]);
    c.close();
}
