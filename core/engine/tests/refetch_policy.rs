//! SPEC §12 on the engine alone, on virtual time, translated from RTK Query's `polling.test.tsx`,
//! `refetchingBehaviors.test.tsx` and `prefetch.test.tsx`: the smallest interval among an entry's
//! polling subscribers wins, a poll never starts while a fetch is in flight and the next counts
//! from when the last one ended, polling stops when no poller is left; a subscribe to an existing
//! entry refetches with `refetchOnMountOrArgChange` true or when the data is older than its
//! seconds; `prefetch` creates an unsubscribed entry (L7 removes it) or refetches with `force` /
//! `ifOlderThan`; `resetApiState` removes everything and leaves the engine usable.

mod support;

use livecache_engine::{Error, Event, Output, PrefetchOptions, SubscribeOptions};
use serde_json::{json, Value};
use support::*;

fn config(extra: Value) -> Value {
    let mut c = json!({"keepUnusedDataFor": 60, "endpoints": {"getItem": {"query": "items/{arg}"}}});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

fn polling(ms_: u64) -> SubscribeOptions {
    SubscribeOptions { polling_interval: Some(ms(ms_)), ..Default::default() }
}

fn sub_with(h: &mut Harness, name: Sub, options: SubscribeOptions) -> (std::sync::Arc<str>, u64) {
    let id = h.next_sub;
    h.next_sub += 1;
    let (key, entry) = h.engine.subscribe_with(h.now, "getItem", Some(json!(1)), id, name, options).expect("subscribe");
    h.subs.insert(name, (key.clone(), entry, id));
    h.drain();
    (key, entry)
}

/// Answers every open request of the entry at the current virtual time.
fn answer(h: &mut Harness, key: &str, entry: u64) -> usize {
    let open = h.fetches();
    for (_, _, request) in &open {
        h.engine.fetch_done_at(h.now, key, entry, *request, Ok(livecache_engine::Fetched::new(json!({"n": request}), Value::Null)));
    }
    h.drain();
    open.len()
}

#[test]
fn p1_the_smallest_interval_wins_and_counts_from_the_end_of_the_last_fetch() {
    let mut h = Harness::new(config(json!({})), &[]);
    let (key, entry) = sub_with(&mut h, "slow", polling(1_000));
    assert_eq!(answer(&mut h, &key, entry), 1, "the first fetch");
    sub_with(&mut h, "fast", polling(300));
    h.advance(ms(299));
    assert!(h.fetches().is_empty());
    h.advance(ms(1));
    let polls = h.fetches();
    assert_eq!(polls.len(), 1, "the 300 ms poller sets the pace");
    // Never two in flight: the fetch is still open when the next interval passes.
    h.advance(ms(2_000));
    assert!(h.fetches().is_empty(), "no second fetch while one is in flight");
    h.engine.fetch_done_at(h.now, &key, entry, polls[0].2, Ok(livecache_engine::Fetched::new(json!(2), Value::Null)));
    h.drain();
    h.advance(ms(299));
    assert!(h.fetches().is_empty(), "the next poll counts from the answer");
    h.advance(ms(1));
    assert_eq!(answer(&mut h, &key, entry), 1);
    assert_eq!(h.engine.stats().polls, 2);
    // The fast poller leaves: the slow one's interval applies from the next scheduling.
    h.unsubscribe("fast");
    h.advance(ms(300));
    assert!(h.fetches().is_empty(), "the 300 ms poll was the fast subscriber's");
    h.advance(ms(700));
    // The poll scheduled at 300 ms was skipped; the slow poller's comes from the last answer.
    let due = h.fetches().len();
    assert!(due <= 1);
    h.unsubscribe("slow");
    answer(&mut h, &key, entry);
    h.advance(ms(10_000));
    assert!(h.fetches().is_empty(), "polling stops when no poller is left");
}

#[test]
fn p1_a_subscriber_without_an_interval_does_not_poll() {
    let mut h = Harness::new(config(json!({})), &[]);
    let (key, entry) = sub_with(&mut h, "a", SubscribeOptions::default());
    answer(&mut h, &key, entry);
    h.advance(ms(60_000));
    assert!(h.fetches().is_empty());
    assert_eq!(h.engine.stats().polls, 0);
}

#[test]
fn p1_bad_intervals_are_refused() {
    for bad in [json!({"pollingInterval": 0}), json!({"pollingInterval": -5}), json!({"pollingInterval": "1s"}), json!({"polling": 5}), json!([1])] {
        assert!(SubscribeOptions::from_value(&bad).is_err(), "{bad}");
    }
    assert_eq!(SubscribeOptions::from_value(&json!({"pollingInterval": 250})).unwrap().polling_interval, Some(ms(250)));
    assert_eq!(SubscribeOptions::from_value(&Value::Null).unwrap(), SubscribeOptions::default());
}

#[test]
fn p2_refetch_on_mount_true_or_older_than_seconds() {
    let mut h = Harness::new(config(json!({"refetchOnMountOrArgChange": 10})), &[]);
    let (key, entry) = sub_with(&mut h, "a", SubscribeOptions::default());
    answer(&mut h, &key, entry);
    h.advance(ms(9_000));
    sub_with(&mut h, "b", SubscribeOptions::default());
    assert!(h.fetches().is_empty(), "9 s old: fresh enough for the config's 10 s");
    h.advance(ms(1_000));
    sub_with(&mut h, "c", SubscribeOptions::default());
    assert_eq!(answer(&mut h, &key, entry), 1, "10 s old: refetched");
    let always = SubscribeOptions { refetch_on_mount_or_arg_change: Some(livecache_engine::config::RefetchOnMount::Always), ..Default::default() };
    sub_with(&mut h, "d", always);
    assert_eq!(h.fetches().len(), 1, "true refetches whatever the age");
    sub_with(&mut h, "e", always);
    assert!(h.fetches().is_empty(), "not while a fetch is in flight");
}

#[test]
fn p2_bad_configs_name_their_path() {
    for (bad, path) in [
        (json!({"refetchOnMountOrArgChange": "yes"}), "refetchOnMountOrArgChange"),
        (json!({"refetchOnMountOrArgChange": -1}), "refetchOnMountOrArgChange"),
    ] {
        match livecache_engine::Config::from_value(&config(bad)) {
            Err(Error::Config { path: p, .. }) => assert_eq!(p, path),
            other => panic!("{other:?}"),
        }
    }
    let ep = json!({"endpoints": {"getItem": {"query": "x", "refetchOnMountOrArgChange": {}}}});
    assert!(matches!(livecache_engine::Config::from_value(&ep), Err(Error::Config { path, .. }) if path == "endpoints.getItem.refetchOnMountOrArgChange"));
}

#[test]
fn p3_prefetch_creates_an_unused_entry_that_l7_removes() {
    let mut h = Harness::new(config(json!({})), &[]);
    h.engine.prefetch(h.now, "getItem", Some(json!(1)), PrefetchOptions::default()).unwrap();
    let key: std::sync::Arc<str> = "getItem(1)".into();
    let entry = h.engine.entry_id(&key).unwrap();
    assert_eq!(answer(&mut h, &key, entry), 1);
    h.engine.prefetch(h.now, "getItem", Some(json!(1)), PrefetchOptions::default()).unwrap();
    assert!(h.fetches().is_empty(), "an entry with data is not fetched again by default");
    h.engine.prefetch(h.now, "getItem", Some(json!(1)), PrefetchOptions { force: true, ..Default::default() }).unwrap();
    assert_eq!(answer(&mut h, &key, entry), 1, "force refetches");
    h.advance(ms(5_000));
    let older = |s: u64| PrefetchOptions { if_older_than: Some(ms(s * 1000)), ..Default::default() };
    h.engine.prefetch(h.now, "getItem", Some(json!(1)), older(10)).unwrap();
    assert!(h.fetches().is_empty(), "5 s old is not older than 10 s");
    h.engine.prefetch(h.now, "getItem", Some(json!(1)), older(5)).unwrap();
    assert_eq!(answer(&mut h, &key, entry), 1);
    h.advance(ms(60_000));
    assert!(h.engine.entry_state(&key, None).is_err(), "no subscriber: L7 removed it");
    for bad in [json!({"ifOlderThan": 0}), json!({"force": "yes"}), json!({"when": 1})] {
        assert!(PrefetchOptions::from_value(&bad).is_err(), "{bad}");
    }
}

#[test]
fn p3_reset_api_state_removes_everything_and_the_engine_goes_on() {
    let mut h = Harness::new(config(json!({"endpoints": {
        "getItem": {"query": "items/{arg}"},
        "feed": {"stream": {"url": "ws://127.0.0.1:1/", "apply": "append"}},
        "ping": {"mutation": "ping"}
    }})), &[]);
    let (key, entry) = sub_with(&mut h, "a", polling(100));
    answer(&mut h, &key, entry);
    h.subscribe("f", "feed", None);
    h.engine.prefetch(h.now, "getItem", Some(json!(2)), PrefetchOptions::default()).unwrap();
    h.drain();
    h.engine.reset_api_state().unwrap();
    let removed = h.take().iter().filter(|o| matches!(o, Output::Removed { .. })).count();
    assert_eq!(removed, 3, "every entry, its stream closed");
    assert!(matches!(h.events["a"].last(), Some(Event::Removed { .. })));
    assert!(matches!(h.events["f"].last(), Some(Event::Removed { .. })));
    assert_eq!(h.engine.stats().entries, 0);
    h.advance(ms(1_000));
    assert!(h.fetches().is_empty(), "the removed entry's polling stopped");
    // Usable: a new subscriber gets a new entry.
    let id = h.next_sub;
    h.engine.subscribe(h.now, "getItem", Some(json!(1)), id, "z").unwrap();
    assert_eq!(h.fetches().len(), 1);
    assert!(matches!(h.engine.prefetch(h.now, "ping", None, PrefetchOptions::default()), Err(Error::WrongEndpointKind(_))));
    h.engine.close();
    assert!(matches!(h.engine.reset_api_state(), Err(Error::Closed)));
}
