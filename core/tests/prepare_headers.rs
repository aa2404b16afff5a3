//! T1 `prepareHeaders`: the host's headers on every fetch and every (re)connect, a refreshed
//! token on the next reconnect, and a failing hook or a bad header it returns failing that fetch
//! or that connect attempt (against servers on 127.0.0.1 that record what they were sent).

#[path = "support/util.rs"]
mod util;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use livecache_core::{EndpointHooks, Hooks, Status, StreamState};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use util::{wait_until, Recorder};

type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// An HTTP server answering `[]` and a WebSocket server that sends nothing, both recording the
/// `authorization` header of each request or handshake, and dropping each socket when told.
struct Servers {
    http: String,
    ws: String,
    seen: Seen,
    drop_sockets: Arc<tokio::sync::Notify>,
    _runtime: tokio::runtime::Runtime,
}

fn servers() -> Servers {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let seen: Seen = Arc::default();
    let drop_sockets = Arc::new(tokio::sync::Notify::new());
    let (http, ws) = runtime.block_on(async {
        let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ws = TcpListener::bind("127.0.0.1:0").await.unwrap();
        (http, ws)
    });
    let urls = (format!("http://{}/", http.local_addr().unwrap()), format!("ws://{}/", ws.local_addr().unwrap()));
    let s = seen.clone();
    runtime.spawn(async move {
        while let Ok((mut socket, _)) = http.accept().await {
            let s = s.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
                let auth = head.lines().find_map(|l| l.strip_prefix("authorization: ").map(str::to_owned));
                s.lock().unwrap().push(("fetch".into(), auth));
                let _ = socket.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n[]").await;
            });
        }
    });
    let (s, notify) = (seen.clone(), drop_sockets.clone());
    runtime.spawn(async move {
        while let Ok((stream, _)) = ws.accept().await {
            let (s, notify) = (s.clone(), notify.clone());
            tokio::spawn(async move {
                let record = |request: &Request, response: Response| {
                    let auth = request.headers().get("authorization").map(|v| v.to_str().unwrap_or("").to_owned());
                    s.lock().unwrap().push(("connect".into(), auth));
                    Ok(response)
                };
                if let Ok(socket) = tokio_tungstenite::accept_hdr_async(stream, record).await {
                    // Held until the test drops every socket (a lost connection).
                    notify.notified().await;
                    drop(socket);
                }
            });
        }
    });
    Servers { http: urls.0, ws: urls.1, seen, drop_sockets, _runtime: runtime }
}

fn config(s: &Servers) -> Value {
    json!({
        "baseUrl": s.http,
        "headers": {"Authorization": "Bearer from-config"},
        "endpoints": {"feed": {"query": "feed", "stream": {"url": s.ws, "apply": "append", "heartbeat": null,
                     "reconnect": {"initialDelayMs": 10, "maxDelayMs": 50}}}}
    })
}

fn seen(s: &Servers, kind: &str) -> Vec<Option<String>> {
    s.seen.lock().unwrap().iter().filter(|(k, _)| k == kind).map(|(_, a)| a.clone()).collect()
}

