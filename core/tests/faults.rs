//! Network faults between a real `Client` and the chat server, injected by a TCP proxy on the
//! stream's path (support/fault_proxy.rs), for each stream transport: WebSocket (resync by
//! refetch, L8), a shared WebSocket (T3) resumed through its subscribe frame's cursor, SSE (`/events/…`, resumed with `Last-Event-ID`, T4/T6) and GraphQL
//! (async-graphql's graphql-transport-ws, resumed through the `{cursor}` variable, T5/T6).
//! Faults: added latency, 1-byte segments, throttled bandwidth, a reset in the middle of a
//! frame, a half-open connection that goes silent, a storm of refused connects. After each
//! fault the cache must equal the server's messages, each exactly once, the subscriber's events
//! must replay to it (E1), and the stream events must tell what happened: no reconnect for a
//! slow network, `reconnecting` with an error and then `open` for a broken one; a resuming
//! stream catches up without a refetch; the client keeps no dead connection open (the proxy
//! holds a silenced one until the client closes it). Waits poll conditions; nothing is timed.

#[path = "support/util.rs"]
mod util;
#[path = "support/fault_proxy.rs"]
mod fault_proxy;

use std::time::Duration;

use fault_proxy::{FaultProxy, Shape};
use livecache_chat_server::ChatServer;
use livecache_core::{Client, Hooks, Status, StreamState, Subscription};
use serde_json::{json, Value};
use util::{wait_for, wait_until, Recorder};

#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    Ws,
    /// A shared WebSocket (T3) whose subscribe frame carries the resume cursor (T6).
    WsShared,
    Sse,
    Graphql,
}

impl Kind {
    /// Resumes after a drop (the server replays what was missed) instead of refetching.
    fn resumes(self) -> bool {
        self != Kind::Ws
    }

    /// The entry's stream, through the proxy. A resuming stream applies without `dedupeBy`, so
    /// a message the replay sent twice would show in the data.
    fn stream(self, server: &ChatServer, proxy: &FaultProxy, heartbeat: bool) -> Value {
        let reconnect = json!({"initialDelayMs": 10, "maxDelayMs": 100});
        let mut s = match self {
            Kind::Ws => json!({
                "url": proxy.url(&server.ws_url()),
                "filter": {"channel": "{arg}"},
                "apply": {"append": {"dedupeBy": "id"}},
            }),
            Kind::WsShared => json!({
                "url": proxy.url(&format!("{}ws/lobby", server.ws_url())),
                "share": true,
                "subscribeMessage": {"type": "subscribe", "channel": "{arg}", "after": "{cursor}"},
                "filter": {"channel": "{arg}"},
                "apply": "append",
                "resume": {"cursor": "/id"},
            }),
            Kind::Sse => json!({
                "transport": "sse",
                // With a heartbeat, the server sends a comment line every 50 ms (T4 traffic).
                "url": proxy.url(&format!("{}events/{{arg}}{}", server.http_url(), if heartbeat { "?heartbeatMs=50" } else { "" })),
                "apply": "append",
                "resume": {"cursor": "/id"},
            }),
            Kind::Graphql => json!({
                "graphql": {
                    "url": proxy.url(&format!("ws://{}/graphql", server.addr())),
                    "query": "subscription ($channel: String!, $after: Int) { messageAdded(channel: $channel, after: $after) { id channel userName text } }",
                    "variables": {"channel": "{arg}", "after": "{cursor}"},
                },
                "apply": "append",
                "resume": {"cursor": "/id"},
            }),
        };
        s["reconnect"] = reconnect;
        if heartbeat {
            s["heartbeat"] = json!({"intervalMs": 50, "timeoutMs": 150});
        }
        s
    }
}

/// One fault test per transport: `fn name(kind: Kind)` becomes `name::ws`, `name::ws_shared`,
/// `name::sse` and `name::graphql`.
macro_rules! on_every_transport {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn ws() { super::$name(super::Kind::Ws) }
            #[test]
            fn ws_shared() { super::$name(super::Kind::WsShared) }
            #[test]
            fn sse() { super::$name(super::Kind::Sse) }
            #[test]
            fn graphql() { super::$name(super::Kind::Graphql) }
        }
    )*};
}

on_every_transport!(
    latency_delays_frames_and_loses_none,
    one_byte_segments_reassemble_into_the_same_frames,
    throttled_bandwidth_delivers_everything_in_order,
    a_reset_in_the_middle_of_a_frame_reconnects_and_catches_up_on_the_cut_message,
    a_half_open_connection_is_detected_by_the_heartbeat_and_replaced,
    a_storm_of_refused_connects_is_ridden_out_with_backoff,
);

