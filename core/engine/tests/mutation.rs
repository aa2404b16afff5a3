//! W1, W2 and W4 on the engine alone: mutations render their request and settle after the
//! refetches their invalidation started; tags match as RTK Query's `invalidation.test.tsx` and
//! `optimisticUpdates.test.tsx` describe (a bare type hits every id, an id only itself; a
//! subscribed entry refetches, an unused one goes; invalidation also on failure).

mod support;

use std::sync::Arc;

use livecache_engine::{Error, MutationRequest, Output};

use serde_json::{json, Value};
use support::*;

fn config() -> Value {
    json!({
        "tagTypes": ["Post", "User"],
        "keepUnusedDataFor": 60,
        "endpoints": {
            "getPosts": {"query": "posts", "providesTags": [{"type": "Post", "idsFrom": ""}, "User"]},
            "getPost": {"query": "posts/{arg}", "providesTags": [{"type": "Post", "id": "{arg}"}]},
            "addPost": {"mutation": {"url": "posts", "body": "{arg}"}, "invalidatesTags": ["Post"]},
            "editPost": {"mutation": {"url": "posts/{arg.id}", "method": "PATCH", "body": "{arg}"},
                         "invalidatesTags": [{"type": "Post", "id": "{arg.id}"}]},
            "ping": {"mutation": "ping"},
            "feed": {"stream": {"url": "ws://127.0.0.1:1/feed", "apply": "append"}},
            "say": {"mutation": {"send": {"endpoint": "feed", "message": {"say": "{arg}"}}}}
        }
    })
}

fn removed(h: &mut Harness) -> Vec<Arc<str>> {
    h.drain();
    h.actions.iter().filter_map(|a| if let Output::Removed { key, .. } = a { Some(key.clone()) } else { None }).collect()
}

/// Subscribed to `getPosts` (ids 1, 2) and `getPost(1)`, `getPost(2)`, all loaded.
fn loaded() -> (Harness, Vec<(Arc<str>, u64)>) {
    let mut h = Harness::new(config(), &[]);
    let mut entries = Vec::new();
    for (sub, ep, arg, data) in [
        ("list", "getPosts", None, json!([1, 2])),
        ("one", "getPost", Some(json!(1)), json!({"id": 1, "title": "a"})),
        ("two", "getPost", Some(json!(2)), json!({"id": 2, "title": "b"})),
    ] {
        let (key, entry) = h.subscribe(sub, ep, arg);
        let (_, _, request) = h.fetches().pop().expect("a fetch");
        h.respond(&key, entry, request, data);
        entries.push((key, entry));
    }
    (h, entries)
}

#[test]
fn w1_a_mutation_renders_its_request_and_settles_with_the_response() {
    let mut h = Harness::new(config(), &[]);
    let id = h.engine.mutate("editPost", Some(json!({"id": 7, "title": "t"}))).unwrap();
    let asked = mutations(&mut h);
    assert_eq!(asked.len(), 1);
    let MutationRequest::Http { query, .. } = &asked[0].1 else { panic!("an HTTP mutation") };
    assert_eq!((query.url.as_str(), query.method.as_str()), ("posts/7", "PATCH"));
    assert_eq!(query.body, Some(json!({"id": 7, "title": "t"})));
    let id2 = h.engine.mutate("ping", None).unwrap();
    let MutationRequest::Http { query, .. } = &mutations(&mut h)[0].1 else { panic!() };
    assert_eq!((query.method.as_str(), query.body.clone()), ("POST", None), "a string mutation is a POST");
    assert!(settled(&mut h).is_empty(), "nothing settles before the response");
    h.engine.mutation_done(h.now, id, Ok(json!({"id": 7})));
    h.engine.mutation_done(h.now, id2, Err(Error::Mutation(json!({"status": 500, "data": "boom"}))));
    let s = settled(&mut h);
    assert_eq!(s, vec![(id, Ok(json!({"id": 7}))), (id2, Err(Error::Mutation(json!({"status": 500, "data": "boom"}))))]);
    h.engine.mutation_done(h.now, id, Ok(json!(1)));
    assert!(settled(&mut h).is_empty(), "a second report is ignored");
    let st = h.engine.stats();
    assert_eq!((st.mutations, st.mutation_errors), (2, 1));
}

#[test]
fn w1_send_mutation_targets_the_stream_entry() {
    let mut h = Harness::new(config(), &[]);
    h.engine.mutate("say", Some(json!("hi"))).unwrap();
    let asked = mutations(&mut h);
    let MutationRequest::Send { key, message } = &asked[0].1 else { panic!("a send") };
    assert_eq!((&**key, message), ("feed(undefined)", &json!({"say": "hi"})));
}

