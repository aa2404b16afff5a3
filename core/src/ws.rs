//! The built-in WebSocket stream driver (L7, L8, E3): one connection per entry, reconnected with
//! backoff while the entry lives, closed with a close handshake when it goes.
//!
//! The driver only moves frames. It reports every text frame as it arrived; parsing, schema,
//! filter and apply are the engine's pipeline (SPEC §2).

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::{BoxFuture, FutureExt};
use futures_util::{SinkExt, StreamExt};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Bytes, Message};
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::config::{HeartbeatConfig, ReconnectConfig};
use crate::control::{Commands, Stop};
use crate::event::{ErrorReason, StreamState};
use crate::http::error_text;
use crate::error::Error;
use crate::transport::{OpenConnection, RawMessage, StreamCommand, StreamControl, StreamMember, StreamRequest, StreamSink, StreamSource, StreamTarget};

use crate::socket::{close_socket, open_socket, Beat, Heartbeat, Socket, Tls, READ_BATCH};

/// How long a connect (TCP, TLS and upgrade together) may take before it counts as failed.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a close handshake may take: our Close frame out, the peer's reply in (L7).
pub const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// `ws://` and `wss://` (rustls, webpki roots) stream driver. Cheap to share: one instance can
/// run the streams of every entry of a client.
pub struct WsStreamSource {
    connect_timeout: Duration,
    close_timeout: Duration,
    /// Built once; an error (a crypto provider without TLS 1.2/1.3) fails only `wss://` connects.
    tls: Tls,
    /// T3, T5: the connections entries share.
    hub: Arc<crate::shared::Hub>,
}

impl Default for WsStreamSource {
    fn default() -> Self {
        Self::new()
    }
}

impl WsStreamSource {
    pub fn new() -> Self {
        WsStreamSource {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            close_timeout: DEFAULT_CLOSE_TIMEOUT,
            tls: tls_config(),
            hub: Arc::default(),
        }
    }

    /// A custom TLS configuration for `wss://` (private roots, client certificates).
    pub fn with_tls_config(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Ok(config);
        self
    }

    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    pub fn with_close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }
}

/// An explicit provider, so the driver never depends on which rustls crypto features other
/// crates of the build happen to enable (two enabled providers make `ClientConfig::builder()` panic).
fn tls_config() -> Tls {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS configuration: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Bytes a socket reads from the network at a time. tungstenite's default (128 KiB) is zero-filled
/// on the first read, so each socket kept 128 KiB resident, and every reconnect allocated it
/// again: a client with a socket per entry held 128 MiB for 1,000 entries. A frame larger than
/// this still arrives whole: the buffer grows to the frame's length (up to `maxMessageBytes`).
const READ_BUFFER_BYTES: usize = 16 * 1024;

impl WsStreamSource {
    fn ws_config(request: &StreamRequest) -> WebSocketConfig {
        WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER_BYTES)
            .max_message_size(Some(request.config.max_message_bytes))
            .max_frame_size(Some(request.config.max_message_bytes))
    }
}

impl StreamSource for WsStreamSource {
    fn run(
        &self,
        request: StreamRequest,
        sink: Arc<dyn StreamSink>,
        control: StreamControl,
    ) -> BoxFuture<'static, ()> {
        if let Some(member) = self.join(&request, &sink) {
            return crate::shared::run_member(member, request.key, control);
        }
        let driver = Driver {
            ws_config: Self::ws_config(&request),
            key: request.key,
            target: request.target,
            protocols: request.config.protocols.join(", "),
            reconnect: request.config.reconnect.clone(),
            heartbeat: request.config.heartbeat.clone(),
            connect_timeout: self.connect_timeout,
            close_timeout: self.close_timeout,
            tls: self.tls.clone(),
            sink,
        };
        Box::pin(driver.run(control.shutdown, Commands::new(control.commands)))
    }

    /// T3, T5: `share: true` and GraphQL streams are members of one connection per share key.
    fn join(&self, request: &StreamRequest, sink: &Arc<dyn StreamSink>) -> Option<Box<dyn StreamMember>> {
        if !(request.config.share || request.config.graphql.is_some()) {
            return None;
        }
        let settings = crate::shared::SettingsFor {
            ws_config: Self::ws_config(request),
            tls: self.tls.clone(),
            connect_timeout: self.connect_timeout,
            close_timeout: self.close_timeout,
        };
        Some(self.hub.join(request, sink, settings))
    }
}

