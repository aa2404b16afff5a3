//! W3 optimistic layers on the engine alone, on virtual time: the chat case (a message posted
//! optimistically stays above other users' messages and is confirmed by its echo without a
//! flicker), RTK Query's `optimisticUpdates.test.tsx` cases that apply (a failed mutation takes
//! its update back; a refetch settles it), the timeout, conflicts and bad input. Every
//! subscriber's events are replayed with the json-patch crate.

mod support;

use livecache_engine::{Error, ErrorReason, Event, MutateOptions};
use serde_json::{json, Value};
use support::*;

fn config(extra: Value) -> Value {
    let mut send = json!({
        "mutation": {"url": "messages", "body": "{arg}"},
        "optimistic": [{"endpoint": "getMessages", "arg": "{arg.channel}",
                        "message": {"id": "{arg.clientId}", "clientId": "{arg.clientId}", "text": "{arg.text}", "pending": true}}],
        "confirm": {"clientId": "{arg.clientId}"},
        "confirmTimeoutMs": 5000
    });
    for (k, v) in extra.as_object().unwrap() {
        send[k] = v.clone();
    }
    json!({
        "tagTypes": ["Messages"],
        "endpoints": {
            "getMessages": {"query": "messages/{arg}", "providesTags": ["Messages"],
                            "stream": {"url": "ws://127.0.0.1:1/", "apply": {"append": {"dedupeBy": "id"}}}},
            "sendMessage": send,
            "editDoc": {"mutation": "doc", "optimistic": [{"endpoint": "getDoc", "message": [{"op": "test", "path": "/v", "value": 1}, {"op": "replace", "path": "/title", "value": "{arg}"}]}]},
            "getDoc": {"query": "doc", "stream": {"url": "ws://127.0.0.1:1/doc", "apply": "jsonPatch"}},
            "getNote": {"query": "note"}
        }
    })
}

fn m(id: u64, text: &str) -> Value {
    json!({"id": id, "text": text})
}

/// Subscribed to `getMessages("redux")`, loaded with one message.
fn chat(extra: Value) -> (Harness, std::sync::Arc<str>, u64) {
    let mut h = Harness::new(config(extra), &[]);
    let (key, entry) = h.subscribe("s", "getMessages", Some(json!("redux")));
    let (_, _, request) = h.fetches().pop().unwrap();
    h.respond(&key, entry, request, json!([m(1, "first")]));
    (h, key, entry)
}

fn post(h: &mut Harness, text: &str) -> u64 {
    let id = h.engine.mutate("sendMessage", Some(json!({"channel": "redux", "clientId": format!("c-{text}"), "text": text}))).unwrap();
    h.drain();
    id
}

fn texts(v: &Value) -> Vec<String> {
    v.as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap().to_owned()).collect()
}

fn errors(h: &Harness, sub: Sub) -> Vec<ErrorReason> {
    h.events[sub].iter().filter_map(|e| if let Event::Error { reason, .. } = e { Some(*reason) } else { None }).collect()
}

#[test]
fn w3_the_chat_case_a_layer_survives_other_messages_and_its_echo_confirms_it_without_a_flicker() {
    let (mut h, key, entry) = chat(json!({}));
    let id = post(&mut h, "hello");
    assert_eq!(texts(&h.data(&key)), ["first", "hello"], "the layer shows at once");
    assert_eq!(h.engine.entry_state(&key, None).unwrap().optimistic, 1);
    // Other users' messages go to the server data; the layer stays on top.
    h.push(&key, entry, vec![m(2, "other"), m(3, "another")]);
    assert_eq!(texts(&h.data(&key)), ["first", "other", "another", "hello"]);
    // The response: the layer waits for its echo.
    h.engine.mutation_done(h.now, id, Ok(json!({"id": 4, "clientId": "c-hello", "text": "hello"})));
    h.drain();
    assert!(settled(&mut h).is_empty(), "W4: not before the layer is confirmed");
    h.push(&key, entry, vec![json!({"id": 4, "clientId": "c-hello", "text": "hello"})]);
    assert_eq!(h.data(&key), json!([m(1, "first"), m(2, "other"), m(3, "another"), {"id": 4, "clientId": "c-hello", "text": "hello"}]));
    assert_eq!(h.engine.entry_state(&key, None).unwrap().optimistic, 0);
    assert_eq!(settled(&mut h).len(), 1, "confirmed: the mutation settles");
    // No flicker: once shown, "hello" is in every later state, exactly once.
    let seen = h.states_from("s", 0);
    let first = seen.iter().position(|s| texts(s).contains(&"hello".to_owned())).unwrap();
    for s in &seen[first..] {
        assert_eq!(texts(s).iter().filter(|t| *t == "hello").count(), 1, "{s}");
    }
    let (replayed, version) = h.replay("s");
    assert_eq!((replayed, version), (h.data(&key), h.engine.entry_state(&key, None).unwrap().version));
    assert!(errors(&h, "s").is_empty());
}