#[test]
fn w1_wrong_endpoint_kinds_and_bad_args_are_errors_and_send_nothing() {
    let mut h = Harness::new(config(), &[]);
    assert!(matches!(h.engine.mutate("getPost", Some(json!(1))), Err(Error::WrongEndpointKind(_))));
    assert!(matches!(h.engine.subscribe(h.now, "addPost", None, 1, "x"), Err(Error::WrongEndpointKind(_))));
    assert!(matches!(h.engine.upsert(h.now, "addPost", None, json!(1)), Err(Error::WrongEndpointKind(_))));
    assert!(matches!(h.engine.key_of("addPost", None), Err(Error::WrongEndpointKind(_))));
    assert!(matches!(h.engine.mutate("nope", None), Err(Error::UnknownEndpoint(_))));
    let e = h.engine.mutate("editPost", Some(json!({"title": "no id"}))).unwrap_err();
    assert!(matches!(&e, Error::InvalidArgument(m) if m.contains("id")), "{e}");
    assert!(mutations(&mut h).is_empty(), "a refused call asks for nothing");
    assert_eq!(h.engine.stats().mutations, 0);
}

#[test]
fn w2_a_bare_type_refetches_every_subscribed_entry_providing_it_w4_settles_after() {
    let (mut h, entries) = loaded();
    let id = h.engine.mutate("addPost", Some(json!({"title": "c"}))).unwrap();
    mutations(&mut h);
    h.engine.mutation_done(h.now, id, Ok(json!({"id": 3})));
    let refetches = h.fetches();
    assert_eq!(refetches.iter().map(|(k, ..)| k.to_string()).collect::<Vec<_>>(), ["getPosts(undefined)", "getPost(1)", "getPost(2)"]);
    assert!(settled(&mut h).is_empty(), "W4: not before the refetches end");
    h.respond(&refetches[0].0, refetches[0].1, refetches[0].2, json!([1, 2, 3]));
    h.respond(&refetches[1].0, refetches[1].1, refetches[1].2, json!({"id": 1, "title": "a2"}));
    assert!(settled(&mut h).is_empty());
    // A failed refetch ends it too (the entry keeps its data, L6).
    h.engine.fetch_done(&refetches[2].0, refetches[2].1, refetches[2].2, Err(json!({"status": 500})));
    assert_eq!(settled(&mut h), vec![(id, Ok(json!({"id": 3})))]);
    assert_eq!(h.data(&entries[0].0), json!([1, 2, 3]));
    assert_eq!(h.engine.stats().invalidations, 3);
    let (replayed, _) = h.replay("list");
    assert_eq!(replayed, json!([1, 2, 3]));
}

#[test]
fn w2_an_id_tag_hits_only_that_id_and_failures_invalidate_too() {
    let (mut h, _) = loaded();
    let id = h.engine.mutate("editPost", Some(json!({"id": 2}))).unwrap();
    h.engine.mutation_done(h.now, id, Err(Error::Mutation(json!({"status": 409, "data": null}))));
    let refetches = h.fetches();
    let keys: Vec<String> = refetches.iter().map(|(k, ..)| k.to_string()).collect();
    // getPosts provides Post/1 and Post/2 from its data; getPost(2) provides Post/2.
    assert_eq!(keys, ["getPosts(undefined)", "getPost(2)"]);
    for (k, e, r) in &refetches {
        assert!(settled(&mut h).is_empty());
        h.respond(k, *e, *r, json!([]));
    }
    assert!(matches!(&settled(&mut h)[..], [(m, Err(Error::Mutation(_)))] if *m == id));
}

#[test]
fn w2_an_unused_entry_is_removed_at_once_and_w4_does_not_wait_for_it() {
    let (mut h, _) = loaded();
    h.unsubscribe("two");
    let id = h.engine.mutate("editPost", Some(json!({"id": 2}))).unwrap();
    h.engine.mutation_done(h.now, id, Ok(json!(null)));
    assert_eq!(removed(&mut h).iter().map(|k| k.to_string()).collect::<Vec<_>>(), ["getPost(2)"]);
    assert!(h.engine.entry_state("getPost(2)", None).is_err());
    let refetches = h.fetches();
    assert_eq!(refetches.len(), 1, "only the subscribed list refetches");
    // Its removal timer is still in the heap: firing it later is harmless.
    h.respond(&refetches[0].0, refetches[0].1, refetches[0].2, json!([1]));
    assert_eq!(settled(&mut h).len(), 1);
    h.advance(ms(120_000));
}