struct Driver {
    key: String,
    target: StreamTarget,
    /// `stream.protocols` as the `Sec-WebSocket-Protocol` value; empty offers none.
    protocols: String,
    ws_config: WebSocketConfig,
    reconnect: ReconnectConfig,
    heartbeat: Option<HeartbeatConfig>,
    connect_timeout: Duration,
    close_timeout: Duration,
    tls: Tls,
    sink: Arc<dyn StreamSink>,
}

/// Why a read loop ended.
enum Ended {
    /// `shutdown` was cancelled while the socket was open.
    Shutdown,
    /// T1 `reconnect`: close this connection and open another at once.
    Reconnect,
    /// The connection is gone (close frame, reset, error, heartbeat timeout); the text is the
    /// stream's last error (L8).
    Dropped(String),
    /// The peer broke the protocol in a way the engine reports as an `error` event (E3): the
    /// connection must be failed with `code`.
    Failed {
        reason: ErrorReason,
        code: CloseCode,
        message: String,
    },
}

impl Driver {
    async fn run(self, shutdown: CancellationToken, mut commands: Commands) {
        let mut stop = Stop::new(shutdown);
        let mut backoff = Backoff::new(&self.reconnect);
        self.sink.state(StreamState::Connecting, None);
        loop {
            // T6: a resuming stream's target carries its cursor, fresh for every connect.
            let target = match self.sink.target().await {
                Ok(target) => target,
                Err(error) => {
                    // T1: the host's prepareHeaders failed: this attempt fails, with backoff (L8).
                    self.sink.state(StreamState::Reconnecting, Some(error));
                    if !self.backoff_wait(&mut backoff, &mut stop, &mut commands).await {
                        self.sink.state(StreamState::Closed, None);
                        return;
                    }
                    continue;
                }
            };
            let target = target.as_ref().unwrap_or(&self.target);
            let connect = self.connect(target);
            tokio::pin!(connect);
            let connected = loop {
                tokio::select! {
                    biased;
                    _ = stop.wait() => {
                        // L7: a stop while the upgrade is in flight still ends with a close frame,
                        // not a dropped TCP connection: finish the upgrade (bounded) and close it.
                        if let Ok(Ok(mut socket)) = tokio::time::timeout(self.close_timeout, &mut connect).await {
                            self.close_handshake(&mut socket).await;
                        }
                        self.sink.state(StreamState::Closed, None);
                        return;
                    }
                    connected = &mut connect => break connected,
                    // Already connecting: a reconnect asks for nothing more; a send is refused.
                    command = commands.next() => self.not_connected(command),
                }
            };
            let mut now_again = false;
            match connected {
                Ok(mut socket) => {
                    let _open = OpenConnection::new(self.sink.clone());
                    // T2: the subscribe frame goes out before any frame of this connection is read.
                    let subscribed = match &target.subscribe {
                        Some(text) => self.write(&mut socket, text).await,
                        None => Ok(()),
                    };
                    let opened = Instant::now();
                    let ended = match subscribed {
                        Ok(()) => {
                            self.sink.state(StreamState::Open, None);
                            self.read_loop(&mut socket, &mut stop, &mut commands).await
                        }
                        Err(error) => Ended::Dropped(format!("subscribeMessage not sent: {error}")),
                    };
                    if opened.elapsed() >= backoff.stable_after() {
                        backoff.reset();
                    }
                    match ended {
                        Ended::Shutdown => {
                            if let Some(text) = &self.target.unsubscribe {
                                let _ = tokio::time::timeout(self.close_timeout, self.write(&mut socket, text)).await;
                            }
                            self.close_handshake(&mut socket).await;
                            break;
                        }
                        Ended::Reconnect => {
                            self.close_handshake(&mut socket).await;
                            self.sink.state(StreamState::Reconnecting, Some("reconnect requested".to_owned()));
                            now_again = true;
                        }
                        Ended::Dropped(error) => {
                            self.sink.state(StreamState::Reconnecting, Some(error))
                        }
                        Ended::Failed {
                            reason,
                            code,
                            message,
                        } => {
                            self.sink.error(reason, message.clone());
                            self.fail_connection(&mut socket, code, &message).await;
                            self.sink.state(StreamState::Reconnecting, Some(message));
                        }
                    }
                }
                // T6: the server cannot resume from the cursor sent; the next attempt, at once,
                // sends none and the engine resyncs when it opens.
                Err(Refused { status: Some(409 | 410), error }) if target.cursor.is_some() => {
                    self.sink.resume_refused();
                    self.sink.state(StreamState::Reconnecting, Some(error));
                    now_again = true;
                }
                // L8: every failed attempt reports its error; the state stays `reconnecting`
                // until the next `open`.
                Err(Refused { error, .. }) => self.sink.state(StreamState::Reconnecting, Some(error)),
            }
            if now_again {
                continue;
            }
            if !self.backoff_wait(&mut backoff, &mut stop, &mut commands).await {
                self.sink.state(StreamState::Closed, None);
                return;
            }
        }
        self.sink.state(StreamState::Closed, None);
    }

