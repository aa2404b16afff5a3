//! End to end over the network: a real `Client` with its built-in HTTP query and WebSocket
//! stream against the chat server on 127.0.0.1 (L1, L4, L6, L7, L8, E3). Every subscriber's
//! events are replayed with the `json_patch` crate and must equal the engine's `snapshot()`;
//! the final data must equal the server's messages. Waits poll conditions; nothing is timed.

#[path = "support/util.rs"]
mod util;

use std::ops::Deref;

use livecache_chat_server::ChatServer;
use livecache_core::{Client, ErrorReason, Event, Hooks, PatchOp, Status, StreamState, Subscription};
use serde_json::{json, Value};
use util::{wait_for, wait_until, Recorder};

/// The chat server on its own runtime, so the tests themselves stay plain threads.
struct Server {
    server: ChatServer,
    _runtime: tokio::runtime::Runtime,
}

impl Deref for Server {
    type Target = ChatServer;
    fn deref(&self) -> &ChatServer {
        &self.server
    }
}

fn server() -> Server {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("server runtime");
    let server = runtime.block_on(ChatServer::start());
    Server { server, _runtime: runtime }
}

/// `getMessages` as SPEC §2 configures it against `server`; `stream` adds or overrides keys of
/// the stream object.
fn config(server: &ChatServer, apply: Value, keep_unused: f64, stream: Value) -> Value {
    let mut s = json!({
        "url": server.ws_url(),
        "filter": {"channel": "{arg}"},
        "schema": {"type": "object", "required": ["id", "channel", "text"]},
        "apply": apply,
        "reconnect": {"initialDelayMs": 20, "maxDelayMs": 200}
    });
    for (k, v) in stream.as_object().expect("stream overrides are an object") {
        s[k] = v.clone();
    }
    json!({
        "baseUrl": server.http_url(),
        "keepUnusedDataFor": keep_unused,
        "endpoints": {"getMessages": {"query": "messages/{arg}", "stream": s}}
    })
}

fn dedupe() -> Value {
    json!({"append": {"dedupeBy": "id"}})
}

/// A client, one subscription to `getMessages(channel)` and its recorder.
struct Watch {
    // Field order is drop order: the subscription goes before its client.
    sub: Subscription,
    rec: Recorder,
    channel: &'static str,
    client: Client,
}

fn watch(config: Value, channel: &'static str) -> Watch {
    let client = util::client(config, Hooks::new());
    let rec = Recorder::default();
    let sub = client.subscribe("getMessages", Some(json!(channel)), rec.callback()).expect("subscribe");
    Watch { sub, rec, channel, client }
}

impl Watch {
    fn state(&self) -> livecache_core::EntryState {
        self.sub.snapshot().expect("entry exists")
    }

    /// Loaded, stream open, no fetch in flight: a resync started by the open is started in the
    /// same step as the state change, so `fulfilled` after `open` means it has finished.
    fn settle(&self) {
        wait_until("fulfilled with the stream open", || {
            let s = self.state();
            s.status == Status::Fulfilled && s.stream.state == StreamState::Open
        });
    }

    /// Waits until the cache holds exactly the server's messages, then checks the subscriber's
    /// replayed replica against `snapshot()` (E1) and that no message appears twice.
    fn assert_equals_server(&self, server: &ChatServer) {
        let truth = Value::Array(server.messages(self.channel));
        wait_until("the cache equals the server's messages", || self.state().data == truth);
        self.assert_replica();
        let ids: Vec<u64> = truth.as_array().unwrap().iter().map(|m| m["id"].as_u64().unwrap()).collect();
        let mut unique = ids.clone();
        unique.dedup();
        assert_eq!(ids, unique, "every message exactly once");
    }

    /// The subscriber's replica (snapshot + every patch, replayed by `json_patch`) equals the
    /// engine's current state once delivery caught up.
    fn assert_replica(&self) {
        let state = wait_for("the subscriber to catch up with snapshot()", || {
            let s = self.state();
            (self.rec.version() == s.version).then_some(s)
        });
        self.rec.assert_replica(&state.data, state.version);
    }

