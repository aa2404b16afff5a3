//! The chat as a GraphQL API on `/graphql` (feature `graphql`), served by async-graphql: the
//! messages of a channel (`query`), posting one (`mutation sendMessage`, which honours
//! `set_post_delay` and `set_post_status`), and `subscription messageAdded(channel, after)` over
//! graphql-transport-ws: every message posted from then on, by any route, and first, when `after`
//! is given, the stored ones with a greater id (what a resuming client missed). A GraphQL socket
//! obeys the server's socket knobs (`drop_all_sockets`, `close_all_sockets`, `broadcast_raw`)
//! like the plain ones.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use async_graphql::http::{WebSocket, WebSocketProtocols, WsMessage};
use async_graphql::{Context, Object, Schema, SimpleObject, Subscription};
use futures_util::{SinkExt, Stream, StreamExt};
use hyper::body::Bytes;
use hyper::header::HeaderValue;
use hyper::StatusCode;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::{json_response, post, Shared, SocketCommand};

type ChatSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// One chat message, as the REST routes show it.
#[derive(SimpleObject, Clone)]
struct ChatMessage {
    id: u64,
    channel: String,
    user_name: String,
    text: String,
}

impl ChatMessage {
    fn of(v: &Value) -> ChatMessage {
        let text = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
        ChatMessage { id: v["id"].as_u64().unwrap_or_default(), channel: text("channel"), user_name: text("userName"), text: text("text") }
    }
}

fn shared<'a>(ctx: &Context<'a>) -> &'a Arc<Shared> {
    ctx.data_unchecked::<Arc<Shared>>()
}

struct QueryRoot;

#[Object]
impl QueryRoot {
    /// The channel's messages, oldest first.
    async fn messages(&self, ctx: &Context<'_>, channel: String) -> Vec<ChatMessage> {
        let shared = shared(ctx);
        shared.fetches.fetch_add(1, Ordering::SeqCst);
        crate::channel_messages(shared, &channel).iter().map(ChatMessage::of).collect()
    }
}

struct MutationRoot;

#[Object]
impl MutationRoot {
    /// Stores a message and sends it to the channel's subscribers.
    async fn send_message(&self, ctx: &Context<'_>, channel: String, user_name: String, text: String) -> async_graphql::Result<ChatMessage> {
        let shared = shared(ctx);
        shared.posts.fetch_add(1, Ordering::SeqCst);
        let status = shared.post_status.load(Ordering::SeqCst);
        if status != 201 {
            return Err(format!("the server refused the post (status {status})").into());
        }
        let delay = shared.post_delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
        }
        Ok(ChatMessage::of(&post(shared, &channel, &user_name, &text)))
    }
}

struct SubscriptionRoot;

#[Subscription]
impl SubscriptionRoot {
    /// The channel's new messages; with `after`, the stored ones above it first (a resume).
    async fn message_added(&self, ctx: &Context<'_>, channel: String, after: Option<u64>) -> impl Stream<Item = ChatMessage> {
        let shared = shared(ctx);
        // Subscribed under the messages lock: no message falls between the replay and the live ones.
        let (missed, posted) = {
            let messages = shared.messages.lock().unwrap();
            let missed: Vec<ChatMessage> = match after {
                Some(after) => messages.after(&channel, after).iter().map(ChatMessage::of).collect(),
                None => Vec::new(),
            };
            shared.listeners_started.fetch_add(1, Ordering::SeqCst);
            (missed, shared.posted.subscribe())
        };
        let live = futures_util::stream::unfold((posted, channel), |(mut rx, channel)| async move {
            loop {
                match rx.recv().await {
                    Ok(m) if m["channel"] == channel.as_str() => return Some((ChatMessage::of(&m), (rx, channel))),
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        futures_util::stream::iter(missed).chain(live)
    }
}

fn schema(shared: &Arc<Shared>) -> ChatSchema {
    Schema::build(QueryRoot, MutationRoot, SubscriptionRoot).data(shared.clone()).finish()
}

/// `POST /graphql`: `{query, variables?, operationName?}`, answered with `{data, errors?}`.
pub(crate) async fn http(shared: &Arc<Shared>, body: &[u8]) -> hyper::Response<crate::Body> {
    let request: async_graphql::Request = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return json_response(StatusCode::BAD_REQUEST, &json!({"errors": [{"message": format!("not a GraphQL request: {e}")}]})),
    };
    let response = schema(shared).execute(request).await;
    json_response(StatusCode::OK, &serde_json::to_value(&response).unwrap_or(Value::Null))
}

/// The subprotocol to answer an upgrade on `/graphql` with; `None` when the client offers no
/// graphql-transport-ws.
pub(crate) fn protocol(offered: Option<&HeaderValue>) -> Option<HeaderValue> {
    let offered = offered?.to_str().ok()?;
    offered.split(',').map(str::trim).any(|p| p == "graphql-transport-ws").then(|| HeaderValue::from_static("graphql-transport-ws"))
}

/// A graphql-transport-ws connection: async-graphql speaks the protocol; this loop carries its
/// frames and the server's socket commands.
pub(crate) async fn serve<S>(shared: Arc<Shared>, socket: WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (tx, mut commands) = mpsc::unbounded_channel();
    let id = shared.next_socket.fetch_add(1, Ordering::SeqCst);
    shared.sockets.lock().unwrap().push(crate::Socket { id, tx, channels: None });
    shared.connections_accepted.fetch_add(1, Ordering::SeqCst);
    let (mut sink, mut source) = socket.split();
    let (frames_tx, frames_rx) = mpsc::unbounded_channel::<Bytes>();
    let counters = shared.clone();
    let reader = tokio::spawn(async move {
        while let Some(Ok(frame)) = source.next().await {
            match frame {
                Message::Text(text) => {
                    if frames_tx.send(Bytes::copy_from_slice(text.as_bytes())).is_err() {
                        break;
                    }
                }
                Message::Close(_) => {
                    counters.close_frames_received.fetch_add(1, Ordering::SeqCst);
                    break;
                }
                _ => {}
            }
        }
    });
    let frames = futures_util::stream::unfold(frames_rx, |mut rx| async move { rx.recv().await.map(|f| (f, rx)) });
    let mut graphql = std::pin::pin!(WebSocket::new(schema(&shared), frames, WebSocketProtocols::GraphQLWS));
    loop {
        tokio::select! {
            out = graphql.next() => match out {
                Some(WsMessage::Text(text)) => {
                    if sink.send(Message::Text(text.into())).await.is_err() {
                        break;
                    }
                }
                Some(WsMessage::Close(code, reason)) => {
                    let frame = CloseFrame { code: CloseCode::from(code), reason: reason.into() };
                    let _ = sink.send(Message::Close(Some(frame))).await;
                    break;
                }
                None => {
                    let _ = sink.close().await;
                    break;
                }
            },
            command = commands.recv() => match command {
                // Posted messages reach this socket through its subscriptions.
                Some(SocketCommand::Message(_)) => {}
                Some(SocketCommand::Send(text)) => {
                    if sink.send(Message::Text(text)).await.is_err() {
                        break;
                    }
                }
                Some(SocketCommand::SendBinary(bytes)) => {
                    if sink.send(Message::Binary(bytes)).await.is_err() {
                        break;
                    }
                }
                Some(SocketCommand::Close) => {
                    let _ = sink.close().await;
                    break;
                }
                // A silenced GraphQL socket is simply dropped: the knob is for plain sockets.
                Some(SocketCommand::Drop | SocketCommand::Silence) | None => break,
            },
        }
    }
    reader.abort();
    shared.sockets.lock().unwrap().retain(|s| s.id != id);
}
