//! Runs every shared scenario of `tests/scenarios/` (see its README) against the Rust API.
//! Events are replayed with the `json-patch` crate, an implementation independent of ours.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use livecache_core::hooks::MessageUpdate;
use livecache_core::{Client, ClientOptions, Clock, Config, EndpointHooks, Error, Event, HostUpdate, Hooks, RawMessage, Subscription};
use parking_lot::{Condvar, Mutex};
use serde_json::{json, Value};
use tokio::sync::oneshot;

const TIMEOUT: Duration = Duration::from_secs(10);

fn scenario_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/scenarios")
}

/// Every call of a `manual` queryFn, per cache key, in the order the engine made them; an
/// answered call leaves `None` behind so calls keep their numbers.
type Pending = Arc<Mutex<HashMap<String, Vec<Option<oneshot::Sender<Result<Value, Value>>>>>>>;

/// What one subscriber saw, replayed with an independent RFC 6902 implementation.
#[derive(Default)]
struct Recorder {
    events: Vec<Event>,
    data: Option<Value>,
    version: u64,
    problems: Vec<String>,
}

impl Recorder {
    fn record(&mut self, event: &Event) {
        match event {
            Event::Snapshot { data, version, .. } => {
                self.data = Some(data.clone());
                self.version = *version;
            }
            Event::Patch { from, version, patches, .. } => {
                if *from != self.version {
                    self.problems.push(format!("patch from {from} but replica is at {}", self.version));
                }
                if from >= version {
                    self.problems.push(format!("patch from {from} to {version}"));
                }
                for p in patches {
                    if p.path().is_empty() {
                        self.problems.push("a patch targets the root (E1)".into());
                    }
                }
                let ops: json_patch::Patch = serde_json::from_value(serde_json::to_value(patches).unwrap()).unwrap();
                match self.data.as_mut() {
                    Some(d) => {
                        if let Err(e) = json_patch::patch(d, &ops) {
                            self.problems.push(format!("json-patch could not apply {}: {e}", serde_json::to_string(patches).unwrap()));
                        }
                    }
                    None => self.problems.push("a patch before any snapshot".into()),
                }
                self.version = *version;
            }
            _ => {}
        }
        self.events.push(event.clone());
    }
}

struct Sub {
    sub: Subscription,
    recorder: Arc<(Mutex<Recorder>, Condvar)>,
}

struct Runner {
    client: Client,
    pending: Pending,
    subs: HashMap<String, Sub>,
    last_update: Option<HostUpdate>,
    name: String,
}

fn arg_of(step: &Value) -> Option<Value> {
    step.get("arg").cloned()
}

fn endpoint_of(step: &Value) -> &str {
    step.get("endpoint").and_then(Value::as_str).unwrap_or("")
}

fn build_hooks(spec: Option<&Value>, pending: &Pending) -> Hooks {
    let mut hooks = Hooks::new();
    let Some(spec) = spec.and_then(Value::as_object) else { return hooks };
    for (endpoint, h) in spec {
        let mut eh = EndpointHooks::default();
        match h.get("queryFn") {
            Some(Value::String(s)) if s == "manual" => {
                let pending = pending.clone();
                let ep = endpoint.clone();
                eh = eh.query_fn_async(move |arg: Option<Value>| {
                    let (tx, rx) = oneshot::channel();
                    let key = livecache_core::key::cache_key(&ep, arg.as_ref());
                    pending.lock().entry(key).or_default().push(Some(tx));
                    async move { rx.await.unwrap_or_else(|_| Err(json!({"status": "CUSTOM_ERROR", "error": "dropped"}))) }
                });
            }
            Some(Value::Object(o)) if o.contains_key("data") => {
                let data = o["data"].clone();
                eh = eh.query_fn_sync(move |_| Ok(data.clone()));
            }
            Some(Value::Object(o)) if o.contains_key("error") => {
                let error = o["error"].clone();
                eh = eh.query_fn_sync(move |_| Err(error.clone()));
            }
            Some(other) => panic!("unknown queryFn hook {other}"),
            None => {}
        }
        match h.get("onMessage").and_then(Value::as_str) {
            Some("push") => {
                eh.on_message = Some(Arc::new(|data: Arc<Value>, message: Value, _arg| {
                    let mut draft = match &*data {
                        Value::Null => json!([]),
                        d => d.clone(),
                    };
                    let out = match draft.as_array_mut() {
                        Some(a) => {
                            a.push(message);
                            Ok(MessageUpdate::Data(draft))
                        }
                        None => Err("the data is not an array".to_string()),
                    };
                    Box::pin(std::future::ready(out))
                }));
            }
            Some("throw") => {
                eh = eh.on_message_draft(|_, _, _| Err("boom".into()));
            }
            Some(other) => panic!("unknown onMessage hook {other}"),
            None => {}
        }
        hooks = hooks.endpoint(endpoint, eh);
    }
    hooks
}

