//! The seed's chat server, in process, for tests and `livecache demo`: one 127.0.0.1 port serving
//! `GET /messages/{channel}` (JSON array of `{id, channel, userName, text}`),
//! `POST /messages/{channel}` (`{"userName", "text"}`), and a WebSocket upgrade on any other
//! path (`/`, `/ws`) that broadcasts every posted message as JSON text to every socket (on
//! `/ws/{channel}`, the messages of that channel and of those it subscribes to with
//! `{"type": "subscribe", "channel": c, "after"?: id}` frames, `after` replaying what a resuming
//! client missed), and
//! `GET /events/{channel}`, the channel's messages as Server-Sent Events (sse.rs).
//!
//! Knobs for failure tests: `broadcast_raw` / `broadcast_binary` (malformed frames, E3),
//! `drop_all_sockets` (TCP gone, no close frame), `close_all_sockets`
//! (close handshake), `silence_all_sockets` (a hung peer: no reads, no writes, no pongs, TCP left
//! open), `refuse_upgrades(n)` (503 on the next n upgrades), `set_fetch_delay` (before the
//! messages are read), `set_response_delay` (after), `set_http_status`, `set_post_status`, `set_post_delay`; counters say what the
//! server saw.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{
    HeaderValue, CONNECTION, CONTENT_TYPE, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, UPGRADE,
};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

#[cfg(feature = "graphql")]
mod graphql;
mod history;
mod sse;

enum SocketCommand {
    /// A posted message, as the plain broadcast sends it (GraphQL sockets get theirs through
    /// their subscriptions instead).
    Message(Utf8Bytes),
    /// A frame sent as it is (`broadcast_raw`), to every socket.
    Send(Utf8Bytes),
    SendBinary(Bytes),
    /// Drop the TCP connection without a close frame (a network failure, as the client sees it).
    Drop,
    /// Close handshake initiated by the server.
    Close,
    /// Stop reading and writing, keep the TCP connection (a hung peer, for heartbeat tests).
    Silence,
}

/// An open WebSocket and the channels it is sent.
struct Socket {
    id: u64,
    tx: mpsc::UnboundedSender<SocketCommand>,
    /// `None`: every channel (`/`, `/ws`, GraphQL sockets); else the channel of its path
    /// (`/ws/{channel}`) and those it subscribed to with a frame.
    channels: Option<Vec<String>>,
}

impl Socket {
    fn listens(&self, channel: &str) -> bool {
        self.channels.as_ref().is_none_or(|c| c.iter().any(|c| c == channel))
    }
}

struct Shared {
    /// Every posted message, per channel in id order (bounded by `set_history_limit`).
    messages: Mutex<history::History>,
    /// Every posted message, as it is stored (GraphQL subscriptions listen here).
    posted: tokio::sync::broadcast::Sender<Value>,
    next_id: AtomicU64,
    sockets: Mutex<Vec<Socket>>,
    /// Silenced sockets, kept so their connections stay open until dropped.
    silenced: Mutex<Vec<mpsc::UnboundedSender<SocketCommand>>>,
    next_socket: AtomicU64,
    refuse_upgrades: AtomicUsize,
    fetch_delay_ms: AtomicU64,
    response_delay_ms: AtomicU64,
    http_status: AtomicU16,
    /// Status of `POST /messages/…`: anything but 201 stores nothing.
    post_status: AtomicU16,
    posts: AtomicUsize,
    post_delay_ms: AtomicU64,
    connections_accepted: AtomicUsize,
    upgrades_refused: AtomicUsize,
    close_frames_received: AtomicUsize,
    fetches: AtomicUsize,
    snapshots_taken: AtomicUsize,
    /// SSE streams and GraphQL subscriptions that started listening to the posted messages.
    listeners_started: AtomicUsize,
}

pub struct ChatServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept_loop: JoinHandle<()>,
}

impl Drop for ChatServer {
    fn drop(&mut self) {
        self.accept_loop.abort();
        self.drop_all_sockets();
    }
}

