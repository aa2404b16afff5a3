//! Shared WebSocket connections (T3 `share: true`, T5 GraphQL): entries whose stream has the
//! same URL, headers and protocol use one connection. Each entry is a member: it sends its own
//! subscribe frame after every open, runs its own pipeline on what reaches it, sends its own
//! unsubscribe frame when it goes; the last one to go closes the connection with a close
//! handshake (L7). A drop reconnects once, for all of them (L8).
//!
//! Plain shared sockets hand every frame to every member (each member's `filter` picks its own).
//! GraphQL (graphql-transport-ws) routes `next` by the member's operation id.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::{BoxFuture, FutureExt};
use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Bytes, Message};

use crate::backoff::Backoff;
use crate::config::StreamConfig;
use crate::control::{refuse_send, Commands};
use crate::error::Error;
use crate::event::{ErrorReason, StreamState};
use crate::graphql_ws::{self as graphql, Incoming};
use crate::http::error_text;
use crate::message::parse_frame;
use crate::transport::{OpenConnection, RawMessage, StreamCommand, StreamControl, StreamMember, StreamRequest, StreamSink, StreamTarget};
use crate::socket::{close_socket, open_socket, Beat, Heartbeat, Socket, Tls, READ_BATCH};

/// What a connection is shared by: equal keys, one connection.
fn share_key(request: &StreamRequest) -> String {
    let config = &request.config;
    let mut headers: Vec<(String, String)> =
        request.target.headers.iter().map(|(n, v)| (n.to_ascii_lowercase(), v.to_owned())).collect();
    headers.sort();
    let kind = if config.graphql.is_some() { "graphql" } else { "ws" };
    json!([kind, request.target.url, headers, config.protocols, request.target.init]).to_string()
}

/// The connections a stream source shares, by key.
#[derive(Default)]
pub(crate) struct Hub {
    connections: Mutex<HashMap<String, mpsc::UnboundedSender<ToConnection>>>,
}

/// How a member and its connection talk.
enum ToConnection {
    Join(Member),
    Leave { id: u64, done: oneshot::Sender<()> },
    Command { id: u64, command: StreamCommand },
}

struct Member {
    id: u64,
    /// Its GraphQL operation id, unique on the connection.
    op: u64,
    key: Box<str>,
    sink: Arc<dyn StreamSink>,
    /// T2, as rendered when the entry was created; a resuming member asks its sink before each open.
    subscribe: Option<String>,
    unsubscribe: Option<String>,
    /// The server completed (or failed) this member's operation (T5): nothing more comes for
    /// it on this connection, and no `complete` is sent when it goes.
    done: bool,
}

/// Everything one connection is made with (the first member's, equal for all by the key).
struct Settings {
    target: StreamTarget,
    config: Arc<StreamConfig>,
    protocols: String,
    ws_config: WebSocketConfig,
    tls: Tls,
    connect_timeout: Duration,
    close_timeout: Duration,
}

impl Hub {
    /// Joins `request`'s connection, starting it when this is the first member (on the current
    /// runtime). The member is a record in the connection, steered through the returned handle.
    pub(crate) fn join(self: &Arc<Self>, request: &StreamRequest, sink: &Arc<dyn StreamSink>, settings: SettingsFor) -> Box<dyn StreamMember> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let member = Member {
            id,
            op: 0,
            key: request.key.as_str().into(),
            sink: sink.clone(),
            subscribe: request.target.subscribe.clone(),
            unsubscribe: request.target.unsubscribe.clone(),
            done: false,
        };
        let connection = self.send_join(&share_key(request), member, || Box::new(settings.settings(request)));
        Box::new(Joined { connection, id })
    }

    /// Hands `member` to the connection of `key`, starting one when there is none. Sends happen
    /// under the map's lock, and a connection leaves the map under it, so no join is lost.
    fn send_join(self: &Arc<Self>, key: &str, member: Member, settings: impl FnOnce() -> Box<Settings>) -> mpsc::UnboundedSender<ToConnection> {
        let mut map = self.connections.lock();
        let member = match map.get(key) {
            Some(tx) => match tx.send(ToConnection::Join(member)) {
                Ok(()) => return tx.clone(),
                Err(mpsc::error::SendError(ToConnection::Join(m))) => m,
                Err(_) => unreachable!("a join comes back as a join"),
            },
            None => member,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = tx.send(ToConnection::Join(member));
        map.insert(key.to_owned(), tx.clone());
        let connection = Connection {
            hub: self.clone(),
            key: key.to_owned(),
            rx,
            members: Vec::new(),
            settings: *settings(),
            next_op: 1,
        };
        tokio::spawn(connection.run());
        tx
    }
}

