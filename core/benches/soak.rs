//! Soak run (not part of the test command): a `Client` with 1,000 entries, half on one shared
//! WebSocket (T3: subscribe frames on `/ws/lobby`, resumed from the last id after a drop, T6),
//! half on a socket each (`/ws/{channel}`, resynced by a refetch after a drop, L8), for
//! ten minutes against the chat server, which posts 5,000 messages/s spread over the entries'
//! channels and drops every socket every 5 s (each drop: every connection reconnects, every
//! entry resumes or resyncs). Meanwhile 20 mutations/s post through optimistic layers (W3) that the
//! echoes confirm. The chat server runs in a child process (this program, started again), so the
//! resident memory measured is the client's alone.
//!
//! Each message carries its channel's sequence number and its send time. The subscriber
//! callbacks mark every sequence number they see (in a patch or in a snapshot) and take the
//! latency of its first sighting. At the end the server stops, every entry must equal the
//! server's data, every mutation must have settled with no layer left, and a message is lost when
//! its sequence number never reached its entry's callback.
//!
//! `cargo bench -p livecache-core --bench soak -- [--seconds 600] [--entries 1000] [--rate 5000]
//! [--drop-every 5] [--mutations 20]`. Prints a line every 10 s and a table at the end; exits
//! non-zero when a message was lost, an entry differs from the server, or memory grew by 10 MiB
//! or more between the end of the warm-up (the first 60 s, while every entry's data fills up to its
//! `maxLen`) and the end. A counting allocator gives the live heap beside the RSS (growth in the
//! RSS alone is the allocator's, not livecache's). `LIVECACHE_BENCH_ALLOCATOR=mimalloc` runs it on
//! mimalloc, the allocator the Python and Node packages link, instead of glibc's malloc.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use livecache_chat_server::ChatServer;
use livecache_core::{Client, Config, Event, Hooks, PatchOp, Status, StreamState};
use serde_json::{json, Value};

#[path = "support/counting.rs"]
mod counting;

const ROLE: &str = "LIVECACHE_SOAK_SERVER";
/// Messages each channel keeps on the server and in the entry (`maxLen`).
const KEEP: usize = 100;
const WARM_UP: Duration = Duration::from_secs(60);
/// Latency histogram: 10 µs buckets up to 2 s, then one overflow bucket.
const BUCKET_NS: u64 = 10_000;
const BUCKETS: usize = 200_000;

struct Args {
    seconds: u64,
    entries: usize,
    rate: u64,
    drop_every: u64,
    mutations: u64,
}

fn args() -> Args {
    let mut a = Args { seconds: 600, entries: 1000, rate: 5000, drop_every: 5, mutations: 20 };
    // The program's own name is not an argument.
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let value = || argv.get(i + 1).and_then(|v| v.parse::<u64>().ok()).unwrap_or_else(|| panic!("{} takes a number", argv[i]));
        match argv[i].as_str() {
            "--seconds" => a.seconds = value(),
            "--entries" => a.entries = value() as usize,
            "--rate" => a.rate = value(),
            "--drop-every" => a.drop_every = value(),
            "--mutations" => a.mutations = value(),
            // cargo bench passes --bench; other harness flags are ignored.
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    a
}

fn unix_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64
}

fn channels(entries: usize) -> Vec<(&'static str, String)> {
    (0..entries).map(|i| if i % 2 == 0 { ("shared", format!("s{i}")) } else { ("own", format!("o{i}")) }).collect()
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}

/// The RSS after the allocator gave back the free memory it keeps: what the process holds, not
/// what its allocator retained after a peak.
fn rss_trimmed() -> u64 {
    counting::trim();
    rss_bytes()
}

fn mib(b: u64) -> f64 {
    b as f64 / 1048576.0
}

// ---------------------------------------------------------------------------------------------
// The server process