impl ChatServer {
    /// Binds 127.0.0.1 on a free port and serves until dropped.
    pub async fn start() -> ChatServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            messages: Mutex::new(history::History::default()),
            posted: tokio::sync::broadcast::channel(1024).0,
            next_id: AtomicU64::new(1),
            sockets: Mutex::new(Vec::new()),
            silenced: Mutex::new(Vec::new()),
            next_socket: AtomicU64::new(1),
            refuse_upgrades: AtomicUsize::new(0),
            fetch_delay_ms: AtomicU64::new(0),
            response_delay_ms: AtomicU64::new(0),
            http_status: AtomicU16::new(200),
            post_status: AtomicU16::new(201),
            posts: AtomicUsize::new(0),
            post_delay_ms: AtomicU64::new(0),
            connections_accepted: AtomicUsize::new(0),
            upgrades_refused: AtomicUsize::new(0),
            close_frames_received: AtomicUsize::new(0),
            fetches: AtomicUsize::new(0),
            snapshots_taken: AtomicUsize::new(0),
            listeners_started: AtomicUsize::new(0),
        });
        let accept_shared = shared.clone();
        let accept_loop = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let shared = accept_shared.clone();
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |req| handle(shared.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await;
                });
            }
        });
        ChatServer {
            addr,
            shared,
            accept_loop,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/`, a `baseUrl`.
    pub fn http_url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// `ws://127.0.0.1:PORT/`, a `stream.url`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    /// Stores a message and broadcasts it to every open socket; returns it.
    pub fn post(&self, channel: &str, user: &str, text: &str) -> Value {
        post(&self.shared, channel, user, text)
    }

    /// The server's truth for `channel`, in id order.
    pub fn messages(&self, channel: &str) -> Vec<Value> {
        channel_messages(&self.shared, channel)
    }

    /// Sends `text` as one text frame to every open socket, as is (a malformed message for E3).
    pub fn broadcast_raw(&self, text: &str) {
        for socket in self.shared.sockets.lock().unwrap().iter() {
            let _ = socket.tx.send(SocketCommand::Send(Utf8Bytes::from(text.to_owned())));
        }
    }

    /// Sends `bytes` as one binary frame to every open socket (E3: messages must be text).
    pub fn broadcast_binary(&self, bytes: &[u8]) {
        for socket in self.shared.sockets.lock().unwrap().iter() {
            let _ = socket.tx.send(SocketCommand::SendBinary(Bytes::copy_from_slice(bytes)));
        }
    }

    /// Drops every socket's TCP connection without a close frame, silenced ones included.
    pub fn drop_all_sockets(&self) {
        self.command_all(|| SocketCommand::Drop);
        for tx in std::mem::take(&mut *self.shared.silenced.lock().unwrap()) {
            let _ = tx.send(SocketCommand::Drop);
        }
    }

    pub fn close_all_sockets(&self) {
        self.command_all(|| SocketCommand::Close);
    }

    /// Every open socket goes silent: it stops reading (so pings get no pong) and sending, and
    /// keeps its TCP connection until `drop_all_sockets` or the server is dropped. It no longer
    /// counts in `open_sockets`; new sockets are served normally.
    pub fn silence_all_sockets(&self) {
        let sockets = std::mem::take(&mut *self.shared.sockets.lock().unwrap());
        let mut silenced = self.shared.silenced.lock().unwrap();
        for socket in sockets {
            if socket.tx.send(SocketCommand::Silence).is_ok() {
                silenced.push(socket.tx);
            }
        }
    }

    /// Keeps only the latest `limit` messages of each channel (`None`: all): what `GET
    /// /messages/…` answers and a resume replays from.
    pub fn set_history_limit(&self, limit: Option<usize>) {
        self.shared.messages.lock().unwrap().set_limit(limit);
    }

    /// The next `n` WebSocket upgrades are answered `503 Service Unavailable`.
    pub fn refuse_upgrades(&self, n: usize) {
        self.shared.refuse_upgrades.store(n, Ordering::SeqCst);
    }

    /// Delay before every `GET /messages/…` answer.
    pub fn set_fetch_delay(&self, ms: u64) {
        self.shared.fetch_delay_ms.store(ms, Ordering::SeqCst);
    }

    /// Delay between reading the messages and answering `GET /messages/…`: a response that
    /// predates messages posted meanwhile.
    pub fn set_response_delay(&self, ms: u64) {
        self.shared.response_delay_ms.store(ms, Ordering::SeqCst);
    }

    /// Status of `GET /messages/…`; anything but 200 answers `{"error": "…"}`.
    pub fn set_http_status(&self, code: u16) {
        self.shared.http_status.store(code, Ordering::SeqCst);
    }

    /// Status of `POST /messages/…` (a mutation); anything but 201 answers `{"error": "…"}`
    /// and stores nothing.
    pub fn set_post_status(&self, code: u16) {
        self.shared.post_status.store(code, Ordering::SeqCst);
    }

    /// Delay before a `POST /messages/…` is stored and broadcast: a slow write, whose echo comes
    /// after other messages.
    pub fn set_post_delay(&self, ms: u64) {
        self.shared.post_delay_ms.store(ms, Ordering::SeqCst);
    }

    /// `POST /messages/…` requests so far, refused ones included.
    pub fn post_count(&self) -> usize {
        self.shared.posts.load(Ordering::SeqCst)
    }

    /// WebSocket upgrades accepted so far.
    pub fn connections_accepted(&self) -> usize {
        self.shared.connections_accepted.load(Ordering::SeqCst)
    }

    pub fn upgrades_refused(&self) -> usize {
        self.shared.upgrades_refused.load(Ordering::SeqCst)
    }

    /// Close frames received from clients (L7: an entry's stream ends with one).
    pub fn close_frames_received(&self) -> usize {
        self.shared.close_frames_received.load(Ordering::SeqCst)
    }

    /// Channel sockets (`/ws/{channel}`) sent `channel`, by their path or a subscribe frame.
    pub fn channel_subscribers(&self, channel: &str) -> usize {
        self.shared.sockets.lock().unwrap().iter().filter(|s| s.channels.as_ref().is_some_and(|c| c.iter().any(|c| c == channel))).count()
    }

    pub fn open_sockets(&self) -> usize {
        self.shared.sockets.lock().unwrap().len()
    }

    /// `GET /messages/…` requests answered or in progress.
    pub fn fetch_count(&self) -> usize {
        self.shared.fetches.load(Ordering::SeqCst)
    }

    /// `GET /messages/…` answers whose messages have been read (the response's point in time).
    pub fn snapshots_taken(&self) -> usize {
        self.shared.snapshots_taken.load(Ordering::SeqCst)
    }

    /// SSE streams (`/events/…`) and GraphQL subscriptions that have started listening: one
    /// that started after a message was posted gets it only by a resume's replay.
    pub fn listeners_started(&self) -> usize {
        self.shared.listeners_started.load(Ordering::SeqCst)
    }

    /// Polls `condition` until it holds; panics after 5 s naming `what`.
    pub async fn wait_until(&self, what: &str, condition: impl Fn(&ChatServer) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !condition(self) {
            if tokio::time::Instant::now() > deadline {
                panic!("chat server: timed out waiting until {what}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn command_all(&self, command: impl Fn() -> SocketCommand) {
        let sockets = std::mem::take(&mut *self.shared.sockets.lock().unwrap());
        for socket in sockets {
            let _ = socket.tx.send(command());
        }
    }
}

fn post(shared: &Shared, channel: &str, user: &str, text: &str) -> Value {
    // The lock spans the broadcast so every socket sees messages in id order.
    let mut messages = shared.messages.lock().unwrap();
    let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
    let message = json!({"id": id, "channel": channel, "userName": user, "text": text});
    broadcast(shared, channel, &message);
    messages.push(channel, message.clone());
    let _ = shared.posted.send(message.clone());
    message
}

/// Sends a posted message to every socket that listens to its channel.
fn broadcast(shared: &Shared, channel: &str, message: &Value) {
    let frame = Utf8Bytes::from(message.to_string());
    shared
        .sockets
        .lock()
        .unwrap()
        .retain(|s| !s.listens(channel) || s.tx.send(SocketCommand::Message(frame.clone())).is_ok());
}

fn channel_messages(shared: &Shared, channel: &str) -> Vec<Value> {
    shared.messages.lock().unwrap().channel(channel)
}

type Body = BoxBody<Bytes, Infallible>;

fn respond(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()).boxed());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_str(content_type).unwrap());
    response
}

fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    respond(status, "application/json", value.to_string())
}

async fn handle(
    shared: Arc<Shared>,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let is_upgrade = req
        .headers()
        .get(UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let path = req.uri().path().to_owned();
    if is_upgrade {
        return Ok(upgrade(shared, &mut req, &path));
    }
    #[cfg(feature = "graphql")]
    if path == "/graphql" && req.method() == Method::POST {
        let Ok(body) = req.into_body().collect().await else {
            return Ok(respond(StatusCode::BAD_REQUEST, "text/plain", "unreadable body"));
        };
        return Ok(graphql::http(&shared, &body.to_bytes()).await);
    }
    if let Some(channel) = path.strip_prefix("/events/").filter(|_| req.method() == Method::GET) {
        let channel = percent_encoding::percent_decode_str(channel).decode_utf8_lossy().into_owned();
        return Ok(sse::events(&shared, &req, channel));
    }
    let Some(channel) = path.strip_prefix("/messages/") else {
        return Ok(respond(StatusCode::NOT_FOUND, "text/plain", "not found"));
    };
    let channel = percent_encoding::percent_decode_str(channel)
        .decode_utf8_lossy()
        .into_owned();
    match *req.method() {
        Method::GET => {
            shared.fetches.fetch_add(1, Ordering::SeqCst);
            let delay = shared.fetch_delay_ms.load(Ordering::SeqCst);
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            let status = shared.http_status.load(Ordering::SeqCst);
            if status != 200 {
                let status =
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                return Ok(json_response(
                    status,
                    &json!({"error": format!("status {}", status.as_u16())}),
                ));
            }
            let body = Value::Array(channel_messages(&shared, &channel));
            shared.snapshots_taken.fetch_add(1, Ordering::SeqCst);
            let delay = shared.response_delay_ms.load(Ordering::SeqCst);
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            Ok(json_response(StatusCode::OK, &body))
        }
        Method::POST => {
            shared.posts.fetch_add(1, Ordering::SeqCst);
            let status = shared.post_status.load(Ordering::SeqCst);
            if status != 201 {
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                return Ok(json_response(status, &json!({"error": format!("status {}", status.as_u16())})));
            }
            let Ok(body) = req.into_body().collect().await else {
                return Ok(respond(
                    StatusCode::BAD_REQUEST,
                    "text/plain",
                    "unreadable body",
                ));
            };
            let Ok(body) = serde_json::from_slice::<Value>(&body.to_bytes()) else {
                return Ok(respond(
                    StatusCode::BAD_REQUEST,
                    "text/plain",
                    "body is not JSON",
                ));
            };
            let user = body["userName"].as_str().unwrap_or("anonymous");
            let text = body["text"].as_str().unwrap_or("");
            let delay = shared.post_delay_ms.load(Ordering::SeqCst);
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            Ok(json_response(
                StatusCode::CREATED,
                &post(&shared, &channel, user, text),
            ))
        }
        _ => Ok(respond(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "method not allowed",
        )),
    }
}

fn upgrade(shared: Arc<Shared>, req: &mut Request<Incoming>, path: &str) -> Response<Body> {
    let refused = shared
        .refuse_upgrades
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if refused {
        shared.upgrades_refused.fetch_add(1, Ordering::SeqCst);
        return respond(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "upgrade refused",
        );
    }
    let Some(key) = req.headers().get(SEC_WEBSOCKET_KEY) else {
        return respond(
            StatusCode::BAD_REQUEST,
            "text/plain",
            "missing Sec-WebSocket-Key",
        );
    };
    let accept = derive_accept_key(key.as_bytes());
    // `/graphql` speaks graphql-transport-ws, and only that.
    #[cfg(feature = "graphql")]
    let graphql = match path == "/graphql" {
        true => match graphql::protocol(req.headers().get(hyper::header::SEC_WEBSOCKET_PROTOCOL)) {
            Some(p) => Some(p),
            None => return respond(StatusCode::BAD_REQUEST, "text/plain", "/graphql speaks the graphql-transport-ws subprotocol"),
        },
        false => None,
    };
    #[cfg(not(feature = "graphql"))]
    let graphql: Option<HeaderValue> = {
        let _ = path;
        None
    };
    // `/ws/{channel}`: a socket of one channel; others may be added by subscribe frames.
    let channel = path.strip_prefix("/ws/").map(|c| percent_encoding::percent_decode_str(c).decode_utf8_lossy().into_owned());
    let on_upgrade = hyper::upgrade::on(req);
    let is_graphql = graphql.is_some();
    // A plain socket is sent the posts from the moment its handshake is answered: registered only
    // once the upgrade completed, it would miss a message posted in between, after the client saw
    // the stream open (and after the resync that the open started had read the messages).
    let registered = (!is_graphql).then(|| register_socket(&shared, channel));
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            if let Some((id, _)) = registered {
                shared.sockets.lock().unwrap().retain(|s| s.id != id);
            }
            return;
        };
        let socket =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        match registered {
            Some((id, commands)) => serve_socket(shared, socket, id, commands).await,
            #[cfg(feature = "graphql")]
            None => graphql::serve(shared, socket).await,
            #[cfg(not(feature = "graphql"))]
            None => {}
        }
    });
    let mut response = respond(StatusCode::SWITCHING_PROTOCOLS, "text/plain", Bytes::new());
    let headers = response.headers_mut();
    if let Some(protocol) = graphql {
        headers.insert(hyper::header::SEC_WEBSOCKET_PROTOCOL, protocol);
    }
    headers.remove(CONTENT_TYPE);
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(
        SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept).unwrap(),
    );
    response
}

