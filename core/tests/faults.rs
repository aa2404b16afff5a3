//! Network faults between a real `Client` and the chat server, injected by a TCP proxy on the
//! WebSocket path (support/fault_proxy.rs): added latency, 1-byte segments, throttled bandwidth,
//! a reset in the middle of a frame, a half-open connection that goes silent, a storm of refused
//! connects. After each fault the cache must equal the server's messages, each exactly once,
//! the subscriber's events must replay to it (E1), and the stream events must tell what
//! happened: no reconnect for a slow network, `reconnecting` with an error and then `open` for a
//! broken one (L8). Waits poll conditions; nothing is timed.

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

struct Setup {
    // Field order is drop order: the subscription goes before its client, the proxy before the
    // server.
    sub: Subscription,
    rec: Recorder,
    client: Client,
    proxy: FaultProxy,
    server: ChatServer,
    _runtime: tokio::runtime::Runtime,
}

/// The chat server, the proxy in front of its WebSocket, and one subscriber of `#redux` whose
/// stream goes through the proxy (the queries go straight to the server).
fn setup(stream: Value) -> Setup {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("server runtime");
    let server = runtime.block_on(ChatServer::start());
    server.post("redux", "alice", "before");
    let proxy = FaultProxy::start(server.addr());
    let mut s = json!({
        "url": proxy.url(&server.ws_url()),
        "filter": {"channel": "{arg}"},
        "apply": {"append": {"dedupeBy": "id"}},
        "reconnect": {"initialDelayMs": 10, "maxDelayMs": 100}
    });
    for (k, v) in stream.as_object().expect("an object") {
        s[k] = v.clone();
    }
    let config = json!({
        "baseUrl": server.http_url(),
        "endpoints": {"getMessages": {"query": "messages/{arg}", "stream": s}}
    });
    let client = util::client(config, Hooks::new());
    let rec = Recorder::default();
    let sub = client.subscribe("getMessages", Some(json!("redux")), rec.callback()).expect("subscribe");
    let setup = Setup { sub, rec, client, proxy, server, _runtime: runtime };
    setup.settle();
    setup
}

impl Setup {
    fn state(&self) -> livecache_core::EntryState {
        self.sub.snapshot().expect("the entry")
    }

    /// Loaded, the stream open and the server holding its socket.
    fn settle(&self) {
        wait_until("fulfilled with the stream open", || {
            let s = self.state();
            s.status == Status::Fulfilled && s.stream.state == StreamState::Open
        });
        wait_until("the server holds the socket", || self.server.open_sockets() == 1);
    }

    fn post(&self, n: usize, label: &str) {
        for i in 0..n {
            self.server.post("redux", "bob", &format!("{label} {i}"));
        }
    }

    /// The cache equals the server's messages, each once, and the events replay to it.
    fn assert_equals_server(&self) {
        let truth = Value::Array(self.server.messages("redux"));
        wait_until("the cache equals the server", || self.state().data == truth);
        let ids: Vec<u64> = truth.as_array().unwrap().iter().map(|m| m["id"].as_u64().unwrap()).collect();
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
}

#[test]
fn latency_delays_frames_and_loses_none() {
    let s = setup(json!({}));
    s.proxy.set_shape(Shape::Latency(Duration::from_millis(20)));
    s.post(30, "slow");
    s.assert_equals_server();
    s.assert_never_reconnected();
}

#[test]
fn one_byte_segments_reassemble_into_the_same_frames() {
    let s = setup(json!({}));
    s.proxy.set_shape(Shape::OneByte);
    s.post(30, "bytes");
    s.assert_equals_server();
    s.assert_never_reconnected();
}

#[test]
fn throttled_bandwidth_delivers_everything_in_order() {
    let s = setup(json!({}));
    // 64 bytes per 10 ms: about 6 KB/s, a message takes a few ticks.
    s.proxy.set_shape(Shape::Throttle(64));
    s.post(20, "throttled");
    s.assert_equals_server();
    s.assert_never_reconnected();
}

#[test]
fn a_reset_in_the_middle_of_a_frame_reconnects_and_resyncs_the_cut_message() {
    let s = setup(json!({}));
    let before = s.rec.stream_states().len();
    // The next frame the server sends is cut after 3 bytes (inside the frame header and
    // payload), then the connection is reset: the client never sees that message on the stream.
    s.proxy.cut_next_read_after(3);
    s.post(1, "cut");
    wait_until("the frame was cut", || s.proxy.cuts() == 1);
    let error = s.wait_reconnected_after(before);
    assert!(!error.is_empty(), "the reconnecting event says why");
    s.post(5, "after");
    s.assert_equals_server();
    assert!(s.proxy.accepted() >= 2, "a second connection was made");
}

#[test]
fn a_half_open_connection_is_detected_by_the_heartbeat_and_replaced() {
    let s = setup(json!({"heartbeat": {"intervalMs": 50, "timeoutMs": 150}}));
    let before = s.rec.stream_states().len();
    s.proxy.silence_all();
    // Posted while the old connection forwards nothing: the resync after the reconnect brings them.
    s.post(5, "unheard");
    let error = s.wait_reconnected_after(before);
    assert!(!error.is_empty(), "the reconnecting event says why");
    s.post(5, "heard");
    s.assert_equals_server();
}

#[test]
fn a_storm_of_refused_connects_is_ridden_out_with_backoff() {
    let s = setup(json!({}));
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
}
