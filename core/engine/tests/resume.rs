//! T6 on the engine alone: reconnects that resume from a cursor instead of refetching, the
//! server's refusals (`mustRefetch`, 409/410), sequence gaps and duplicates.

mod support;

use livecache_engine::{Output, StreamState};
use serde_json::{json, Value};
use support::*;

fn config(stream: Value) -> Value {
    let mut s = json!({"url": "ws://127.0.0.1:1/feed", "apply": "append"});
    for (k, v) in stream.as_object().unwrap() {
        s[k] = v.clone();
    }
    json!({"endpoints": {"feed": {"stream": s}}})
}

struct Feed {
    h: Harness,
    key: std::sync::Arc<str>,
    entry: u64,
    /// The newest request started.
    request: Option<u64>,
}

impl Feed {
    /// Subscribed, loaded with `data`, stream open.
    fn start(stream: Value, data: Value) -> Feed {
        let mut h = Harness::new(config(stream), &[("feed", query_fn())]);
        let (key, entry) = h.subscribe("s", "feed", None);
        let mut f = Feed { h, key, entry, request: None };
        f.respond(data);
        f.open();
        f
    }

    fn respond(&mut self, data: Value) {
        self.fetches();
        let request = self.request.take().expect("a fetch to answer");
        self.h.respond(&self.key, self.entry, request, data);
    }

    /// The driver asks for its target, connects, and the connection opens.
    fn open(&mut self) -> Option<livecache_engine::StreamTarget> {
        let target = self.h.engine.stream_target(&self.key, self.entry);
        self.state(StreamState::Open);
        target
    }

    fn state(&mut self, state: StreamState) {
        self.h.engine.stream_state(&self.key, self.entry, state, None);
        self.h.drain();
    }

    fn push(&mut self, messages: Vec<Value>) {
        let (key, entry) = (self.key.clone(), self.entry);
        self.h.push(&key, entry, messages);
    }

    fn data(&self) -> Value {
        self.h.data(&self.key)
    }

    /// How many fetches started since the last look.
    fn fetches(&mut self) -> usize {
        let started = self.h.fetches();
        if let Some((_, _, request)) = started.last() {
            self.request = Some(*request);
        }
        started.len()
    }

    fn reconnects_asked(&mut self) -> usize {
        self.h.take().iter().filter(|a| matches!(a, Output::ReconnectStream { .. })).count()
    }
}

#[test]
fn t6_a_reconnect_sends_the_last_cursor_and_does_not_refetch() {
    let stream = json!({"resume": {"cursor": "/id", "param": "after", "initial": "/0/id"}});
    let mut f = Feed::start(stream, json!([{"id": 1}]));
    // The first open resumes from the response's cursor: nothing is refetched.
    assert_eq!(f.fetches(), 0);
    f.push(vec![json!({"id": 2}), json!({"id": 3})]);
    f.state(StreamState::Reconnecting);
    let target = f.open().expect("a resuming stream has a target per connect");
    assert_eq!(target.url, "ws://127.0.0.1:1/feed?after=3");
    assert_eq!(target.cursor.as_deref(), Some("3"));
    assert_eq!(f.fetches(), 0, "resumed, not refetched");
    let stats = f.h.engine.stats();
    assert_eq!((stats.reconnects, stats.resumes, stats.resyncs), (1, 1, 0));
    // The server replays what was missed.
    f.push(vec![json!({"id": 4})]);
    assert_eq!(f.data(), json!([{"id": 1}, {"id": 2}, {"id": 3}, {"id": 4}]));
}

#[test]
fn t6_without_a_cursor_a_reconnect_resyncs() {
    // No `initial`: until a message brings a cursor, nothing says where the data is.
    let mut f = Feed::start(json!({"resume": {"cursor": "/id", "param": "after"}}), json!([]));
    assert_eq!(f.fetches(), 1, "the first open resyncs, as without resume (L8)");
    f.respond(json!([]));
    f.state(StreamState::Reconnecting);
    let target = f.open().unwrap();
    assert_eq!((target.url.as_str(), target.cursor), ("ws://127.0.0.1:1/feed", None));
    assert_eq!(f.fetches(), 1);
    let stats = f.h.engine.stats();
    assert_eq!((stats.resumes, stats.resyncs), (0, 2));
}