    /// L8: the wait before the next attempt; `false` when the stream was stopped meanwhile.
    async fn backoff_wait(&self, backoff: &mut Backoff, stop: &mut Stop, commands: &mut Commands) -> bool {
        let delay = tokio::time::sleep(backoff.next_delay());
        tokio::pin!(delay);
        loop {
            tokio::select! {
                biased;
                _ = stop.wait() => return false,
                _ = &mut delay => return true,
                command = commands.next() => match command {
                    // T1: a reconnect skips the backoff.
                    StreamCommand::Reconnect => return true,
                    other => self.not_connected(other),
                },
            }
        }
    }

    /// A command while no connection is open: a send fails at once (T2), nothing is queued.
    fn not_connected(&self, command: StreamCommand) {
        crate::control::refuse_send(&self.key, command);
    }

    /// One text frame, written and flushed.
    async fn write(&self, socket: &mut Socket, text: &str) -> Result<(), String> {
        socket.send(Message::text(text)).await.map_err(|e| error_text(&e))
    }

    async fn connect(&self, target: &StreamTarget) -> Result<Socket, Refused> {
        self.try_connect(target).await.map_err(|(status, error)| Refused { status, error })
    }

    async fn try_connect(&self, target: &StreamTarget) -> Result<Socket, (Option<u16>, String)> {
        open_socket(target, &self.protocols, self.ws_config, &self.tls, self.connect_timeout).await
    }

    /// The hot path: the frame's text is handed over borrowed, and nothing else per message — no lock, no
    /// timer update (the heartbeat only flips a flag), no shutdown poll while frames are ready.
    async fn read_loop(&self, socket: &mut Socket, stop: &mut Stop, commands: &mut Commands) -> Ended {
        let mut heartbeat = self.heartbeat.as_ref().map(Heartbeat::new);
        let far = Instant::now() + Duration::from_secs(86_400 * 365);
        let timer = tokio::time::sleep_until(heartbeat.as_ref().map_or(far, |h| h.next_wake()));
        tokio::pin!(timer);
        // Any frame since the last ping proves the peer alive (L8 heartbeat).
        let mut seen = false;
        loop {
            tokio::select! {
                biased;
                frame = socket.next() => {
                    seen = true;
                    // Every frame that is ready without waiting is handed over before the sink
                    // is flushed, so a flood reaches the engine in batches (one wake-up each).
                    let mut frame = frame;
                    let mut count = 0;
                    let ended = loop {
                        match frame {
                            Some(Ok(Message::Text(text))) => self.sink.text(text.as_str()),
                            Some(Ok(Message::Binary(bytes))) => self.sink.message(RawMessage::Binary(Vec::from(bytes))),
                            // tungstenite queues the pong and flushes it on the next read.
                            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                            Some(Ok(Message::Close(frame))) => break Some(Ok(frame)),
                            Some(Err(error)) => break Some(Err(ended_by(error))),
                            None => break Some(Err(Ended::Dropped("connection closed".to_owned()))),
                        }
                        count += 1;
                        if count == READ_BATCH {
                            break None;
                        }
                        match socket.next().now_or_never() {
                            Some(next) => frame = next,
                            None => break None,
                        }
                    };
                    self.sink.flush();
                    match ended {
                        None => {}
                        Some(Ok(frame)) => return self.closed_by_server(socket, stop, frame).await,
                        Some(Err(ended)) => return ended,
                    }
                }
                _ = &mut timer, if heartbeat.is_some() => {
                    let Some(hb) = heartbeat.as_mut() else { unreachable!() };
                    if let Some(ended) = self.beat(socket, hb, &mut seen).await {
                        return ended;
                    }
                    timer.as_mut().reset(hb.next_wake());
                }
                _ = stop.wait() => return Ended::Shutdown,
                command = commands.next() => match command {
                    StreamCommand::Reconnect => return Ended::Reconnect,
                    // T2: answered once the frame is written; a failed write ends the connection.
                    StreamCommand::Send { text, done } => match self.write(socket, &text).await {
                        Ok(()) => { let _ = done.send(Ok(())); }
                        Err(error) => {
                            let _ = done.send(Err(Error::NotConnected(self.key.clone())));
                            return Ended::Dropped(error);
                        }
                    },
                },
            }
        }
    }