fn error_kind(r: &Result<(), Error>) -> Option<&'static str> {
    r.as_ref().err().map(Error::kind)
}

/// JSON equality with numbers compared by value (`1` equals `1.0`).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b)),
        (Value::Object(x), Value::Object(y)) => x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w))),
        _ => a == b,
    }
}

/// `expectSnapshot`: `data` and `error` compare whole, other fields as `subset`.
fn snapshot_matches(expected: &Value, actual: &Value) -> bool {
    let Some(fields) = expected.as_object() else { return false };
    fields.iter().all(|(k, v)| match (k.as_str(), actual.get(k)) {
        ("data" | "error", Some(a)) => json_eq(v, a),
        (_, Some(a)) => subset(v, a),
        (_, None) => false,
    })
}

/// `actual` contains every field of `expected` with an equal value (objects recursively).
fn subset(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => e.iter().all(|(k, v)| a.get(k).is_some_and(|av| subset(v, av))),
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => expected == actual,
    }
}

impl Runner {
    fn check_replicas(&self, context: &str) {
        for (name, s) in &self.subs {
            if !s.sub.is_active() {
                continue;
            }
            let snap = match s.sub.snapshot() {
                Ok(s) => s,
                Err(_) => continue,
            };
            let rec = s.recorder.0.lock();
            assert!(rec.problems.is_empty(), "{}: {context}: subscriber {name}: {:?}", self.name, rec.problems);
            if snap.version > 0 {
                assert_eq!(rec.version, snap.version, "{}: {context}: subscriber {name} version", self.name);
                assert_eq!(rec.data.as_ref(), Some(&snap.data), "{}: {context}: subscriber {name} replica", self.name);
            }
        }
    }

    /// Waits until every active subscriber has seen the engine's current version.
    fn settle(&self) {
        let deadline = Instant::now() + TIMEOUT;
        for (name, s) in &self.subs {
            if !s.sub.is_active() {
                continue;
            }
            loop {
                let target = s.sub.snapshot().map(|st| st.version).unwrap_or(0);
                let (lock, cv) = &*s.recorder;
                let mut rec = lock.lock();
                if rec.version >= target {
                    break;
                }
                assert!(Instant::now() < deadline, "{}: subscriber {name} stuck at version {} (engine {target})", self.name, rec.version);
                cv.wait_for(&mut rec, Duration::from_millis(20));
            }
        }
        // Let events that carry no version (status, stream, error) arrive too.
        std::thread::sleep(Duration::from_millis(30));
    }

