//! `livecache watch` and `livecache demo` as processes (SPEC §7): JSON lines that are SPEC §5
//! events, exit 0 after `--duration`, on SIGTERM and when stdout closes, exit 2 with a one-line
//! message for a bad config or argument. The chat server runs in the test on 127.0.0.1.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use livecache_chat_server::ChatServer;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(10);
const KEY: &str = "getMessages(\"redux\")";

struct Server {
    server: ChatServer,
    _runtime: tokio::runtime::Runtime,
}

impl std::ops::Deref for Server {
    type Target = ChatServer;
    fn deref(&self) -> &ChatServer {
        &self.server
    }
}

fn server() -> Server {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let server = runtime.block_on(ChatServer::start());
    Server { server, _runtime: runtime }
}

/// A config file in the temp dir, removed on drop.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn temp_file(text: &str) -> TempFile {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let path = std::env::temp_dir().join(format!("livecache-watch-test-{}-{n}.json", std::process::id()));
    std::fs::write(&path, text).unwrap();
    TempFile(path)
}

fn config_file(server: &ChatServer) -> TempFile {
    let config = json!({
        "baseUrl": server.http_url(),
        "endpoints": {"getMessages": {
            "query": "messages/{arg}",
            "stream": {
                "url": server.ws_url(),
                "filter": {"channel": "{arg}"},
                "apply": {"append": {"dedupeBy": "id"}},
                "reconnect": {"initialDelayMs": 20, "maxDelayMs": 200}
            }
        }}
    });
    temp_file(&config.to_string())
}

fn livecache(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_livecache"));
    command.args(args).stdin(Stdio::null());
    command
}