    /// The server started the close handshake: drive our reply out and give it a bounded
    /// time to end the TCP connection.
    async fn closed_by_server(
        &self,
        socket: &mut Socket,
        stop: &mut Stop,
        frame: Option<CloseFrame>,
    ) -> Ended {
        let error = match frame {
            Some(f) if f.reason.is_empty() => {
                format!("closed by server (code {})", u16::from(f.code))
            }
            Some(f) => format!(
                "closed by server (code {}: {})",
                u16::from(f.code),
                f.reason
            ),
            None => "closed by server".to_owned(),
        };
        let drain = async { while let Some(Ok(_)) = socket.next().await {} };
        tokio::select! {
            biased;
            _ = stop.wait() => Ended::Shutdown,
            _ = tokio::time::timeout(self.close_timeout, drain) => Ended::Dropped(error),
        }
    }

    /// One heartbeat timer expiry: a verdict on the last ping, and maybe a new ping.
    async fn beat(
        &self,
        socket: &mut Socket,
        hb: &mut Heartbeat,
        seen: &mut bool,
    ) -> Option<Ended> {
        let timeout_ms = hb.timeout().as_millis();
        match hb.on_timer(Instant::now(), seen) {
            Beat::Wait => None,
            Beat::TimedOut => Some(Ended::Dropped(format!(
                "heartbeat timeout: nothing received within {timeout_ms} ms of a ping"
            ))),
            // A peer that stopped reading can fill the socket buffer; a ping that cannot be
            // written in time is a dead peer too.
            Beat::SendPing => {
                match tokio::time::timeout(hb.timeout(), socket.send(Message::Ping(Bytes::new())))
                    .await
                {
                    Ok(Ok(())) => None,
                    Ok(Err(error)) => Some(Ended::Dropped(error_text(&error))),
                    Err(_) => Some(Ended::Dropped(format!(
                        "heartbeat timeout: ping not sent within {timeout_ms} ms"
                    ))),
                }
            }
        }
    }

    /// L7: the server must see a Close frame; its reply ends the handshake (bounded).
    async fn close_handshake(&self, socket: &mut Socket) {
        close_socket(socket, self.close_timeout).await;
    }

    /// E3: the protocol requires failing the connection. The stream cannot be read any further,
    /// so the Close frame goes out best-effort and the TCP connection is dropped without waiting.
    async fn fail_connection(&self, socket: &mut Socket, code: CloseCode, message: &str) {
        let reason: String = message.chars().take(100).collect(); // a close reason fits in 123 bytes
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = tokio::time::timeout(self.close_timeout, socket.close(Some(frame))).await;
    }
}

/// A connect attempt that failed: the handshake's HTTP status when the server answered one.
struct Refused {
    status: Option<u16>,
    error: String,
}

/// How a read error ends the connection (E3 for the two the engine reports as `error` events).
fn ended_by(error: WsError) -> Ended {
    match error {
        WsError::Capacity(CapacityError::MessageTooLong { size, max_size }) => Ended::Failed {
            reason: ErrorReason::TooLarge,
            code: CloseCode::Size,
            message: format!("message of {size} bytes is over maxMessageBytes ({max_size})"),
        },
        WsError::Utf8(detail) => Ended::Failed {
            reason: ErrorReason::Protocol,
            code: CloseCode::Invalid,
            message: format!("text frame is not valid UTF-8: {detail}"),
        },
        other => Ended::Dropped(error_text(&other)),
    }
}
