//! The Server-Sent Events stream driver (T4) against scripted HTTP servers on 127.0.0.1: the
//! EventSource parsing rules, `Last-Event-ID`, `retry:`, named events, comment heartbeats, 204,
//! failed connects, oversized events, shutdown. (The Python and Node suites run it against
//! `aiohttp-sse` and `better-sse`.)

use std::sync::Arc;
use std::time::Duration;

use livecache_core::config::{HeartbeatConfig, ReconnectConfig, StreamConfig, Transport};
use livecache_core::event::{ErrorReason, StreamState};
use livecache_core::sse::SseStreamSource;
use livecache_core::transport::{
    RawMessage, StreamCommand, StreamControl, StreamRequest, StreamSink, StreamSource, StreamTarget,
};
use livecache_core::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, PartialEq)]
enum Seen {
    Text(String),
    Filtered,
    State(StreamState, Option<String>),
    Error(ErrorReason, String),
}

struct RecordingSink(mpsc::UnboundedSender<Seen>);

impl StreamSink for RecordingSink {
    fn message(&self, message: RawMessage) {
        match message {
            RawMessage::Text(text) => {
                let _ = self.0.send(Seen::Text(text));
            }
            other => panic!("an SSE driver hands over text only: {other:?}"),
        }
    }

    fn filtered(&self) {
        let _ = self.0.send(Seen::Filtered);
    }

    fn state(&self, state: StreamState, error: Option<String>) {
        let _ = self.0.send(Seen::State(state, error));
    }

    fn error(&self, reason: ErrorReason, message: String) {
        let _ = self.0.send(Seen::Error(reason, message));
    }
}

/// One request the server accepted: its head (lower-cased names) and the socket to answer on.
struct Conn {
    head: String,
    socket: TcpStream,
}

impl Conn {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }

    /// `200 text/event-stream`, no length: the body runs until the socket closes.
    async fn open(&mut self) {
        self.answer("200 OK", "text/event-stream").await;
    }

    async fn answer(&mut self, status: &str, content_type: &str) {
        let head = format!("HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n");
        self.socket.write_all(head.as_bytes()).await.unwrap();
    }

    async fn send(&mut self, bytes: &str) {
        self.socket.write_all(bytes.as_bytes()).await.unwrap();
        self.socket.flush().await.unwrap();
    }
}

/// Accepts connections and hands each, with its request head read, to the test.
async fn server() -> (String, mpsc::UnboundedReceiver<Conn>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/events", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let head = String::from_utf8_lossy(&head).into_owned();
            if tx.send(Conn { head, socket }).is_err() {
                return;
            }
        }
    });
    (url, rx)
}

async fn accept(rx: &mut mpsc::UnboundedReceiver<Conn>) -> Conn {
    tokio::time::timeout(WAIT, rx.recv()).await.expect("a connection within 5 s").expect("server runs")
}

fn config() -> StreamConfig {
    StreamConfig {
        transport: Transport::Sse,
        reconnect: ReconnectConfig { initial_delay_ms: 10, max_delay_ms: 50 },
        heartbeat: None,
        ..StreamConfig::default()
    }
}

struct Driver {
    events: mpsc::UnboundedReceiver<Seen>,
    history: Vec<String>,
    shutdown: CancellationToken,
    commands: livecache_core::transport::CommandSender,
    task: JoinHandle<()>,
}

impl Driver {
    fn start(url: String, config: StreamConfig) -> Driver {
        let mut target = StreamTarget { url, ..Default::default() };
        target.headers = livecache_core::transport::Headers::from_pairs(vec![("Authorization".into(), "Bearer sse-secret".into())]).unwrap();
        let (tx, events) = mpsc::unbounded_channel();
        let shutdown = CancellationToken::new();
        let (commands, rx) = livecache_core::transport::command_channel();
        let request = StreamRequest { key: "feed(\"a\")".into(), target, config: Arc::new(config) };
        let control = StreamControl { shutdown: shutdown.clone(), commands: rx };
        let task = tokio::spawn(SseStreamSource::new().run(request, Arc::new(RecordingSink(tx)), control));
        Driver { events, history: Vec::new(), shutdown, commands, task }
    }

    async fn next(&mut self) -> Seen {
        match tokio::time::timeout(WAIT, self.events.recv()).await {
            Ok(Some(seen)) => {
                self.history.push(format!("{seen:?}"));
                seen
            }
            Ok(None) => panic!("driver ended; saw {:#?}", self.history),
            Err(_) => panic!("no event within {WAIT:?}; saw {:#?}", self.history),
        }
    }

    async fn expect(&mut self, expected: Seen) {
        let seen = self.next().await;
        assert_eq!(seen, expected, "saw {:#?}", self.history);
    }

    async fn expect_state(&mut self, state: StreamState) -> Option<String> {
        match self.next().await {
            Seen::State(s, error) if s == state => error,
            other => panic!("expected {state:?}, got {other:?}; saw {:#?}", self.history),
        }
    }

