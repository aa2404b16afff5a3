//! The built-in Server-Sent Events stream driver (T4): a `GET` with `Accept: text/event-stream`,
//! its body parsed as the WHATWG EventSource standard parses it, reconnected with backoff while
//! the entry lives (L8), with `Last-Event-ID` after a drop.
//!
//! Parsing is `sse-core`'s sans-IO decoder: it bounds every event by `maxMessageBytes` (§9) and
//! resynchronises after an oversized one, and it keeps the last event id across connections,
//! which is all this driver needs; the bytes come from reqwest, the same client as the queries.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use reqwest::header::{HeaderName, HeaderValue, ACCEPT, CACHE_CONTROL, CONTENT_TYPE};
use reqwest::StatusCode;
use sse_core::{SseDecoder, SseEvent};
use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::config::HeartbeatConfig;
use crate::control::{refuse_send, Commands, Stop};
use crate::error::Error;
use crate::event::{ErrorReason, StreamState};
use crate::http::error_text;
use crate::transport::{OpenConnection, StreamCommand, StreamControl, StreamRequest, StreamSink, StreamSource, StreamTarget};

/// How long a connect (TCP, TLS and the response head) may take before it counts as failed.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// `http://` and `https://` event streams. Cheap to share: one instance (one connection pool)
/// runs the streams of every entry of a client.
#[derive(Clone)]
pub struct SseStreamSource {
    /// `Err` when no HTTP client could be built: every connect fails with that text.
    client: Result<reqwest::Client, String>,
    connect_timeout: Duration,
}

impl Default for SseStreamSource {
    fn default() -> Self {
        Self::new()
    }
}

impl SseStreamSource {
    pub fn new() -> Self {
        // Redirects are not followed, as for queries: credentials never reach another origin.
        let client = crate::tls::http_tls().and_then(|tls| {
            reqwest::Client::builder()
                .tls_backend_preconfigured(tls)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| format!("cannot create the HTTP client: {}", error_text(&e)))
        });
        SseStreamSource { client, connect_timeout: DEFAULT_CONNECT_TIMEOUT }
    }

    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }
}

impl StreamSource for SseStreamSource {
    fn run(&self, request: StreamRequest, sink: Arc<dyn StreamSink>, control: StreamControl) -> BoxFuture<'static, ()> {
        let limit = NonZeroUsize::new(request.config.max_message_bytes).unwrap_or(NonZeroUsize::MIN);
        let driver = Driver {
            client: self.client.clone(),
            connect_timeout: self.connect_timeout,
            limit: limit.get(),
            decoder: SseDecoder::with_limit(limit),
            backoff: Backoff::new(&request.config.reconnect),
            events: request.config.events.clone(),
            heartbeat: request.config.heartbeat.as_ref().map(silence_window),
            request,
            sink,
        };
        Box::pin(driver.run(control))
    }
}

/// SSE has no ping: the server's own traffic (events or `:` comment lines) proves it alive. A
/// server that sends something every `intervalMs` is given `timeoutMs` more before the stream
/// counts as dropped (L8).
fn silence_window(config: &HeartbeatConfig) -> Duration {
    Duration::from_millis(config.interval_ms.saturating_add(config.timeout_ms))
}

struct Driver {
    client: Result<reqwest::Client, String>,
    connect_timeout: Duration,
    limit: usize,
    /// Lives across connections: it holds the last event id sent as `Last-Event-ID`.
    decoder: SseDecoder,
    backoff: Backoff,
    events: Vec<String>,
    heartbeat: Option<Duration>,
    request: StreamRequest,
    sink: Arc<dyn StreamSink>,
}

/// How one connection ended.
enum Ended {
    Shutdown,
    /// T1 `reconnect`: connect again at once.
    Reconnect,
    /// Reconnect after the backoff; the text is the stream's last error (L8).
    Dropped(String),
    /// `204 No Content`: the server asks the client not to reconnect (T4).
    NoContent,
    /// T6: 409 or 410 to a resume: connect again at once, without the cursor.
    ResumeRefused(String),
}

