//! The WebSocket stream driver against real servers on 127.0.0.1 (L7, L8, E3).

// Included by path so these tests do not depend on the other helpers of `support/`.

use std::sync::Arc;
use std::time::Duration;

use livecache_chat_server::ChatServer;
use futures_util::{SinkExt, StreamExt};
use livecache_core::config::{HeartbeatConfig, ReconnectConfig, StreamConfig};
use livecache_core::event::{ErrorReason, StreamState};
use livecache_core::transport::{
    RawMessage, StreamCommand, StreamControl, StreamRequest, StreamSink, StreamSource, StreamTarget,
};
use livecache_core::Error;
use livecache_core::ws::WsStreamSource;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::{Bytes, Message};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(5);

#[derive(Debug)]
enum Seen {
    Text(String),
    Binary(Vec<u8>),
    State(StreamState, Option<String>),
    Error(ErrorReason, String),
}

struct RecordingSink(mpsc::UnboundedSender<Seen>);

impl StreamSink for RecordingSink {
    fn message(&self, message: RawMessage) {
        let seen = match message {
            RawMessage::Text(text) => Seen::Text(text),
            RawMessage::Binary(bytes) => Seen::Binary(bytes),
            RawMessage::Value(value) => panic!("a WebSocket driver never decodes: {value}"),
        };
        let _ = self.0.send(seen);
    }

    fn state(&self, state: StreamState, error: Option<String>) {
        let _ = self.0.send(Seen::State(state, error));
    }

    fn error(&self, reason: ErrorReason, message: String) {
        let _ = self.0.send(Seen::Error(reason, message));
    }
}

/// A running driver and what its sink saw.
struct Driver {
    events: mpsc::UnboundedReceiver<Seen>,
    history: Vec<String>,
    shutdown: CancellationToken,
    commands: livecache_core::transport::CommandSender,
    task: JoinHandle<()>,
}

fn target(url: String) -> StreamTarget {
    StreamTarget { url, ..Default::default() }
}

impl Driver {
    fn start(url: String, config: StreamConfig) -> Driver {
        Driver::start_at(target(url), config, &WsStreamSource::new())
    }

    fn start_at(target: StreamTarget, config: StreamConfig, source: &WsStreamSource) -> Driver {
        let (tx, events) = mpsc::unbounded_channel();
        let shutdown = CancellationToken::new();
        let (commands, rx) = livecache_core::transport::command_channel();
        let request = StreamRequest {
            key: "getMessages(\"general\")".into(),
            target,
            config: Arc::new(config),
        };
        let control = StreamControl { shutdown: shutdown.clone(), commands: rx };
        let task = tokio::spawn(source.run(request, Arc::new(RecordingSink(tx)), control));
        Driver {
            events,
            history: Vec::new(),
            shutdown,
            commands,
            task,
        }
    }

