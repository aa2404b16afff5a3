//! W1, W2, W4 end to end: a real `Client` against the chat server on 127.0.0.1. A mutation is a
//! `POST /messages/{channel}`; the server broadcasts the message and the stream appends it; the
//! mutation's `invalidatesTags` refetch the channel (counted by the server); `mutate` resolves
//! only once that refetch has landed, so `snapshot()` then shows the message (W4).

#[path = "support/util.rs"]
mod util;

use livecache_chat_server::ChatServer;
use livecache_core::{Error, Hooks, Status};
use serde_json::{json, Value};
use util::{block_on, wait_until, Recorder};

fn server() -> (ChatServer, tokio::runtime::Runtime) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let server = runtime.block_on(ChatServer::start());
    (server, runtime)
}

fn config(server: &ChatServer) -> Value {
    json!({
        "baseUrl": server.http_url(),
        "tagTypes": ["Messages"],
        "endpoints": {
            "getMessages": {
                "query": "messages/{arg}",
                "providesTags": [{"type": "Messages", "id": "{arg}"}],
                "stream": {"url": server.ws_url(), "filter": {"channel": "{arg}"}, "apply": {"append": {"dedupeBy": "id"}}}
            },
            "sendMessage": {
                "mutation": {"url": "messages/{arg.channel}", "body": {"userName": "{arg.userName}", "text": "{arg.text}"}},
                "invalidatesTags": [{"type": "Messages", "id": "{arg.channel}"}]
            },
            "type": {"mutation": {"send": {"endpoint": "getMessages", "arg": "{arg}", "message": {"typing": "{arg}"}}}}
        }
    })
}

/// Loaded, stream open, and no fetch in flight: the open's resync (L8), if any, has landed, so
/// the server's fetch counter moves only for what the test does next.
fn settled(sub: &livecache_core::Subscription) -> bool {
    sub.snapshot().is_ok_and(|s| s.status == Status::Fulfilled && s.stream.state == livecache_core::StreamState::Open)
}

fn texts(v: &Value) -> Vec<String> {
    v.as_array().into_iter().flatten().filter_map(|m| m["text"].as_str().map(str::to_owned)).collect()
}

#[test]
fn w1_w4_a_post_resolves_after_its_invalidation_refetch_landed() {
    let (server, _rt) = server();
    let client = util::client(config(&server), Hooks::new());
    let rec = Recorder::default();
    let sub = client.subscribe("getMessages", Some(json!("redux")), rec.callback()).unwrap();
    wait_until("loaded and open", || settled(&sub));
    let fetches = server.fetch_count();
    let arg = json!({"channel": "redux", "userName": "rust", "text": "from a mutation"});
    let result = block_on(client.mutate("sendMessage", Some(arg))).expect("the post succeeds");
    assert_eq!(result["text"], "from a mutation", "the response data: {result}");
    assert_eq!(server.post_count(), 1);
    assert_eq!(server.fetch_count(), fetches + 1, "the invalidated channel refetched once");
    // W4: the refetch has landed before mutate resolved.
    let snap = sub.snapshot().unwrap();
    assert_eq!(snap.status, Status::Fulfilled);
    assert!(texts(&snap.data).contains(&"from a mutation".to_owned()), "{:?}", snap.data);
    assert_eq!(texts(&snap.data).iter().filter(|t| *t == "from a mutation").count(), 1, "the echo and the refetch do not double it");
    let stats = client.stats().unwrap();
    assert_eq!((stats.mutations, stats.mutation_errors, stats.invalidations), (1, 0, 1));
    rec.wait_version(snap.version);
    rec.assert_replica(&snap.data, snap.version);
    drop(sub);
}

#[test]
fn w1_a_refused_post_is_a_mutation_error_and_still_invalidates() {
    let (server, _rt) = server();
    let client = util::client(config(&server), Hooks::new());
    let sub = client.subscribe("getMessages", Some(json!("redux")), |_| {}).unwrap();
    wait_until("loaded and open", || settled(&sub));
    let before = sub.snapshot().unwrap().data;
    let fetches = server.fetch_count();
    server.set_post_status(500);
    let err = block_on(client.mutate("sendMessage", Some(json!({"channel": "redux", "userName": "u", "text": "t"})))).unwrap_err();
    let Error::Mutation(value) = &err else { panic!("a MutationError, got {err:?}") };
    assert_eq!(value["status"], 500, "{value}");
    assert_eq!(value["data"], json!({"error": "status 500"}));
    assert_eq!(err.kind(), "MutationError");
    assert_eq!(server.fetch_count(), fetches + 1, "RTK invalidates on failure too");
    assert_eq!(sub.snapshot().unwrap().data, before, "nothing was stored");
    assert_eq!(client.stats().unwrap().mutation_errors, 1);
}

