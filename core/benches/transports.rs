//! The transports end to end on loopback, and shared connections, printed as two tables.
//!
//! 1. Throughput per transport: a server floods N chat messages to one entry over a WebSocket,
//!    Server-Sent Events and GraphQL (graphql-transport-ws `next` frames); a `Client` (filter +
//!    `append` with `maxLen: 1000`) delivers every change to a callback. Messages/s from the
//!    server's first write to the callback that sees the last version, against the same run's
//!    ceiling: a bare tokio-tungstenite loop that parses each message with serde_json. Rounds
//!    alternate the rows; each rate is the median over the rounds.
//! 2. 1,000 entries, each its own channel, on one shared WebSocket (`share: true`) against 1,000
//!    sockets: connections the client holds, native memory per entry (live heap bytes, counted by
//!    this binary's allocator, with the data still `null`), and messages/s when the server sends
//!    M messages spread over the channels.
//!
//! `cargo bench -p livecache-core --bench transports` (`-- --quick` for a short run).

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use livecache_core::{Client, ClientOptions, Config, Event, Hooks};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// Live heap bytes of the process, without the test server's: its threads are not counted
/// (what it keeps per subscription is no part of the client's memory).
struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
thread_local! { static SERVER_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) }; }

fn counted() -> bool {
    !SERVER_THREAD.try_with(|s| s.get()).unwrap_or(false)
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counted() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if counted() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counted() {
            LIVE.fetch_add(new_size, Ordering::Relaxed);
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn message(id: u64, channel: &str) -> Value {
    json!({"id": id, "channel": channel, "userName": "bot", "text": format!("message number {id} of the flood")})
}

/// Where a channel's frames go: a connection's writer, and the GraphQL operation id if any.
type Registry = Arc<Mutex<HashMap<String, Vec<(mpsc::UnboundedSender<Message>, Option<String>)>>>>;

/// A tokio server on its own runtime: WebSocket (plain and graphql-transport-ws) on one port,
/// SSE on another. `/all` sockets and SSE streams get channel `bench` without subscribing;
/// others subscribe with `{"type":"subscribe","channel"}` or a GraphQL `subscribe`.
struct Server {
    ws: SocketAddr,
    sse: SocketAddr,
    registry: Registry,
    sse_streams: Arc<Mutex<Vec<mpsc::UnboundedSender<Vec<u8>>>>>,
    runtime: tokio::runtime::Runtime,
}

impl Server {
    fn start() -> Server {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .on_thread_start(|| SERVER_THREAD.with(|s| s.set(true)))
            .enable_all()
            .build()
            .unwrap();
        let registry: Registry = Arc::default();
        let sse_streams: Arc<Mutex<Vec<mpsc::UnboundedSender<Vec<u8>>>>> = Arc::default();
        let (ws, sse) = runtime.block_on(async {
            let ws = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let sse = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addrs = (ws.local_addr().unwrap(), sse.local_addr().unwrap());
            let reg = registry.clone();
            tokio::spawn(async move {
                while let Ok((stream, _)) = ws.accept().await {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(serve_ws(stream, reg.clone()));
                }
            });
            let streams = sse_streams.clone();
            tokio::spawn(async move {
                while let Ok((stream, _)) = sse.accept().await {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(serve_sse(stream, streams.clone()));
                }
            });
            addrs
        });
        Server { ws, sse, registry, sse_streams, runtime }
    }

    fn subscribed(&self, channels: usize) -> bool {
        self.registry.lock().unwrap().len() >= channels
    }

    /// Sends message `i` to channel `channel(i)`, for `n` messages.
    fn flood(&self, n: usize, channel: impl Fn(usize) -> String) {
        let reg = self.registry.lock().unwrap();
        for i in 0..n {
            let ch = channel(i);
            let m = message(i as u64, &ch);
            for (tx, op) in reg.get(&ch).into_iter().flatten() {
                let text = match op {
                    Some(id) => json!({"id": id, "type": "next", "payload": {"data": {"messageAdded": m}}}).to_string(),
                    None => m.to_string(),
                };
                let _ = tx.send(Message::text(text));
            }
        }
    }

    fn flood_sse(&self, n: usize) {
        let mut body = Vec::with_capacity(n * 128);
        for i in 0..n {
            body.extend_from_slice(format!("id: {i}\ndata: {}\n\n", message(i as u64, "bench")).as_bytes());
        }
        for tx in self.sse_streams.lock().unwrap().iter() {
            let _ = tx.send(body.clone());
        }
    }

    fn reset(&self) {
        self.registry.lock().unwrap().clear();
        self.sse_streams.lock().unwrap().clear();
    }
}

async fn serve_ws(stream: tokio::net::TcpStream, registry: Registry) {
    let path = Arc::new(Mutex::new(String::new()));
    let p = path.clone();
    let callback = move |req: &tokio_tungstenite::tungstenite::handshake::server::Request,
                         mut resp: tokio_tungstenite::tungstenite::handshake::server::Response| {
        *p.lock().unwrap() = req.uri().path().to_owned();
        let offered = req.headers().get("sec-websocket-protocol").and_then(|v| v.to_str().ok()).unwrap_or("");
        if offered.contains("graphql-transport-ws") {
            resp.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse().unwrap());
        }
        Ok(resp)
    };
    let Ok(socket) = tokio_tungstenite::accept_hdr_async(stream, callback).await else { return };
    let (mut sink, mut read) = socket.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            if sink.feed(m).await.is_err() {
                return;
            }
            while let Ok(m) = rx.try_recv() {
                if sink.feed(m).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    if path.lock().unwrap().as_str() == "/all" {
        registry.lock().unwrap().entry("bench".into()).or_default().push((tx.clone(), None));
    }
    while let Some(Ok(frame)) = read.next().await {
        let Message::Text(text) = frame else { continue };
        let Ok(v) = serde_json::from_str::<Value>(text.as_str()) else { continue };
        match (v["type"].as_str(), v["id"].as_str()) {
            (Some("connection_init"), _) => {
                let _ = tx.send(Message::text(r#"{"type":"connection_ack"}"#));
            }
            (Some("subscribe"), Some(id)) => {
                let room = v["payload"]["variables"]["room"].as_str().unwrap_or("bench").to_owned();
                registry.lock().unwrap().entry(room).or_default().push((tx.clone(), Some(id.to_owned())));
            }
            (Some("subscribe"), None) => {
                let ch = v["channel"].as_str().unwrap_or("bench").to_owned();
                registry.lock().unwrap().entry(ch).or_default().push((tx.clone(), None));
            }
            _ => {}
        }
    }
}

async fn serve_sse(mut stream: tokio::net::TcpStream, streams: Arc<Mutex<Vec<mpsc::UnboundedSender<Vec<u8>>>>>) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\r\n").await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    streams.lock().unwrap().push(tx);
    while let Some(body) = rx.recv().await {
        if stream.write_all(&body).await.is_err() {
            return;
        }
    }
}

/// Counts the entries that reached their target version.
struct Probe {
    target: u64,
    done: AtomicUsize,
    finished: Mutex<Option<Instant>>,
    entries: usize,
}

impl Probe {
    fn new(target: u64, entries: usize) -> Arc<Probe> {
        Arc::new(Probe { target, done: AtomicUsize::new(0), finished: Mutex::new(None), entries })
    }

    fn callback(self: &Arc<Self>) -> impl Fn(&Event) + Send + Sync + 'static {
        let probe = self.clone();
        let reached = AtomicU64::new(0);
        move |event| {
            let version = match event {
                Event::Snapshot { version, .. } | Event::Patch { version, .. } => *version,
                _ => return,
            };
            if version >= probe.target && reached.swap(1, Ordering::AcqRel) == 0 {
                let done = probe.done.fetch_add(1, Ordering::AcqRel) + 1;
                if done == probe.entries {
                    *probe.finished.lock().unwrap() = Some(Instant::now());
                }
            }
        }
    }

    fn wait(&self) -> Instant {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            if let Some(t) = *self.finished.lock().unwrap() {
                return t;
            }
            assert!(Instant::now() < deadline, "stalled: {} of {} entries done", self.done.load(Ordering::Acquire), self.entries);
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

fn wait(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[derive(Clone, Copy)]
enum Kind {
    WebSocket,
    Sse,
    Graphql,
}

fn stream_config(server: &Server, kind: Kind) -> Value {
    let apply = json!({"append": {"maxLen": 1000}});
    match kind {
        Kind::WebSocket => json!({"url": format!("ws://{}/all", server.ws), "filter": {"channel": "{arg}"}, "apply": apply}),
        Kind::Sse => json!({"transport": "sse", "url": format!("http://{}/events", server.sse), "filter": {"channel": "{arg}"}, "apply": apply}),
        Kind::Graphql => json!({"graphql": {"url": format!("ws://{}/graphql", server.ws),
            "query": "subscription ($room: String!) { messageAdded(room: $room) { id channel userName text } }",
            "variables": {"room": "{arg}"}}, "apply": apply}),
    }
}

/// One flood of `n` messages through livecache; messages/s.
fn run_livecache(server: &Server, kind: Kind, n: usize) -> f64 {
    server.reset();
    let config = Config::from_value(&json!({"endpoints": {"getMessages": {"stream": stream_config(server, kind)}}})).unwrap();
    let client = Client::with_options(config, Hooks::new(), ClientOptions { worker_threads: 2, ..Default::default() }).unwrap();
    let probe = Probe::new(n as u64, 1);
    let sub = client.subscribe("getMessages", Some(json!("bench")), probe.callback()).unwrap();
    match kind {
        Kind::Sse => wait("the event stream", || !server.sse_streams.lock().unwrap().is_empty()),
        _ => {
            let t = Instant::now();
            while !server.subscribed(1) {
                assert!(t.elapsed() < Duration::from_secs(10), "not subscribed: {:?}", sub.snapshot().map(|s| s.stream));
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }
    let start = Instant::now();
    match kind {
        Kind::Sse => server.flood_sse(n),
        _ => server.flood(n, |_| "bench".into()),
    }
    let end = probe.wait();
    drop(sub);
    client.close();
    n as f64 / (end - start).as_secs_f64()
}

/// The ceiling: a bare tokio-tungstenite loop parsing each message with serde_json.
fn run_bare(server: &Server, n: usize) -> f64 {
    server.reset();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/all", server.ws)).await.unwrap();
        wait("the bare socket", || server.subscribed(1));
        let start = Instant::now();
        server.flood(n, |_| "bench".into());
        let mut count = 0;
        while let Some(frame) = ws.next().await {
            if let Message::Text(text) = frame.unwrap() {
                let value: Value = serde_json::from_str(text.as_str()).unwrap();
                black_box(value);
                count += 1;
                if count == n {
                    break;
                }
            }
        }
        let elapsed = start.elapsed();
        let _ = ws.close(None).await;
        n as f64 / elapsed.as_secs_f64()
    })
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    xs[xs.len() / 2]
}

/// 1,000 entries, shared or not: connections, bytes per entry, messages/s.
fn run_entries(server: &Server, share: bool, entries: usize, messages: usize) -> (u64, f64, f64) {
    server.reset();
    let stream = json!({"url": format!("ws://{}/", server.ws), "filter": {"channel": "{arg}"}, "apply": "append",
        "share": share, "subscribeMessage": {"type": "subscribe", "channel": "{arg}"}, "heartbeat": null});
    let config = Config::from_value(&json!({"keepUnusedDataFor": 0, "endpoints": {"feed": {"stream": stream}}})).unwrap();
    let client = Client::with_options(config, Hooks::new(), ClientOptions { worker_threads: 2, ..Default::default() }).unwrap();
    let per_entry = (messages / entries) as u64;
    let probe = Probe::new(per_entry, entries);
    let before = LIVE.load(Ordering::Relaxed);
    let subs: Vec<_> = (0..entries).map(|i| client.subscribe("feed", Some(json!(format!("c{i}"))), probe.callback()).unwrap()).collect();
    wait("every entry subscribed", || server.subscribed(entries));
    wait("every stream open", || subs.iter().all(|s| s.snapshot().unwrap().stream.state == livecache_core::StreamState::Open));
    let bytes = LIVE.load(Ordering::Relaxed).saturating_sub(before) as f64 / entries as f64;
    let connections = client.stats().unwrap().connections;
    let start = Instant::now();
    server.flood(messages, |i| format!("c{}", i % entries));
    let end = probe.wait();
    let rate = messages as f64 / (end - start).as_secs_f64();
    drop(subs);
    client.close();
    (connections, bytes, rate)
}

/// Live heap bytes per entry for entries without a stream: what the stream adds is the rest.
fn bytes_without_stream(entries: usize) -> f64 {
    let config = Config::from_value(&json!({"endpoints": {"feed": {"stream": {"apply": "append"}}}})).unwrap();
    let client = Client::with_options(config, Hooks::new(), ClientOptions { worker_threads: 2, ..Default::default() }).unwrap();
    let before = LIVE.load(Ordering::Relaxed);
    let subs: Vec<_> = (0..entries).map(|i| client.subscribe("feed", Some(json!(format!("c{i}"))), |_| {}).unwrap()).collect();
    let bytes = LIVE.load(Ordering::Relaxed).saturating_sub(before) as f64 / entries as f64;
    drop(subs);
    client.close();
    bytes
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let only_entries = std::env::var("TRANSPORTS_ONLY").is_ok_and(|v| v == "entries");
    let (n, rounds) = if quick { (20_000, 3) } else { (100_000, 5) };
    let server = Server::start();
    // Warm-up: connection pools, allocator, page cache.
    run_bare(&server, 2_000);
    run_livecache(&server, Kind::WebSocket, 2_000);
    let rows: [(&str, Option<Kind>); 4] = [
        ("ceiling: tokio-tungstenite + serde_json", None),
        ("livecache WebSocket", Some(Kind::WebSocket)),
        ("livecache SSE (sse-core)", Some(Kind::Sse)),
        ("livecache GraphQL (graphql-transport-ws)", Some(Kind::Graphql)),
    ];
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); rows.len()];
    for _ in 0..if only_entries { 0 } else { rounds } {
        for (i, (_, kind)) in rows.iter().enumerate() {
            let rate = match kind {
                None => run_bare(&server, n),
                Some(k) => run_livecache(&server, *k, n),
            };
            rates[i].push(rate);
        }
    }
    if !only_entries {
        let ceiling = median(rates[0].clone());
        println!("\ntransports: {n} messages to one entry, median of {rounds} rounds");
        println!("| path | messages/s | of the ceiling |");
        println!("|---|---:|---:|");
        for (i, (label, _)) in rows.iter().enumerate() {
            let rate = median(rates[i].clone());
            println!("| {label} | {rate:>12.0} | {:>5.1}% |", 100.0 * rate / ceiling);
        }
    }
    let entries = 1_000;
    let messages = if quick { 10_000 } else { 50_000 };
    println!("\n{entries} entries, one channel each; {messages} messages spread over the channels");
    println!("| sockets | connections | native bytes per entry (data null) | messages/s |");
    println!("|---|---:|---:|---:|");
    println!("| none (pushMessage only, for comparison) | 0 | {:>8.0} | |", bytes_without_stream(entries));
    for (label, share) in [("one shared (share: true)", true), ("one per entry", false)] {
        let (connections, bytes, rate) = run_entries(&server, share, entries, messages);
        println!("| {label} | {connections} | {bytes:>8.0} | {rate:>10.0} |");
    }
    drop(server.runtime);
}