    /// T2 `send` through the driver's command channel.
    async fn send(&self, text: &str) -> livecache_core::Result<()> {
        let (done, rx) = tokio::sync::oneshot::channel();
        self.commands.send(StreamCommand::Send { text: text.to_owned(), done }).unwrap();
        rx.await.unwrap()
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

    async fn expect_state(&mut self, state: StreamState) -> Option<String> {
        match self.next().await {
            Seen::State(s, error) if s == state => error,
            other => panic!("expected {state:?}, got {other:?}; saw {:#?}", self.history),
        }
    }

    async fn expect_text(&mut self) -> String {
        match self.next().await {
            Seen::Text(text) => text,
            other => panic!(
                "expected a text message, got {other:?}; saw {:#?}",
                self.history
            ),
        }
    }

    /// Cancels and waits for the driver to return; its last event must be `Closed`.
    async fn shut_down(mut self) {
        self.shutdown.cancel();
        tokio::time::timeout(WAIT, &mut self.task)
            .await
            .expect("driver returns promptly after shutdown")
            .expect("driver task does not panic");
        let mut last = None;
        while let Ok(seen) = self.events.try_recv() {
            last = Some(seen);
        }
        assert!(
            matches!(last, Some(Seen::State(StreamState::Closed, None))),
            "last event {last:?}"
        );
    }
}

fn config(max_message_bytes: usize, heartbeat: Option<HeartbeatConfig>) -> StreamConfig {
    StreamConfig {
        url: None,
        filter: vec![],
        schema: None,
        apply: None,
        reconnect: ReconnectConfig {
            initial_delay_ms: 10,
            max_delay_ms: 50,
        },
        heartbeat,
        max_message_bytes,
        ..StreamConfig::default()
    }
}

fn default_config() -> StreamConfig {
    config(16 * 1024 * 1024, None)
}

/// A WebSocket server whose `n`-th accepted connection (0-based) runs `script(n, socket)`.
async fn scripted_server<F, Fut>(script: F) -> (String, JoinHandle<()>)
where
    F: Fn(usize, tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>) -> Fut
        + Send
        + Sync
        + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let script = Arc::new(script);
        for n in 0.. {
            let (stream, _) = listener.accept().await.unwrap();
            let script = script.clone();
            tokio::spawn(async move {
                if let Ok(socket) = tokio_tungstenite::accept_async(stream).await {
                    script(n, socket).await;
                }
            });
        }
    });
    (url, task)
}