    async fn send(&self, text: &str) -> livecache_core::Result<()> {
        let (done, rx) = tokio::sync::oneshot::channel();
        self.commands.send(StreamCommand::Send { text: text.to_owned(), done }).unwrap();
        rx.await.unwrap()
    }

    async fn shut_down(mut self) {
        self.shutdown.cancel();
        tokio::time::timeout(WAIT, &mut self.task).await.expect("driver returns promptly").expect("no panic");
        let mut last = None;
        while let Ok(seen) = self.events.try_recv() {
            last = Some(seen);
        }
        assert_eq!(last, Some(Seen::State(StreamState::Closed, None)));
    }
}

fn text(s: &str) -> Seen {
    Seen::Text(s.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t4_events_are_parsed_as_eventsource_parses_them() {
    let (url, mut conns) = server().await;
    let mut cfg = config();
    cfg.events = vec!["message".into(), "update".into()];
    let mut driver = Driver::start(url, cfg);
    driver.expect_state(StreamState::Connecting).await;
    let mut conn = accept(&mut conns).await;
    assert!(conn.head.starts_with("GET /events HTTP/1.1"), "{}", conn.head);
    assert_eq!(conn.header("accept").as_deref(), Some("text/event-stream"));
    assert_eq!(conn.header("authorization").as_deref(), Some("Bearer sse-secret"), "T1 headers on the request");
    assert_eq!(conn.header("last-event-id"), None, "no id before the first event");
    conn.open().await;
    driver.expect_state(StreamState::Open).await;

    conn.send("data: {\"n\":1}\n\n").await;
    driver.expect(text("{\"n\":1}")).await;
    // A line split across reads, and `data:` without the optional space.
    conn.send("da").await;
    conn.send("ta:{\"n\"").await;
    conn.send(":2}\n\n").await;
    driver.expect(text("{\"n\":2}")).await;
    // Several `data:` lines join with LF; CRLF and CR end lines too; a comment is ignored.
    conn.send(": a comment\r\ndata: [1,\r\ndata: 2]\r\rdata: 3\n\n").await;
    driver.expect(text("[1,\n2]")).await;
    driver.expect(text("3")).await;
    // Only the names in `stream.events` are messages; the rest count as filtered.
    conn.send("event: other\ndata: {\"n\":9}\n\nevent: update\ndata: {\"n\":4}\n\n").await;
    driver.expect(Seen::Filtered).await;
    driver.expect(text("{\"n\":4}")).await;
    // An event without data dispatches nothing; unknown fields are ignored.
    conn.send("event: update\n\nfoo: bar\ndata: 5\n\n").await;
    driver.expect(text("5")).await;
    driver.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t4_last_event_id_is_sent_after_a_drop_and_retry_sets_the_delay() {
    let (url, mut conns) = server().await;
    let mut cfg = config();
    // Without the server's `retry:` the reconnect would wait a minute.
    cfg.reconnect = ReconnectConfig { initial_delay_ms: 60_000, max_delay_ms: 60_000 };
    let mut driver = Driver::start(url, cfg);
    driver.expect_state(StreamState::Connecting).await;
    let mut conn = accept(&mut conns).await;
    conn.open().await;
    driver.expect_state(StreamState::Open).await;
    conn.send("retry: 20\nid: 7\ndata: a\n\nid: 8\ndata: b\n\n").await;
    driver.expect(text("a")).await;
    driver.expect(text("b")).await;
    // An id on an event never completed is not the last one.
    conn.send("id: 9\ndata: c\n").await;
    drop(conn);
    let error = driver.expect_state(StreamState::Reconnecting).await.unwrap();
    assert!(error.contains("ended"), "{error}");
    let mut conn = accept(&mut conns).await;
    assert_eq!(conn.header("last-event-id").as_deref(), Some("8"));
    conn.open().await;
    driver.expect_state(StreamState::Open).await;
    conn.send("data: d\n\n").await;
    driver.expect(text("d")).await;
    driver.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t4_a_204_closes_the_stream_without_reconnecting_until_asked() {
    let (url, mut conns) = server().await;
    let mut driver = Driver::start(url, config());
    driver.expect_state(StreamState::Connecting).await;
    let mut conn = accept(&mut conns).await;
    conn.answer("204 No Content", "text/plain").await;
    let error = driver.expect_state(StreamState::Closed).await.unwrap();
    assert!(error.contains("204"), "{error}");
    // A round trip through the driver; had it scheduled a reconnect (10 ms), it would be here.
    let sent = driver.send("{}").await;
    assert!(matches!(sent, Err(Error::InvalidArgument(_))), "{sent:?}");
    assert!(conns.try_recv().is_err(), "no reconnect after a 204");
    // The host's reconnect connects again.
    driver.commands.send(StreamCommand::Reconnect).unwrap();
    let mut conn = accept(&mut conns).await;
    conn.open().await;
    driver.expect_state(StreamState::Open).await;
    driver.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t4_a_non_200_or_non_event_stream_answer_is_a_failed_connect_and_retried() {
    let (url, mut conns) = server().await;
    let mut driver = Driver::start(url, config());
    driver.expect_state(StreamState::Connecting).await;
    let mut conn = accept(&mut conns).await;
    conn.answer("401 Unauthorized", "text/plain").await;
    drop(conn);
    let error = driver.expect_state(StreamState::Reconnecting).await.unwrap();
    assert!(error.contains("HTTP 401"), "{error}");
    assert!(!error.contains("sse-secret"), "no header value in an error: {error}");
    let mut conn = accept(&mut conns).await;
    conn.answer("200 OK", "text/html").await;
    drop(conn);
    let error = driver.expect_state(StreamState::Reconnecting).await.unwrap();
    assert!(error.contains("text/html"), "{error}");
    let mut conn = accept(&mut conns).await;
    conn.answer("302 Found\r\nLocation: http://127.0.0.1:1/elsewhere", "text/plain").await;
    drop(conn);
    let error = driver.expect_state(StreamState::Reconnecting).await.unwrap();
    assert!(error.contains("HTTP 302"), "a redirect is not followed: {error}");
    let mut conn = accept(&mut conns).await;
    conn.answer("200 OK", "text/event-stream; charset=utf-8").await;
    driver.expect_state(StreamState::Open).await;
    conn.send("data: ok\n\n").await;
    driver.expect(text("ok")).await;
    driver.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e3_an_event_over_max_message_bytes_is_an_error_and_the_stream_starts_over() {
    let (url, mut conns) = server().await;
    let mut cfg = config();
    cfg.max_message_bytes = 64;
    let mut driver = Driver::start(url, cfg);
    driver.expect_state(StreamState::Connecting).await;
    let mut conn = accept(&mut conns).await;
    conn.open().await;
    driver.expect_state(StreamState::Open).await;
    conn.send(&format!("id: 1\ndata: {}\n\n", "x".repeat(64))).await;
    driver.expect(text(&"x".repeat(64))).await;
    conn.send(&format!("id: 2\ndata: {}\n\n", "y".repeat(65))).await;
    match driver.next().await {
        Seen::Error(ErrorReason::TooLarge, message) => assert!(message.contains("maxMessageBytes"), "{message}"),
        other => panic!("expected a too_large error, got {other:?}"),
    }
    driver.expect_state(StreamState::Reconnecting).await;
    // A replay from id 1 would send the same event again: the stream starts over, and the
    // engine resyncs on the reopen (L8).
    let mut conn = accept(&mut conns).await;
    assert_eq!(conn.header("last-event-id"), None, "{}", conn.head);
    conn.open().await;
    driver.expect_state(StreamState::Open).await;
    driver.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l8_a_silent_event_stream_times_out_and_comments_keep_it_alive() {
    let (url, mut conns) = server().await;
    let mut cfg = config();
    cfg.heartbeat = Some(HeartbeatConfig { interval_ms: 500, timeout_ms: 500 });
    let mut driver = Driver::start(url, cfg);
    driver.expect_state(StreamState::Connecting).await;
    let mut conn = accept(&mut conns).await;
    conn.open().await;
    driver.expect_state(StreamState::Open).await;
    // The behaviour under test is traffic spread over time: the server paces comment lines 20 ms
    // apart for longer than the 1 s window (no assertion waits on this pacing; a gap would have
    // to exceed the whole window to fail it).
    for _ in 0..60 {
        conn.send(": keep-alive\n").await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    conn.send("data: alive\n\n").await;
    driver.expect(text("alive")).await;
    // Then silence, with the TCP connection still up.
    let error = driver.expect_state(StreamState::Reconnecting).await.unwrap();
    assert!(error.contains("heartbeat timeout"), "{error}");
    let mut second = accept(&mut conns).await;
    second.open().await;
    driver.expect_state(StreamState::Open).await;
    drop(conn);
    driver.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l7_shutdown_while_open_or_connecting_returns_promptly_and_send_is_refused() {
    let (url, mut conns) = server().await;
    let mut driver = Driver::start(url.clone(), config());
    driver.expect_state(StreamState::Connecting).await;
    let mut conn = accept(&mut conns).await;
    conn.open().await;
    driver.expect_state(StreamState::Open).await;
    let sent = driver.send("{\"a\":1}").await;
    match sent {
        Err(Error::InvalidArgument(message)) => assert!(message.contains("sse"), "{message}"),
        other => panic!("an SSE stream cannot send: {other:?}"),
    }
    driver.shut_down().await;
    // The server sees its connection end.
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(WAIT, conn.socket.read(&mut buf)).await.expect("the client hung up");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");

    // A server that accepts but never answers: shutdown still returns.
    let mut driver = Driver::start(url, config());
    driver.expect_state(StreamState::Connecting).await;
    let _held = accept(&mut conns).await;
    driver.shut_down().await;
}