impl Driver {
    async fn run(mut self, control: StreamControl) {
        // Made here, on the runtime: `Stop` spawns its watcher.
        let mut stop = Stop::new(control.shutdown);
        let mut commands = Commands::new(control.commands);
        self.sink.state(StreamState::Connecting, None);
        loop {
            let ended = self.connection(&mut stop, &mut commands).await;
            let delay = match ended {
                Ended::Shutdown => break,
                Ended::Reconnect => {
                    self.sink.state(StreamState::Reconnecting, Some("reconnect requested".to_owned()));
                    continue;
                }
                Ended::Dropped(error) => {
                    self.sink.state(StreamState::Reconnecting, Some(error));
                    Some(self.backoff.next_delay())
                }
                Ended::NoContent => {
                    self.sink.state(StreamState::Closed, Some("server answered 204 No Content: not reconnecting".to_owned()));
                    None
                }
                Ended::ResumeRefused(error) => {
                    self.sink.resume_refused();
                    self.sink.state(StreamState::Reconnecting, Some(error));
                    continue;
                }
            };
            if !self.wait(delay, &mut stop, &mut commands).await {
                break;
            }
        }
        self.sink.state(StreamState::Closed, None);
    }

    /// Waits out the backoff (or, after a 204, until the host asks for a reconnect). `false`:
    /// the stream was stopped meanwhile.
    async fn wait(&self, delay: Option<Duration>, stop: &mut Stop, commands: &mut Commands) -> bool {
        let far = Duration::from_secs(86_400 * 365);
        let sleep = tokio::time::sleep(delay.unwrap_or(far));
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                biased;
                _ = stop.wait() => return false,
                _ = &mut sleep => return true,
                command = commands.next() => match command {
                    // T1: a reconnect skips the backoff.
                    StreamCommand::Reconnect => return true,
                    other => self.refuse(other),
                },
            }
        }
    }

    /// T2 `send` has no channel on SSE: an argument error, not `NotConnected` (which says "try
    /// again later").
    fn refuse(&self, command: StreamCommand) {
        match command {
            StreamCommand::Send { done, .. } => {
                let _ = done.send(Err(Error::InvalidArgument(format!(
                    "send: {} streams over transport \"sse\", which only receives",
                    self.request.key
                ))));
            }
            other => refuse_send(&self.request.key, other),
        }
    }

    /// One connection: connect, then read until it ends.
    async fn connection(&mut self, stop: &mut Stop, commands: &mut Commands) -> Ended {
        // T6: a resuming stream's target carries its cursor, fresh for every connect.
        let target = match self.sink.target().await {
            Ok(target) => target.unwrap_or_else(|| self.request.target.clone()),
            // T1: the host's prepareHeaders failed: this attempt fails, with backoff (L8).
            Err(error) => return Ended::Dropped(error),
        };
        let response = {
            let connect = self.connect(&target);
            tokio::pin!(connect);
            loop {
                tokio::select! {
                    biased;
                    // Dropping the request future aborts the connect; nothing was opened yet.
                    _ = stop.wait() => return Ended::Shutdown,
                    result = &mut connect => break result,
                    command = commands.next() => match command {
                        StreamCommand::Reconnect => {}
                        other => self.refuse(other),
                    },
                }
            }
        };
        let response = match response {
            Ok(Some(response)) => response,
            Ok(None) => return Ended::NoContent,
            Err((Some(409 | 410), error)) if target.cursor.is_some() => return Ended::ResumeRefused(error),
            Err((_, error)) => return Ended::Dropped(error),
        };
        let _open = OpenConnection::new(self.sink.clone());
        // A new body: what a dropped one left half-parsed is gone, the last event id stays.
        self.decoder.reconnect();
        self.sink.state(StreamState::Open, None);
        let opened = Instant::now();
        let ended = self.read(response, stop, commands).await;
        if opened.elapsed() >= self.backoff.stable_after() {
            self.backoff.reset();
        }
        ended
    }

    /// The request, and the response head checked (T4): `Ok(None)` is a 204; an error has the
    /// HTTP status when there was one.
    async fn connect(&self, target: &StreamTarget) -> Result<Option<reqwest::Response>, (Option<u16>, String)> {
        let fail = |e: String| (None, e);
        let client = self.client.as_ref().map_err(|e| fail(e.clone()))?;
        let mut builder = client
            .get(&target.url)
            .header(ACCEPT, "text/event-stream")
            .header(CACHE_CONTROL, "no-cache");
        // T1: values were checked (no CR/LF/NUL) when rendered; an error names the header only.
        for (name, value) in target.headers.iter() {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| fail(format!("header {name}: not a valid name")))?;
            let value = HeaderValue::from_str(value).map_err(|_| fail(format!("header {name}: not a valid value")))?;
            builder = builder.header(name, value);
        }
        // T6: a resuming stream says where it is itself (the cursor, or nothing when it has
        // none: a replay from an older id would bring what a refetch already holds); otherwise
        // the last `id:` read, as an EventSource does (T4).
        let last_event_id = match &self.request.config.resume {
            Some(resume) if resume.param.is_none() => target.cursor.as_deref(),
            Some(_) => None,
            None => self.decoder.last_event_id().map(|id| &**id),
        };
        if let Some(id) = last_event_id.filter(|id| !id.is_empty()) {
            // An `id:` line holds no CR or LF; a cursor that does is not sent.
            if let Ok(value) = HeaderValue::from_str(id) {
                builder = builder.header("last-event-id", value);
            }
        }
        let response = match tokio::time::timeout(self.connect_timeout, builder.send()).await {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => return Err(fail(error_text(&error))),
            Err(_) => return Err(fail(format!("connect timed out after {} ms", self.connect_timeout.as_millis()))),
        };
        let status = response.status();
        if status == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        if status != StatusCode::OK {
            return Err((Some(status.as_u16()), format!("event stream answered HTTP {}", status.as_u16())));
        }
        let content_type = response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let essence = content_type.split(';').next().unwrap_or("").trim();
        if !essence.eq_ignore_ascii_case("text/event-stream") {
            return Err(fail(format!("event stream answered with Content-Type {content_type:?}, not text/event-stream")));
        }
        Ok(Some(response))
    }

    async fn read(&mut self, mut response: reqwest::Response, stop: &mut Stop, commands: &mut Commands) -> Ended {
        let far = Instant::now() + Duration::from_secs(86_400 * 365);
        let mut last_traffic = Instant::now();
        let timer = tokio::time::sleep_until(self.heartbeat.map_or(far, |w| last_traffic + w));
        tokio::pin!(timer);
        loop {
            tokio::select! {
                biased;
                chunk = response.chunk() => match chunk {
                    Ok(Some(mut bytes)) => {
                        // Any bytes, comment lines included, are traffic (T4 heartbeat).
                        last_traffic = Instant::now();
                        let ended = self.decode(&mut bytes);
                        self.sink.flush();
                        if let Some(ended) = ended {
                            return ended;
                        }
                    }
                    Ok(None) => return Ended::Dropped("event stream ended by the server".to_owned()),
                    Err(error) => return Ended::Dropped(error_text(&error)),
                },
                _ = &mut timer, if self.heartbeat.is_some() => {
                    let window = self.heartbeat.unwrap_or_default();
                    if last_traffic.elapsed() >= window {
                        return Ended::Dropped(format!(
                            "heartbeat timeout: nothing received for {} ms",
                            window.as_millis()
                        ));
                    }
                    timer.as_mut().reset(last_traffic + window);
                }
                _ = stop.wait() => return Ended::Shutdown,
                command = commands.next() => match command {
                    StreamCommand::Reconnect => return Ended::Reconnect,
                    other => self.refuse(other),
                },
            }
        }
    }

    /// Every complete event of `bytes`, in order. An event over `maxMessageBytes` is an `error`
    /// event (E3) and ends the connection: the data may have missed it, so the stream reconnects
    /// *without* `Last-Event-ID` (a replay would send the same event again) and the engine
    /// resyncs (L8).
    fn decode(&mut self, bytes: &mut bytes::Bytes) -> Option<Ended> {
        while let Some(event) = self.decoder.next(bytes) {
            match event {
                Ok(SseEvent::Message(message)) => {
                    if self.events.iter().any(|e| *e == message.event) {
                        self.sink.text(&message.data);
                    } else {
                        self.sink.filtered();
                    }
                }
                Ok(SseEvent::Retry(ms)) => self.backoff.set_initial(Duration::from_millis(u64::from(ms))),
                Err(_too_large) => {
                    let message = format!("event over maxMessageBytes ({} bytes)", self.limit);
                    self.sink.error(ErrorReason::TooLarge, message.clone());
                    self.decoder.clear();
                    return Some(Ended::Dropped(message));
                }
            }
        }
        None
    }
}
