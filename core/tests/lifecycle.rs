//! Lifecycle rules the shared scenarios cannot express (SPEC §4, §6): `loaded()` and the
//! `onCacheEntryAdded` futures (L2, L3), host `queryFn` and `transformResponse` hooks, and L7
//! timer values at the edges.

#[path = "support/util.rs"]
mod util;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use livecache_core::{EndpointHooks, Error, Hooks, Status};
use parking_lot::Mutex;
use serde_json::{json, Value};
use util::{block_on, client, poll_once, wait_until, ManualQuery, Recorder};

fn status_of(c: &livecache_core::Client, ep: &str, arg: Option<&Value>) -> Option<Status> {
    c.snapshot(ep, arg).ok().map(|s| s.status)
}

#[test]
fn l2_loaded_is_immediate_when_data_exists() {
    let c = client(json!({"endpoints": {"getX": {}}}), Hooks::new().endpoint("getX", EndpointHooks::default().query_fn_sync(|_| Ok(json!({"v": 1})))));
    let s1 = c.subscribe("getX", None, |_| {}).unwrap();
    assert_eq!(block_on(s1.loaded()).unwrap(), json!({"v": 1}));
    // A second subscriber of the loaded entry gets the data without any waiting.
    let s2 = c.subscribe("getX", None, |_| {}).unwrap();
    let mut p = Box::pin(s2.loaded());
    match poll_once(&mut p) {
        Poll::Ready(r) => assert_eq!(r.unwrap(), json!({"v": 1})),
        Poll::Pending => panic!("loaded() of an entry with data must be ready at once"),
    }
    c.close();
}

#[test]
fn l2_failed_fetch_does_not_reject_loaded() {
    let q = ManualQuery::default();
    let c = client(json!({"endpoints": {"getX": {}}}), Hooks::new().endpoint("getX", q.hooks()));
    let sub = c.subscribe("getX", Some(json!(1)), |_| {}).unwrap();
    let mut p = Box::pin(sub.loaded());
    assert!(poll_once(&mut p).is_pending());
    q.reject(json!({"status": 500}));
    wait_until("status rejected", || status_of(&c, "getX", Some(&json!(1))) == Some(Status::Rejected));
    assert!(poll_once(&mut p).is_pending(), "a failed fetch must leave loaded() pending");
    c.refetch("getX", Some(&json!(1))).unwrap();
    q.resolve(json!("data"));
    assert_eq!(block_on(p).unwrap(), json!("data"));
    c.close();
}

#[test]
fn l2_loaded_then_unsubscribe_rejects_with_cache_entry_removed() {
    let q = ManualQuery::default();
    let c = client(json!({"keepUnusedDataFor": 0, "endpoints": {"getX": {}}}), Hooks::new().endpoint("getX", q.hooks()));
    let sub = c.subscribe("getX", None, |_| {}).unwrap();
    let p = sub.loaded();
    sub.unsubscribe();
    match block_on(p) {
        Err(Error::CacheEntryRemoved(key)) => assert_eq!(key, "getX(undefined)"),
        other => panic!("expected CacheEntryRemoved, got {other:?}"),
    }
    // Called once the entry is gone, it rejects at once.
    assert!(matches!(block_on(sub.loaded()), Err(Error::CacheEntryRemoved(_))));
    c.close();
}

#[test]
fn l2_loaded_binds_to_the_entry_of_its_call() {
    // After the entry is removed and a new one loads for the same key, a subscription of the old
    // entry still gets CacheEntryRemoved, not the new entry's data.
    let q = ManualQuery::default();
    let c = client(json!({"keepUnusedDataFor": 0, "endpoints": {"getX": {}}}), Hooks::new().endpoint("getX", q.hooks()));
    let old = c.subscribe("getX", None, |_| {}).unwrap();
    let p = old.loaded();
    old.unsubscribe();
    assert!(matches!(block_on(p), Err(Error::CacheEntryRemoved(_))));
    wait_until("entry removed", || c.snapshot("getX", None).is_err());
    let new = c.subscribe("getX", None, |_| {}).unwrap();
    wait_until("second fetch", || q.calls_made() == 2);
    q.resolve(json!(2)); // the first call's answer: that entry is gone, it changes nothing
    q.resolve(json!(2));
    assert_eq!(block_on(new.loaded()).unwrap(), json!(2));
    assert!(matches!(block_on(old.loaded()), Err(Error::CacheEntryRemoved(_))));
    c.close();
}

/// What the lifecycle hook saw, in order.
type Log = Arc<Mutex<Vec<String>>>;

