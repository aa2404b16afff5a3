//! `GET /events/{channel}`: the channel's messages as Server-Sent Events, one event per posted
//! message (`id:` the message's id, `data:` its JSON). A request with `Last-Event-ID` first gets
//! the stored messages above that id (what a resuming client missed, T6), then the live ones.
//! `?heartbeatMs=N` adds a comment line every N ms (traffic for a client's heartbeat timeout).
//! A stream that falls too far behind the posts ends, and the client resumes.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Bytes, Frame};
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use serde_json::Value;
use tokio::sync::{broadcast, mpsc};

use crate::{Body, Shared};

/// Frames queued for one stream's response body before its writer waits for the socket.
const BUFFERED_EVENTS: usize = 64;

pub(crate) fn events<B>(shared: &Arc<Shared>, req: &Request<B>, channel: String) -> Response<Body> {
    let after = req.headers().get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
    let heartbeat = req
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("heartbeatMs=")))
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .map(Duration::from_millis);
    // Subscribed under the messages lock (which `post` holds while it broadcasts): no message
    // falls between the replay and the live ones.
    let (missed, posted) = {
        let messages = shared.messages.lock().unwrap();
        let missed: Vec<Value> = match after {
            Some(after) => messages.after(&channel, after),
            None => Vec::new(),
        };
        shared.listeners_started.fetch_add(1, Ordering::SeqCst);
        (missed, shared.posted.subscribe())
    };
    let (tx, rx) = mpsc::channel::<Bytes>(BUFFERED_EVENTS);
    tokio::spawn(write_events(tx, missed, posted, channel, heartbeat));
    let body = StreamBody::new(futures_util::stream::unfold(rx, |mut rx| async move {
        let frame = rx.recv().await?;
        Some((Ok::<_, Infallible>(Frame::data(frame)), rx))
    }));
    let mut response = Response::new(body.boxed());
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn event(message: &Value) -> Bytes {
    Bytes::from(format!("id: {}\ndata: {message}\n\n", message["id"]))
}

/// Writes the replay, then every message posted to `channel`, until the client goes away.
async fn write_events(tx: mpsc::Sender<Bytes>, missed: Vec<Value>, mut posted: broadcast::Receiver<Value>, channel: String, heartbeat: Option<Duration>) {
    for m in &missed {
        if tx.send(event(m)).await.is_err() {
            return;
        }
    }
    let mut ticks = heartbeat.map(tokio::time::interval);
    loop {
        let tick = async {
            match ticks.as_mut() {
                Some(t) => {
                    t.tick().await;
                }
                None => std::future::pending().await,
            }
        };
        let frame = tokio::select! {
            m = posted.recv() => match m {
                Ok(m) if m["channel"] == channel.as_str() => event(&m),
                Ok(_) => continue,
                // Behind by more than the broadcast holds: end, and let the client resume.
                Err(broadcast::error::RecvError::Lagged(_) | broadcast::error::RecvError::Closed) => return,
            },
            () = tick => Bytes::from_static(b":\n\n"),
        };
        if tx.send(frame).await.is_err() {
            return;
        }
    }
}