#[test]
fn w1_wrong_kinds_and_bad_args_are_errors_that_send_nothing() {
    let (server, _rt) = server();
    let client = util::client(config(&server), Hooks::new());
    let e = block_on(client.mutate("getMessages", Some(json!("redux")))).unwrap_err();
    assert_eq!(e.kind(), "WrongEndpointKind", "{e}");
    let e = client.subscribe("sendMessage", None, |_| {}).err().expect("subscribe on a mutation fails");
    assert_eq!(e.kind(), "WrongEndpointKind");
    assert!(e.to_string().contains("mutation"), "{e}");
    let e = block_on(client.mutate("sendMessage", Some(json!({"channel": "redux"})))).unwrap_err();
    assert_eq!(e.kind(), "InvalidArgument", "{e}");
    assert!(e.to_string().contains("userName"), "the message names the missing field: {e}");
    // A send mutation needs the entry and its open stream.
    let e = block_on(client.mutate("type", Some(json!("nobody")))).unwrap_err();
    assert_eq!(e.kind(), "NotFound", "{e}");
    assert_eq!(server.post_count(), 0, "nothing reached the server");
    assert_eq!(client.stats().unwrap().mutations, 1, "only the send was started");
    // invalidateTags: unknown types are refused, nothing refetched.
    assert_eq!(client.invalidate_tags(&[json!("Users")]).unwrap_err().kind(), "InvalidArgument");
}

#[test]
fn w2_invalidate_tags_refetches_the_subscribed_and_removes_the_unused() {
    let (server, _rt) = server();
    let client = util::client(config(&server), Hooks::new());
    let rec = Recorder::default();
    let sub = client.subscribe("getMessages", Some(json!("redux")), rec.callback()).unwrap();
    let other = client.subscribe("getMessages", Some(json!("general")), |_| {}).unwrap();
    wait_until("both loaded and open", || settled(&sub) && settled(&other));
    drop(other);
    let fetches = server.fetch_count();
    let snapshots = || rec.types().iter().filter(|t| **t == "snapshot").count();
    let before = snapshots();
    client.invalidate_tags(&[json!("Messages")]).unwrap();
    wait_until("the subscribed channel refetched", || snapshots() > before);
    assert_eq!(server.fetch_count(), fetches + 1, "only the subscribed entry refetches");
    assert_eq!(client.snapshot("getMessages", Some(&json!("general"))).unwrap_err().kind(), "NotFound", "the unused entry went at once");
    wait_until("the removed entry's socket closed", || server.open_sockets() == 1);
}

#[test]
fn w1_a_mutation_fn_hook_is_the_write_and_its_error_is_the_mutation_error() {
    let (server, _rt) = server();
    let mut config = config(&server);
    config["endpoints"]["note"] = json!({"invalidatesTags": [{"type": "Messages", "id": "{arg.channel}"}]});
    let hooks = Hooks::new().endpoint(
        "note",
        livecache_core::EndpointHooks::default().mutation_fn_sync(|arg| match arg {
            Some(a) if a["ok"] == true => Ok(json!({"noted": a["text"]})),
            _ => Err(json!({"status": "CUSTOM_ERROR", "error": "refused by the hook"})),
        }),
    );
    let client = util::client(config.clone(), hooks);
    let sub = client.subscribe("getMessages", Some(json!("redux")), |_| {}).unwrap();
    wait_until("loaded and open", || settled(&sub));
    let fetches = server.fetch_count();
    let done = block_on(client.mutate("note", Some(json!({"channel": "redux", "text": "hi", "ok": true})))).unwrap();
    assert_eq!(done, json!({"noted": "hi"}));
    assert_eq!(server.fetch_count(), fetches + 1, "its invalidatesTags applied");
    let e = block_on(client.mutate("note", Some(json!({"channel": "redux", "ok": false})))).unwrap_err();
    assert!(matches!(&e, Error::Mutation(v) if v["error"] == "refused by the hook"), "{e:?}");
    assert_eq!(client.subscribe("note", None, |_| {}).err().map(|e| e.kind()), Some("WrongEndpointKind"));
    // A mutationFn beside a query (or a mutation config) is a ConfigError naming the hook.
    config["endpoints"]["getMessages"]["invalidatesTags"] = Value::Null;
    let both = Hooks::new().endpoint("getMessages", livecache_core::EndpointHooks::default().mutation_fn_sync(|_| Ok(json!(1))));
    let e = livecache_core::Client::new(livecache_core::Config::from_value(&config).unwrap(), both).err().expect("a ConfigError");
    assert!(e.to_string().contains("hooks.getMessages.mutationFn"), "{e}");
}