fn seed_hooks(log: &Log, query: EndpointHooks) -> Hooks {
    let log = log.clone();
    let hooks = query.on_cache_entry_added(move |arg, lc| {
        let log = log.clone();
        async move {
            log.lock().push(format!("added {}", arg.unwrap_or(Value::Null)));
            match lc.cache_data_loaded().await {
                Ok(loaded) => {
                    log.lock().push(format!("loaded {} meta {}", loaded.data, loaded.meta));
                    // The seed's pattern: update the cached data from the hook once loaded.
                    lc.update_cached_data(|draft| {
                        draft["seeded"] = json!(true);
                        None
                    })
                    .map_err(|e| e.to_string())?;
                    let state = lc.get_cache_entry().map_err(|e| e.to_string())?;
                    log.lock().push(format!("entry v{}", state.version));
                }
                Err(e) => log.lock().push(format!("not loaded: {}", e.kind())),
            }
            lc.cache_entry_removed().await.unwrap();
            log.lock().push(format!("removed {}", lc.is_removed()));
            Ok(())
        }
    });
    Hooks::new().endpoint("getChat", hooks)
}

#[test]
fn l3_on_cache_entry_added_seed_pattern() {
    let log: Log = Default::default();
    let q = ManualQuery::default();
    let c = client(json!({"keepUnusedDataFor": 0, "endpoints": {"getChat": {}}}), seed_hooks(&log, q.hooks()));
    let rec = Recorder::default();
    let s1 = c.subscribe("getChat", Some(json!("redux")), rec.callback()).unwrap();
    let s2 = c.subscribe("getChat", Some(json!("redux")), |_| {}).unwrap();
    q.reject(json!({"status": 500})); // L2: a failed fetch leaves cacheDataLoaded pending
    wait_until("rejected", || status_of(&c, "getChat", Some(&json!("redux"))) == Some(Status::Rejected));
    c.refetch("getChat", Some(&json!("redux"))).unwrap();
    q.resolve(json!({"messages": []}));
    wait_until("the hook's update", || log.lock().len() == 3);
    let snap = c.snapshot("getChat", Some(&json!("redux"))).unwrap();
    assert_eq!(snap.data, json!({"messages": [], "seeded": true}));
    assert_eq!(snap.version, 2);
    rec.wait_version(2);
    rec.assert_replica(&snap.data, 2);
    s1.unsubscribe();
    s2.unsubscribe();
    wait_until("cacheEntryRemoved", || log.lock().len() == 4);
    assert_eq!(
        *log.lock(),
        vec![
            "added \"redux\"".to_string(),
            "loaded {\"messages\":[]} meta null".into(),
            "entry v2".into(),
            "removed true".into()
        ],
        "one lifecycle per entry lifetime, whatever the subscriber count (L1)"
    );
    c.close();
}

#[test]
fn l2_l3_removed_before_load_rejects_cache_data_loaded() {
    let log: Log = Default::default();
    let q = ManualQuery::default();
    let c = client(json!({"keepUnusedDataFor": 0, "endpoints": {"getChat": {}}}), seed_hooks(&log, q.hooks()));
    let sub = c.subscribe("getChat", None, |_| {}).unwrap();
    wait_until("the hook started", || log.lock().len() == 1);
    sub.unsubscribe();
    wait_until("the hook finished", || log.lock().len() == 3);
    assert_eq!(*log.lock(), vec!["added null".to_string(), "not loaded: CacheEntryRemoved".into(), "removed true".into()]);
    c.close();
}

#[test]
fn l3_upserted_entry_runs_the_hook_with_its_data() {
    let log: Log = Default::default();
    let c = client(
        // Long enough for the hook's update to land before the entry goes.
        json!({"keepUnusedDataFor": 0.5, "endpoints": {"getChat": {}}}),
        seed_hooks(&log, EndpointHooks::default().query_fn_sync(|_| Ok(json!("fetched")))),
    );
    c.upsert_query_data("getChat", Some(json!(1)), json!({"n": 1})).unwrap();
    wait_until("cacheEntryRemoved", || log.lock().len() == 4);
    assert_eq!(log.lock()[1], "loaded {\"n\":1} meta null");
    assert_eq!(log.lock()[2], "entry v2");
    c.close();
}

