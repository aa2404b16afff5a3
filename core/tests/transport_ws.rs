//! The WebSocket stream driver against real servers on 127.0.0.1 (L7, L8, E3).

// Included by path so these tests do not depend on the other helpers of `support/`.

use std::sync::Arc;
use std::time::Duration;

use livecache_chat_server::ChatServer;
use futures_util::{SinkExt, StreamExt};
use livecache_core::config::{HeartbeatConfig, ReconnectConfig, StreamConfig};
use livecache_core::event::{ErrorReason, StreamState};
use livecache_core::transport::{RawMessage, StreamRequest, StreamSink, StreamSource};
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
    task: JoinHandle<()>,
}

impl Driver {
    fn start(url: String, config: StreamConfig) -> Driver {
        let (tx, events) = mpsc::unbounded_channel();
        let shutdown = CancellationToken::new();
        let request = StreamRequest {
            key: "getMessages(\"general\")".into(),
            url,
            config: Arc::new(config),
        };
        let task = tokio::spawn(WsStreamSource::new().run(
            request,
            Arc::new(RecordingSink(tx)),
            shutdown.clone(),
        ));
        Driver {
            events,
            history: Vec::new(),
            shutdown,
            task,
        }
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
        resync_on_reconnect: true,
        buffer_before_loaded: 10_000,
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
    let (tx, events) = mpsc::unbounded_channel();
    let shutdown = CancellationToken::new();
    let request = StreamRequest {
        key: "k".into(),
        url,
        config: Arc::new(default_config()),
    };
    let source = WsStreamSource::new().with_tls_config(Arc::new(tls));
    let task = tokio::spawn(source.run(request, Arc::new(RecordingSink(tx)), shutdown.clone()));
    let mut driver = Driver {
        events,
        history: Vec::new(),
        shutdown,
        task,
    };
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