    fn run_step(&mut self, step: &Value) {
        let endpoint = endpoint_of(step).to_owned();
        let arg = arg_of(step);
        let expect_error = step.get("expectError").and_then(Value::as_str);
        let result: Result<(), Error> = if let Some(name) = step.get("subscribe").and_then(Value::as_str) {
            let recorder: Arc<(Mutex<Recorder>, Condvar)> = Default::default();
            let r = recorder.clone();
            match self.client.subscribe(&endpoint, arg, move |ev| {
                r.0.lock().record(ev);
                r.1.notify_all();
            }) {
                Ok(sub) => {
                    self.subs.insert(name.to_owned(), Sub { sub, recorder });
                    Ok(())
                }
                Err(e) => Err(e),
            }
        } else if let Some(name) = step.get("unsubscribe").and_then(Value::as_str) {
            self.subs[name].sub.unsubscribe();
            Ok(())
        } else if let Some(message) = step.get("push") {
            self.client.push_message(&endpoint, arg.as_ref(), RawMessage::Value(message.clone()))
        } else if let Some(text) = step.get("pushText").and_then(Value::as_str) {
            self.client.push_message(&endpoint, arg.as_ref(), RawMessage::Text(text.to_owned()))
        } else if step.get("resolveFetch").is_some() || step.get("rejectFetch").is_some() {
            let key = livecache_core::key::cache_key(&endpoint, arg.as_ref());
            let call = step.get("call").and_then(Value::as_u64).map(|n| n as usize);
            let tx = self.wait_for(&format!("a pending query call for {key} (call {call:?})"), || {
                let mut pending = self.pending.lock();
                let calls = pending.get_mut(&key)?;
                match call {
                    // The N-th call ever made, once it exists.
                    Some(n) => calls.get_mut(n.checked_sub(1)?).map(|c| c.take().expect("that call was already answered")),
                    None => calls.iter_mut().find_map(Option::take),
                }
            });
            let answer = match step.get("resolveFetch") {
                Some(d) => Ok(d.clone()),
                None => Err(step["rejectFetch"].clone()),
            };
            let _ = tx.send(answer);
            Ok(())
        } else if let Some(n) = step.get("awaitFetch").and_then(Value::as_u64) {
            let key = livecache_core::key::cache_key(&endpoint, arg.as_ref());
            self.wait_for(&format!("{n} query calls for {key}"), || {
                (self.pending.lock().get(&key).map_or(0, Vec::len) as u64 >= n).then_some(())
            });
            Ok(())
        } else if let Some(patches) = step.get("patchQueryData") {
            self.client.patch_query_data_value(&endpoint, arg.as_ref(), patches).map(|u| self.last_update = Some(u))
        } else if let Some(upd) = step.get("updateQueryData") {
            let path = upd["path"].as_str().unwrap().to_owned();
            let value = upd["value"].clone();
            self.client
                .update_query_data(&endpoint, arg.as_ref(), move |draft| {
                    if path.is_empty() {
                        return Some(value);
                    }
                    let (parent, last) = path.rsplit_once('/').unwrap();
                    match draft.pointer_mut(parent) {
                        Some(Value::Object(m)) => {
                            m.insert(last.replace("~1", "/").replace("~0", "~"), value);
                        }
                        Some(Value::Array(a)) if last == "-" => a.push(value),
                        Some(Value::Array(a)) => {
                            let i: usize = last.parse().unwrap();
                            a[i] = value;
                        }
                        _ => panic!("updateQueryData path {path} has no parent"),
                    }
                    None
                })
                .map(|u| self.last_update = Some(u))
        } else if let Some(data) = step.get("upsertQueryData") {
            self.client.upsert_query_data(&endpoint, arg, data.clone())
        } else if step.get("undoLast").is_some() {
            let last = self.last_update.take().expect("undoLast without a host update");
            last.undo().map(|u| self.last_update = Some(u))
        } else if step.get("refetch").is_some() {
            self.client.refetch(&endpoint, arg.as_ref())
        } else if let Some(ms) = step.get("advance").and_then(Value::as_u64) {
            // Virtual time (the scenario's `"clock": "manual"`): L7's waits without sleeping.
            self.client.advance(Duration::from_millis(ms))
        } else if step.get("settle").is_some() {
            self.settle();
            Ok(())
        } else if step.get("expectSnapshot").is_some()
            || step.get("expectNotFound").is_some()
            || step.get("expectEvents").is_some()
            || step.get("expectStats").is_some()
        {
            self.expect(step, &endpoint, arg.as_ref());
            Ok(())
        } else {
            panic!("{}: unknown step {step}", self.name);
        };
        match (expect_error, error_kind(&result)) {
            (None, None) => {}
            (Some(want), Some(got)) => assert_eq!(want, got, "{}: step {step}", self.name),
            (want, _) => panic!("{}: step {step}: expected error {want:?}, got {result:?}", self.name),
        }
    }