#[test]
fn s6_query_fn_sync_and_async() {
    let calls = Arc::new(AtomicUsize::new(0));
    let n = calls.clone();
    let hooks = Hooks::new()
        .endpoint(
            "getSync",
            EndpointHooks::default().query_fn_sync(move |arg| {
                n.fetch_add(1, Ordering::SeqCst);
                match arg {
                    Some(Value::String(s)) if s == "bad" => Err(json!({"status": 404, "data": "no such thing"})),
                    arg => Ok(json!({"echo": arg})),
                }
            }),
        )
        .endpoint(
            "getAsync",
            EndpointHooks::default().query_fn_async(|arg: Option<Value>| async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                Ok(json!({"later": arg}))
            }),
        )
        .endpoint("getPanics", EndpointHooks::default().query_fn_sync(|_| panic!("queryFn blew up")));
    let c = client(json!({"endpoints": {"getSync": {}, "getAsync": {}, "getPanics": {}}}), hooks);
    let a = c.subscribe("getSync", Some(json!({"id": 1})), |_| {}).unwrap();
    assert_eq!(block_on(a.loaded()).unwrap(), json!({"echo": {"id": 1}}));
    let b = c.subscribe("getSync", None, |_| {}).unwrap();
    assert_eq!(block_on(b.loaded()).unwrap(), json!({"echo": null}));
    let d = c.subscribe("getAsync", Some(json!("x")), |_| {}).unwrap();
    assert_eq!(block_on(d.loaded()).unwrap(), json!({"later": "x"}));
    // L6: a queryFn error is the entry's error; a panic is caught and reported the same way.
    let _e = c.subscribe("getSync", Some(json!("bad")), |_| {}).unwrap();
    wait_until("rejected", || status_of(&c, "getSync", Some(&json!("bad"))) == Some(Status::Rejected));
    assert_eq!(c.snapshot("getSync", Some(&json!("bad"))).unwrap().error, Some(json!({"status": 404, "data": "no such thing"})));
    let _f = c.subscribe("getPanics", None, |_| {}).unwrap();
    wait_until("rejected", || status_of(&c, "getPanics", None) == Some(Status::Rejected));
    assert_eq!(
        c.snapshot("getPanics", None).unwrap().error,
        Some(json!({"status": "CUSTOM_ERROR", "error": "queryFn panicked"}))
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let stats = c.stats().unwrap();
    assert_eq!((stats.fetches, stats.fetch_errors), (5, 2));
    c.close();
}

#[test]
fn s6_transform_response_runs_before_entity_adapter() {
    let hooks = Hooks::new()
        .endpoint(
            "getUsers",
            EndpointHooks::default()
                .query_fn_sync(|_| Ok(json!({"page": 1, "items": [{"id": 2}, {"id": 1}]})))
                .transform_response(|data, arg| {
                    let mut items = data["items"].clone();
                    for item in items.as_array_mut().ok_or("no items")? {
                        item["team"] = arg.clone().unwrap_or(Value::Null);
                    }
                    Ok(items)
                }),
        )
        .endpoint(
            "getBad",
            EndpointHooks::default().query_fn_sync(|_| Ok(json!(1))).transform_response(|_, _| Err("cannot".into())),
        );
    let c = client(
        json!({"endpoints": {"getUsers": {"transformResponse": {"entityAdapter": {"sortBy": "id"}}}, "getBad": {}}}),
        hooks,
    );
    let s = c.subscribe("getUsers", Some(json!("red")), |_| {}).unwrap();
    assert_eq!(
        block_on(s.loaded()).unwrap(),
        json!({"ids": [1, 2], "entities": {"2": {"id": 2, "team": "red"}, "1": {"id": 1, "team": "red"}}})
    );
    let _b = c.subscribe("getBad", None, |_| {}).unwrap();
    wait_until("rejected", || status_of(&c, "getBad", None) == Some(Status::Rejected));
    assert_eq!(
        c.snapshot("getBad", None).unwrap().error,
        Some(json!({"status": "CUSTOM_ERROR", "error": "transformResponse: cannot"}))
    );
    c.close();
}