fn watch(config: &TempFile, extra: &[&str]) -> Child {
    let path = config.0.to_str().unwrap();
    let mut args = vec!["watch", "--config", path, "getMessages", "\"redux\""];
    args.extend_from_slice(extra);
    livecache(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn livecache")
}

/// Waits for the process to end; kills it and fails after `WAIT`.
fn wait_exit(child: &mut Child, what: &str) -> ExitStatus {
    wait_exit_within(child, what, WAIT)
}

/// Waits for the process to end; kills it and fails after `ceiling`.
fn wait_exit_within(child: &mut Child, what: &str, ceiling: Duration) -> ExitStatus {
    let deadline = Instant::now() + ceiling;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("livecache did not exit {what}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until the process catches `signal` (Linux: its bit in `SigCgt` of /proc/PID/status). The
/// watcher installs its handlers on its runtime after subscribing, so its first events may come
/// before them, and a signal that comes first ends it with the default action, not exit 0.
fn wait_signal_handler(child: &Child, signal: u32) {
    let path = format!("/proc/{}/status", child.id());
    let deadline = Instant::now() + WAIT;
    loop {
        // No procfs (or the process is gone): nothing to wait for; wait_exit says the rest.
        let Ok(status) = std::fs::read_to_string(&path) else { return };
        let caught = status.lines().find_map(|l| l.strip_prefix("SigCgt:")).and_then(|m| u64::from_str_radix(m.trim(), 16).ok());
        if caught.is_some_and(|mask| mask & (1 << (signal - 1)) != 0) {
            return;
        }
        assert!(Instant::now() < deadline, "livecache installed no handler for signal {signal} within {WAIT:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Reads stdout lines on a thread; each line is sent as it arrives.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

fn next_event(lines: &mpsc::Receiver<String>, seen: &mut Vec<Value>) -> Value {
    let line = lines.recv_timeout(WAIT).unwrap_or_else(|_| panic!("no line within {WAIT:?}; saw {seen:#?}"));
    let event = check_event(&line);
    seen.push(event.clone());
    event
}

fn fields(event: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = event.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys
}

/// One stdout line must be exactly one SPEC §5 event of this subscription.
fn check_event(line: &str) -> Value {
    let event: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    assert_eq!(event["key"], KEY, "{line}");
    let mut keys = fields(&event);
    let optional_error = |keys: &mut Vec<&str>| keys.retain(|k| *k != "error");
    match event["type"].as_str().unwrap_or_else(|| panic!("no type: {line}")) {
        "snapshot" => {
            assert_eq!(keys, ["data", "key", "status", "type", "version"], "{line}");
            assert!(event["version"].as_u64().unwrap() >= 1);
        }
        "patch" => {
            assert_eq!(keys, ["from", "key", "patches", "type", "version"], "{line}");
            assert!(event["from"].as_u64().unwrap() < event["version"].as_u64().unwrap(), "{line}");
            assert!(event["patches"].is_array());
        }
        "status" => {
            optional_error(&mut keys);
            assert_eq!(keys, ["key", "status", "type"], "{line}");
            assert!(["pending", "fulfilled", "rejected"].contains(&event["status"].as_str().unwrap()));
        }
        "stream" => {
            optional_error(&mut keys);
            assert_eq!(keys, ["key", "state", "type"], "{line}");
            let state = event["state"].as_str().unwrap();
            assert!(["connecting", "open", "reconnecting", "closed"].contains(&state), "{line}");
        }
        "error" => assert_eq!(keys, ["key", "message", "reason", "type"], "{line}"),
        "removed" => assert_eq!(keys, ["key", "type"], "{line}"),
        other => panic!("unknown event type {other:?}: {line}"),
    }
    event
}

/// Replays snapshot and patch events (E1) with the `json_patch` crate; returns the data.
fn replay(events: &[Value]) -> Value {
    let mut data = Value::Null;
    let mut version = 0;
    for event in events {
        match event["type"].as_str().unwrap() {
            "snapshot" => {
                data = event["data"].clone();
                version = event["version"].as_u64().unwrap();
            }
            "patch" => {
                assert_eq!(event["from"].as_u64().unwrap(), version, "patch continues the replica");
                let patch: json_patch::Patch = serde_json::from_value(event["patches"].clone()).unwrap();
                json_patch::patch(&mut data, &patch).expect("patch applies");
                version = event["version"].as_u64().unwrap();
            }
            _ => {}
        }
    }
    data
}

/// Reads events until one matches `done`.
fn read_until(lines: &mpsc::Receiver<String>, seen: &mut Vec<Value>, done: impl Fn(&Value) -> bool) {
    while !done(&next_event(lines, seen)) {}
}

fn is_type(t: &'static str) -> impl Fn(&Value) -> bool {
    move |e| e["type"] == t
}

fn is_open(e: &Value) -> bool {
    e["type"] == "stream" && e["state"] == "open"
}

#[test]
fn watch_prints_spec_events_and_exits_0_after_duration() {
    let server = server();
    server.post("redux", "alice", "hello");
    server.post("general", "bob", "not watched");
    server.post("redux", "carol", "hi");
    let config = config_file(&server);
    // The watcher must outlive the exchange below, however slow the machine: a duration far
    // longer than it (it takes well under a second), then a ceiling past the duration for the exit.
    let duration = Duration::from_secs(10);
    let mut child = watch(&config, &["--duration", &duration.as_secs().to_string()]);
    let lines = lines_of(&mut child);
    let mut seen = Vec::new();
    read_until(&lines, &mut seen, is_type("snapshot"));
    let first: Vec<_> = seen.iter().take(2).map(|e| e["type"].as_str().unwrap().to_owned()).collect();
    assert_eq!(first, ["status", "stream"], "pending first, stream connecting with it (L1)");
    assert_eq!(seen[0]["status"], "pending");
    assert_eq!(seen.last().unwrap()["data"], json!(server.messages("redux")));
    if !seen.iter().any(is_open) {
        read_until(&lines, &mut seen, is_open);
    }
    // Two rounds: when the fetch finished before the socket opened, the open's resync (L1) may
    // bring one round in a snapshot; the other one comes as patches.
    let mut truth = Value::Null;
    for round in 0..2 {
        for i in 0..5 {
            server.post("redux", "alice", &format!("round {round} message {i}"));
        }
        server.post("general", "bob", "still not watched");
        truth = json!(server.messages("redux"));
        while replay(&seen) != truth {
            next_event(&lines, &mut seen);
        }
    }
    let patched_posts = seen
        .iter()
        .filter(|e| e["type"] == "patch")
        .flat_map(|e| e["patches"].as_array().unwrap().iter())
        .filter(|op| op["op"] == "add" && op["value"]["text"].as_str().is_some_and(|t| t.starts_with("round")))
        .count();
    assert!(patched_posts >= 5, "posts arrive as patches: {seen:#?}");
    let status = wait_exit_within(&mut child, "after --duration", duration + WAIT);
    assert_eq!(status.code(), Some(0));
    // Whatever was printed after the data matched is still well-formed.
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(1)) {
        seen.push(check_event(&line));
    }
    assert_eq!(replay(&seen), truth);
    assert_eq!(server.close_frames_received(), 1, "the client was closed with a close handshake");
}

#[test]
fn watch_exits_0_on_sigterm() {
    let server = server();
    let config = config_file(&server);
    let mut child = watch(&config, &[]);
    let lines = lines_of(&mut child);
    let mut seen = Vec::new();
    read_until(&lines, &mut seen, is_type("snapshot"));
    wait_signal_handler(&child, 15);
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("run kill");
    assert!(status.success());
    let status = wait_exit(&mut child, "on SIGTERM");
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[test]
fn watch_exits_0_on_sigint() {
    let server = server();
    let config = config_file(&server);
    let mut child = watch(&config, &[]);
    let lines = lines_of(&mut child);
    let mut seen = Vec::new();
    read_until(&lines, &mut seen, is_type("snapshot"));
    wait_signal_handler(&child, 2);
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("run kill");
    assert!(status.success());
    assert_eq!(wait_exit(&mut child, "on SIGINT").code(), Some(0));
}

/// Reads stdout until `done`, then closes the pipe.
fn read_then_close(child: &mut Child, done: impl Fn(&Value) -> bool + Send + 'static) {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap_or(0) > 0 {
            if done(&check_event(line.trim_end())) {
                break;
            }
            line.clear();
        }
        drop(reader); // the read end of the pipe closes here
        let _ = tx.send(());
    });
    rx.recv_timeout(WAIT).expect("the expected line within the deadline");
}

#[test]
fn watch_exits_0_when_stdout_closes_on_its_next_event() {
    let server = server();
    let config = config_file(&server);
    let mut child = watch(&config, &[]);
    read_then_close(&mut child, |e| e["type"] == "status");
    // Each post is an event the watcher must write; the first failed write ends it.
    let deadline = Instant::now() + WAIT;
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        server.post("redux", "alice", "anyone there?");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(wait_exit(&mut child, "after stdout closed").code(), Some(0));
}

/// SPEC §7: "exits … when stdout closes" — also when no event follows the close.
#[test]
fn watch_exits_0_when_stdout_closes_while_idle() {
    let server = server();
    let config = config_file(&server);
    let mut child = watch(&config, &[]);
    let opened = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let snapshot = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (o, s) = (opened.clone(), snapshot.clone());
    read_then_close(&mut child, move |e| {
        if is_open(e) {
            o.store(true, Ordering::SeqCst);
        }
        if e["type"] == "snapshot" {
            s.store(true, Ordering::SeqCst);
        }
        o.load(Ordering::SeqCst) && s.load(Ordering::SeqCst)
    });
    assert_eq!(wait_exit(&mut child, "after stdout closed with nothing more to print").code(), Some(0));
}

/// Runs `livecache` to the end; returns (exit code, stderr).
fn run_fail(args: &[&str]) -> (Option<i32>, String) {
    let output = livecache(args).stdout(Stdio::null()).stderr(Stdio::piped()).output().unwrap();
    (output.status.code(), String::from_utf8(output.stderr).unwrap())
}

/// Exit 2 and exactly one line on stderr, naming `mentions`.
fn assert_usage_error(args: &[&str], mentions: &str) {
    let (code, stderr) = run_fail(args);
    assert_eq!(code, Some(2), "{args:?}: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{args:?}: one line on stderr, got {stderr:?}");
    assert!(lines[0].starts_with("livecache"), "{args:?}: {stderr:?}");
    assert!(lines[0].contains(mentions), "{args:?}: {stderr:?} should mention {mentions:?}");
}

#[test]
fn watch_bad_config_or_arguments_exit_2_with_one_line() {
    let server = server();
    let good = config_file(&server);
    let good_path = good.0.to_str().unwrap().to_owned();
    let missing = std::env::temp_dir().join("livecache-watch-test-no-such-file.json");
    assert_usage_error(&["watch", "--config", missing.to_str().unwrap(), "getMessages"], "cannot read");

    let not_json = temp_file("{ this is not json");
    assert_usage_error(&["watch", "--config", not_json.0.to_str().unwrap(), "getMessages"], "");

    let bad_key = temp_file(r#"{"endpoints": {"getMessages": {"query": "messages/{arg}", "bogus": 1}}}"#);
    assert_usage_error(&["watch", "--config", bad_key.0.to_str().unwrap(), "getMessages", "\"x\""], "bogus");

    let bad_template = temp_file(r#"{"endpoints": {"getMessages": {"query": "messages/{arg.}"}}}"#);
    assert_usage_error(&["watch", "--config", bad_template.0.to_str().unwrap(), "getMessages", "\"x\""], "query");

    assert_usage_error(&["watch", "--config", &good_path, "getMessages", "{oops"], "ARG_JSON");
    assert_usage_error(&["watch", "--config", &good_path, "noSuchEndpoint", "\"redux\""], "noSuchEndpoint");
    // A template field the arg does not have fails the subscribe (SPEC §2).
    let field = temp_file(&json!({
        "baseUrl": server.http_url(),
        "endpoints": {"getPost": {"query": "posts/{arg.id}"}}
    }).to_string());
    assert_usage_error(&["watch", "--config", field.0.to_str().unwrap(), "getPost", "{\"page\": 1}"], "id");
    assert_eq!(server.fetch_count(), 0, "nothing was fetched for a bad call");
}

#[test]
fn missing_or_unknown_arguments_exit_2() {
    let server = server();
    let good = config_file(&server);
    let good_path = good.0.to_str().unwrap().to_owned();
    for (args, mentions) in [
        (vec!["watch"], "--config"),
        (vec!["watch", "getMessages"], "--config"),
        (vec!["watch", "--config"], "--config"),
        (vec!["watch", "--config", &good_path], "ENDPOINT"),
        (vec!["watch", "--config", &good_path, "getMessages", "\"a\"", "extra"], "extra"),
        (vec!["watch", "--config", &good_path, "getMessages", "--duration", "soon"], "--duration"),
        (vec!["watch", "--config", &good_path, "getMessages", "--verbose"], "--verbose"),
        (vec!["demo", "--duration"], "--duration"),
        (vec!["frobnicate"], "frobnicate"),
        (vec![], "command"),
    ] {
        let (code, stderr) = run_fail(&args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        let first = stderr.lines().next().unwrap_or("");
        assert!(first.starts_with("livecache") && first.contains(mentions), "{args:?}: {stderr:?}");
    }
}

#[test]
fn demo_runs_and_the_cache_equals_the_server() {
    let output = livecache(&["demo", "--duration", "2"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("cache equals server                yes"), "{stdout}");
    assert!(stdout.contains("socket closed with a close frame   yes"), "{stdout}");
    assert!(stdout.contains("your post: optimistic, confirmed   yes"), "{stdout}");
    assert!(stdout.contains("(optimistic)"), "the layer shows before the server has it:\n{stdout}");
}

#[test]
fn demo_over_graphql_runs_and_the_cache_equals_the_server() {
    let output = livecache(&["demo", "--graphql", "--duration", "2"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("over GraphQL (graphql-transport-ws)"), "{stdout}");
    assert!(stdout.contains("cache equals server                yes"), "{stdout}");
    assert!(stdout.contains("your post: optimistic, confirmed   yes"), "{stdout}");
    assert!(stdout.contains("replica from the events = cache    yes"), "{stdout}");
}

#[test]
fn demo_json_prints_spec_events() {
    let output = livecache(&["demo", "--duration", "1", "--json"]).output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let events: Vec<Value> = stdout.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).filter(|v| v.get("type").is_some()).collect();
    assert!(events.iter().any(|e| e["type"] == "snapshot"), "{stdout}");
    assert!(events.iter().any(|e| e["type"] == "patch"), "{stdout}");
}