/// Waits until the client ends the connection, so a script does not close it first.
async fn read_to_end(mut socket: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>) {
    while let Some(Ok(_)) = socket.next().await {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_text_and_binary_frames_arrive_in_order_and_pings_are_answered() {
    let (pong_tx, mut pong_rx) = mpsc::unbounded_channel::<Bytes>();
    let (url, _server) = scripted_server(move |_, mut socket| {
        let pong_tx = pong_tx.clone();
        async move {
            socket.send(Message::text("first")).await.unwrap();
            socket.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
            socket
                .send(Message::Ping(Bytes::from_static(b"are you there")))
                .await
                .unwrap();
            socket.send(Message::text("second")).await.unwrap();
            socket.send(Message::text("é ✓ 🦀")).await.unwrap();
            while let Some(Ok(frame)) = socket.next().await {
                if let Message::Pong(payload) = frame {
                    let _ = pong_tx.send(payload);
                }
            }
        }
    })
    .await;
    let mut driver = Driver::start(url, default_config());
    driver.expect_state(StreamState::Connecting).await;
    driver.expect_state(StreamState::Open).await;
    assert_eq!(driver.expect_text().await, "first");
    assert!(matches!(driver.next().await, Seen::Binary(b) if b == [1, 2, 3]));
    assert_eq!(driver.expect_text().await, "second");
    assert_eq!(driver.expect_text().await, "é ✓ 🦀");
    let pong = tokio::time::timeout(WAIT, pong_rx.recv())
        .await
        .expect("pong within 5 s")
        .unwrap();
    assert_eq!(&pong[..], b"are you there");
    driver.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_chat_broadcasts_arrive_in_order() {
    let server = ChatServer::start().await;
    let mut driver = Driver::start(server.ws_url(), default_config());
    driver.expect_state(StreamState::Connecting).await;
    driver.expect_state(StreamState::Open).await;
    server
        .wait_until("the socket is registered", |s| s.open_sockets() == 1)
        .await;
    for i in 0..200 {
        server.post("general", "alice", &format!("message {i}"));
    }
    for expected in server.messages("general") {
        let text = driver.expect_text().await;
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&text).unwrap(),
            expected
        );
    }
    driver.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l8_server_close_and_drop_reconnect_and_reopen() {
    let server = ChatServer::start().await;
    let mut driver = Driver::start(server.ws_url(), default_config());
    driver.expect_state(StreamState::Connecting).await;
    driver.expect_state(StreamState::Open).await;
    server
        .wait_until("first socket registered", |s| s.open_sockets() == 1)
        .await;

    // The server closes with a close handshake.
    server.close_all_sockets();
    let error = driver
        .expect_state(StreamState::Reconnecting)
        .await
        .expect("a reason");
    assert!(error.contains("closed by server"), "{error}");
    driver.expect_state(StreamState::Open).await;
    server
        .wait_until("second socket registered", |s| s.open_sockets() == 1)
        .await;
    assert_eq!(server.connections_accepted(), 2);

    // The TCP connection vanishes without a close frame.
    server.drop_all_sockets();
    assert!(driver
        .expect_state(StreamState::Reconnecting)
        .await
        .is_some());
    driver.expect_state(StreamState::Open).await;
    server
        .wait_until("third socket registered", |s| s.open_sockets() == 1)
        .await;
    assert_eq!(server.connections_accepted(), 3);

    server.post("general", "bob", "after reconnect");
    let text = driver.expect_text().await;
    assert!(text.contains("after reconnect"), "{text}");
    driver.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l8_refused_upgrades_are_retried_with_backoff() {
    let server = ChatServer::start().await;
    server.refuse_upgrades(3);
    let started = tokio::time::Instant::now();
    let mut driver = Driver::start(server.ws_url(), default_config());
    driver.expect_state(StreamState::Connecting).await;
    for _ in 0..3 {
        let error = driver
            .expect_state(StreamState::Reconnecting)
            .await
            .expect("a reason");
        assert!(error.contains("503"), "{error}");
    }
    driver.expect_state(StreamState::Open).await;
    // Three waits of at least half of 10, 20 and 40 ms (the jitter's floor).
    assert!(
        started.elapsed() >= Duration::from_millis(35),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.upgrades_refused(), 3);
    server
        .wait_until("one socket accepted", |s| s.connections_accepted() == 1)
        .await;
    driver.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l8_connection_refused_is_retried() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    drop(listener);
    let mut driver = Driver::start(url, default_config());
    driver.expect_state(StreamState::Connecting).await;
    for _ in 0..3 {
        let error = driver
            .expect_state(StreamState::Reconnecting)
            .await
            .expect("a reason");
        assert!(error.to_lowercase().contains("refused"), "{error}");
    }
    driver.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e3_frame_over_max_message_bytes_fails_the_connection_then_reconnects() {
    let (url, _server) = scripted_server(|n, mut socket| async move {
        if n == 0 {
            socket.send(Message::text("small before")).await.unwrap();
            socket.send(Message::text("x".repeat(2000))).await.unwrap();
            let _ = socket.send(Message::text("never delivered")).await;
        } else {
            socket
                .send(Message::text(format!("small after {n}")))
                .await
                .unwrap();
        }
        read_to_end(socket).await;
    })
    .await;
    let mut driver = Driver::start(url, config(1024, None));
    driver.expect_state(StreamState::Connecting).await;
    driver.expect_state(StreamState::Open).await;
    assert_eq!(driver.expect_text().await, "small before");
    match driver.next().await {
        Seen::Error(ErrorReason::TooLarge, message) => {
            assert!(message.contains("1024"), "{message}")
        }
        other => panic!("expected a too_large error, got {other:?}"),
    }
    assert!(driver
        .expect_state(StreamState::Reconnecting)
        .await
        .is_some());
    driver.expect_state(StreamState::Open).await;
    assert_eq!(driver.expect_text().await, "small after 1");
    driver.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e3_message_exactly_at_max_message_bytes_is_delivered() {
    let (url, _server) = scripted_server(|_, mut socket| async move {
        socket.send(Message::text("y".repeat(1024))).await.unwrap();
        read_to_end(socket).await;
    })
    .await;
    let mut driver = Driver::start(url, config(1024, None));
    driver.expect_state(StreamState::Connecting).await;
    driver.expect_state(StreamState::Open).await;
    assert_eq!(driver.expect_text().await.len(), 1024);
    driver.shut_down().await;
}

/// A message many times the socket's read buffer (16 KiB) arrives whole, and the frames after it
/// still arrive: the buffer grows to the frame and reads on from where the frame ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_larger_than_the_read_buffer_is_delivered_whole() {
    let big: String = (0..(1 << 20)).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    let sent = big.clone();
    let (url, _server) = scripted_server(move |_, mut socket| {
        let sent = sent.clone();
        async move {
            socket.send(Message::text("before")).await.unwrap();
            socket.send(Message::text(sent)).await.unwrap();
            socket.send(Message::text("after")).await.unwrap();
            read_to_end(socket).await;
        }
    })
    .await;
    let mut driver = Driver::start(url, config(2 << 20, None));
    driver.expect_state(StreamState::Connecting).await;
    driver.expect_state(StreamState::Open).await;
    assert_eq!(driver.expect_text().await, "before");
    assert!(driver.expect_text().await == big, "the 1 MiB message arrived changed");
    assert_eq!(driver.expect_text().await, "after");
    driver.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e3_invalid_utf8_text_frame_is_a_protocol_error_then_reconnects() {
    let (url, _server) = scripted_server(|n, mut socket| async move {
        if n == 0 {
            let bad = Frame::message(
                Bytes::from_static(b"ok \xff\xfe"),
                OpCode::Data(Data::Text),
                true,
            );
            socket.send(Message::Frame(bad)).await.unwrap();
        } else {
            socket.send(Message::text("valid again")).await.unwrap();
        }
        read_to_end(socket).await;
    })
    .await;
    let mut driver = Driver::start(url, default_config());
    driver.expect_state(StreamState::Connecting).await;
    driver.expect_state(StreamState::Open).await;
    assert!(
        matches!(driver.next().await, Seen::Error(ErrorReason::Protocol, _)),
        "{:#?}",
        driver.history
    );
    assert!(driver
        .expect_state(StreamState::Reconnecting)
        .await
        .is_some());
    driver.expect_state(StreamState::Open).await;
    assert_eq!(driver.expect_text().await, "valid again");
    driver.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l8_heartbeat_timeout_on_a_silent_server_reconnects() {
    // The server accepts, then never polls the socket again: no pong, no frame, TCP still up.
    let (parked_tx, mut parked_rx) = mpsc::unbounded_channel();
    let (url, _server) = scripted_server(move |_, socket| {
        let parked_tx = parked_tx.clone();
        async move {
            let _ = parked_tx.send(socket);
        }
    })
    .await;
    let heartbeat = HeartbeatConfig {
        interval_ms: 30,
        timeout_ms: 100,
    };
    let mut driver = Driver::start(url, config(1 << 20, Some(heartbeat)));
    driver.expect_state(StreamState::Connecting).await;
    driver.expect_state(StreamState::Open).await;
    let error = driver
        .expect_state(StreamState::Reconnecting)
        .await
        .expect("a reason");
    assert!(error.contains("heartbeat timeout"), "{error}");
    driver.expect_state(StreamState::Open).await;
    driver.shut_down().await;
    // Both connections reached the server and were parked there, unpolled.
    for _ in 0..2 {
        tokio::time::timeout(WAIT, parked_rx.recv())
            .await
            .expect("a parked socket")
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l8_heartbeat_keeps_a_live_connection_open() {
    let server = ChatServer::start().await;
    let heartbeat = HeartbeatConfig {
        interval_ms: 20,
        timeout_ms: 3000,
    };
    let mut driver = Driver::start(server.ws_url(), config(1 << 20, Some(heartbeat)));
    driver.expect_state(StreamState::Connecting).await;
    driver.expect_state(StreamState::Open).await;
    // Many ping/pong rounds; the stream must stay open and keep delivering.
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.post("general", "carol", "still here");
    let text = driver.expect_text().await;
    assert!(text.contains("still here"), "{text}");
    assert_eq!(server.connections_accepted(), 1);
    driver.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l7_shutdown_while_open_sends_a_close_frame() {
    let server = ChatServer::start().await;
    let mut driver = Driver::start(server.ws_url(), default_config());
    driver.expect_state(StreamState::Connecting).await;
    driver.expect_state(StreamState::Open).await;
    server
        .wait_until("the socket is registered", |s| s.open_sockets() == 1)
        .await;
    driver.shut_down().await;
    server
        .wait_until("a close frame arrived", |s| s.close_frames_received() == 1)
        .await;
    server
        .wait_until("the socket is gone", |s| s.open_sockets() == 0)
        .await;
    assert_eq!(server.connections_accepted(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l7_shutdown_during_backoff_returns_promptly() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    drop(listener);
    let mut config = default_config();
    // A first wait of 30 s or more: only shutdown can end it within the test's 5 s.
    config.reconnect = ReconnectConfig {
        initial_delay_ms: 60_000,
        max_delay_ms: 60_000,
    };
    let mut driver = Driver::start(url, config);
    driver.expect_state(StreamState::Connecting).await;
    driver.expect_state(StreamState::Reconnecting).await;
    driver.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l7_shutdown_while_connecting_returns_promptly() {
    // Accepts TCP but never answers the upgrade request.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let _server = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let mut driver = Driver::start(url, default_config());
    driver.expect_state(StreamState::Connecting).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    driver.shut_down().await;
}

/// A `wss://` server on 127.0.0.1 with a fresh self-signed certificate; returns its URL and
/// the certificate, for a client that trusts it.
async fn tls_server(text: &'static str) -> (String, rustls::pki_types::CertificateDer<'static>) {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let cert = certified.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.key_pair.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("wss://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let Ok(mut socket) = tokio_tungstenite::accept_async(tls).await else {
                    return;
                };
                let _ = socket.send(Message::text(text)).await;
                while let Some(Ok(_)) = socket.next().await {}
            });
        }
    });
    (url, cert)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_connects_through_rustls_with_a_trusted_root() {
    let (url, cert) = tls_server("over tls").await;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let source = WsStreamSource::new().with_tls_config(Arc::new(tls));
    let mut driver = Driver::start_at(target(url), default_config(), &source);
    driver.expect_state(StreamState::Connecting).await;
    driver.expect_state(StreamState::Open).await;
    assert_eq!(driver.expect_text().await, "over tls");
    driver.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_with_an_untrusted_certificate_is_an_error_and_retried() {
    // The default source trusts only the webpki roots, not a self-signed certificate.
    let (url, _cert) = tls_server("never").await;
    let mut driver = Driver::start(url, default_config());
    driver.expect_state(StreamState::Connecting).await;
    for _ in 0..2 {
        let error = driver
            .expect_state(StreamState::Reconnecting)
            .await
            .expect("a reason");
        assert!(error.to_lowercase().contains("certificate"), "{error}");
    }
    driver.shut_down().await;
}

/// What a handshake-recording server saw on one connection.
#[derive(Debug)]
enum Heard {
    Handshake(Vec<(String, String)>),
    Text(String),
    Close,
}

/// A WebSocket server that reports each handshake's headers and every frame it receives, and
/// agrees to the first subprotocol offered.
async fn listening_server() -> (String, mpsc::UnboundedReceiver<(usize, Heard)>) {
    use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        for n in 0.. {
            let (stream, _) = listener.accept().await.unwrap();
            let tx = tx.clone();
            tokio::spawn(async move {
                let seen = tx.clone();
                let callback = move |request: &Request, mut response: Response| {
                    let headers = request
                        .headers()
                        .iter()
                        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                        .collect();
                    let _ = seen.send((n, Heard::Handshake(headers)));
                    if let Some(offered) = request.headers().get("sec-websocket-protocol") {
                        let first = offered.to_str().unwrap().split(',').next().unwrap().trim().to_owned();
                        response.headers_mut().insert("sec-websocket-protocol", first.parse().unwrap());
                    }
                    Ok(response)
                };
                let Ok(mut socket) = tokio_tungstenite::accept_hdr_async(stream, callback).await else { return };
                while let Some(Ok(frame)) = socket.next().await {
                    match frame {
                        Message::Text(t) => {
                            let _ = tx.send((n, Heard::Text(t.as_str().to_owned())));
                        }
                        Message::Close(_) => {
                            let _ = tx.send((n, Heard::Close));
                        }
                        _ => {}
                    }
                }
            });
        }
    });
    (url, rx)
}

async fn heard(rx: &mut mpsc::UnboundedReceiver<(usize, Heard)>) -> (usize, Heard) {
    tokio::time::timeout(WAIT, rx.recv()).await.expect("the server heard something within 5 s").unwrap()
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// T1, T2: the handshake carries the headers and offers the subprotocols; the subscribe frame
/// is the first frame of every connection (a reconnect too), `send` writes after it, and the
/// unsubscribe frame comes before the close frame.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t1_t2_headers_protocols_subscribe_send_reconnect_unsubscribe() {
    let (url, mut rx) = listening_server().await;
    let config = StreamConfig { protocols: vec!["chat.v2".into(), "chat.v1".into()], ..default_config() };
    let stream_config = livecache_core::Config::from_value(&serde_json::json!({"endpoints": {"e": {"stream": {
        "url": url,
        "headers": {"Authorization": "Bearer {arg.token}", "X-Client": "livecache"},
        "subscribeMessage": {"type": "subscribe", "channel": "{arg.channel}"},
        "unsubscribeMessage": {"type": "unsubscribe", "channel": "{arg.channel}"}
    }}}}))
    .unwrap();
    let rendered = StreamTarget::render(
        stream_config.endpoints["e"].stream.as_ref().unwrap(),
        Some(&serde_json::json!({"token": "s3cret", "channel": 7})),
    )
    .unwrap();
    let mut driver = Driver::start_at(rendered, config, &WsStreamSource::new());
    driver.expect_state(StreamState::Connecting).await;
    let (n, Heard::Handshake(headers)) = heard(&mut rx).await else { panic!("a handshake first") };
    assert_eq!(n, 0);
    assert_eq!(header(&headers, "authorization"), Some("Bearer s3cret"));
    assert_eq!(header(&headers, "x-client"), Some("livecache"));
    assert_eq!(header(&headers, "sec-websocket-protocol"), Some("chat.v2, chat.v1"));
    driver.expect_state(StreamState::Open).await;
    let (_, Heard::Text(first)) = heard(&mut rx).await else { panic!("the subscribe frame") };
    assert_eq!(serde_json::from_str::<serde_json::Value>(&first).unwrap(), serde_json::json!({"type": "subscribe", "channel": 7}));

    driver.send(r#"{"type":"typing"}"#).await.unwrap();
    assert!(matches!(heard(&mut rx).await, (0, Heard::Text(t)) if t == r#"{"type":"typing"}"#));

    driver.commands.send(StreamCommand::Reconnect).unwrap();
    assert!(matches!(heard(&mut rx).await, (0, Heard::Close)), "the old connection ends with a close frame");
    assert_eq!(driver.expect_state(StreamState::Reconnecting).await.as_deref(), Some("reconnect requested"));
    assert!(matches!(heard(&mut rx).await, (1, Heard::Handshake(h)) if header(&h, "authorization") == Some("Bearer s3cret")));
    driver.expect_state(StreamState::Open).await;
    assert!(matches!(heard(&mut rx).await, (1, Heard::Text(t)) if t.contains("subscribe")), "subscribed again");

    driver.shutdown.cancel();
    let (1, Heard::Text(last)) = heard(&mut rx).await else { panic!("the unsubscribe frame before the close") };
    assert_eq!(serde_json::from_str::<serde_json::Value>(&last).unwrap(), serde_json::json!({"type": "unsubscribe", "channel": 7}));
    assert!(matches!(heard(&mut rx).await, (1, Heard::Close)));
    driver.expect_state(StreamState::Closed).await;
}

/// T2: with no connection open, `send` fails at once with `NotConnected` and nothing is sent
/// later; `reconnect` during the backoff connects at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t2_send_without_a_connection_is_not_connected_and_nothing_is_queued() {
    // A port nobody listens on: every connect is refused.
    let port = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
    let config = StreamConfig { reconnect: ReconnectConfig { initial_delay_ms: 60_000, max_delay_ms: 60_000 }, ..default_config() };
    let mut driver = Driver::start(format!("ws://127.0.0.1:{port}/"), config);
    driver.expect_state(StreamState::Connecting).await;
    driver.expect_state(StreamState::Reconnecting).await;
    match driver.send("{}").await {
        Err(Error::NotConnected(key)) => assert_eq!(key, "getMessages(\"general\")"),
        other => panic!("expected NotConnected, got {other:?}"),
    }
    // Without the reconnect this would wait a minute for the next attempt.
    driver.commands.send(StreamCommand::Reconnect).unwrap();
    driver.expect_state(StreamState::Reconnecting).await;
    driver.shut_down().await;
}

/// T2: a subscribe frame that cannot be written (the server hangs up at once) is a dropped
/// connection, retried; the state never says `open`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t2_a_connection_that_cannot_take_the_subscribe_frame_is_retried() {
    let (url, _server) = scripted_server(|n, socket| async move {
        if n == 0 {
            drop(socket);
        } else {
            read_to_end(socket).await;
        }
    })
    .await;
    let target = StreamTarget { subscribe: Some("{}".into()), ..target(url) };
    let config = StreamConfig { reconnect: ReconnectConfig { initial_delay_ms: 10, max_delay_ms: 10 }, ..default_config() };
    let mut driver = Driver::start_at(target, config, &WsStreamSource::new());
    driver.expect_state(StreamState::Connecting).await;
    loop {
        match driver.next().await {
            Seen::State(StreamState::Open, _) => break,
            Seen::State(StreamState::Reconnecting, _) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    driver.shut_down().await;
}

/// T3 through `StreamSource::run`: a host that runs shared streams as tasks of their own (the
/// client's driver joins them instead) gets one connection for two entries, each one's
/// subscribe frame, `send` on it, and each one's unsubscribe frame as it goes; the last one
/// closes the connection with a close frame.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t3_shared_streams_run_as_tasks_share_one_connection_and_leave_it_in_turn() {
    let (url, mut rx) = listening_server().await;
    let config = StreamConfig { share: true, ..default_config() };
    let target = |channel: &str| StreamTarget {
        subscribe: Some(format!(r#"{{"sub":"{channel}"}}"#)),
        unsubscribe: Some(format!(r#"{{"unsub":"{channel}"}}"#)),
        ..target(url.clone())
    };
    let source = WsStreamSource::new();
    let mut a = Driver::start_at(target("a"), config.clone(), &source);
    a.expect_state(StreamState::Connecting).await;
    assert!(matches!(heard(&mut rx).await, (0, Heard::Handshake(_))));
    a.expect_state(StreamState::Open).await;
    assert!(matches!(heard(&mut rx).await, (0, Heard::Text(t)) if t == r#"{"sub":"a"}"#));
    let mut b = Driver::start_at(target("b"), config, &source);
    b.expect_state(StreamState::Connecting).await;
    b.expect_state(StreamState::Open).await;
    assert!(matches!(heard(&mut rx).await, (0, Heard::Text(t)) if t == r#"{"sub":"b"}"#), "the same connection");

    b.send(r#"{"type":"typing"}"#).await.unwrap();
    assert!(matches!(heard(&mut rx).await, (0, Heard::Text(t)) if t == r#"{"type":"typing"}"#));
    a.shut_down().await;
    assert!(matches!(heard(&mut rx).await, (0, Heard::Text(t)) if t == r#"{"unsub":"a"}"#));
    b.shut_down().await;
    assert!(matches!(heard(&mut rx).await, (0, Heard::Text(t)) if t == r#"{"unsub":"b"}"#));
    assert!(matches!(heard(&mut rx).await, (0, Heard::Close)), "the last member closes the connection");
}
