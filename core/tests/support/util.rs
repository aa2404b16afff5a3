//! Helpers shared by the rule tests: a recording subscriber, a host-controlled `queryFn`, and
//! waiting on the engine without fixed sleeps (every wait polls a condition up to `TIMEOUT`).
#![allow(dead_code)]

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use livecache_core::{Client, Config, EndpointHooks, Event, Hooks};
use parking_lot::{Condvar, Mutex};
use serde_json::{json, Value};
use tokio::sync::oneshot;

pub const TIMEOUT: Duration = Duration::from_secs(10);

pub fn client(config: Value, hooks: Hooks) -> Client {
    Client::new(Config::from_value(&config).expect("config"), hooks).expect("client")
}

/// Polls `f` until it returns `Some`; panics with `what` after `TIMEOUT`.
pub fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

pub fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    wait_for(what, || f().then_some(()))
}

/// Runs a future to completion on a throwaway runtime, failing after `TIMEOUT`.
pub fn block_on<F: Future>(f: F) -> F::Output {
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    rt.block_on(async { tokio::time::timeout(TIMEOUT, f).await.expect("future timed out") })
}

/// Polls a future once, without waiting.
pub fn poll_once<F: Future + Unpin>(f: &mut F) -> std::task::Poll<F::Output> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    std::pin::Pin::new(f).poll(&mut cx)
}

/// Everything one subscriber received, plus its replica of the data (E1).
#[derive(Default)]
pub struct Seen {
    pub events: Vec<Event>,
    pub data: Option<Value>,
    pub version: u64,
    /// Replay failures (a panic in a callback would only be reported, so they are kept here).
    pub problems: Vec<String>,
}

#[derive(Clone, Default)]
pub struct Recorder(pub Arc<(Mutex<Seen>, Condvar)>);

impl Recorder {
    /// The `stream` events seen: each state and its error.
    pub fn stream_states(&self) -> Vec<(livecache_core::StreamState, Option<String>)> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Stream { state, error, .. } => Some((state, error)),
                _ => None,
            })
            .collect()
    }

    /// Waits for a `reconnecting` and then an `open` stream event after the first `skip` stream
    /// events; returns the `reconnecting` event's error.
    pub fn wait_reconnected_after(&self, skip: usize) -> Option<String> {
        use livecache_core::StreamState::{Open, Reconnecting};
        wait_for("stream events reconnecting, then open", || {
            let states = self.stream_states();
            let later = states.get(skip..)?;
            let r = later.iter().position(|(s, _)| *s == Reconnecting)?;
            later[r..].iter().any(|(s, _)| *s == Open).then(|| later[r].1.clone())
        })
    }

    pub fn record(&self, event: &Event) {
        let mut seen = self.0 .0.lock();
        match event {
            Event::Snapshot { data, version, .. } => {
                seen.data = Some(data.clone());
                seen.version = *version;
            }
            Event::Patch { from, version, patches, .. } => {
                if *from != seen.version {
                    let p = format!("patch from {from} but the replica is at {}", seen.version);
                    seen.problems.push(p);
                }
                let ops: json_patch::Patch = serde_json::from_value(serde_json::to_value(patches).unwrap()).unwrap();
                let applied = match seen.data.as_mut() {
                    Some(d) => json_patch::patch(d, &ops).map_err(|e| e.to_string()),
                    None => Err("a patch before any snapshot".into()),
                };
                if let Err(e) = applied {
                    seen.problems.push(e);
                }
                seen.version = *version;
            }
            _ => {}
        }
        seen.events.push(event.clone());
        self.0 .1.notify_all();
    }

    /// A callback that records into this recorder.
    pub fn callback(&self) -> impl Fn(&Event) + Send + Sync + 'static {
        let me = self.clone();
        move |e: &Event| me.record(e)
    }

    /// Asserts the replica replayed cleanly and equals `data` at `version`.
    pub fn assert_replica(&self, data: &Value, version: u64) {
        let seen = self.0 .0.lock();
        assert!(seen.problems.is_empty(), "replay problems: {:?}", seen.problems);
        assert_eq!(seen.version, version, "replica version");
        assert_eq!(seen.data.as_ref(), Some(data), "replica data");
    }

    pub fn version(&self) -> u64 {
        self.0 .0.lock().version
    }

    pub fn data(&self) -> Option<Value> {
        self.0 .0.lock().data.clone()
    }

    pub fn types(&self) -> Vec<&'static str> {
        self.0 .0.lock().events.iter().map(Event::type_name).collect()
    }

    pub fn events(&self) -> Vec<Event> {
        self.0 .0.lock().events.clone()
    }

    pub fn count(&self) -> usize {
        self.0 .0.lock().events.len()
    }

    pub fn wait_version(&self, version: u64) {
        wait_until(&format!("replica at version {version}"), || self.version() >= version);
    }

    pub fn wait_type(&self, t: &str) {
        wait_until(&format!("a {t} event"), || self.types().contains(&t));
    }
}

type Answer = oneshot::Sender<Result<Value, Value>>;
/// Calls not answered yet: the arg each was made with, and its answer channel.
type Calls = Arc<Mutex<VecDeque<(Option<Value>, Answer)>>>;

/// A `queryFn` the test answers call by call (oldest first).
#[derive(Clone, Default)]
pub struct ManualQuery {
    calls: Calls,
    made: Arc<std::sync::atomic::AtomicUsize>,
}

impl ManualQuery {
    pub fn hooks(&self) -> EndpointHooks {
        let me = self.clone();
        EndpointHooks::default().query_fn_async(move |arg| {
            let (tx, rx) = oneshot::channel();
            me.calls.lock().push_back((arg, tx));
            me.made.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move { rx.await.unwrap_or_else(|_| Err(json!({"status": "CUSTOM_ERROR", "error": "dropped"}))) }
        })
    }

    pub fn calls_made(&self) -> usize {
        self.made.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn next(&self) -> Answer {
        wait_for("a pending query call", || self.calls.lock().pop_front()).1
    }

    pub fn resolve(&self, data: Value) {
        let _ = self.next().send(Ok(data));
    }

    pub fn reject(&self, error: Value) {
        let _ = self.next().send(Err(error));
    }
}