/// The driver's handle on one member: the connection's queue and the member's id in it.
struct Joined {
    connection: mpsc::UnboundedSender<ToConnection>,
    id: u64,
}

impl StreamMember for Joined {
    fn command(&self, command: StreamCommand) -> Result<(), StreamCommand> {
        self.connection.send(ToConnection::Command { id: self.id, command }).map_err(|e| match e.0 {
            ToConnection::Command { command, .. } => command,
            _ => unreachable!("a command comes back as a command"),
        })
    }

    fn leave(&self) -> BoxFuture<'static, ()> {
        let (done, left) = oneshot::channel();
        let sent = self.connection.send(ToConnection::Leave { id: self.id, done }).is_ok();
        Box::pin(async move {
            if sent {
                let _ = left.await;
            }
        })
    }
}

/// `StreamSource::run` for a shared stream, for a caller that runs it as a task of its own
/// (the client's driver joins instead): the member's commands and its leave, from `control`.
pub(crate) fn run_member(member: Box<dyn StreamMember>, key: String, control: StreamControl) -> BoxFuture<'static, ()> {
    let StreamControl { shutdown, commands } = control;
    Box::pin(async move {
        let mut commands = Commands::new(commands);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                command = commands.next() => {
                    if let Err(command) = member.command(command) {
                        refuse_send(&key, command);
                    }
                }
            }
        }
        member.leave().await;
    })
}

/// What `Hub::join` needs to make a connection's settings, when it is the first member.
pub(crate) struct SettingsFor {
    pub ws_config: WebSocketConfig,
    pub tls: Tls,
    pub connect_timeout: Duration,
    pub close_timeout: Duration,
}

impl SettingsFor {
    fn settings(&self, request: &StreamRequest) -> Settings {
        let protocols = if request.config.graphql.is_some() {
            graphql::SUBPROTOCOL.to_owned()
        } else {
            request.config.protocols.join(", ")
        };
        Settings {
            target: request.target.clone(),
            config: request.config.clone(),
            protocols,
            ws_config: self.ws_config,
            tls: self.tls.clone(),
            connect_timeout: self.connect_timeout,
            close_timeout: self.close_timeout,
        }
    }
}

struct Connection {
    hub: Arc<Hub>,
    key: String,
    rx: mpsc::UnboundedReceiver<ToConnection>,
    members: Vec<Member>,
    settings: Settings,
    next_op: u64,
}

/// Why a connection's read loop ended.
enum Ended {
    /// The last member left: close and finish.
    Empty,
    Reconnect,
    Dropped(String),
}

impl Connection {
    fn graphql(&self) -> bool {
        self.settings.config.graphql.is_some()
    }

    async fn run(mut self) {
        let mut backoff = Backoff::new(&self.settings.config.reconnect);
        loop {
            if !self.take_pending(None).await || self.leave_if_empty() {
                return;
            }
            // T1: the first member's prepareHeaders, if any, has the last word on the handshake.
            let (first, prepared) = match self.members.first() {
                Some(m) => (m.id, m.sink.target().await),
                None => (0, Ok(None)),
            };
            let mut target = self.settings.target.clone();
            // Kept for that member's subscribe, so its hook runs once per connect.
            let mut first_target = None;
            match prepared {
                Ok(Some(t)) => {
                    target.headers = t.headers.clone();
                    first_target = Some((first, t));
                }
                Ok(None) => {}
                Err(error) => {
                    self.all_state(StreamState::Reconnecting, Some(error));
                    if !self.take_pending(Some(backoff.next_delay())).await {
                        return;
                    }
                    continue;
                }
            }
            let connected = {
                let (protocols, tls) = (self.settings.protocols.clone(), self.settings.tls.clone());
                let connect = open_socket(&target, &protocols, self.settings.ws_config, &tls, self.settings.connect_timeout);
                tokio::pin!(connect);
                loop {
                    tokio::select! {
                        biased;
                        connected = &mut connect => break Some(connected),
                        message = self.rx.recv() => match message {
                            Some(message) => {
                                self.handle_closed(message);
                                if self.members.is_empty() { break None; }
                            }
                            None => return,
                        },
                    }
                }
            };
            let Some(connected) = connected else {
                if self.leave_if_empty() {
                    return;
                }
                continue;
            };
            let mut now_again = false;
            match connected {
                Ok(mut socket) => {
                    let _open = self.members.first().map(|m| OpenConnection::new(m.sink.clone()));
                    let opened = Instant::now();
                    let ended = match self.start(&mut socket, first_target).await {
                        Ok(()) => self.read(&mut socket).await,
                        Err(error) => Ended::Dropped(error),
                    };
                    if opened.elapsed() >= backoff.stable_after() {
                        backoff.reset();
                    }
                    match ended {
                        Ended::Empty => {
                            close_socket(&mut socket, self.settings.close_timeout).await;
                            if self.leave_if_empty() {
                                return;
                            }
                            now_again = true;
                        }
                        Ended::Reconnect => {
                            close_socket(&mut socket, self.settings.close_timeout).await;
                            self.all_state(StreamState::Reconnecting, Some("reconnect requested".to_owned()));
                            now_again = true;
                        }
                        Ended::Dropped(error) => self.all_state(StreamState::Reconnecting, Some(error)),
                    }
                }
                Err((_status, error)) => self.all_state(StreamState::Reconnecting, Some(error)),
            }
            if !now_again && !self.take_pending(Some(backoff.next_delay())).await {
                return;
            }
        }
    }