    /// Polls `f` until it gives a value; fails the scenario after `TIMEOUT`.
    fn wait_for<T>(&self, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(v) = f() {
                return v;
            }
            assert!(Instant::now() < deadline, "{}: timed out waiting for {what}", self.name);
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// An expectation holds once the engine has caught up: it is retried (settling each time)
    /// until it holds, and fails only after `TIMEOUT`.
    fn expect(&self, step: &Value, endpoint: &str, arg: Option<&Value>) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            self.settle();
            let outcome = self.check(step, endpoint, arg);
            match outcome {
                Ok(()) => break,
                Err(problem) if Instant::now() >= deadline => panic!("{}: {problem}", self.name),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        if step.get("expectSnapshot").is_some() {
            self.settle();
            self.check_replicas("expectSnapshot");
        }
    }

    fn check(&self, step: &Value, endpoint: &str, arg: Option<&Value>) -> Result<(), String> {
        if let Some(expected) = step.get("expectSnapshot") {
            let snap = self.client.snapshot(endpoint, arg).map_err(|e| format!("snapshot: {e}"))?;
            let actual = serde_json::to_value(&snap).unwrap();
            if !snapshot_matches(expected, &actual) {
                return Err(format!("snapshot\n expected {expected}\n actual   {actual}"));
            }
        } else if step.get("expectNotFound").is_some() {
            match self.client.snapshot(endpoint, arg) {
                Err(Error::NotFound(_)) => {}
                other => return Err(format!("expected NotFound, got {other:?}")),
            }
        } else if let Some(exp) = step.get("expectEvents") {
            self.check_events(exp)?;
        } else if let Some(exp) = step.get("expectStats") {
            let stats = serde_json::to_value(self.client.stats().unwrap()).unwrap();
            if !subset(exp, &stats) {
                return Err(format!("stats\n expected {exp}\n actual   {stats}"));
            }
        }
        Ok(())
    }

    fn check_events(&self, exp: &Value) -> Result<(), String> {
        let name = exp["sub"].as_str().unwrap();
        let rec = self.subs[name].recorder.0.lock();
        let types: Vec<&str> = rec.events.iter().map(Event::type_name).collect();
        if let Some(first) = exp.get("first").and_then(Value::as_str) {
            if types.first().copied() != Some(first) {
                return Err(format!("first event of {name} is not {first}: {types:?}"));
            }
        }
        for t in exp.get("includes").and_then(Value::as_array).into_iter().flatten() {
            if !types.contains(&t.as_str().unwrap()) {
                return Err(format!("{name} never got {t}: {types:?}"));
            }
        }
        for t in exp.get("excludes").and_then(Value::as_array).into_iter().flatten() {
            if types.contains(&t.as_str().unwrap()) {
                return Err(format!("{name} got {t}: {types:?}"));
            }
        }
        if let Some(errors) = exp.get("errors") {
            let reasons: Vec<Value> = rec
                .events
                .iter()
                .filter_map(|e| match e {
                    Event::Error { reason, .. } => Some(serde_json::to_value(reason).unwrap()),
                    _ => None,
                })
                .collect();
            if &Value::Array(reasons.clone()) != errors {
                return Err(format!("error reasons of {name}: expected {errors}, got {reasons:?}"));
            }
        }
        if let Some(v) = exp.get("version").and_then(Value::as_u64) {
            if rec.version != v {
                return Err(format!("last version seen by {name} is {}, expected {v}", rec.version));
            }
        }
        Ok(())
    }
}

fn run_scenario(file: &str) {
    let path = scenario_dir().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let scenario: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
    let pending: Pending = Default::default();
    let hooks = build_hooks(scenario.get("hooks"), &pending);
    let clock = match scenario.get("clock").and_then(Value::as_str) {
        Some("manual") => Clock::Manual,
        None => Clock::System,
        Some(other) => panic!("{file}: unknown clock {other:?}"),
    };
    let options = ClientOptions { clock, ..ClientOptions::default() };
    let built = Config::from_value(&scenario["config"]).and_then(|c| Client::with_options(c, hooks, options));
    if let Some(path) = scenario.get("expectConfigError").and_then(Value::as_str) {
        match built {
            Err(Error::Config { path: got, .. }) => assert_eq!(got, path, "{file}"),
            Err(other) => panic!("{file}: expected ConfigError at {path}, got {other:?}"),
            Ok(_) => panic!("{file}: expected ConfigError at {path}, the client was built"),
        }
        return;
    }
    let client = built.unwrap_or_else(|e| panic!("{file}: {e}"));
    let mut runner = Runner { client, pending, subs: HashMap::new(), last_update: None, name: file.to_owned() };
    for step in scenario["steps"].as_array().expect("steps") {
        runner.run_step(step);
    }
    runner.settle();
    runner.check_replicas("end");
    runner.client.close();
}

/// Every file in the folder has a test below, so none is silently skipped.
#[test]
fn every_scenario_file_is_listed() {
    let listed: Vec<&str> = SCENARIOS.to_vec();
    for entry in std::fs::read_dir(scenario_dir()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if let Some(stem) = name.strip_suffix(".json") {
            assert!(listed.contains(&stem), "tests/scenarios/{name} has no scenario!() line in core/tests/scenarios.rs");
        }
    }
}

macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        const SCENARIOS: &[&str] = &[$(stringify!($name)),*];
        $(
            #[test]
            fn $name() {
                run_scenario(concat!(stringify!($name), ".json"));
            }
        )*
    };
}

include!("support/scenario_list.rs");