    fn stream_states(&self) -> Vec<(StreamState, Option<String>)> {
        self.rec.stream_states()
    }

    fn errors(&self) -> Vec<(ErrorReason, String)> {
        self.rec
            .events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Error { reason, message, .. } => Some((reason, message)),
                _ => None,
            })
            .collect()
    }

    fn wait_reconnected_after(&self, skip: usize) -> Option<String> {
        self.rec.wait_reconnected_after(skip)
    }

    fn post_some(&self, server: &ChatServer, n: usize, label: &str) {
        for i in 0..n {
            server.post(self.channel, "alice", &format!("{label} {i}"));
        }
    }
}

#[test]
fn l1_fetch_and_stream_data_matches_server() {
    let server = server();
    server.post("redux", "alice", "before 1");
    server.post("other", "bob", "elsewhere");
    server.post("redux", "carol", "before 2");
    let w = watch(config(&server, dedupe(), 60.0, json!({})), "redux");
    // L1: pending first, and the stream is connecting while the fetch runs.
    wait_until("two events", || w.rec.count() >= 2);
    assert_eq!(&w.rec.types()[..2], ["status", "stream"]);
    let loaded = util::block_on(w.sub.loaded()).expect("loaded");
    assert_eq!(loaded, json!(server.messages("redux")[..2]));
    w.settle();
    server.wait_until_sync(|s| s.open_sockets() == 1);
    w.post_some(&server, 50, "live");
    for i in 0..10 {
        server.post("other", "bob", &format!("filtered {i}"));
    }
    w.post_some(&server, 50, "more");
    w.assert_equals_server(&server);
    assert_eq!(w.state().data.as_array().unwrap().len(), 102);
    let stats = w.client.stats().unwrap();
    assert!(stats.messages_filtered >= 10, "other channel's messages are filtered: {stats:?}");
    assert_eq!(stats.messages_rejected_total(), 0);
    assert_eq!(server.connections_accepted(), 1);
    let stream = w.stream_states();
    assert_eq!(stream.first().map(|s| s.0), Some(StreamState::Connecting));
    assert!(stream.iter().all(|(s, _)| matches!(s, StreamState::Connecting | StreamState::Open)), "{stream:?}");
}

/// L4: the socket is open before the fetch answers, so messages posted meanwhile are buffered
/// and applied right after the initial data. Two servers: one whose response is read after the
/// posts (the posts are in it and on the stream: `dedupeBy` keeps one of each), one whose
/// response is read before them (the stream alone has them: plain `append` is exact too).
#[test]
fn l4_messages_posted_during_a_slow_fetch_arrive_exactly_once() {
    struct Case {
        apply: Value,
        /// The response is read after this delay (it contains the posts)…
        fetch_delay: u64,
        /// …or read first and answered after this delay (it predates the posts).
        response_delay: u64,
    }
    let cases = [
        Case { apply: dedupe(), fetch_delay: 1000, response_delay: 0 },
        Case { apply: dedupe(), fetch_delay: 0, response_delay: 1000 },
        Case { apply: json!("append"), fetch_delay: 0, response_delay: 1000 },
    ];
    for case in cases {
        let server = server();
        server.post("redux", "alice", "before");
        server.set_fetch_delay(case.fetch_delay);
        server.set_response_delay(case.response_delay);
        let w = watch(config(&server, case.apply.clone(), 60.0, json!({})), "redux");
        let response_read = case.response_delay > 0;
        server.wait_until_sync(|s| {
            s.open_sockets() == 1 && if response_read { s.snapshots_taken() == 1 } else { s.fetch_count() == 1 }
        });
        assert_eq!(w.state().status, Status::Pending, "the scenario needs the fetch still running");
        w.post_some(&server, 20, "during the fetch");
        w.settle();
        w.post_some(&server, 5, "after");
        w.assert_equals_server(&server);
        let stats = w.client.stats().unwrap();
        assert!(stats.messages_buffered >= 20, "{:?}: posts were buffered: {stats:?}", case.apply);
        assert_eq!(server.connections_accepted(), 1);
    }
}