/// A plain socket's place in the broadcast: its id and the queue of what it is to send.
fn register_socket(shared: &Shared, channel: Option<String>) -> (u64, mpsc::UnboundedReceiver<SocketCommand>) {
    let (tx, commands) = mpsc::unbounded_channel();
    let id = shared.next_socket.fetch_add(1, Ordering::SeqCst);
    shared.sockets.lock().unwrap().push(Socket { id, tx, channels: channel.map(|c| vec![c]) });
    shared.connections_accepted.fetch_add(1, Ordering::SeqCst);
    (id, commands)
}

async fn serve_socket<S>(shared: Arc<Shared>, mut socket: WebSocketStream<S>, id: u64, mut commands: mpsc::UnboundedReceiver<SocketCommand>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        tokio::select! {
            command = commands.recv() => match command {
                Some(SocketCommand::Message(text) | SocketCommand::Send(text)) => {
                    if socket.send(Message::Text(text)).await.is_err() {
                        break;
                    }
                }
                Some(SocketCommand::SendBinary(bytes)) => {
                    if socket.send(Message::Binary(bytes)).await.is_err() {
                        break;
                    }
                }
                Some(SocketCommand::Close) => {
                    let _ = socket.close(None).await;
                    // Read on until the client's reply ends the handshake.
                    let drain = async {
                        while let Some(Ok(_)) = socket.next().await {}
                    };
                    let _ = tokio::time::timeout(Duration::from_secs(5), drain).await;
                    break;
                }
                Some(SocketCommand::Silence) => {
                    // Hold the socket unread until told to drop it (or the server goes).
                    while let Some(command) = commands.recv().await {
                        if matches!(command, SocketCommand::Drop | SocketCommand::Close) {
                            break;
                        }
                    }
                    break;
                }
                Some(SocketCommand::Drop) | None => break,
            },
            frame = socket.next() => match frame {
                // Keep reading: tungstenite sends the close reply and ends the stream.
                Some(Ok(Message::Close(_))) => {
                    shared.close_frames_received.fetch_add(1, Ordering::SeqCst);
                }
                Some(Ok(Message::Text(text))) => subscription_frame(&shared, id, &text),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break,
            },
        }
    }
    shared
        .sockets
        .lock()
        .unwrap()
        .retain(|s| s.id != id);
}