#[test]
fn t1_prepare_headers_runs_before_every_fetch_and_connect_and_a_refreshed_token_is_used() {
    let s = servers();
    let calls = Arc::new(AtomicUsize::new(0));
    let contexts: Arc<Mutex<Vec<Value>>> = Arc::default();
    let (c, ctx) = (calls.clone(), contexts.clone());
    let hooks = Hooks::new().endpoint(
        "feed",
        EndpointHooks::default().prepare_headers(move |mut headers: Value, context: Value| {
            let n = c.fetch_add(1, Ordering::SeqCst) + 1;
            ctx.lock().unwrap().push(context);
            assert_eq!(headers["Authorization"], "Bearer from-config", "the hook gets the configured headers");
            headers["Authorization"] = json!(format!("Bearer token-{n}"));
            async move { Ok(headers) }
        }),
    );
    let client = util::client(config(&s), hooks);
    let rec = Recorder::default();
    let sub = client.subscribe("feed", Some(json!("a")), rec.callback()).unwrap();
    wait_until("loaded and open", || {
        let st = sub.snapshot().unwrap();
        st.status == Status::Fulfilled && st.stream.state == StreamState::Open && !seen(&s, "connect").is_empty()
    });
    let fetch = seen(&s, "fetch")[0].clone().unwrap();
    let connect = seen(&s, "connect")[0].clone().unwrap().to_ascii_lowercase();
    assert!(fetch.starts_with("bearer token-") && connect.starts_with("bearer token-"), "{fetch} {connect}");
    assert_ne!(fetch, connect, "each request and connect asks the hook again");
    let kinds: Vec<Value> = contexts.lock().unwrap().iter().map(|c| c["kind"].clone()).collect();
    assert!(kinds.contains(&json!("query")) && kinds.contains(&json!("stream")), "{kinds:?}");
    let stream_ctx = contexts.lock().unwrap().iter().find(|c| c["kind"] == "stream").cloned().unwrap();
    assert_eq!((stream_ctx["endpoint"].clone(), stream_ctx["arg"].clone(), stream_ctx["url"].clone()), (json!("feed"), json!("a"), json!(s.ws)));
    // A drop: the reconnect asks the hook again and sends the fresh token.
    let before = calls.load(Ordering::SeqCst);
    s.drop_sockets.notify_waiters();
    wait_until("reconnected with a new token", || seen(&s, "connect").len() >= 2);
    let again = seen(&s, "connect")[1].clone().unwrap().to_ascii_lowercase();
    assert!(calls.load(Ordering::SeqCst) > before);
    assert_ne!(again, connect, "a refreshed token on the reconnect");
    let observable = format!("{:?} {:?} {:?}", rec.events(), sub.snapshot().unwrap(), client.stats().unwrap());
    assert!(!observable.contains("token-"), "header values appear nowhere: {observable}");
}

#[test]
fn t1_a_failing_hook_fails_the_fetch_and_the_connect_attempt() {
    let s = servers();
    let fail = Arc::new(AtomicUsize::new(1));
    let f = fail.clone();
    let hooks = Hooks::new().endpoint(
        "feed",
        EndpointHooks::default().prepare_headers(move |headers: Value, context: Value| {
            let failing = f.load(Ordering::SeqCst) == 1;
            async move {
                if failing {
                    Err(format!("no token for {}", context["kind"].as_str().unwrap_or("")))
                } else {
                    Ok(headers)
                }
            }
        }),
    );
    let client = util::client(config(&s), hooks);
    let sub = client.subscribe("feed", None, |_| {}).unwrap();
    wait_until("rejected, stream failing", || {
        let st = sub.snapshot().unwrap();
        st.status == Status::Rejected && st.stream.error.as_deref().is_some_and(|e| e.contains("no token for stream"))
    });
    let st = sub.snapshot().unwrap();
    assert_eq!(st.error.as_ref().unwrap()["status"], "CUSTOM_ERROR");
    assert!(st.error.as_ref().unwrap()["error"].as_str().unwrap().contains("prepareHeaders failed: no token for query"));
    assert_eq!(st.stream.state, StreamState::Reconnecting);
    assert!(seen(&s, "fetch").is_empty() && seen(&s, "connect").is_empty(), "nothing was sent");
    // The hook recovers: the next attempt connects (L8 backoff), a refetch succeeds.
    fail.store(0, Ordering::SeqCst);
    wait_until("connected", || sub.snapshot().unwrap().stream.state == StreamState::Open);
    client.refetch("feed", None).unwrap();
    wait_until("fulfilled", || sub.snapshot().unwrap().status == Status::Fulfilled);
}

#[test]
fn t1_a_header_the_hook_returns_with_cr_lf_fails_without_being_quoted() {
    let s = servers();
    let hooks = Hooks::new().endpoint(
        "feed",
        EndpointHooks::default().prepare_headers(|_headers: Value, _context: Value| async {
            Ok(json!({"Authorization": "Bearer x\r\nX-Admin: evil", "X-Count": 1}))
        }),
    );
    let mut cfg = config(&s);
    cfg["endpoints"]["feed"].as_object_mut().unwrap().remove("stream");
    let client = util::client(cfg, hooks);
    let sub = client.subscribe("feed", None, |_| {}).unwrap();
    wait_until("rejected", || sub.snapshot().unwrap().status == Status::Rejected);
    let error = sub.snapshot().unwrap().error.unwrap().to_string();
    assert!(error.contains("prepareHeaders") && !error.contains("evil"), "{error}");
    assert!(seen(&s, "fetch").is_empty());
}