/// L4 with plain `append` when the response already holds messages the stream also delivered:
/// nothing is lost (each appears at least once, in order); only `dedupeBy` removes the doubles.
#[test]
fn l4_plain_append_with_a_late_response_loses_nothing() {
    let server = server();
    server.set_fetch_delay(1000);
    let w = watch(config(&server, json!("append"), 60.0, json!({})), "redux");
    server.wait_until_sync(|s| s.open_sockets() == 1 && s.fetch_count() == 1);
    w.post_some(&server, 10, "during the fetch");
    w.settle();
    w.post_some(&server, 3, "after");
    let truth = server.messages("redux");
    wait_until("every message is in the cache", || {
        let data = w.state().data;
        let cached = data.as_array().cloned().unwrap_or_default();
        let mut it = cached.iter();
        truth.iter().all(|m| it.any(|c| c == m))
    });
    w.assert_replica();
}

#[test]
fn l8_server_drops_all_sockets_reconnect_resync() {
    let server = server();
    let w = watch(config(&server, dedupe(), 60.0, json!({})), "redux");
    w.settle();
    server.wait_until_sync(|s| s.open_sockets() == 1);
    w.post_some(&server, 10, "before the drop");
    w.assert_equals_server(&server);
    let fetches = server.fetch_count();
    let seen = w.stream_states().len();

    // Down: the socket is gone and upgrades are refused, so these posts reach no socket.
    server.refuse_upgrades(usize::MAX);
    server.drop_all_sockets();
    server.wait_until_sync(|s| s.upgrades_refused() >= 1);
    w.post_some(&server, 10, "while down");
    server.refuse_upgrades(0);

    let error = w.wait_reconnected_after(seen);
    assert!(error.is_some(), "a reconnecting event carries the last error");
    w.assert_equals_server(&server);
    w.settle();
    assert!(server.fetch_count() > fetches, "resyncOnReconnect refetched");
    let stats = w.client.stats().unwrap();
    assert!(stats.reconnects >= 1, "{stats:?}");
    // The stream goes on after the resync.
    w.post_some(&server, 5, "after");
    w.assert_equals_server(&server);
}

#[test]
fn l8_refused_upgrades_are_retried() {
    let server = server();
    server.post("redux", "alice", "first");
    server.refuse_upgrades(3);
    let w = watch(config(&server, dedupe(), 60.0, json!({})), "redux");
    w.settle();
    assert_eq!(server.upgrades_refused(), 3);
    assert_eq!(server.connections_accepted(), 1);
    // Delivery trails the state (SPEC §5): wait until the subscriber has seen the `open`.
    let states = wait_for("the open event delivered", || {
        let states = w.stream_states();
        (states.last().map(|s| s.0) == Some(StreamState::Open)).then_some(states)
    });
    let refused: Vec<_> = states.iter().filter(|(s, _)| *s == StreamState::Reconnecting).collect();
    assert!(!refused.is_empty(), "{states:?}");
    for (_, error) in &refused {
        let error = error.as_deref().unwrap_or("");
        assert!(error.contains("503"), "the refusal is the stream's last error: {error:?}");
    }
    assert_eq!(states.last().map(|s| s.0), Some(StreamState::Open));
    assert_eq!(w.state().stream.error, None, "open clears the error");
    server.wait_until_sync(|s| s.open_sockets() == 1);
    w.post_some(&server, 10, "live");
    w.assert_equals_server(&server);
}

/// L1 gap: the fetch finished while the socket was still being refused; a message posted in
/// between reached neither. The first open refetches, so it is not lost.
#[test]
fn l1_gap_fetch_finished_before_socket_open_is_resynced() {
    let server = server();
    server.post("redux", "alice", "first");
    server.refuse_upgrades(usize::MAX);
    let w = watch(config(&server, dedupe(), 60.0, json!({})), "redux");
    wait_until("loaded while the socket is refused", || {
        w.state().status == Status::Fulfilled && server.upgrades_refused() >= 1
    });
    assert_ne!(w.state().stream.state, StreamState::Open);
    let missed = server.post("redux", "bob", "in the gap");
    server.refuse_upgrades(0);
    w.settle();
    w.assert_equals_server(&server);
    assert!(w.state().data.as_array().unwrap().contains(&missed));
    assert!(server.fetch_count() >= 2, "the first open resynced");
    assert_eq!(w.client.stats().unwrap().reconnects, 0, "a first open is no reconnect");
}

