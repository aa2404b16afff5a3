//! The seams between the engine and the network: a query source that fetches initial data and
//! a stream source that feeds raw messages. The engine owns the lifecycle; a transport only
//! moves bytes. The built-in HTTP and WebSocket transports implement these traits, and tests or
//! hosts may plug in their own.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::config::StreamConfig;
use crate::error::Result;
use crate::event::{ErrorReason, StreamState};
pub use livecache_engine::headers::Headers;
pub use livecache_engine::request::{RequestPolicy, RetryConfig};
pub use livecache_engine::StreamTarget;

/// A request for an entry's initial (or refetched) data.
#[derive(Clone, Debug)]
pub struct FetchRequest {
    pub key: String,
    pub endpoint: String,
    /// `None` is "no arg" (`undefined`).
    pub arg: Option<Value>,
    /// `baseUrl` joined with the rendered `query` template.
    pub url: String,
    /// T1: the top-level and endpoint headers, rendered (`Debug` shows names only).
    pub headers: Headers,
    /// T7: `GET` unless the `query` object says otherwise.
    pub method: String,
    /// T7: sent as JSON.
    pub body: Option<Value>,
    /// T7: `timeoutMs` per attempt and `retry`.
    pub policy: RequestPolicy,
    /// T5: the body is a GraphQL operation and the response a GraphQL result: the data is its
    /// single root field, a result with `errors` is `{"status": "GRAPHQL_ERROR", "errors": …}`.
    pub graphql: bool,
}

/// A successful fetch: the decoded body and transport metadata (`meta` of `cacheDataLoaded`).
#[derive(Clone, Debug)]
pub struct FetchResponse {
    pub data: Value,
    pub meta: Value,
}

/// A failed fetch, in RTK Query's `fetchBaseQuery` error shape: `{"status": 500, "data": …}`
/// or `{"status": "FETCH_ERROR", "error": "…"}`, `"PARSING_ERROR"`, `"TIMEOUT_ERROR"`.
pub type FetchError = Value;

pub trait QuerySource: Send + Sync {
    fn fetch(&self, request: FetchRequest) -> BoxFuture<'static, Result<FetchResponse, FetchError>>;
}

pub use crate::message::RawMessage;

/// The engine side of one entry's stream, handed to a stream driver.
pub trait StreamSink: Send + Sync {
    /// One message, in arrival order.
    fn message(&self, message: RawMessage);
    /// A text frame the driver still holds: a sink that parses at once needs no copy of it. The
    /// sink may hold the message until `flush`.
    fn text(&self, text: &str) {
        self.message(RawMessage::Text(text.to_owned()));
    }
    /// A decoded message (GraphQL's `next` value), held like `text` until `flush`.
    fn value(&self, value: serde_json::Value) {
        self.message(RawMessage::Value(value));
    }
    /// A frame of a shared connection (T3), parsed once for every entry on it: this entry's
    /// schema and filter run on it, and it is copied only when the entry takes it. Held like
    /// `text` until `flush`.
    fn parsed(&self, parsed: &livecache_engine::message::Parsed) {
        match parsed {
            Ok(v) => self.message(RawMessage::Value(v.clone())),
            Err((reason, message)) => self.error(*reason, message.clone()),
        }
    }
    /// The driver has handed over every frame that was ready (it calls this before it waits for
    /// more): the messages `text` held go on now, in order.
    fn flush(&self) {}
    /// A message the transport dropped itself (an SSE event whose name is not in
    /// `stream.events`): counted as filtered, like one `filter` dropped.
    fn filtered(&self) {}
    /// A state change (L8). `Open` after an earlier `Open` means "reconnected": the engine resyncs.
    fn state(&self, state: StreamState, error: Option<String>);
    /// A protocol-level problem the driver handled itself (frame over the limit, invalid UTF-8):
    /// reported as one `error` event; the driver reconnects, the engine resyncs.
    fn error(&self, reason: ErrorReason, message: String);
    /// T6: the target for the next connect, with the entry's resume cursor in it; `None`: the
    /// one the driver was started with. Asked before every connect.
    /// `Err`: the host's `prepareHeaders` failed; the connect attempt fails with it (L8).
    fn target(&self) -> BoxFuture<'static, Result<Option<StreamTarget>, String>> {
        Box::pin(async { Ok(None) })
    }
    /// T3: a transport connection opened (`true`) or closed (`false`), for `stats()`'s
    /// `connections` and `connectionsOpened`. A shared connection reports through one member.
    fn connection(&self, _open: bool) {}
    /// T6: the server answered the handshake 409 or 410 (it cannot resume from the cursor sent):
    /// the next connect starts without one, and the engine resyncs when it opens.
    fn resume_refused(&self) {}
}