/// `{"type": "subscribe" | "unsubscribe", "channel": c}` on a channel socket (`/ws/{channel}`)
/// adds or removes a channel it is sent (a shared connection's entries, T3). A subscribe with
/// `"after": id` is a resume (T6): the channel's stored messages above that id are sent first, and
/// nothing posted meanwhile falls between them and the live ones. Other frames, and frames on an
/// every-channel socket, are ignored.
fn subscription_frame(shared: &Shared, id: u64, text: &str) {
    let Ok(frame) = serde_json::from_str::<Value>(text) else { return };
    let Some(channel) = frame["channel"].as_str() else { return };
    // The messages lock first, as `post` takes it: no post runs between the replay and the
    // registration.
    let messages = shared.messages.lock().unwrap();
    let mut sockets = shared.sockets.lock().unwrap();
    let Some(socket) = sockets.iter_mut().find(|s| s.id == id) else { return };
    let Some(channels) = socket.channels.as_mut() else { return };
    match frame["type"].as_str() {
        Some("subscribe") => {
            if !channels.iter().any(|c| c == channel) {
                channels.push(channel.to_owned());
            }
            if let Some(after) = frame["after"].as_u64() {
                for m in messages.after(channel, after) {
                    let _ = socket.tx.send(SocketCommand::Message(Utf8Bytes::from(m.to_string())));
                }
            }
        }
        Some("unsubscribe") => channels.retain(|c| c != channel),
        _ => {}
    }
}