#[test]
fn w3_a_failed_mutation_takes_its_layer_back_and_settles() {
    let (mut h, key, _) = chat(json!({}));
    let before = h.data(&key);
    let id = post(&mut h, "doomed");
    h.engine.mutation_done(h.now, id, Err(Error::Mutation(json!({"status": 500, "data": null}))));
    h.drain();
    assert_eq!(h.data(&key), before);
    assert_eq!(h.engine.entry_state(&key, None).unwrap().optimistic, 0);
    assert!(matches!(&settled(&mut h)[..], [(m, Err(Error::Mutation(_)))] if *m == id));
    assert_eq!(h.replay("s").0, before);
}

#[test]
fn w3_the_first_refetch_after_the_response_confirms_and_w4_waits_for_it() {
    let (mut h, key, entry) = chat(json!({"invalidatesTags": ["Messages"], "confirm": null}));
    let id = post(&mut h, "hi");
    h.engine.mutation_done(h.now, id, Ok(json!({"id": 9})));
    let refetch = h.fetches().pop().expect("the invalidation refetches");
    assert!(settled(&mut h).is_empty());
    assert_eq!(texts(&h.data(&key)), ["first", "hi"], "still shown while the refetch runs");
    h.respond(&key, entry, refetch.2, json!([m(1, "first"), m(9, "hi")]));
    assert_eq!(h.data(&key), json!([m(1, "first"), m(9, "hi")]));
    assert_eq!(settled(&mut h).len(), 1);
    let seen = h.states_from("s", 0);
    let first = seen.iter().position(|s| texts(s).contains(&"hi".to_owned())).unwrap();
    assert!(seen[first..].iter().all(|s| texts(s).contains(&"hi".to_owned())), "no flicker");
}

#[test]
fn w3_an_unconfirmed_layer_goes_after_the_timeout_with_an_error() {
    let (mut h, key, _) = chat(json!({}));
    let id = post(&mut h, "lost");
    h.engine.mutation_done(h.now, id, Ok(json!({"id": 5})));
    h.drain();
    h.advance(ms(4_999));
    assert_eq!(texts(&h.data(&key)), ["first", "lost"]);
    h.advance(ms(1));
    assert_eq!(texts(&h.data(&key)), ["first"]);
    assert_eq!(errors(&h, "s"), [ErrorReason::Unconfirmed]);
    assert_eq!(settled(&mut h).len(), 1, "W4: dropped counts as settled");
}

#[test]
fn w3_a_layer_that_no_longer_applies_is_dropped_with_optimistic_conflict() {
    let mut h = Harness::new(config(json!({})), &[]);
    let (key, entry) = h.subscribe("d", "getDoc", None);
    let (_, _, request) = h.fetches().pop().unwrap();
    h.respond(&key, entry, request, json!({"v": 1, "title": "a"}));
    let id = h.engine.mutate("editDoc", Some(json!("b"))).unwrap();
    h.drain();
    assert_eq!(h.data(&key), json!({"v": 1, "title": "b"}));
    // The server moves on: the layer's test op no longer holds.
    h.push(&key, entry, vec![json!([{"op": "replace", "path": "/v", "value": 2}])]);
    assert_eq!(h.data(&key), json!({"v": 2, "title": "a"}));
    assert_eq!(errors(&h, "d"), [ErrorReason::OptimisticConflict]);
    h.engine.mutation_done(h.now, id, Ok(json!(null)));
    assert_eq!(settled(&mut h).len(), 1);
    assert_eq!(h.replay("d").0, json!({"v": 2, "title": "a"}));
}

