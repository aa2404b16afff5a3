//! One WebSocket connection's pieces, shared by the per-entry driver (`ws.rs`) and shared
//! connections (`shared.rs`): the connect (T1 headers, T2 subprotocols), the close handshake (L7)
//! and the heartbeat (L8).

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::Error as WsError;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::config::HeartbeatConfig;
use crate::http::error_text;
use crate::transport::StreamTarget;

pub(crate) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;
/// At most this many ready frames between two flushes of the sink.
pub(crate) const READ_BATCH: usize = 64;
/// The `wss://` configuration, or why there is none (only `wss://` connects fail then).
pub(crate) type Tls = Result<Arc<rustls::ClientConfig>, String>;

/// TCP, TLS and the upgrade, bounded by `timeout` (T1 headers, T2 subprotocols). An error has the
/// handshake's HTTP status when the server answered one (T6: 409/410).
pub(crate) async fn open_socket(
    target: &StreamTarget,
    protocols: &str,
    ws_config: WebSocketConfig,
    tls: &Tls,
    timeout: Duration,
) -> Result<Socket, (Option<u16>, String)> {
    let fail = |e: String| (None, e);
    let mut request = target.url.as_str().into_client_request().map_err(|e| fail(error_text(&e)))?;
    // T1: header values were checked (no CR/LF/NUL) when rendered; an error here names the
    // header, never its value.
    let headers = request.headers_mut();
    for (name, value) in target.headers.iter() {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| fail(format!("header {name}: not a valid name")))?;
        let value = HeaderValue::from_str(value).map_err(|_| fail(format!("header {name}: not a valid value")))?;
        headers.insert(name, value);
    }
    if !protocols.is_empty() {
        let value = HeaderValue::from_str(protocols).map_err(|_| fail("stream.protocols: not a valid header value".to_owned()))?;
        headers.insert("sec-websocket-protocol", value);
    }
    let connector = match (request.uri().scheme_str(), tls) {
        (Some("wss"), Ok(tls)) => Connector::Rustls(tls.clone()),
        (Some("wss"), Err(e)) => return Err(fail(e.clone())),
        _ => Connector::Plain,
    };
    let connect = tokio_tungstenite::connect_async_tls_with_config(request, Some(ws_config), true, Some(connector));
    match tokio::time::timeout(timeout, connect).await {
        Ok(Ok((socket, _response))) => Ok(socket),
        Ok(Err(WsError::Http(response))) => Err((Some(response.status().as_u16()), error_text(&WsError::Http(response)))),
        Ok(Err(e)) => Err(fail(error_text(&e))),
        Err(_) => Err(fail(format!("connect timed out after {} ms", timeout.as_millis()))),
    }
}

/// L7: the server must see a Close frame; its reply ends the handshake (bounded by `timeout`).
pub(crate) async fn close_socket(socket: &mut Socket, timeout: Duration) {
    let handshake = async {
        let frame = CloseFrame { code: CloseCode::Normal, reason: "".into() };
        if socket.close(Some(frame)).await.is_err() {
            return;
        }
        while let Some(Ok(_)) = socket.next().await {}
    };
    let _ = tokio::time::timeout(timeout, handshake).await;
}

pub(crate) enum Beat {
    SendPing,
    TimedOut,
    Wait,
}

/// L8 heartbeat: a ping every `interval`; when nothing at all arrived within `timeout` after a
/// ping, the connection is dead. Frames only set the read loop's `seen` flag; the verdict is
/// taken when the timer fires.
pub(crate) struct Heartbeat {
    interval: Duration,
    timeout: Duration,
    next_ping: Instant,
    /// The deadline of the oldest unanswered ping.
    deadline: Option<Instant>,
}

impl Heartbeat {
    pub(crate) fn new(config: &HeartbeatConfig) -> Self {
        let interval = Duration::from_millis(config.interval_ms.max(1));
        Heartbeat {
            interval,
            timeout: Duration::from_millis(config.timeout_ms.max(1)),
            next_ping: Instant::now() + interval,
            deadline: None,
        }
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    pub(crate) fn next_wake(&self) -> Instant {
        match self.deadline {
            Some(deadline) => deadline.min(self.next_ping),
            None => self.next_ping,
        }
    }

    pub(crate) fn on_timer(&mut self, now: Instant, seen: &mut bool) -> Beat {
        if let Some(deadline) = self.deadline {
            if *seen {
                self.deadline = None;
            } else if now >= deadline {
                return Beat::TimedOut;
            }
        }
        if now < self.next_ping {
            return Beat::Wait;
        }
        self.next_ping = now + self.interval;
        if self.deadline.is_none() {
            *seen = false;
            self.deadline = Some(now + self.timeout);
        }
        Beat::SendPing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn l8_heartbeat_times_out_only_without_frames() {
        let cfg = HeartbeatConfig {
            interval_ms: 100,
            timeout_ms: 50,
        };
        let mut hb = Heartbeat::new(&cfg);
        let t0 = hb.next_ping;
        let mut seen = true;
        assert!(matches!(hb.on_timer(t0, &mut seen), Beat::SendPing));
        assert!(!seen);
        assert_eq!(hb.next_wake(), t0 + Duration::from_millis(50));
        seen = true; // a pong arrived
        assert!(matches!(
            hb.on_timer(t0 + Duration::from_millis(50), &mut seen),
            Beat::Wait
        ));
        assert!(matches!(
            hb.on_timer(t0 + Duration::from_millis(100), &mut seen),
            Beat::SendPing
        ));
        assert!(matches!(
            hb.on_timer(t0 + Duration::from_millis(150), &mut seen),
            Beat::TimedOut
        ));
    }
}