#[test]
fn t6_cursor_in_the_subscribe_message() {
    let stream = json!({"resume": {"cursor": "/seq", "initial": "/seq"}, "apply": "replace",
                        "subscribeMessage": {"type": "subscribe", "from": "{cursor}"}});
    let mut h = Harness::new(config(stream), &[("feed", query_fn())]);
    let (key, entry) = h.subscribe("s", "feed", None);
    // Before the data: no cursor yet.
    let first = h.engine.stream_target(&key, entry).unwrap();
    assert_eq!(first.subscribe.as_deref(), Some(r#"{"type":"subscribe","from":null}"#));
    let (_, _, request) = h.fetches()[0];
    h.respond(&key, entry, request, json!({"seq": 41}));
    let next = h.engine.stream_target(&key, entry).unwrap();
    assert_eq!(next.subscribe.as_deref(), Some(r#"{"type":"subscribe","from":41}"#), "a number stays a number");
}

#[test]
fn t6_a_must_refetch_message_refetches_and_is_not_applied() {
    let stream = json!({"resume": {"cursor": "/id", "initial": "/0/id", "mustRefetch": {"type": "reset"}}});
    let mut f = Feed::start(stream, json!([{"id": 1}]));
    f.push(vec![json!({"id": 2}), json!({"type": "reset"}), json!({"id": 3})]);
    assert_eq!(f.fetches(), 1, "the server cannot resume: refetch (L5)");
    assert_eq!(f.h.engine.stats().resyncs, 1);
    assert_eq!(f.data(), json!([{"id": 1}, {"id": 2}, {"id": 3}]), "the reset message itself is not data");
    f.respond(json!([{"id": 1}, {"id": 2}, {"id": 3}, {"id": 5}]));
    // The response's cursor is where the stream goes on from.
    f.state(StreamState::Reconnecting);
    assert_eq!(f.open().unwrap().cursor.as_deref(), Some("1"), "`initial` points at the response's first item");
}

#[test]
fn t6_a_refused_resume_forgets_the_cursor_and_the_open_resyncs() {
    let mut f = Feed::start(json!({"resume": {"cursor": "/id", "param": "after", "initial": "/0/id"}}), json!([{"id": 1}]));
    f.state(StreamState::Reconnecting);
    let target = f.h.engine.stream_target(&f.key, f.entry).unwrap();
    assert_eq!(target.cursor.as_deref(), Some("1"));
    // The handshake was answered 409.
    f.h.engine.resume_refused(&f.key, f.entry);
    let target = f.open().unwrap();
    assert_eq!(target.cursor, None);
    assert_eq!(f.fetches(), 1, "resynced");
    let stats = f.h.engine.stats();
    assert_eq!((stats.resumes, stats.resyncs), (0, 1));
}

#[test]
fn t6_sequence_drops_duplicates_and_a_gap_resumes_from_the_last_good_cursor() {
    let stream = json!({"sequence": "/seq", "resume": {"cursor": "/seq", "param": "after", "initial": "/seq"}, "apply": "replace"});
    let mut f = Feed::start(stream, json!({"seq": 2}));
    f.push(vec![json!({"seq": 2}), json!({"seq": 3}), json!({"seq": 3})]);
    assert_eq!(f.h.engine.stats().messages_duplicate, 2, "at or below the last: dropped");
    // 4 never came: a gap. The stream reconnects once and resumes after 3.
    f.push(vec![json!({"seq": 5}), json!({"seq": 6})]);
    assert_eq!(f.reconnects_asked(), 1);
    assert_eq!(f.fetches(), 0);
    f.state(StreamState::Reconnecting);
    assert_eq!(f.open().unwrap().url, "ws://127.0.0.1:1/feed?after=3");
    f.push(vec![json!({"seq": 4}), json!({"seq": 5}), json!({"seq": 6})]);
    let stats = f.h.engine.stats();
    assert_eq!((stats.resumes, stats.resyncs, stats.messages_duplicate), (1, 0, 2));
}

#[test]
fn t6_a_gap_without_resume_resyncs_and_a_message_without_a_sequence_is_an_error() {
    let mut f = Feed::start(json!({"sequence": "/seq"}), json!([]));
    assert_eq!(f.fetches(), 1);
    f.respond(json!([]));
    f.push(vec![json!({"seq": 1}), json!({"seq": 2}), json!({"seq": 4})]);
    assert_eq!(f.fetches(), 1, "a gap refetches (L5)");
    assert_eq!(f.h.engine.stats().resyncs, 2);
    assert_eq!(f.data(), json!([{"seq": 1}, {"seq": 2}]), "the message after the gap is not applied");
    f.respond(json!([{"seq": 1}, {"seq": 2}, {"seq": 3}, {"seq": 4}]));
    // After the response the next message sets the baseline again.
    f.push(vec![json!({"seq": 5}), json!({"seq": "x"})]);
    assert_eq!(f.data(), json!([{"seq": 1}, {"seq": 2}, {"seq": 3}, {"seq": 4}, {"seq": 5}]));
    let errors: Vec<_> = f.h.events["s"].iter().filter(|e| e.type_name() == "error").collect();
    assert_eq!(errors.len(), 1);
    assert!(format!("{:?}", errors[0]).contains("/seq"));
    assert_eq!(f.h.engine.stats().messages_rejected["protocol"], 1);
}

#[test]
fn t6_buffered_messages_the_response_holds_are_dropped_by_sequence() {
    let stream = json!({"sequence": "/seq", "resume": {"cursor": "/seq", "initial": "/seq"}, "apply": "replace"});
    let mut h = Harness::new(config(stream), &[("feed", query_fn())]);
    let (key, entry) = h.subscribe("s", "feed", None);
    h.engine.stream_target(&key, entry);
    h.engine.stream_state(&key, entry, StreamState::Open, None);
    // Before the data: buffered (L4).
    h.push(&key, entry, vec![json!({"seq": 7}), json!({"seq": 8}), json!({"seq": 9})]);
    let (_, _, request) = h.fetches()[0];
    h.respond(&key, entry, request, json!({"seq": 8}));
    assert_eq!(h.engine.stats().messages_duplicate, 2, "7 and 8 are in the response already");
    assert_eq!(h.data(&key), json!({"seq": 9}));
}

#[test]
fn t6_initial_read_from_the_response_as_sent_wins_over_the_transformed_data() {
    // The driver read `/last` in the response before transformResponse dropped it.
    let mut h = Harness::new(config(json!({"resume": {"cursor": "/id", "param": "after", "initial": "/last"}})), &[("feed", query_fn())]);
    let (key, entry) = h.subscribe("s", "feed", None);
    let (_, _, request) = h.fetches().pop().unwrap();
    let fetched = livecache_engine::Fetched { initial: Some(json!(41)), ..livecache_engine::Fetched::new(json!([{"id": 40}]), Value::Null) };
    h.engine.fetch_done(&key, entry, request, Ok(fetched));
    h.drain();
    let target = h.engine.stream_target(&key, entry).unwrap();
    assert_eq!(target.url, "ws://127.0.0.1:1/feed?after=41");
}