#[test]
fn w3_bad_layers_fail_the_call_and_change_nothing() {
    let (mut h, key, _) = chat(json!({}));
    let version = h.engine.entry_state(&key, None).unwrap().version;
    let opts = |layers: Value| MutateOptions { optimistic: Some(layers.as_array().unwrap().clone()), ..Default::default() };
    let bad = [
        json!([{"endpoint": "nope", "arg": "redux", "message": {}}]),
        json!([{"endpoint": "sendMessage", "message": {}}]),
        json!([{"endpoint": "getMessages", "arg": "redux"}]),
        json!([{"endpoint": "getMessages", "arg": "redux", "message": {"no": "id"}, "extra": 1}]),
        // Applies through dedupeBy: a message without `id` does not.
        json!([{"endpoint": "getMessages", "arg": "redux", "message": {"id": 50, "text": "ok"}},
               {"endpoint": "getMessages", "arg": "redux", "message": {"text": "no id"}}]),
        json!(["x"]),
    ];
    for layers in bad {
        let e = h.engine.mutate_with("sendMessage", Some(json!({"channel": "redux", "clientId": "c", "text": "t"})), &opts(layers.clone()));
        assert!(matches!(&e, Err(Error::InvalidArgument(_)) | Err(Error::UnknownEndpoint(_)) | Err(Error::WrongEndpointKind(_))), "{layers}: {e:?}");
        assert!(mutations(&mut h).is_empty(), "{layers}: nothing sent");
        assert_eq!(texts(&h.data(&key)), ["first"], "{layers}: nothing shown");
    }
    // The first layer of the last-but-one call went on and came off: two versions, no more.
    assert!(h.engine.entry_state(&key, None).unwrap().version <= version + 2);
    assert_eq!(h.replay("s").0, h.data(&key));
    // A layer for an entry that is not in the cache is skipped, as updateQueryData does nothing there.
    let id = h.engine.mutate("sendMessage", Some(json!({"channel": "general", "clientId": "c", "text": "t"}))).unwrap();
    h.engine.mutation_done(h.now, id, Ok(json!({})));
    assert_eq!(settled(&mut h).len(), 1, "no layers: settles with the response");
    // A template over the arg that names a missing field is the call's error.
    let e = h.engine.mutate("sendMessage", Some(json!({"channel": "redux", "text": "t"}))).unwrap_err();
    assert!(matches!(&e, Error::InvalidArgument(m) if m.contains("clientId")), "{e}");
}

#[test]
fn w3_a_confirm_naming_a_missing_result_field_drops_the_layer_with_an_error() {
    let (mut h, key, _) = chat(json!({"confirm": {"id": "{result.id}"}}));
    let id = post(&mut h, "x");
    h.engine.mutation_done(h.now, id, Ok(json!({"noId": true})));
    h.drain();
    assert_eq!(texts(&h.data(&key)), ["first"]);
    let reasons = errors(&h, "s");
    assert_eq!(reasons, [ErrorReason::Unconfirmed]);
    let message = h.events["s"].iter().find_map(|e| if let Event::Error { message, .. } = e { Some(message.clone()) } else { None }).unwrap();
    assert!(message.contains("result has no field `id`"), "{message}");
    assert_eq!(settled(&mut h).len(), 1);
}

#[test]
fn w3_layers_of_two_mutations_stack_in_order_and_leave_independently() {
    let (mut h, key, entry) = chat(json!({}));
    let a = post(&mut h, "a");
    let b = post(&mut h, "b");
    assert_eq!(texts(&h.data(&key)), ["first", "a", "b"]);
    h.engine.mutation_done(h.now, b, Ok(json!({})));
    h.engine.mutation_done(h.now, a, Err(Error::Mutation(json!({"status": 400}))));
    h.drain();
    assert_eq!(texts(&h.data(&key)), ["first", "b"]);
    h.push(&key, entry, vec![json!({"id": 7, "clientId": "c-b", "text": "b"})]);
    assert_eq!(texts(&h.data(&key)), ["first", "b"]);
    assert_eq!(h.engine.entry_state(&key, None).unwrap().optimistic, 0);
    assert_eq!(settled(&mut h).len(), 2);
    assert_eq!(h.replay("s").0, h.data(&key));
}

#[test]
fn w3_per_call_options_override_the_config() {
    let (mut h, key, entry) = chat(json!({}));
    let options = MutateOptions {
        optimistic: Some(vec![json!({"endpoint": "getMessages", "arg": "redux", "message": {"id": "tmp", "text": "mine", "n": 1}})]),
        confirm: Some(json!({"n": 1})),
        confirm_timeout_ms: Some(100),
    };
    let id = h.engine.mutate_with("sendMessage", Some(json!({"channel": "redux", "clientId": "ignored", "text": "mine"})), &options).unwrap();
    h.drain();
    assert_eq!(texts(&h.data(&key)), ["first", "mine"]);
    h.engine.mutation_done(h.now, id, Ok(json!({})));
    h.push(&key, entry, vec![json!({"id": 8, "text": "mine", "n": 1})]);
    assert_eq!(texts(&h.data(&key)), ["first", "mine"]);
    assert_eq!(settled(&mut h).len(), 1);
    assert!(MutateOptions::from_value(&json!({"optimistc": []})).unwrap_err().contains("unknown mutate option"));
    assert!(MutateOptions::from_value(&json!({"confirmTimeoutMs": 0})).is_err());
    assert!(MutateOptions::from_value(&json!({"optimistic": {}})).is_err());
    assert_eq!(MutateOptions::from_value(&json!(null)).unwrap(), MutateOptions::default());
}