#[test]
fn l7_huge_keep_unused_data_for_neither_panics_nor_fires() {
    // 1e12 s and the largest finite value: the timer must neither overflow nor remove the entry.
    let panics = Arc::new(AtomicUsize::new(0));
    let seen = panics.clone();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        // Panics the other tests cause on purpose are raised in this file; an overflow would not be.
        let on_engine = std::thread::current().name().is_some_and(|n| n.starts_with("livecache"));
        let from_a_test = info.location().is_some_and(|l| l.file().contains("tests"));
        if on_engine && !from_a_test {
            seen.fetch_add(1, Ordering::SeqCst);
        }
        previous(info);
    }));
    let data = || EndpointHooks::default().query_fn_sync(|_| Ok(json!(1)));
    let c = client(
        json!({"keepUnusedDataFor": 1e12, "endpoints": {"getA": {}, "getB": {"keepUnusedDataFor": f64::MAX}}}),
        Hooks::new().endpoint("getA", data()).endpoint("getB", data()),
    );
    for ep in ["getA", "getB"] {
        for _ in 0..2 {
            let s = c.subscribe(ep, None, |_| {}).unwrap();
            block_on(s.loaded()).unwrap();
            s.unsubscribe(); // starts (then restarts) the timer
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(panics.load(Ordering::SeqCst), 0, "an engine thread panicked");
    let stats = c.stats().unwrap();
    assert_eq!((stats.entries, stats.entries_removed, stats.fetches), (2, 0, 2));
    c.close();
}

#[test]
fn l7_zero_removes_without_a_subscriber_ever_after() {
    // `0` removes on the next turn: an upserted entry (no subscriber) goes as soon as it is made.
    let c = client(json!({"keepUnusedDataFor": 0, "endpoints": {"getX": {}}}), Hooks::new().endpoint("getX", EndpointHooks::default().query_fn_sync(|_| Ok(json!(1)))));
    c.upsert_query_data("getX", None, json!(5)).unwrap();
    wait_until("removed", || c.snapshot("getX", None).is_err());
    assert!(matches!(c.snapshot("getX", None), Err(Error::NotFound(_))));
    assert_eq!(c.stats().unwrap().entries_removed, 1);
    c.close();
}

#[test]
fn s6_get_cache_entry_after_removal_is_uninitialized_and_updates_fail() {
    // RTK Query's getCacheEntry() of a removed entry: `{key, status: "uninitialized"}`, no data.
    let (tx, rx) = std::sync::mpsc::channel();
    let (live_tx, live_rx) = std::sync::mpsc::channel();
    let hooks = EndpointHooks::default().query_fn_sync(|_| Ok(json!([1]))).on_cache_entry_added(move |_, lc| {
        let (tx, live_tx) = (tx.clone(), live_tx.clone());
        async move {
            let _ = lc.cache_data_loaded().await;
            // Reported before the test goes on to remove the entry (the hook runs on its own task).
            let _ = live_tx.send(lc.get_cache_entry().map(|s| s.to_json()));
            lc.cache_entry_removed().await.unwrap();
            let gone = lc.get_cache_entry().map(|s| s.to_json());
            let update = lc.update_cached_data(|_| None).map(|_| ()).map_err(|e| e.kind());
            let _ = tx.send((gone, update));
            Ok(())
        }
    });
    let c = livecache_core::Client::with_options(
        livecache_core::Config::from_value(&json!({"endpoints": {"getX": {"keepUnusedDataFor": 1}}})).unwrap(),
        Hooks::new().endpoint("getX", hooks),
        livecache_core::ClientOptions { clock: livecache_core::Clock::Manual, ..Default::default() },
    )
    .unwrap();
    let sub = c.subscribe("getX", None, |_| {}).unwrap();
    block_on(sub.loaded()).unwrap();
    let live = live_rx.recv_timeout(Duration::from_secs(30)).expect("the hook read the live entry");
    sub.unsubscribe();
    c.advance(Duration::from_millis(999)).unwrap();
    assert!(c.snapshot("getX", None).is_ok(), "kept for keepUnusedDataFor");
    c.advance(Duration::from_millis(1)).unwrap();
    let (gone, update) = rx.recv_timeout(Duration::from_secs(30)).expect("the hook finished");
    let live: Value = serde_json::from_str(&live.unwrap()).unwrap();
    assert_eq!((live["status"].clone(), live["data"].clone()), (json!("fulfilled"), json!([1])));
    assert_eq!(gone.unwrap(), r#"{"key":"getX(undefined)","status":"uninitialized"}"#);
    assert_eq!(update, Err("CacheEntryRemoved"));
    c.close();
}

#[test]
fn l7_advance_needs_the_manual_clock() {
    let c = client(json!({"endpoints": {"getX": {}}}), Hooks::new().endpoint("getX", EndpointHooks::default().query_fn_sync(|_| Ok(json!(1)))));
    assert!(matches!(c.advance(Duration::from_secs(1)), Err(Error::InvalidArgument(_))));
    c.close();
    let manual = livecache_core::Client::with_options(
        livecache_core::Config::from_value(&json!({"endpoints": {"getX": {}}})).unwrap(),
        Hooks::new().endpoint("getX", EndpointHooks::default().query_fn_sync(|_| Ok(json!(1)))),
        livecache_core::ClientOptions { clock: livecache_core::Clock::Manual, ..Default::default() },
    )
    .unwrap();
    manual.close();
    assert_eq!(manual.advance(Duration::ZERO), Err(Error::Closed));
}