/// The config without its tag lists, for the tags hooks to stand in for them.
fn untagged(server: &ChatServer) -> Value {
    let mut config = config(server);
    config["endpoints"]["getMessages"]["providesTags"] = Value::Null;
    config["endpoints"]["sendMessage"]["invalidatesTags"] = Value::Null;
    config
}

#[test]
fn w2_tags_hooks_compute_what_is_provided_and_invalidated() {
    let (server, _rt) = server();
    let provided = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Value>::new()));
    let invalidated = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Value>::new()));
    let (p, i) = (provided.clone(), invalidated.clone());
    let hooks = Hooks::new()
        .endpoint(
            "getMessages",
            livecache_core::EndpointHooks::default().provides_tags(move |data, arg| {
                p.lock().unwrap().push(json!({"data": data, "arg": arg}));
                Ok(json!([{"type": "Messages", "id": arg}]))
            }),
        )
        .endpoint(
            "sendMessage",
            livecache_core::EndpointHooks::default().invalidates_tags(move |result, error, arg| {
                i.lock().unwrap().push(json!({"result": result, "error": error, "arg": arg}));
                Ok(json!([{"type": "Messages", "id": arg.unwrap()["channel"]}]))
            }),
        );
    let client = util::client(untagged(&server), hooks);
    let sub = client.subscribe("getMessages", Some(json!("redux")), |_| {}).unwrap();
    wait_until("loaded and open", || settled(&sub));
    {
        let calls = provided.lock().unwrap();
        let last = calls.last().expect("providesTags ran on the fetch result");
        assert_eq!(last["arg"], "redux");
        assert_eq!(last["data"], sub.snapshot().unwrap().data, "it got the data the entry holds");
    }
    let fetches = server.fetch_count();
    let arg = json!({"channel": "redux", "userName": "rust", "text": "tagged by a hook"});
    let result = block_on(client.mutate("sendMessage", Some(arg.clone()))).unwrap();
    assert_eq!(server.fetch_count(), fetches + 1, "the hook's tag matched the hook-provided one");
    assert_eq!(invalidated.lock().unwrap().last().unwrap(), &json!({"result": result, "error": null, "arg": arg}));
    // On failure the hook gets the error value and no result, and its tags still apply (RTK).
    server.set_post_status(500);
    let e = block_on(client.mutate("sendMessage", Some(arg.clone()))).unwrap_err();
    assert!(matches!(&e, Error::Mutation(v) if v["status"] == 500), "{e:?}");
    let call = invalidated.lock().unwrap().last().unwrap().clone();
    assert_eq!((call["result"].clone(), call["error"]["status"].clone()), (Value::Null, json!(500)), "{call}");
    assert_eq!(server.fetch_count(), fetches + 2);
    // upsertQueryData runs providesTags too: the upserted entry is found by its tag.
    client.upsert_query_data("getMessages", Some(json!("general")), json!([])).unwrap();
    assert_eq!(provided.lock().unwrap().last().unwrap(), &json!({"data": [], "arg": "general"}));
    client.invalidate_tags(&[json!({"type": "Messages", "id": "general"})]).unwrap();
    assert_eq!(client.snapshot("getMessages", Some(&json!("general"))).unwrap_err().kind(), "NotFound", "unused and invalidated: removed");
}