/// L6: a failed fetch is `rejected` with RTK's `{status, data}` error and keeps the data; the
/// next successful fetch is `fulfilled`. Also a first fetch that fails: no data until a refetch.
#[test]
fn l6_http_500_rejected_keeps_data_then_success_fulfils() {
    let server = server();
    server.post("redux", "alice", "first");
    server.set_http_status(500);
    let w = watch(config(&server, dedupe(), 60.0, json!({})), "redux");
    wait_until("rejected", || w.state().status == Status::Rejected);
    let state = w.state();
    assert_eq!(state.data, Value::Null);
    assert_eq!(state.error, Some(json!({"status": 500, "data": {"error": "status 500"}})));
    // The state runs ahead of delivery (SPEC §5): wait for the event itself.
    let rejected = || {
        w.rec.events().into_iter().find_map(|e| match e {
            Event::Status { status: Status::Rejected, error, .. } => Some(error),
            _ => None,
        })
    };
    wait_until("rejected event delivered", || rejected().is_some());
    assert_eq!(rejected(), Some(state.error.clone()));

    // Messages streamed before any data are buffered until a fetch succeeds (L4).
    wait_until("stream open", || w.state().stream.state == StreamState::Open);
    server.wait_until_sync(|s| s.open_sockets() == 1);
    w.post_some(&server, 3, "while rejected");
    server.set_http_status(200);
    w.client.refetch("getMessages", Some(&json!("redux"))).unwrap();
    w.settle();
    w.assert_equals_server(&server);

    // Loaded, then a failing refetch: rejected, the data and its version kept.
    server.set_http_status(500);
    let before = w.state();
    w.client.refetch("getMessages", Some(&json!("redux"))).unwrap();
    wait_until("rejected again", || w.state().status == Status::Rejected);
    let after = w.state();
    assert_eq!(after.data, before.data);
    assert_eq!(after.version, before.version);
    assert_eq!(after.error.as_ref().map(|e| e["status"].clone()), Some(json!(500)));
    // The stream still applies while rejected.
    w.post_some(&server, 2, "still streaming");
    w.assert_equals_server(&server);

    server.set_http_status(200);
    w.client.refetch("getMessages", Some(&json!("redux"))).unwrap();
    w.settle();
    assert_eq!(w.state().error, None);
    w.assert_equals_server(&server);
    assert!(w.client.stats().unwrap().fetch_errors >= 2);
}

