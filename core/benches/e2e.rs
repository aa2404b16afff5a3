//! End to end on loopback: a server floods chat messages over one WebSocket.
//!
//! - livecache: a `Client` with the built-in stream (filter + `append` with `maxLen: 1000`, so the
//!   document stays bounded), every event delivered to a subscriber callback; messages/s from the
//!   server's first write to the callback that sees the last version.
//! - ceiling, in the same run: a bare tokio-tungstenite read loop that parses each message with
//!   serde_json, timed the same way.
//! - latency: the server paces messages at 10,000/s, each carrying its send time; the callback
//!   (or the bare loop) takes `now - ts` for each message it receives.
//!
//! The floods alternate (ceiling, then each livecache row) round by round, so a machine whose load
//! drifts affects both alike; each rate is the median over the rounds.
//!
//! Prints one table per allocator: glibc's malloc, then (the bench runs itself again with
//! `LIVECACHE_BENCH_ALLOCATOR=mimalloc`) mimalloc, which the Python and Node packages link. The
//! stream thread parses what the engine thread frees, and glibc serialises such frees, so the
//! allocator moves livecache's rate far more than the single-threaded ceiling's.
//!
//! `cargo bench -p livecache-core --bench e2e` (`-- --quick` for a short run;
//! `E2E_PROFILE=livecache|bare` floods one side only, for a profiler; `E2E_WORKERS=n` sets the
//! client's engine worker threads, 2 by default; `LIVECACHE_BENCH_ALLOCATOR` set runs that one
//! allocator only).

#[path = "support/allocator.rs"]
mod allocator;

#[global_allocator]
static ALLOC: allocator::Chosen = allocator::Chosen;

use std::hint::black_box;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use livecache_core::{Client, Config, Event, Hooks, PatchOp};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};

/// The clock both sides share: message timestamps are nanoseconds since this instant.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

fn now_ns() -> u64 {
    EPOCH.elapsed().as_nanos() as u64
}

enum Plan {
    /// Send these frames as fast as the socket takes them.
    Flood(Arc<Vec<Utf8Bytes>>),
    /// Send `n` messages, one every `period`, each stamped with its send time.
    Paced { n: usize, period: Duration },
}

/// A blocking tungstenite server on its own thread: per connection it reports the accept,
/// runs one plan, then reads until the client closes (answering pings and the close handshake).
struct FloodServer {
    addr: SocketAddr,
    plans: mpsc::Sender<Plan>,
    accepted: mpsc::Receiver<()>,
}

impl FloodServer {
    fn start() -> FloodServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (plans, plan_rx) = mpsc::channel::<Plan>();
        let (accepted_tx, accepted) = mpsc::channel();
        std::thread::Builder::new()
            .name("flood-server".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    let Ok(stream) = stream else { continue };
                    stream.set_nodelay(true).unwrap();
                    let Ok(mut socket) = tungstenite::accept(stream) else { continue };
                    accepted_tx.send(()).unwrap();
                    let Ok(plan) = plan_rx.recv() else { return };
                    run_plan(&mut socket, plan);
                    while socket.read().is_ok() {}
                }
            })
            .unwrap();
        FloodServer { addr, plans, accepted }
    }

    fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    fn wait_accepted(&self) {
        self.accepted.recv_timeout(Duration::from_secs(10)).expect("the client connects");
    }
}

fn run_plan(socket: &mut tungstenite::WebSocket<TcpStream>, plan: Plan) {
    match plan {
        Plan::Flood(frames) => {
            // `write` buffers and flushes each time the write buffer fills.
            for frame in frames.iter() {
                socket.write(Message::Text(frame.clone())).unwrap();
            }
            socket.flush().unwrap();
        }
        Plan::Paced { n, period } => {
            let start = Instant::now();
            for i in 0..n {
                let due = start + period * i as u32;
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                socket.send(Message::text(message(i as u64, now_ns()))).unwrap();
            }
        }
    }
}