struct Setup {
    kind: Kind,
    // Field order is drop order: the subscription goes before its client, the proxy before the
    // server.
    sub: Subscription,
    rec: Recorder,
    client: Client,
    proxy: FaultProxy,
    server: ChatServer,
    /// The server's fetch count once settled (a resume must not add to it).
    fetches_at_settle: std::sync::atomic::AtomicUsize,
    _runtime: tokio::runtime::Runtime,
}

/// The chat server, the proxy in front of it, and one subscriber of `#redux` whose stream goes
/// through the proxy (the query goes straight to the server).
fn setup(kind: Kind, heartbeat: bool) -> Setup {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("server runtime");
    let server = runtime.block_on(ChatServer::start());
    server.post("redux", "alice", "before");
    let proxy = FaultProxy::start(server.addr());
    let config = json!({
        "baseUrl": server.http_url(),
        "endpoints": {"getMessages": {"query": "messages/{arg}", "stream": kind.stream(&server, &proxy, heartbeat)}}
    });
    let client = util::client(config, Hooks::new());
    let rec = Recorder::default();
    let sub = client.subscribe("getMessages", Some(json!("redux")), rec.callback()).expect("subscribe");
    let setup = Setup { kind, sub, rec, client, proxy, server, fetches_at_settle: Default::default(), _runtime: runtime };
    setup.settle();
    setup
}