/// Serves the chat, posts `rate` messages/s round-robin over the channels (text: "seq sent_ns"),
/// drops every socket every `drop_every` s. Commands on stdin: `go`, then `stop` (it answers
/// `POSTED channel n` per channel, then `DONE`). Exits when stdin closes.
fn server_main() {
    let a = args();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let server = Arc::new(runtime.block_on(ChatServer::start()));
    server.set_history_limit(Some(KEEP));
    println!("PORT {}", server.addr().port());
    let names: Vec<String> = channels(a.entries).into_iter().map(|(_, c)| c).collect();
    let running = Arc::new(AtomicBool::new(false));
    let posted: Arc<Mutex<Vec<u64>>> = Arc::new(Mutex::new(vec![0; names.len()]));
    {
        let (server, running, posted, names) = (server.clone(), running.clone(), posted.clone(), names.clone());
        runtime.spawn(async move {
            // Every 10 ms, the posts due by then: the rate holds whatever a tick's posts cost.
            let start = tokio::time::Instant::now();
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            let mut sent = 0u64;
            let mut next = 0usize;
            loop {
                tick.tick().await;
                if !running.load(Ordering::SeqCst) {
                    continue;
                }
                let due = (start.elapsed().as_secs_f64() * a.rate as f64) as u64;
                let mut counts = posted.lock().unwrap();
                while sent < due && running.load(Ordering::SeqCst) {
                    counts[next] += 1;
                    server.post(&names[next], "soak", &format!("{} {}", counts[next], unix_ns()));
                    next = (next + 1) % names.len();
                    sent += 1;
                }
            }
        });
    }
    if a.drop_every > 0 {
        let (server, running) = (server.clone(), running.clone());
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(a.drop_every));
            tick.tick().await;
            loop {
                tick.tick().await;
                if running.load(Ordering::SeqCst) {
                    server.drop_all_sockets();
                }
            }
        });
    }
    let mut out = std::io::stdout();
    out.flush().unwrap();
    for line in std::io::stdin().lock().lines() {
        match line.unwrap_or_default().trim() {
            "go" => running.store(true, Ordering::SeqCst),
            "stop" => {
                running.store(false, Ordering::SeqCst);
                let counts = posted.lock().unwrap();
                for (name, n) in names.iter().zip(counts.iter()) {
                    writeln!(out, "POSTED {name} {n}").unwrap();
                }
                writeln!(out, "DONE").unwrap();
                out.flush().unwrap();
            }
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The client process

/// What one entry's callback saw: a bit per sequence number.
struct Seen {
    bits: Vec<u64>,
    distinct: u64,
}

impl Seen {
    fn with_capacity(seqs: u64) -> Seen {
        Seen { bits: vec![0; (seqs / 64 + 2) as usize], distinct: 0 }
    }

    /// Marks `seq`; true the first time.
    fn mark(&mut self, seq: u64) -> bool {
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if word >= self.bits.len() {
            self.bits.resize(word + 1, 0);
        }
        let first = self.bits[word] & (1 << bit) == 0;
        if first {
            self.bits[word] |= 1 << bit;
            self.distinct += 1;
        }
        first
    }
}

struct Tracker {
    seen: Vec<Mutex<Seen>>,
    histogram: Vec<AtomicU64>,
    sightings: AtomicU64,
}

impl Tracker {
    fn observe(&self, entry: usize, message: &Value) {
        let Some((seq, sent)) = message["text"].as_str().and_then(|t| t.split_once(' ')) else { return };
        let (Ok(seq), Ok(sent)) = (seq.parse::<u64>(), sent.parse::<u64>()) else { return };
        if self.seen[entry].lock().unwrap().mark(seq) {
            let bucket = ((unix_ns().saturating_sub(sent) / BUCKET_NS) as usize).min(BUCKETS);
            self.histogram[bucket].fetch_add(1, Ordering::Relaxed);
            self.sightings.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn on_event(&self, entry: usize, event: &Event) {
        match event {
            Event::Snapshot { data: Value::Array(messages), .. } => messages.iter().for_each(|m| self.observe(entry, m)),
            Event::Patch { patches, .. } => {
                for op in patches {
                    if let PatchOp::Add { value, .. } | PatchOp::Replace { value, .. } = op {
                        self.observe(entry, value);
                    }
                }
            }
            _ => {}
        }
    }

    /// The latency below which `q` of the first sightings fall, in µs.
    fn quantile_us(&self, q: f64) -> f64 {
        let counts: Vec<u64> = self.histogram.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        let target = (total as f64 * q).ceil() as u64;
        let mut acc = 0;
        for (i, c) in counts.iter().enumerate() {
            acc += c;
            if acc >= target.max(1) {
                return ((i as u64 + 1) * BUCKET_NS) as f64 / 1000.0;
            }
        }
        f64::INFINITY
    }
}

fn config(port: u16) -> Value {
    let append = json!({"append": {"dedupeBy": "id", "maxLen": KEEP}});
    let reconnect = json!({"initialDelayMs": 50, "maxDelayMs": 1000});
    let post = |endpoint: &str| {
        json!({
            "mutation": {"url": "messages/{arg.channel}", "body": {"userName": "writer", "text": "{arg.text}"}},
            "optimistic": [{"endpoint": endpoint, "arg": "{arg.channel}",
                            "message": {"id": "local", "userName": "writer", "text": "{arg.text}", "pending": true}}],
            "confirm": {"userName": "writer", "text": "{arg.text}"}
        })
    };
    json!({
        "baseUrl": format!("http://127.0.0.1:{port}/"),
        "endpoints": {
            // The shared socket resumes (T6): its subscribe frame carries the last id seen, and
            // the server replays what came after it. Without it a resync could read the messages
            // before the server had read the subscribe frame, and a message posted in between
            // would reach neither (the protocol has no acknowledgement to wait for).
            "shared": {"query": "messages/{arg}", "stream": {
                "url": format!("ws://127.0.0.1:{port}/ws/lobby"), "share": true,
                "subscribeMessage": {"type": "subscribe", "channel": "{arg}", "after": "{cursor}"},
                "resume": {"cursor": "/id"},
                "unsubscribeMessage": {"type": "unsubscribe", "channel": "{arg}"},
                "filter": {"channel": "{arg}"}, "apply": append, "reconnect": reconnect}},
            "own": {"query": "messages/{arg}", "stream": {
                "url": format!("ws://127.0.0.1:{port}/ws/{{arg}}"), "apply": append, "reconnect": reconnect}},
            "postShared": post("shared"),
            "postOwn": post("own"),
        }
    })
}

/// `GET /messages/{channel}` on the server, straight (the truth the entries must equal).
fn server_messages(port: u16, channel: &str) -> Value {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET /messages/{channel} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("null");
    serde_json::from_str(body).unwrap_or(Value::Null)
}

fn main() -> ExitCode {
    if std::env::var_os(ROLE).is_some() {
        server_main();
        return ExitCode::SUCCESS;
    }
    let a = args();
    let mut child = Command::new(std::env::current_exe().unwrap())
        // The server process gets the same arguments (its rate, channels and drops), not the name.
        .args(std::env::args().skip(1))
        .env(ROLE, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the server process");
    let mut to_server = child.stdin.take().unwrap();
    let mut from_server = BufReader::new(child.stdout.take().unwrap()).lines();
    let port: u16 = from_server.next().unwrap().unwrap().strip_prefix("PORT ").unwrap().parse().unwrap();

    let rss_empty = rss_bytes();
    let client = Client::new(Config::from_value(&config(port)).unwrap(), Hooks::new()).unwrap();
    let names = channels(a.entries);
    let per_channel = a.seconds * a.rate / a.entries as u64 + 64;
    let tracker = Arc::new(Tracker {
        seen: (0..a.entries).map(|_| Mutex::new(Seen::with_capacity(per_channel))).collect(),
        histogram: (0..=BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        sightings: AtomicU64::new(0),
    });
    let subs: Vec<_> = names
        .iter()
        .enumerate()
        .map(|(i, (endpoint, channel))| {
            let t = tracker.clone();
            client.subscribe(endpoint, Some(json!(channel)), move |e| t.on_event(i, e)).unwrap()
        })
        .collect();
    let ready = Instant::now();
    while !subs.iter().all(|s| s.snapshot().is_ok_and(|st| st.status == Status::Fulfilled && st.stream.state == StreamState::Open)) {
        assert!(ready.elapsed() < Duration::from_secs(60), "the entries did not load and connect within 60 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    let rss_subscribed = rss_bytes();
    println!("{} entries loaded and connected in {:.1} s; RSS {:.1} MiB (client before: {:.1} MiB)", a.entries, ready.elapsed().as_secs_f64(), mib(rss_subscribed), mib(rss_empty));

    writeln!(to_server, "go").unwrap();
    let start = Instant::now();
    let mutations_ok = Arc::new(AtomicU64::new(0));
    let mutations_failed = Arc::new(AtomicU64::new(0));
    let mut mutations_sent = 0u64;
    let mut rss_start = None;
    let mut heap_start = None;
    let mut trimmed_start = None;
    // Halfway through: once the allocator has reached its high-water mark, the RSS from here
    // to the end tells a leak (steady growth) from glibc keeping the pages of a peak (a plateau).
    let mut rss_half = None;
    let mut next_report = Duration::from_secs(10);
    let period = if a.mutations > 0 { Duration::from_secs_f64(1.0 / a.mutations as f64) } else { Duration::from_secs(3600) };
    let mut next_mutation = Duration::ZERO;
    while start.elapsed() < Duration::from_secs(a.seconds) {
        let now = start.elapsed();
        if now >= next_mutation && a.mutations > 0 {
            let (endpoint, channel) = &names[fastrand::usize(..names.len())];
            let endpoint = if *endpoint == "shared" { "postShared" } else { "postOwn" };
            let (ok, failed) = (mutations_ok.clone(), mutations_failed.clone());
            client.mutate(endpoint, Some(json!({"channel": channel, "text": format!("m{mutations_sent}")}))).on_done(move |r| {
                match r {
                    Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                    Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                };
            });
            mutations_sent += 1;
            next_mutation += period;
        }
        if rss_half.is_none() && now >= Duration::from_secs(a.seconds / 2) {
            // Before the warm-up's trim below, which would shrink it when both fall due.
            rss_half = Some(rss_bytes());
        }
        if rss_start.is_none() && now >= WARM_UP {
            rss_start = Some(rss_bytes());
            heap_start = Some(counting::live());
            trimmed_start = Some(rss_trimmed());
        }
        if now >= next_report {
            let st = client.stats().unwrap();
            println!(
                "t={:>4}s  RSS {:>6.1} MiB  heap {:>6.1} MiB  messages seen {:>9}  reconnects {:>6}  fetches {:>6}  overflows {}  mutations {}/{} ok  p99 {:.0} µs",
                now.as_secs(),
                mib(rss_bytes()),
                mib(counting::live().max(0) as u64),
                tracker.sightings.load(Ordering::Relaxed),
                st.reconnects,
                st.fetches,
                st.queue_overflows,
                mutations_ok.load(Ordering::Relaxed),
                mutations_sent,
                tracker.quantile_us(0.99)
            );
            next_report += Duration::from_secs(10);
        }
        std::thread::sleep(Duration::from_millis(5).min(period));
    }
    let rss_end = rss_bytes();
    let heap_end = counting::live();
    let trimmed_end = rss_trimmed();

    // The end: the server stops; every entry must come to equal it, every mutation settle.
    writeln!(to_server, "stop").unwrap();
    let mut posted = HashMap::new();
    for line in from_server.by_ref() {
        let line = line.unwrap();
        if line == "DONE" {
            break;
        }
        if let Some(rest) = line.strip_prefix("POSTED ") {
            let (name, n) = rest.split_once(' ').unwrap();
            posted.insert(name.to_owned(), n.parse::<u64>().unwrap());
        }
    }
    let settle = Instant::now();
    let mut differing = a.entries;
    while settle.elapsed() < Duration::from_secs(60) {
        let settled = mutations_ok.load(Ordering::Relaxed) + mutations_failed.load(Ordering::Relaxed) == mutations_sent;
        differing = names
            .iter()
            .zip(&subs)
            .filter(|((_, channel), sub)| sub.snapshot().map_or(true, |s| s.optimistic > 0 || s.data != server_messages(port, channel)))
            .count();
        if differing == 0 && settled {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // What differs, for the first few entries that do: the ids each side has that the other lacks.
    let ids = |v: &Value| -> Vec<Value> { v.as_array().map(|a| a.iter().map(|m| m["id"].clone()).collect()).unwrap_or_default() };
    for ((endpoint, channel), sub) in names.iter().zip(&subs).filter(|((_, c), sub)| sub.snapshot().map_or(true, |s| s.data != server_messages(port, c))).take(5) {
        let (mine, truth) = (sub.snapshot().map(|s| ids(&s.data)).unwrap_or_default(), ids(&server_messages(port, channel)));
        let missing: Vec<_> = truth.iter().filter(|i| !mine.contains(i)).collect();
        let extra: Vec<_> = mine.iter().filter(|i| !truth.contains(i)).collect();
        println!("differs: {endpoint}({channel}): {} messages against the server's {}, missing {missing:?}, extra {extra:?}", mine.len(), truth.len());
    }
    let lost_by: HashMap<&str, u64> = names.iter().enumerate().fold(HashMap::new(), |mut m, (i, (endpoint, channel))| {
        *m.entry(*endpoint).or_default() += posted.get(channel).copied().unwrap_or(0).saturating_sub(tracker.seen[i].lock().unwrap().distinct);
        m
    });
    println!("lost by endpoint: {lost_by:?}");
    let total_posted: u64 = posted.values().sum();
    let lost: u64 = names
        .iter()
        .enumerate()
        .map(|(i, (_, channel))| posted.get(channel).copied().unwrap_or(0).saturating_sub(tracker.seen[i].lock().unwrap().distinct))
        .sum();
    let st = client.stats().unwrap();
    drop(subs);
    drop(to_server);
    let _ = child.wait();

    let rss_start = rss_start.unwrap_or(rss_subscribed);
    let growth = rss_end as i64 - rss_start as i64;
    println!();
    println!("| soak: {} s, {} entries ({} shared, {} own sockets), {} msg/s, drop every {} s, {} | |", a.seconds, a.entries, a.entries.div_ceil(2), a.entries / 2, a.rate, a.drop_every, counting::allocator());
    println!("|---|---:|");
    println!("| messages posted | {total_posted} |");
    println!("| messages lost (never reached their callback) | {lost} |");
    println!("| entries differing from the server at the end | {differing} |");
    println!("| reconnects / fetches / resumes / queue overflows | {} / {} / {} / {} |", st.reconnects, st.fetches, st.resumes, st.queue_overflows);
    println!("| mutations sent / ok / failed | {mutations_sent} / {} / {} |", mutations_ok.load(Ordering::Relaxed), mutations_failed.load(Ordering::Relaxed));
    println!("| RSS after subscribing, MiB | {:.1} |", mib(rss_subscribed));
    println!("| RSS at {} s (start), MiB | {:.1} |", WARM_UP.as_secs(), mib(rss_start));
    println!("| RSS at the end, MiB | {:.1} |", mib(rss_end));
    println!("| RSS growth start → end, MiB | {:.1} |", growth as f64 / 1048576.0);
    let rss_half = rss_half.unwrap_or(rss_end);
    println!("| RSS at {} s (half time) → end, MiB | {:.1} → {:.1} |", a.seconds / 2, mib(rss_half), mib(rss_end));
    let heap_start = heap_start.unwrap_or(heap_end);
    let trimmed_start = trimmed_start.unwrap_or(trimmed_end);
    println!("| RSS after the allocator's trim at {} s / at the end, MiB | {:.1} / {:.1} |", WARM_UP.as_secs(), mib(trimmed_start), mib(trimmed_end));
    println!("| live heap at {} s / at the end, MiB | {:.1} / {:.1} |", WARM_UP.as_secs(), mib(heap_start.max(0) as u64), mib(heap_end.max(0) as u64));
    println!("| latency, first sighting: p50 / p99 / p99.9, µs | {:.0} / {:.0} / {:.0} |", tracker.quantile_us(0.5), tracker.quantile_us(0.99), tracker.quantile_us(0.999));
    let ok = lost == 0 && differing == 0 && growth < 10 * 1024 * 1024;
    println!("soak: {}", if ok { "passed" } else { "FAILED" });
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