fn message(id: u64, ts: u64) -> String {
    json!({"id": id, "channel": "bench", "userName": "bot", "text": format!("message number {id} of the flood"), "ts": ts})
        .to_string()
}

fn flood_frames(n: usize) -> Arc<Vec<Utf8Bytes>> {
    Arc::new((0..n as u64).map(|i| Utf8Bytes::from(message(i, 0))).collect())
}

/// The endpoint of each livecache row.
#[derive(Clone, Copy)]
struct Variant {
    label: &'static str,
    max_len: Option<usize>,
    schema: bool,
}

const VARIANTS: [Variant; 3] = [
    Variant { label: "livecache: filter + append maxLen 1000 → callback", max_len: Some(1000), schema: false },
    Variant { label: "livecache: + JSON Schema", max_len: Some(1000), schema: true },
    Variant { label: "livecache: filter + append, no maxLen (unbounded)", max_len: None, schema: false },
];

fn config(url: &str, variant: Variant) -> Config {
    let apply = match variant.max_len {
        Some(n) => json!({"append": {"maxLen": n}}),
        None => json!("append"),
    };
    let mut stream = json!({
        "url": url,
        "filter": {"channel": "{arg}"},
        "apply": apply
    });
    if variant.schema {
        stream["schema"] = json!({"type": "object", "required": ["id", "channel", "text"]});
    }
    // No query: the first message (appended to null) is the initial data, so the measured path is
    // the stream alone.
    Config::from_value(&json!({"endpoints": {"getMessages": {"stream": stream}}})).unwrap()
}

struct Run {
    elapsed: Duration,
    latencies: Vec<u64>,
    overflows: u64,
}

/// What a subscriber callback shares with the bench thread.
#[derive(Default)]
struct Probe {
    version: AtomicU64,
    target: AtomicU64,
    done_at: Mutex<Option<Instant>>,
    /// `Some` when latencies are recorded.
    latencies: Mutex<Option<Vec<u64>>>,
}

impl Probe {
    fn on_event(&self, event: &Event) {
        let version = match event {
            Event::Snapshot { version, .. } => *version,
            Event::Patch { version, patches, .. } => {
                let mut latencies = self.latencies.lock().unwrap();
                if let Some(l) = latencies.as_mut() {
                    let now = now_ns();
                    for op in patches {
                        if let PatchOp::Add { value, .. } = op {
                            if let Some(ts) = value["ts"].as_u64() {
                                l.push(now.saturating_sub(ts));
                            }
                        }
                    }
                }
                *version
            }
            _ => return,
        };
        self.version.store(version, Ordering::Release);
        if version >= self.target.load(Ordering::Acquire) {
            let mut done = self.done_at.lock().unwrap();
            if done.is_none() {
                *done = Some(Instant::now());
            }
        }
    }