#[test]
fn w2_tags_hooks_that_fail_or_answer_unknown_types_are_clear_errors() {
    let (server, _rt) = server();
    // providesTags answers per arg: an unknown type for "bad", a failure for "fails".
    let hooks = Hooks::new()
        .endpoint(
            "getMessages",
            livecache_core::EndpointHooks::default().provides_tags(|_, arg| match arg.and_then(Value::as_str) {
                Some("bad") => Ok(json!(["Messages", "Users"])),
                Some("fails") => Err("no tags today".into()),
                _ => Ok(json!([{"type": "Messages", "id": arg}])),
            }),
        )
        .endpoint(
            "sendMessage",
            livecache_core::EndpointHooks::default().invalidates_tags(|_, _, arg| match arg.unwrap()["text"].as_str() {
                Some("bad") => Ok(json!([{"type": "Nope", "id": 1}])),
                _ => Err("cannot tell".into()),
            }),
        );
    let client = util::client(untagged(&server), hooks);
    for (arg, words) in [("bad", "\"Users\" is not in tagTypes"), ("fails", "providesTags failed: no tags today")] {
        let rec = Recorder::default();
        let sub = client.subscribe("getMessages", Some(json!(arg)), rec.callback()).unwrap();
        rec.wait_type("error");
        let events = rec.events();
        let Some(livecache_core::Event::Error { reason, message, .. }) = events.iter().find(|e| matches!(e, livecache_core::Event::Error { .. })) else { unreachable!() };
        assert_eq!(*reason, livecache_core::ErrorReason::Hook);
        assert!(message.contains(words), "{message}");
        let types = rec.types();
        let at = |t: &str| types.iter().position(|x| *x == t);
        assert!(at("snapshot") < at("error"), "the data arrived first, then the error: {types:?}");
        assert_eq!(sub.snapshot().unwrap().data, json!([]), "the data is kept");
    }
    // Those entries provide no tags: invalidating every Messages tag matches neither.
    client.invalidate_tags(&[json!("Messages")]).unwrap();
    assert_eq!(client.stats().unwrap().invalidations, 0);
    // An upsert whose hook fails is refused and changes nothing.
    client.upsert_query_data("getMessages", Some(json!("ok")), json!([{"text": "kept"}])).unwrap();
    let upserted = json!([{"text": "upserted"}]);
    let e = client.upsert_query_data("getMessages", Some(json!("fails")), upserted.clone()).unwrap_err();
    assert_eq!(e.kind(), "PatchError", "{e}");
    assert!(e.to_string().contains("no tags today"), "{e}");
    let e = client.upsert_query_data("getMessages", Some(json!("bad")), upserted.clone()).unwrap_err();
    assert!(e.to_string().contains("\"Users\""), "{e}");
    for arg in ["fails", "bad"] {
        assert_ne!(client.snapshot("getMessages", Some(&json!(arg))).unwrap().data, upserted, "not upserted");
    }
    // A failed invalidatesTags fails the mutation with what the write answered; nothing is invalidated.
    let posts = server.post_count();
    for (text, words) in [("bad", "\"Nope\" is not in tagTypes"), ("other", "invalidatesTags failed: cannot tell")] {
        let e = block_on(client.mutate("sendMessage", Some(json!({"channel": "redux", "userName": "u", "text": text})))).unwrap_err();
        let Error::Mutation(v) = &e else { panic!("a MutationError, got {e:?}") };
        assert_eq!(v["status"], "CUSTOM_ERROR");
        assert!(v["error"].as_str().unwrap().contains(words), "{v}");
        assert_eq!(v["data"]["text"], text, "data is the write's own answer: {v}");
    }
    assert_eq!(server.post_count(), posts + 2, "the writes happened");
    assert_eq!(client.stats().unwrap().invalidations, 0);
}

#[test]
fn w2_tags_hooks_beside_their_config_keys_or_on_the_wrong_kind_are_config_errors() {
    let (server, _rt) = server();
    let config = livecache_core::Config::from_value(&config(&server)).unwrap();
    let untagged = livecache_core::Config::from_value(&untagged(&server)).unwrap();
    let provides = || livecache_core::EndpointHooks::default().provides_tags(|_, _| Ok(json!([])));
    let invalidates = || livecache_core::EndpointHooks::default().invalidates_tags(|_, _, _| Ok(json!([])));
    let cases = [
        (&config, Hooks::new().endpoint("getMessages", provides()), "hooks.getMessages.providesTags", "in its config too"),
        (&config, Hooks::new().endpoint("sendMessage", invalidates()), "hooks.sendMessage.invalidatesTags", "in its config too"),
        (&untagged, Hooks::new().endpoint("getMessages", invalidates()), "hooks.getMessages.invalidatesTags", "mutation endpoint"),
        (&untagged, Hooks::new().endpoint("sendMessage", provides()), "hooks.sendMessage", "providesTags"),
    ];
    for (config, hooks, path, words) in cases {
        let e = livecache_core::Client::new(config.clone(), hooks).err().expect("a ConfigError");
        assert_eq!(e.kind(), "ConfigError");
        assert!(e.to_string().contains(path) && e.to_string().contains(words), "{path}: {e}");
    }
}