#[test]
fn w3_bad_optimistic_configs_name_their_path() {
    let bad = |send: Value| match livecache_engine::Config::from_value(&config(send)) {
        Err(Error::Config { path, .. }) => path,
        other => panic!("expected a ConfigError, got {other:?}"),
    };
    assert_eq!(bad(json!({"optimistic": [{"endpoint": "nope", "message": 1}]})), "endpoints.sendMessage.optimistic[0].endpoint");
    assert_eq!(bad(json!({"optimistic": [{"endpoint": "editDoc", "message": 1}]})), "endpoints.sendMessage.optimistic[0].endpoint");
    assert_eq!(bad(json!({"optimistic": [{"endpoint": "getMessages"}]})), "endpoints.sendMessage.optimistic[0].message");
    assert_eq!(bad(json!({"optimistic": {}})), "endpoints.sendMessage.optimistic");
    assert_eq!(bad(json!({"confirm": {"id": "{reslt.id}"}})), "endpoints.sendMessage.confirm.id");
    assert_eq!(bad(json!({"confirmTimeoutMs": 0})), "endpoints.sendMessage.confirmTimeoutMs");
    let on_query = json!({"endpoints": {"q": {"query": "x", "optimistic": []}}});
    assert!(matches!(livecache_engine::Config::from_value(&on_query), Err(Error::Config { path, .. }) if path == "endpoints.q.optimistic"));
}

#[test]
fn w3_an_echo_before_the_response_confirms_too_and_the_mutation_settles_with_the_response() {
    let (mut h, key, entry) = chat(json!({}));
    let id = post(&mut h, "quick");
    h.push(&key, entry, vec![json!({"id": 6, "clientId": "c-quick", "text": "quick"})]);
    // `confirm` names only the arg, so the echo confirms at once: never shown twice.
    assert_eq!(texts(&h.data(&key)), ["first", "quick"]);
    assert_eq!(h.data(&key)[1]["id"], 6, "the server's copy stays");
    assert!(settled(&mut h).is_empty(), "W4: the response has not come");
    h.engine.mutation_done(h.now, id, Ok(json!({"id": 6})));
    assert_eq!(settled(&mut h).len(), 1);
    assert_eq!(texts(&h.data(&key)), ["first", "quick"]);
    assert_eq!(h.replay("s").0, h.data(&key));
}

/// Per-call layers as a host recipe leaves them: `{endpoint, arg, patch}`.
fn patch_layer(endpoint: &str, arg: Option<Value>, patch: Value) -> MutateOptions {
    let mut layer = json!({"endpoint": endpoint, "patch": patch});
    if let Some(a) = arg {
        layer["arg"] = a;
    }
    MutateOptions { optimistic: Some(vec![layer]), ..Default::default() }
}

#[test]
fn w3_a_recipe_patch_is_put_back_on_every_server_change_and_an_append_stays_last() {
    let (mut h, key, entry) = chat(json!({}));
    // What a recipe that pushed a message made: an add at the array's end.
    let options = patch_layer("getMessages", Some(json!("redux")), json!([{"op": "add", "path": "/1", "value": {"id": "tmp", "clientId": "c-mine", "text": "mine"}}]));
    let id = h.engine.mutate_with("sendMessage", Some(json!({"channel": "redux", "clientId": "c-mine", "text": "mine"})), &options).unwrap();
    h.drain();
    assert_eq!(texts(&h.data(&key)), ["first", "mine"]);
    h.push(&key, entry, vec![m(2, "other"), m(3, "another")]);
    assert_eq!(texts(&h.data(&key)), ["first", "other", "another", "mine"], "the append stays an append");
    h.engine.mutation_done(h.now, id, Ok(json!({"id": 4})));
    h.drain();
    h.push(&key, entry, vec![json!({"id": 4, "clientId": "c-mine", "text": "mine"})]);
    assert_eq!(texts(&h.data(&key)), ["first", "other", "another", "mine"], "confirmed by its echo, no flicker");
    assert_eq!(h.engine.entry_state(&key, None).unwrap().optimistic, 0);
    assert_eq!(settled(&mut h).len(), 1);
    assert_eq!(h.replay("s").0, h.data(&key));
    let shown: Vec<Value> = h.states_from("s", 0);
    let first = shown.iter().position(|s| texts(s).contains(&"mine".to_owned())).unwrap();
    assert!(shown[first..].iter().all(|s| texts(s).contains(&"mine".to_owned())), "never gone once shown");
}