    fn wait_done(&self) -> Instant {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(t) = *self.done_at.lock().unwrap() {
                return t;
            }
            assert!(Instant::now() < deadline, "livecache stalled at version {}", self.version.load(Ordering::Acquire));
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

fn run_livecache(server: &FloodServer, plan: Plan, n: usize, variant: Variant, record: bool) -> Run {
    flood_livecache(&server.url(), Some((server, plan)), n, variant, record)
}

/// A livecache flood from `url`: with `server`, timed from its plan's first write; without (an
/// external server that floods as soon as a socket opens), from the subscribe, which connects.
fn flood_livecache(url: &str, server: Option<(&FloodServer, Plan)>, n: usize, variant: Variant, record: bool) -> Run {
    let workers = std::env::var("E2E_WORKERS").ok().and_then(|v| v.parse().ok()).unwrap_or(2);
    let client = Client::with_options(config(url, variant), Hooks::new(), livecache_core::ClientOptions { worker_threads: workers, ..Default::default() }).unwrap();
    let probe = Arc::new(Probe::default());
    probe.target.store(n as u64, Ordering::Release);
    if record {
        *probe.latencies.lock().unwrap() = Some(Vec::with_capacity(n));
    }
    let p = probe.clone();
    let mut start = Instant::now();
    let sub = client.subscribe("getMessages", Some(json!("bench")), move |e| p.on_event(e)).unwrap();
    if let Some((server, plan)) = server {
        server.wait_accepted();
        start = Instant::now();
        server.plans.send(plan).unwrap();
    }
    let end = probe.wait_done();
    let overflows = client.stats().unwrap().queue_overflows;
    drop(sub);
    client.close();
    let latencies = probe.latencies.lock().unwrap().take().unwrap_or_default();
    Run { elapsed: end - start, latencies, overflows }
}

/// The ceiling: the same socket read by a bare tokio-tungstenite loop, each message parsed.
fn run_bare(server: &FloodServer, plan: Plan, n: usize, record: bool) -> Run {
    flood_bare(&server.url(), Some((server, plan)), n, record)
}

/// A bare flood from `url`, timed as `flood_livecache` times it.
fn flood_bare(url: &str, server: Option<(&FloodServer, Plan)>, n: usize, record: bool) -> Run {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut start = Instant::now();
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        if let Some((server, plan)) = server {
            server.wait_accepted();
            start = Instant::now();
            server.plans.send(plan).unwrap();
        }
        let mut latencies = Vec::with_capacity(if record { n } else { 0 });
        let mut count = 0;
        while let Some(frame) = ws.next().await {
            if let Message::Text(text) = frame.unwrap() {
                let value: Value = serde_json::from_str(text.as_str()).unwrap();
                if record {
                    latencies.push(now_ns().saturating_sub(value["ts"].as_u64().unwrap()));
                }
                black_box(value);
                count += 1;
                if count == n {
                    break;
                }
            }
        }
        let elapsed = start.elapsed();
        let _ = ws.close(None).await;
        Run { elapsed, latencies, overflows: 0 }
    })
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    xs[xs.len() / 2]
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

fn latency_row(run: &Run, warmup: usize) -> (f64, f64, f64) {
    let mut l: Vec<u64> = run.latencies.iter().skip(warmup).copied().collect();
    l.sort_unstable();
    (percentile(&l, 0.50), percentile(&l, 0.99), percentile(&l, 1.0))
}

fn main() {
    // `cargo bench` passes `--bench`; `--quick` shortens the run.
    let quick = std::env::args().any(|a| a == "--quick");
    let (n, reps, paced_n) = if quick { (50_000, 1, 5_000) } else { (300_000, 5, 30_000) };
    let warmup = paced_n / 10;
    LazyLock::force(&EPOCH);
    // For the Node and Python flood benches: `E2E_EXTERNAL=ws://…/N` floods N messages from their
    // server (`livecache-flood`) into the first livecache row and the bare loop, once each, and
    // prints `{"livecache": msg/s, "bare": msg/s, "allocator": name}` (one run, on the allocator
    // `LIVECACHE_BENCH_ALLOCATOR` chooses).
    if let Ok(url) = std::env::var("E2E_EXTERNAL") {
        let n: usize = url.rsplit('/').next().and_then(|n| n.parse().ok()).expect("E2E_EXTERNAL ends in /N");
        let lc = flood_livecache(&url, None, n, VARIANTS[0], false);
        let bare = flood_bare(&url, None, n, false);
        let rate = |r: &Run| n as f64 / r.elapsed.as_secs_f64();
        println!("{}", json!({"livecache": rate(&lc), "bare": rate(&bare), "allocator": allocator::name()}));
        return;
    }
    let server = FloodServer::start();
    let frames = flood_frames(n);
    let bytes: usize = frames.iter().map(|f| f.len()).sum();

    // For profilers: `E2E_PROFILE=livecache|bare` floods with one side only and prints its rate
    // (`E2E_VARIANT=i` picks the livecache row).
    if let Ok(side) = std::env::var("E2E_PROFILE") {
        for _ in 0..reps {
            let r = match side.as_str() {
                "bare" => run_bare(&server, Plan::Flood(frames.clone()), n, false),
                _ => {
                    let v = std::env::var("E2E_VARIANT").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
                    run_livecache(&server, Plan::Flood(frames.clone()), n, VARIANTS[v], false)
                }
            };
            println!("{side}: {:.0} msg/s", n as f64 / r.elapsed.as_secs_f64());
        }
        return;
    }
    let mut bare = Vec::new();
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); VARIANTS.len()];
    let mut overflows = 0;
    let mut round_ratios = Vec::new();
    for _ in 0..reps {
        let r = run_bare(&server, Plan::Flood(frames.clone()), n, false);
        let bare_round = n as f64 / r.elapsed.as_secs_f64();
        bare.push(bare_round);
        for (variant, rates) in VARIANTS.iter().zip(rates.iter_mut()) {
            let r = run_livecache(&server, Plan::Flood(frames.clone()), n, *variant, false);
            overflows += r.overflows;
            rates.push(n as f64 / r.elapsed.as_secs_f64());
        }
        round_ratios.push(rates[0].last().unwrap() / bare_round);
    }
    let period = Duration::from_micros(100); // 10,000 msg/s
    let paced_lc = run_livecache(&server, Plan::Paced { n: paced_n, period }, paced_n, VARIANTS[0], true);
    let paced_bare = run_bare(&server, Plan::Paced { n: paced_n, period }, paced_n, true);

    let bare_rate = median(bare);
    let rates: Vec<f64> = rates.into_iter().map(median).collect();
    let (p50, p99, max) = latency_row(&paced_lc, warmup);
    let (bp50, bp99, bmax) = latency_row(&paced_bare, warmup);
    println!();
    println!(
        "e2e over loopback WebSocket, {}: {n} messages of ~{} bytes per flood, median of {reps}; latency at 10,000 msg/s over {paced_n} messages (first {warmup} skipped)",
        allocator::name(),
        bytes / n
    );
    println!("| {:<52} | {:>12} | {:>10} | {:>9} | {:>9} | {:>9} |", "", "msg/s", "of ceiling", "p50 µs", "p99 µs", "max µs");
    println!("|{:-<54}|{:->14}|{:->12}|{:->11}|{:->11}|{:->11}|", "", "", "", "", "", "");
    for (i, (variant, rate)) in VARIANTS.iter().zip(&rates).enumerate() {
        let pct = format!("{:.0}%", 100.0 * rate / bare_rate);
        if i == 0 {
            println!("| {:<52} | {rate:>12.0} | {pct:>10} | {p50:>9.1} | {p99:>9.1} | {max:>9.1} |", variant.label);
        } else {
            println!("| {:<52} | {rate:>12.0} | {pct:>10} | {:>9} | {:>9} | {:>9} |", variant.label, "", "", "");
        }
    }
    println!(
        "| {:<52} | {:>12.0} | {:>10} | {:>9.1} | {:>9.1} | {:>9.1} |",
        "ceiling: tokio-tungstenite read + serde_json parse", bare_rate, "100%", bp50, bp99, bmax
    );
    println!();
    println!(
        "livecache / ceiling: {:.2} (median of the per-round ratios: {:.2}); queue overflows during the floods: {overflows}",
        rates[0] / bare_rate,
        median(round_ratios)
    );
    drop(server);
    if std::env::var_os("LIVECACHE_BENCH_ALLOCATOR").is_none() {
        // The same bench on mimalloc, in a process of its own (the allocator is chosen before
        // `main`).
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            // The same arguments (`--quick`, `--bench`), without the program name.
            .args(std::env::args_os().skip(1))
            .env("LIVECACHE_BENCH_ALLOCATOR", "mimalloc")
            .status()
            .unwrap();
        assert!(status.success(), "the mimalloc run failed: {status}");
    }
}