#[test]
fn w3_a_recipe_layer_shows_at_once_and_a_failing_recipe_sends_nothing() {
    let (server, _rt) = server();
    let server = std::sync::Arc::new(server);
    // `post` is a mutationFn that stores the message once the test lets it (a slow write).
    let (go, wait) = tokio::sync::oneshot::channel::<()>();
    let wait = std::sync::Mutex::new(Some(wait));
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (store, counted) = (server.clone(), calls.clone());
    let mut config = config(&server);
    config["endpoints"]["post"] = json!({});
    let hooks = Hooks::new().endpoint(
        "post",
        livecache_core::EndpointHooks::default().mutation_fn_async(move |arg| {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let (wait, store) = (wait.lock().unwrap().take(), store.clone());
            async move {
                if let Some(wait) = wait {
                    let _ = wait.await;
                }
                let arg = arg.unwrap_or_default();
                Ok(store.post(arg["channel"].as_str().unwrap_or(""), "rust", arg["text"].as_str().unwrap_or("")))
            }
        }),
    );
    let client = util::client(config, hooks);
    let rec = Recorder::default();
    let sub = client.subscribe("getMessages", Some(json!("redux")), rec.callback()).unwrap();
    wait_until("loaded and open", || settled(&sub));
    let shown = sub.snapshot().unwrap().data;
    let given = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = given.clone();
    let recipe = livecache_core::LayerRecipe {
        endpoint: "getMessages".into(),
        arg: Some(json!("redux")),
        recipe: Box::new(move |draft: &mut Value| {
            seen.lock().unwrap().push(draft.clone());
            draft.as_array_mut().ok_or("not a list")?.push(json!({"id": "local", "text": "from a recipe"}));
            Ok(None)
        }),
    };
    let arg = json!({"channel": "redux", "userName": "rust", "text": "from a recipe"});
    let options = livecache_core::MutateOptions { confirm: Some(json!({"text": "{arg.text}"})), ..Default::default() };
    let layers = vec![livecache_core::OptimisticLayer::Recipe(recipe)];
    let done = client.start_mutation_with_layers("post", Some(arg.clone()), &options, layers).unwrap();
    assert_eq!(*given.lock().unwrap(), [shown], "the recipe ran once, on the data shown");
    let snap = sub.snapshot().unwrap();
    assert_eq!((snap.optimistic, texts(&snap.data).last().cloned()), (1, Some("from a recipe".to_owned())), "the layer shows at once");
    go.send(()).unwrap();
    block_on(done).unwrap();
    let snap = sub.snapshot().unwrap();
    assert_eq!(snap.optimistic, 0, "W4: confirmed when mutate returns");
    assert_eq!(texts(&snap.data).iter().filter(|t| *t == "from a recipe").count(), 1);
    assert_eq!(given.lock().unwrap().len(), 1, "not run again on a rebase");
    rec.wait_version(snap.version);
    rec.assert_replica(&snap.data, snap.version);
    // A recipe that fails refuses the call: no layer, nothing sent.
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    let before = sub.snapshot().unwrap();
    let failing = livecache_core::LayerRecipe {
        endpoint: "getMessages".into(),
        arg: Some(json!("redux")),
        recipe: Box::new(|draft: &mut Value| {
            *draft = json!("half done");
            Err("not this one".into())
        }),
    };
    let layers = vec![livecache_core::OptimisticLayer::Recipe(failing)];
    let e = client.start_mutation_with_layers("post", Some(arg), &options, layers).err().expect("refused");
    assert_eq!(e.kind(), "InvalidArgument");
    assert!(e.to_string().contains("the recipe for getMessages(\"redux\") failed: not this one"), "{e}");
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1, "nothing was sent");
    assert_eq!(sub.snapshot().unwrap(), before, "nothing changed");
}