#[test]
fn w3_a_recipe_patch_needs_no_apply_rule_and_a_refetch_it_no_longer_fits_drops_it() {
    let mut h = Harness::new(config(json!({})), &[]);
    let (key, entry) = h.subscribe("n", "getNote", None);
    let (_, _, request) = h.fetches().pop().unwrap();
    h.respond(&key, entry, request, json!({"title": "a", "body": "x"}));
    let options = patch_layer("getNote", None, json!([{"op": "replace", "path": "/title", "value": "mine"}]));
    let id = h.engine.mutate_with("sendMessage", Some(json!({"channel": "c", "clientId": "c", "text": "t"})), &options).unwrap();
    h.drain();
    assert_eq!(h.data(&key), json!({"title": "mine", "body": "x"}));
    // A refetch that started before the response: new server data, the patch goes back on.
    h.engine.refetch(&key).unwrap();
    let (_, _, request) = h.fetches().pop().unwrap();
    h.respond(&key, entry, request, json!({"title": "a", "body": "y"}));
    assert_eq!(h.data(&key), json!({"title": "mine", "body": "y"}));
    // A second write whose patch stops fitting the server data: dropped with a conflict.
    let options = patch_layer("getNote", None, json!([{"op": "remove", "path": "/body"}]));
    let other = h.engine.mutate_with("sendMessage", Some(json!({"channel": "c", "clientId": "d", "text": "t"})), &options).unwrap();
    h.drain();
    assert_eq!(h.data(&key), json!({"title": "mine"}));
    h.engine.refetch(&key).unwrap();
    let (_, _, request) = h.fetches().pop().unwrap();
    h.respond(&key, entry, request, json!({"title": "b"}));
    assert_eq!(h.data(&key), json!({"title": "mine"}), "the first layer stays, the second no longer applies");
    assert_eq!(errors(&h, "n"), [ErrorReason::OptimisticConflict]);
    // The first one's response, then the first refetch after it, confirms it.
    h.engine.mutation_done(h.now, id, Ok(json!({})));
    h.engine.mutation_done(h.now, other, Ok(json!({})));
    h.engine.refetch(&key).unwrap();
    let (_, _, request) = h.fetches().pop().unwrap();
    h.respond(&key, entry, request, json!({"title": "mine"}));
    assert_eq!(h.engine.entry_state(&key, None).unwrap().optimistic, 0);
    assert_eq!(h.data(&key), json!({"title": "mine"}));
    assert_eq!(h.replay("n").0, h.data(&key));
}

#[test]
fn w3_bad_recipe_patches_fail_the_call_and_change_nothing() {
    let (mut h, key, _) = chat(json!({}));
    let arg = json!({"channel": "redux", "clientId": "c", "text": "t"});
    let bad = [
        json!([{"endpoint": "getMessages", "arg": "redux", "patch": [{"op": "add", "path": "/-", "value": 1}], "message": {"id": 1}}]),
        json!([{"endpoint": "getMessages", "arg": "redux", "patch": {"op": "add"}}]),
        json!([{"endpoint": "getMessages", "arg": "redux", "patch": [{"op": "remove", "path": "/7"}]}]),
        json!([{"endpoint": "sendMessage", "patch": []}]),
    ];
    for layers in bad {
        let options = MutateOptions { optimistic: Some(layers.as_array().unwrap().clone()), ..Default::default() };
        let e = h.engine.mutate_with("sendMessage", Some(arg.clone()), &options);
        assert!(matches!(&e, Err(Error::InvalidArgument(_)) | Err(Error::WrongEndpointKind(_))), "{layers}: {e:?}");
        assert!(mutations(&mut h).is_empty(), "{layers}: nothing sent");
        assert_eq!(texts(&h.data(&key)), ["first"], "{layers}: nothing shown");
    }
    // An empty patch (a recipe that changed nothing) is a layer that shows nothing.
    let options = patch_layer("getMessages", Some(json!("redux")), json!([]));
    assert!(h.engine.mutate_with("sendMessage", Some(arg), &options).is_ok());
    assert_eq!(texts(&h.data(&key)), ["first"]);
}