    /// Handles joins, leaves and commands while no connection is open, for `wait` (or until a
    /// reconnect command, or the last member leaves). `false`: the hub is gone.
    async fn take_pending(&mut self, wait: Option<Duration>) -> bool {
        let Some(wait) = wait else {
            while let Ok(message) = self.rx.try_recv() {
                self.handle_closed(message);
            }
            return true;
        };
        let sleep = tokio::time::sleep(wait);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                biased;
                _ = &mut sleep => return true,
                message = self.rx.recv() => match message {
                    Some(ToConnection::Command { command: StreamCommand::Reconnect, .. }) => return true,
                    Some(message) => {
                        self.handle_closed(message);
                        if self.members.is_empty() { return true; }
                    }
                    None => return false,
                },
            }
        }
    }

    /// A message while no connection is open.
    fn handle_closed(&mut self, message: ToConnection) {
        match message {
            ToConnection::Join(member) => {
                member.sink.state(StreamState::Connecting, None);
                self.add(member);
            }
            ToConnection::Leave { id, done } => {
                if let Some(i) = self.members.iter().position(|m| m.id == id) {
                    self.members.remove(i).sink.state(StreamState::Closed, None);
                }
                let _ = done.send(());
            }
            ToConnection::Command { id, command } => {
                let key = self.members.iter().find(|m| m.id == id).map_or("", |m| &m.key);
                refuse_send(key, command);
            }
        }
    }

    fn add(&mut self, mut member: Member) {
        member.op = self.next_op;
        self.next_op += 1;
        self.members.push(member);
    }

    /// When no member is left, the connection leaves the hub, unless a join came in meanwhile
    /// (joins are sent under the hub's lock, so checking under it sees every one).
    fn leave_if_empty(&mut self) -> bool {
        if !self.members.is_empty() {
            return false;
        }
        let hub = self.hub.clone();
        let mut map = hub.connections.lock();
        let mut joined = false;
        while let Ok(message) = self.rx.try_recv() {
            joined |= matches!(message, ToConnection::Join(_));
            self.handle_closed(message);
        }
        if joined && !self.members.is_empty() {
            return false;
        }
        map.remove(&self.key);
        true
    }

    fn all_state(&self, state: StreamState, error: Option<String>) {
        for m in &self.members {
            m.sink.state(state, error.clone());
        }
    }

    /// After the upgrade: GraphQL's `connection_init` and its ack, then every member's subscribe.
    /// `first`: a member's target already asked for this connect, with its id.
    async fn start(&mut self, socket: &mut Socket, mut first: Option<(u64, StreamTarget)>) -> Result<(), String> {
        if let Some(gql) = &self.settings.config.graphql {
            let init = graphql::connection_init(self.settings.target.init.as_deref());
            socket.send(Message::text(init)).await.map_err(|e| error_text(&e))?;
            let timeout = Duration::from_millis(gql.connection_ack_timeout_ms);
            let ack = async {
                while let Some(frame) = socket.next().await {
                    match frame.map_err(|e| error_text(&e))? {
                        Message::Text(text) => match graphql::incoming(&text) {
                            Ok(Incoming::Ack) => return Ok(()),
                            Ok(Incoming::Ping) => socket.send(Message::text(graphql::PONG)).await.map_err(|e| error_text(&e))?,
                            Ok(_) => {}
                            Err(e) => return Err(format!("graphql-transport-ws: {e}")),
                        },
                        Message::Close(frame) => return Err(match frame {
                            Some(f) => format!("closed by server before connection_ack (code {}: {})", u16::from(f.code), f.reason),
                            None => "closed by server before connection_ack".to_owned(),
                        }),
                        _ => {}
                    }
                }
                Err("connection closed before connection_ack".to_owned())
            };
            match tokio::time::timeout(timeout, ack).await {
                Ok(result) => result?,
                Err(_) => return Err(format!("no connection_ack within connectionAckTimeoutMs ({} ms)", timeout.as_millis())),
            }
        }
        for i in 0..self.members.len() {
            let given = first.take_if(|(id, _)| *id == self.members[i].id).map(|(_, t)| t);
            self.subscribe(socket, i, given).await?;
        }
        Ok(())
    }

    /// Member `i`'s subscribe frame, then its `open` (T2: before any frame for it is read).
    async fn subscribe(&mut self, socket: &mut Socket, i: usize, given: Option<StreamTarget>) -> Result<(), String> {
        let asked = match given {
            Some(t) => Ok(Some(t)),
            None => self.members[i].sink.target().await,
        };
        let target = match asked {
            Ok(target) => target,
            Err(error) => {
                // This member's prepareHeaders failed; its subscribe goes without a fresh target.
                self.members[i].sink.error(ErrorReason::Hook, error);
                None
            }
        };
        let member = &mut self.members[i];
        let subscribe = match &target {
            Some(target) => &target.subscribe,
            None => &member.subscribe,
        };
        member.done = false;
        let frame = match (&self.settings.config.graphql, subscribe) {
            (Some(_), Some(payload)) => Some(graphql::subscribe(&member.op.to_string(), payload)),
            (None, Some(text)) => Some(text.clone()),
            (_, None) => None,
        };
        if let Some(frame) = frame {
            socket.send(Message::text(frame)).await.map_err(|e| format!("subscribe not sent: {}", error_text(&e)))?;
        }
        member.sink.state(StreamState::Open, None);
        Ok(())
    }

    /// Member `i` leaves an open connection: its unsubscribe (or GraphQL `complete`) first.
    async fn unsubscribe(&mut self, socket: &mut Socket, id: u64) {
        let Some(i) = self.members.iter().position(|m| m.id == id) else { return };
        let member = self.members.remove(i);
        let frame = match &self.settings.config.graphql {
            Some(_) if !member.done => Some(graphql::complete(&member.op.to_string())),
            Some(_) => None,
            None => member.unsubscribe.clone(),
        };
        if let Some(frame) = frame {
            let _ = tokio::time::timeout(self.settings.close_timeout, socket.send(Message::text(frame))).await;
        }
        member.sink.state(StreamState::Closed, None);
    }

    async fn read(&mut self, socket: &mut Socket) -> Ended {
        let mut heartbeat = self.settings.config.heartbeat.as_ref().map(Heartbeat::new);
        let far = Instant::now() + Duration::from_secs(86_400 * 365);
        let timer = tokio::time::sleep_until(heartbeat.as_ref().map_or(far, |h| h.next_wake()));
        tokio::pin!(timer);
        let mut seen = false;
        loop {
            tokio::select! {
                biased;
                frame = socket.next() => {
                    seen = true;
                    // The frames ready without waiting go to the members before they are
                    // flushed: a flood reaches each entry's pipeline in batches.
                    let mut frame = frame;
                    let mut count = 0;
                    let ended = loop {
                        match frame {
                            Some(Ok(Message::Text(text))) => {
                                if let Some(ended) = self.frame(socket, text.as_str()).await {
                                    break Some(ended);
                                }
                            }
                            Some(Ok(Message::Binary(bytes))) => {
                                for m in &self.members {
                                    m.sink.message(RawMessage::Binary(Vec::from(bytes.clone())));
                                }
                            }
                            Some(Ok(Message::Close(frame))) => {
                                let error = match frame {
                                    Some(f) => format!("closed by server (code {}: {})", u16::from(f.code), f.reason),
                                    None => "closed by server".to_owned(),
                                };
                                let drain = async { while let Some(Ok(_)) = socket.next().await {} };
                                let _ = tokio::time::timeout(self.settings.close_timeout, drain).await;
                                break Some(Ended::Dropped(error));
                            }
                            Some(Ok(_)) => {}
                            Some(Err(error)) => break Some(Ended::Dropped(error_text(&error))),
                            None => break Some(Ended::Dropped("connection closed".to_owned())),
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
                    for m in &self.members {
                        m.sink.flush();
                    }
                    if let Some(ended) = ended {
                        return ended;
                    }
                }
                _ = &mut timer, if heartbeat.is_some() => {
                    let Some(hb) = heartbeat.as_mut() else { unreachable!() };
                    match hb.on_timer(Instant::now(), &mut seen) {
                        Beat::Wait => {}
                        Beat::TimedOut => return Ended::Dropped(format!("heartbeat timeout: nothing received within {} ms of a ping", hb.timeout().as_millis())),
                        Beat::SendPing => {
                            if let Err(error) = socket.send(Message::Ping(Bytes::new())).await {
                                return Ended::Dropped(error_text(&error));
                            }
                        }
                    }
                    timer.as_mut().reset(hb.next_wake());
                }
                message = self.rx.recv() => match message {
                    None => return Ended::Empty,
                    Some(ToConnection::Join(member)) => {
                        member.sink.state(StreamState::Connecting, None);
                        self.add(member);
                        let last = self.members.len() - 1;
                        if let Err(error) = self.subscribe(socket, last, None).await {
                            return Ended::Dropped(error);
                        }
                    }
                    Some(ToConnection::Leave { id, done }) => {
                        self.unsubscribe(socket, id).await;
                        let _ = done.send(());
                        if self.members.is_empty() {
                            return Ended::Empty;
                        }
                    }
                    Some(ToConnection::Command { command: StreamCommand::Reconnect, .. }) => return Ended::Reconnect,
                    Some(ToConnection::Command { command: StreamCommand::Send { text, done }, .. }) => {
                        match socket.send(Message::text(text)).await {
                            Ok(()) => { let _ = done.send(Ok(())); }
                            Err(error) => {
                                let _ = done.send(Err(Error::NotConnected(self.key.clone())));
                                return Ended::Dropped(error_text(&error));
                            }
                        }
                    }
                },
            }
        }
    }

    /// One text frame: to every member (plain), or by operation id (GraphQL).
    async fn frame(&mut self, socket: &mut Socket, text: &str) -> Option<Ended> {
        if !self.graphql() {
            // Parsed once; each member's schema and filter run on the value (T3).
            let parsed = parse_frame(text, &self.settings.config);
            for m in &self.members {
                m.sink.parsed(&parsed);
            }
            return None;
        }
        let incoming = match graphql::incoming(text) {
            Ok(incoming) => incoming,
            Err(error) => {
                let message = format!("graphql-transport-ws: {error}");
                for m in &self.members {
                    m.sink.error(ErrorReason::Protocol, message.clone());
                }
                return Some(Ended::Dropped(message));
            }
        };
        // Operation ids are the connection's own numbers: any other id is no member's.
        let member = |op: &str, members: &[Member]| op.parse::<u64>().ok().and_then(|op| members.iter().position(|m| m.op == op));
        match incoming {
            Incoming::Next { id, payload } => {
                // A `next` for an operation no member has (one that just left): nothing to apply.
                let i = member(&id, &self.members)?;
                let m = &self.members[i];
                match graphql::next_value(payload) {
                    Ok(value) => m.sink.value(value),
                    Err(errors) => m.sink.error(ErrorReason::Graphql, errors),
                }
            }
            Incoming::Error { id, errors } => {
                if let Some(i) = member(&id, &self.members) {
                    let m = &mut self.members[i];
                    m.done = true;
                    m.sink.error(ErrorReason::Graphql, errors.clone());
                    m.sink.state(StreamState::Closed, Some(errors));
                }
            }
            Incoming::Complete { id } => {
                if let Some(i) = member(&id, &self.members) {
                    let m = &mut self.members[i];
                    m.done = true;
                    m.sink.state(StreamState::Closed, Some("subscription completed by the server".to_owned()));
                }
            }
            Incoming::Ping => {
                if let Err(error) = socket.send(Message::text(graphql::PONG)).await {
                    return Some(Ended::Dropped(error_text(&error)));
                }
            }
            Incoming::Pong | Incoming::Ack => {}
        }
        None
    }
}