/// Reports a connection open for as long as it lives (`StreamSink::connection`).
pub(crate) struct OpenConnection(Arc<dyn StreamSink>);

impl OpenConnection {
    pub(crate) fn new(sink: Arc<dyn StreamSink>) -> Self {
        sink.connection(true);
        OpenConnection(sink)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.connection(false);
    }
}

/// Everything a stream driver needs for one entry.
#[derive(Clone)]
pub struct StreamRequest {
    pub key: String,
    /// The rendered `stream.url`, handshake headers and messages to send (T1, T2).
    pub target: StreamTarget,
    pub config: Arc<StreamConfig>,
}

/// What the host asks of a running stream.
#[derive(Debug)]
pub enum StreamCommand {
    /// T2 `send`: one text frame on the open connection; `done` gets `Ok` once it is written,
    /// `Err(NotConnected)` at once when no connection is open (nothing is queued).
    Send { text: String, done: oneshot::Sender<Result<()>> },
    /// T1 `reconnect`: close the connection (close handshake) and connect again at once.
    Reconnect,
}

/// The host's side of a stream's command queue (`send`, `reconnect`).
pub type CommandSender = crate::mailbox::Sender<StreamCommand>;
/// The stream driver's side.
pub type CommandReceiver = crate::mailbox::Receiver<StreamCommand>;

/// A stream's command queue: allocates nothing until a command is sent.
pub fn command_channel() -> (CommandSender, CommandReceiver) {
    crate::mailbox::channel()
}

/// How the engine side steers a stream driver: a stop, and commands.
pub struct StreamControl {
    /// Cancelled when the entry goes (L7) or the client closes.
    pub shutdown: CancellationToken,
    pub commands: CommandReceiver,
}

/// A stream that is one member of a connection its source already runs (T3): it has no task
/// or queue of its own, so an entry on a shared socket costs a record in that connection.
pub trait StreamMember: Send + Sync {
    /// T1 `reconnect`, T2 `send`. `Err` gives the command back when the connection is gone; a
    /// `send` the connection takes while closed is answered `NotConnected` by it.
    fn command(&self, command: StreamCommand) -> std::result::Result<(), StreamCommand>;
    /// L7: the entry goes. Its unsubscribe frame is sent if the connection is open, and the last
    /// member to go closes the connection. The leave is on its way when this returns; the future
    /// resolves once it is done (waited for only by `close`).
    fn leave(&self) -> BoxFuture<'static, ()>;
}

pub trait StreamSource: Send + Sync {
    /// Runs until `control.shutdown` is cancelled, reconnecting as `config.reconnect` says. On
    /// shutdown the socket is closed with a close handshake (L7) before the future completes.
    fn run(
        &self,
        request: StreamRequest,
        sink: Arc<dyn StreamSink>,
        control: StreamControl,
    ) -> BoxFuture<'static, ()>;

    /// T3: joins a connection the source shares between entries, when `request` is for one.
    /// Called (in the IO runtime's context) before `run`; `None`, the default, means the stream
    /// runs in a task of its own through `run`.
    fn join(&self, _request: &StreamRequest, _sink: &Arc<dyn StreamSink>) -> Option<Box<dyn StreamMember>> {
        None
    }
}