#[test]
fn w4_a_newer_refetch_or_the_entry_leaving_ends_the_wait() {
    let (mut h, entries) = loaded();
    let id = h.engine.mutate("editPost", Some(json!({"id": 1}))).unwrap();
    h.engine.mutation_done(h.now, id, Ok(json!(null)));
    let first = h.fetches();
    assert_eq!(first.len(), 2);
    // The host refetches getPosts again: the first answer is stale and does not end the wait.
    h.engine.refetch(&entries[0].0).unwrap();
    let newer = h.fetches().pop().unwrap();
    h.respond(&first[0].0, first[0].1, first[0].2, json!(["stale"]));
    h.respond(&newer.0, newer.1, newer.2, json!([1]));
    assert!(settled(&mut h).is_empty(), "getPost(1) still refetching");
    // getPost(1) goes (its last subscriber leaves and the removal is due).
    h.unsubscribe("one");
    h.advance(ms(61_000));
    assert_eq!(settled(&mut h).len(), 1);
}

#[test]
fn w2_invalidate_tags_from_the_host_and_its_bad_input() {
    let (mut h, _) = loaded();
    h.engine.invalidate_tags(&[json!({"type": "User"})]).unwrap();
    assert_eq!(h.fetches().len(), 1, "only getPosts provides User");
    h.engine.invalidate_tags(&[json!({"type": "Post", "id": 1})]).unwrap();
    assert_eq!(h.fetches().len(), 2);
    for bad in [json!("Comment"), json!({"type": 3}), json!(7), json!({"type": "Post", "idx": 1})] {
        assert!(matches!(h.engine.invalidate_tags(&[json!("Post"), bad.clone()]), Err(Error::InvalidArgument(_))), "{bad}");
        assert!(h.fetches().is_empty(), "a refused call refetches nothing ({bad})");
    }
    h.engine.invalidate_tags(&[]).unwrap();
    assert!(h.fetches().is_empty());
}

#[test]
fn w2_tags_come_from_fetches_and_upserts_not_from_stream_messages() {
    let mut h = Harness::new(config(), &[]);
    h.engine.upsert(h.now, "getPosts", None, json!([5])).unwrap();
    h.drain();
    h.engine.invalidate_tags(&[json!({"type": "Post", "id": 5})]).unwrap();
    assert_eq!(removed(&mut h).len(), 1, "the upserted (unused) entry provided Post/5");
}

#[test]
fn w1_close_settles_pending_mutations_with_closed() {
    let mut h = Harness::new(config(), &[]);
    let id = h.engine.mutate("ping", None).unwrap();
    h.engine.close();
    assert_eq!(settled(&mut h), vec![(id, Err(Error::Closed))]);
    assert!(matches!(h.engine.mutate("ping", None), Err(Error::Closed)));
    assert!(matches!(h.engine.invalidate_tags(&[]), Err(Error::Closed)));
}

#[test]
fn w1_w2_bad_configs_name_their_path() {
    let bad = |c: Value| match livecache_engine::Config::from_value(&c) {
        Err(Error::Config { path, .. }) => path,
        other => panic!("expected a ConfigError, got {other:?}"),
    };
    let eps = |e: Value| json!({"tagTypes": ["Post"], "endpoints": e});
    assert_eq!(bad(eps(json!({"m": {"mutation": "x", "query": "y"}}))), "endpoints.m.query");
    assert_eq!(bad(eps(json!({"m": {"mutation": "x", "providesTags": ["Post"]}}))), "endpoints.m.providesTags");
    assert_eq!(bad(eps(json!({"q": {"query": "x", "invalidatesTags": ["Post"]}}))), "endpoints.q.invalidatesTags");
    assert_eq!(bad(eps(json!({"m": {"mutation": "x", "invalidatesTags": ["Comment"]}}))), "endpoints.m.invalidatesTags[0]");
    assert_eq!(bad(eps(json!({"m": {"mutation": {"send": {"endpoint": "nope", "message": 1}}}}))), "endpoints.m.mutation.send.endpoint");
    assert_eq!(bad(eps(json!({"q": {"query": "x"}, "m": {"mutation": {"send": {"endpoint": "q", "message": 1}}}}))), "endpoints.m.mutation.send.endpoint");
    assert_eq!(bad(eps(json!({"m": {"mutation": {"send": {"endpoint": "q"}}}}))), "endpoints.m.mutation.send.message");
    assert_eq!(bad(eps(json!({"m": {"mutation": {"url": "x", "method": "GET", "body": 1}}}))), "endpoints.m.mutation.body");
    assert_eq!(bad(json!({"tagTypes": ["A", "A"], "endpoints": {"q": {"query": "x"}}})), "tagTypes[1]");
    assert_eq!(bad(json!({"tagTypes": "A", "endpoints": {"q": {"query": "x"}}})), "tagTypes");
}