/// E3 at the wire: each bad frame is one `error` event and changes nothing; the same socket
/// carries on with the next valid message.
#[test]
fn e3_garbage_frames_give_error_events_data_intact() {
    let server = server();
    server.post("redux", "alice", "first");
    let w = watch(config(&server, dedupe(), 60.0, json!({})), "redux");
    w.settle();
    server.wait_until_sync(|s| s.open_sockets() == 1);
    w.assert_equals_server(&server);
    let version = w.state().version;

    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    server.broadcast_raw("this is not JSON {");
    server.broadcast_raw("[1, 2, 3]"); // JSON, but not an object: the schema refuses it
    server.broadcast_raw(r#"{"id": 99, "channel": "redux"}"#); // no "text"
    server.broadcast_raw("NaN");
    server.broadcast_raw(&deep);
    server.broadcast_binary(&[0xde, 0xad, 0xbe, 0xef]);
    server.broadcast_raw(r#"{"id": 5, "channel": "redux", "text": "#); // cut short
    let expected = [
        ErrorReason::InvalidJson,
        ErrorReason::Schema,
        ErrorReason::Schema,
        ErrorReason::NotFinite,
        ErrorReason::TooDeep,
        ErrorReason::BinaryFrame,
        ErrorReason::InvalidJson,
    ];
    wait_until("one error event per bad frame", || w.errors().len() >= expected.len());
    let reasons: Vec<_> = w.errors().into_iter().map(|(r, _)| r).collect();
    assert_eq!(reasons, expected);
    assert_eq!(w.state().version, version, "bad input changed nothing");

    w.post_some(&server, 5, "valid again");
    w.assert_equals_server(&server);
    let stats = w.client.stats().unwrap();
    assert_eq!(stats.messages_rejected_total(), expected.len() as u64, "{stats:?}");
    assert_eq!(stats.messages_rejected.get("schema"), Some(&2));
    assert_eq!(server.connections_accepted(), 1, "the socket carried on");
    assert_eq!(w.stream_states().last().map(|s| s.0), Some(StreamState::Open));
    assert_eq!(w.errors().len(), expected.len());
}

/// E3 inside a flood: frames read together reach the engine as one batch; every bad frame's
/// error event keeps its place between the patches of the messages around it.
#[test]
fn e3_bad_frames_inside_a_flood_keep_their_place() {
    let server = server();
    let w = watch(config(&server, dedupe(), 60.0, json!({})), "redux");
    w.settle();
    server.wait_until_sync(|s| s.open_sockets() == 1);
    let start = w.rec.count();
    let mut sent = Vec::new();
    for i in 0..300u64 {
        if i % 7 == 3 {
            server.broadcast_raw("not JSON");
            sent.push(None);
        } else {
            server.broadcast_raw(&json!({"id": 1000 + i, "channel": "redux", "userName": "bot", "text": "flood"}).to_string());
            sent.push(Some(1000 + i));
        }
    }
    let bad = sent.iter().filter(|s| s.is_none()).count();
    wait_until("every frame handled", || {
        w.errors().len() == bad && w.state().data.as_array().is_some_and(|a| a.last().map(|m| &m["id"]) == Some(&json!(1299)))
    });
    w.assert_replica();
    let seen: Vec<Option<u64>> = w.rec.events()[start..]
        .iter()
        .flat_map(|e| match e {
            Event::Patch { patches, .. } => patches
                .iter()
                .filter_map(|op| match op {
                    PatchOp::Add { value, .. } => Some(value["id"].as_u64()),
                    _ => None,
                })
                .collect(),
            Event::Error { .. } => vec![None],
            _ => vec![],
        })
        .collect();
    assert_eq!(seen, sent, "patches and errors in the order of the frames");
}

/// E3: a frame over `maxMessageBytes` (default 16 MiB) must fail the connection; the engine
/// reports it once, reconnects and resyncs, and later messages arrive.
#[test]
fn e3_64_mib_message_is_an_error_and_stream_continues() {
    let server = server();
    let w = watch(config(&server, dedupe(), 60.0, json!({})), "redux");
    w.settle();
    server.wait_until_sync(|s| s.open_sockets() == 1);
    w.post_some(&server, 3, "before");
    w.assert_equals_server(&server);
    let seen = w.stream_states().len();
    let fetches = server.fetch_count();

    let huge = format!(r#"{{"id": 1000000, "channel": "redux", "text": "{}"}}"#, "x".repeat(64 << 20));
    server.broadcast_raw(&huge);
    drop(huge);
    let error = w.wait_reconnected_after(seen);
    let errors = w.errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].0, ErrorReason::TooLarge);
    assert!(error.is_some());
    w.settle();
    assert!(server.fetch_count() > fetches, "resynced after the reconnect");
    server.wait_until_sync(|s| s.open_sockets() == 1);
    w.post_some(&server, 5, "after");
    w.assert_equals_server(&server);
    let stats = w.client.stats().unwrap();
    assert_eq!(stats.messages_rejected.get("too_large"), Some(&1), "{stats:?}");
    assert!(stats.reconnects >= 1);
    assert!(!w.state().data.as_array().unwrap().iter().any(|m| m["id"] == 1000000));
}

/// L8: a peer that stops answering (no pong, no frames, TCP still open) is noticed by the
/// heartbeat and reconnected; what was posted meanwhile comes back with the resync.
#[test]
fn l8_silent_server_heartbeat_timeout_reconnects() {
    let server = server();
    let w = watch(
        config(&server, dedupe(), 60.0, json!({"heartbeat": {"intervalMs": 100, "timeoutMs": 200}})),
        "redux",
    );
    w.settle();
    server.wait_until_sync(|s| s.open_sockets() == 1);
    w.post_some(&server, 3, "before");
    w.assert_equals_server(&server);
    let seen = w.stream_states().len();

    server.silence_all_sockets();
    w.post_some(&server, 4, "to a silent socket");
    let error = w.wait_reconnected_after(seen).unwrap_or_default();
    assert!(error.contains("heartbeat"), "the drop is reported as a heartbeat timeout: {error:?}");
    w.settle();
    w.assert_equals_server(&server);
    server.wait_until_sync(|s| s.open_sockets() == 1);
    w.post_some(&server, 3, "after");
    w.assert_equals_server(&server);
    assert!(w.client.stats().unwrap().reconnects >= 1);
    assert!(server.connections_accepted() >= 2);
}

/// L7: the entry goes `keepUnusedDataFor` after its last subscriber, and its socket ends with a
/// close handshake the server sees.
#[test]
fn l7_removal_closes_the_socket_with_a_close_frame() {
    let server = server();
    let w = watch(config(&server, dedupe(), 0.2, json!({})), "redux");
    w.settle();
    server.wait_until_sync(|s| s.open_sockets() == 1);
    w.post_some(&server, 2, "live");
    w.assert_equals_server(&server);
    w.sub.unsubscribe();
    server.wait_until_sync(|s| s.close_frames_received() == 1);
    wait_until("the entry is removed", || w.client.snapshot("getMessages", Some(&json!("redux"))).is_err());
    server.wait_until_sync(|s| s.open_sockets() == 0);
    let stats = w.client.stats().unwrap();
    assert_eq!(stats.entries_removed, 1);
    assert_eq!(stats.entries, 0);
    assert_eq!(server.connections_accepted(), 1, "no reconnect after removal");
    assert!(!w.rec.types().contains(&"removed"), "an unsubscribed subscriber gets nothing more");
}

/// L7: a subscribe within `keepUnusedDataFor` reuses the entry and its open socket: no
/// reconnect, no refetch, and the new subscriber starts from a snapshot.
#[test]
fn l7_resubscribe_within_keep_unused_reuses_the_socket() {
    let server = server();
    let w = watch(config(&server, dedupe(), 30.0, json!({})), "redux");
    w.settle();
    server.wait_until_sync(|s| s.open_sockets() == 1);
    w.post_some(&server, 3, "first subscriber");
    w.assert_equals_server(&server);
    let fetches = server.fetch_count();
    w.sub.unsubscribe();

    let rec = Recorder::default();
    let sub = w.client.subscribe("getMessages", Some(json!("redux")), rec.callback()).unwrap();
    wait_until("a snapshot", || rec.count() >= 1);
    assert_eq!(rec.types()[0], "snapshot");
    w.post_some(&server, 3, "second subscriber");
    let truth = json!(server.messages("redux"));
    wait_until("the new subscriber has every message", || rec.data().as_ref() == Some(&truth));
    let state = sub.snapshot().unwrap();
    rec.assert_replica(&state.data, state.version);
    assert_eq!(server.connections_accepted(), 1, "the open socket was reused");
    assert_eq!(server.fetch_count(), fetches, "no refetch");
    assert_eq!(server.close_frames_received(), 0);
    let stats = w.client.stats().unwrap();
    assert_eq!(stats.entries_created, 1);
    assert_eq!(stats.entries_removed, 0);
}

/// `close()` ends every stream with a close handshake too (SPEC §8).
#[test]
fn close_ends_the_stream_with_a_close_frame() {
    let server = server();
    let w = watch(config(&server, dedupe(), 60.0, json!({})), "redux");
    w.settle();
    server.wait_until_sync(|s| s.open_sockets() == 1);
    w.client.close();
    assert_eq!(server.close_frames_received(), 1, "close() returns after the handshake");
    assert!(w.client.stats().is_err());
}

/// Sync waits on the server's counters (the tests are plain threads).
trait WaitSync {
    fn wait_until_sync(&self, condition: impl Fn(&ChatServer) -> bool);
}

impl WaitSync for ChatServer {
    fn wait_until_sync(&self, condition: impl Fn(&ChatServer) -> bool) {
        wait_until("a server condition", || condition(self));
    }
}