impl Setup {
    fn fetches_at_settle(&self) -> usize {
        self.fetches_at_settle.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn state(&self) -> livecache_core::EntryState {
        self.sub.snapshot().expect("the entry")
    }

    /// Loaded, the stream open, the server sending on it, and one message received through it
    /// (a resuming stream then has a cursor to resume from).
    fn settle(&self) {
        wait_until("fulfilled with the stream open", || {
            let s = self.state();
            s.status == Status::Fulfilled && s.stream.state == StreamState::Open
        });
        match self.kind {
            Kind::Ws => wait_until("the server holds the socket", || self.server.open_sockets() == 1),
            Kind::WsShared => wait_until("the server read the subscribe frame", || self.server.channel_subscribers("redux") == 1),
            Kind::Sse | Kind::Graphql => wait_until("the server's stream listens", || self.server.listeners_started() == 1),
        }
        // The stream's first open may refetch (L8); every fetch started is answered before the
        // probe is posted, so the probe can come on the stream only.
        wait_until("every fetch answered", || {
            let started = self.client.stats().unwrap().fetches as usize;
            started == self.server.fetch_count() && started == self.server.snapshots_taken()
        });
        let fetches = self.server.fetch_count();
        self.post(1, "probe");
        self.wait_equals_server();
        assert_eq!(self.server.fetch_count(), fetches, "the probe came on the stream");
        self.fetches_at_settle.store(fetches, std::sync::atomic::Ordering::SeqCst);
    }

    fn post(&self, n: usize, label: &str) {
        for i in 0..n {
            self.server.post("redux", "bob", &format!("{label} {i}"));
        }
    }

    fn wait_equals_server(&self) {
        let truth = Value::Array(self.server.messages("redux"));
        wait_until("the cache equals the server", || self.state().data == truth);
    }

    /// The cache equals the server's messages, each once, and the events replay to it.
    fn assert_equals_server(&self) {
        self.wait_equals_server();
        let truth = self.server.messages("redux");
        let ids: Vec<u64> = truth.iter().map(|m| m["id"].as_u64().unwrap()).collect();
        let mut unique = ids.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(ids.len(), unique.len(), "every message exactly once");
        let state = wait_for("the subscriber to catch up", || {
            let s = self.state();
            (self.rec.version() == s.version).then_some(s)
        });
        self.rec.assert_replica(&state.data, state.version);
    }

    /// No stream event but `connecting` and the first `open`: the fault did not break the
    /// connection, and the events say so.
    fn assert_never_reconnected(&self) {
        let states: Vec<StreamState> = self.rec.stream_states().into_iter().map(|(s, _)| s).collect();
        assert_eq!(states, [StreamState::Connecting, StreamState::Open], "one connection throughout");
        assert_eq!(self.proxy.accepted(), 1);
    }

    /// After the first `skip` stream events: `reconnecting` with an error, later `open`. Returns
    /// that error.
    fn wait_reconnected_after(&self, skip: usize) -> String {
        self.rec.wait_reconnected_after(skip).unwrap_or_default()
    }

    /// After a broken connection the client holds one connection, not the dead ones too: each
    /// was closed (its socket, task and buffers gone), on the proxy's side as in `stats()`.
    fn assert_dead_connections_closed(&self) {
        wait_until("the client closed its dead connections", || self.proxy.open() == 1);
        assert_eq!(self.client.stats().unwrap().connections, 1, "one live connection in the client");
    }

    /// After a broken connection: a resuming stream caught up from its cursor (counted in
    /// `resumes`) without fetching again; a WebSocket stream resynced with a refetch.
    fn assert_caught_up_the_right_way(&self) {
        let stats = self.client.stats().unwrap();
        if self.kind.resumes() {
            assert!(stats.resumes >= 1, "a resume was counted: {stats:?}");
            assert_eq!(self.server.fetch_count(), self.fetches_at_settle(), "a resume refetches nothing");
        } else {
            assert!(self.server.fetch_count() > self.fetches_at_settle(), "the reconnect resynced");
        }
    }
}

fn latency_delays_frames_and_loses_none(kind: Kind) {
    let s = setup(kind, false);
    s.proxy.set_shape(Shape::Latency(Duration::from_millis(20)));
    s.post(30, "slow");
    s.assert_equals_server();
    s.assert_never_reconnected();
    s.assert_dead_connections_closed();
}

fn one_byte_segments_reassemble_into_the_same_frames(kind: Kind) {
    let s = setup(kind, false);
    s.proxy.set_shape(Shape::OneByte);
    s.post(30, "bytes");
    s.assert_equals_server();
    s.assert_never_reconnected();
    s.assert_dead_connections_closed();
}

fn throttled_bandwidth_delivers_everything_in_order(kind: Kind) {
    let s = setup(kind, false);
    // 64 bytes per 10 ms: about 6 KB/s, a message takes a few ticks.
    s.proxy.set_shape(Shape::Throttle(64));
    s.post(20, "throttled");
    s.assert_equals_server();
    s.assert_never_reconnected();
    s.assert_dead_connections_closed();
}

fn a_reset_in_the_middle_of_a_frame_reconnects_and_catches_up_on_the_cut_message(kind: Kind) {
    let s = setup(kind, false);
    let before = s.rec.stream_states().len();
    // The next read from the server is cut after 3 bytes (inside the frame or event), then the
    // connection is reset: the client never sees that message on this connection.
    s.proxy.cut_next_read_after(3);
    s.post(1, "cut");
    wait_until("the frame was cut", || s.proxy.cuts() == 1);
    let error = s.wait_reconnected_after(before);
    assert!(!error.is_empty(), "the reconnecting event says why");
    s.post(5, "after");
    s.assert_equals_server();
    assert!(s.proxy.accepted() >= 2, "a second connection was made");
    s.assert_caught_up_the_right_way();
    s.assert_dead_connections_closed();
}

fn a_half_open_connection_is_detected_by_the_heartbeat_and_replaced(kind: Kind) {
    let s = setup(kind, true);
    let before = s.rec.stream_states().len();
    s.proxy.silence_all();
    // Posted while the old connection forwards nothing: the resync or resume after the
    // reconnect brings them.
    s.post(5, "unheard");
    let error = s.wait_reconnected_after(before);
    assert!(error.contains("heartbeat"), "the reconnecting event says why: {error}");
    s.post(5, "heard");
    s.assert_equals_server();
    s.assert_caught_up_the_right_way();
    // The silenced connection stays open on the proxy until the client closes it.
    s.assert_dead_connections_closed();
}

fn a_storm_of_refused_connects_is_ridden_out_with_backoff(kind: Kind) {
    let s = setup(kind, false);
    let before = s.rec.stream_states().len();
    s.proxy.refuse_next(8);
    s.proxy.reset_all();
    s.post(3, "during");
    let error = s.wait_reconnected_after(before);
    assert!(!error.is_empty());
    assert_eq!(s.proxy.refused(), 8, "every refused connect was retried");
    s.post(3, "after");
    s.assert_equals_server();
    // The stream is open once more, and the counters saw the reconnect.
    assert_eq!(s.state().stream.state, StreamState::Open);
    assert!(s.client.stats().unwrap().reconnects >= 1);
    s.assert_caught_up_the_right_way();
    s.assert_dead_connections_closed();
}
