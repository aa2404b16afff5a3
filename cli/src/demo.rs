//! `livecache demo`: the chat scenario end to end. An embedded chat server on 127.0.0.1 (HTTP
//! `GET /messages/{channel}` + WebSocket broadcast), a bot posting to it, and a livecache client
//! subscribed to `getMessages("redux")`, showing every event live. Midway the bot sends a frame
//! that is not JSON (an `error` event, data intact) and the server drops every socket (reconnect,
//! then a resync refetch recovers what was posted while down). Then "you" post a message with a
//! mutation (SPEC W1, W3): it shows at once as an optimistic layer, stays above the other users'
//! messages that arrive while the server is slow to store it, and is confirmed by its echo without
//! disappearing. At the end the client unsubscribes and the entry's socket is closed with a close
//! handshake after `keepUnusedDataFor`.
//!
//! `--graphql` runs the same chat over the server's GraphQL API (async-graphql): the query and the
//! mutation over HTTP POST, the stream as a graphql-transport-ws subscription whose `{cursor}`
//! variable lets it resume after the drop instead of refetching (SPEC T5, T6).

use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use livecache_chat_server::ChatServer;
use livecache_core::{Client, Config, Event, Hooks};
use serde_json::{json, Value};

use crate::args::DemoArgs;
use crate::render::Printer;

const USERS: [&str; 3] = ["alice", "bob", "carol"];
const LINES: [&str; 8] = [
    "has anyone tried the new streaming cache?",
    "yes — patches only, no refetch per message",
    "what happens if the socket drops?",
    "it reconnects and refetches to resync",
    "and messages during the first fetch?",
    "buffered, then applied after the data",
    "nice. bad frames?",
    "reported as error events, data untouched",
];

const YOURS: &str = "posting from livecache: shown before the server has it";

/// What a subscriber rebuilds from the events (snapshots and RFC 6902 patches, applied with the
/// json-patch crate), and whether "your" message, once shown, stayed in every later state.
#[derive(Clone, Default)]
struct Replica {
    data: Value,
    version: u64,
    shown: bool,
    flickers: usize,
}

impl Replica {
    fn apply(&mut self, event: &Event) {
        match event {
            Event::Snapshot { data, version, .. } => {
                self.data = data.clone();
                self.version = *version;
            }
            Event::Patch { patches, version, .. } => {
                self.version = *version;
                let ops: json_patch::Patch = serde_json::from_value(serde_json::to_value(patches).expect("ops")).expect("RFC 6902 ops");
                json_patch::patch(&mut self.data, &ops.0).expect("every patch applies to the replica");
            }
            _ => return,
        }
        let has = has_text(&self.data, YOURS);
        if self.shown && !has {
            self.flickers += 1;
        }
        self.shown |= has;
    }
}

fn has_text(data: &Value, text: &str) -> bool {
    data.as_array().is_some_and(|a| a.iter().any(|m| m["text"] == text))
}

/// The chat over GraphQL: the same endpoints, the same events.
fn graphql_config(server: &ChatServer) -> Value {
    let http = format!("{}graphql", server.http_url());
    let fields = "{ id channel userName text }";
    json!({
        "endpoints": {
            "sendMessage": {
                "mutation": {"graphql": {
                    "url": http,
                    "query": format!("mutation ($channel: String!, $text: String!) {{ sendMessage(channel: $channel, userName: \"you\", text: $text) {fields} }}"),
                    "variables": {"channel": "{arg.channel}", "text": "{arg.text}"}
                }},
                "optimistic": [{"endpoint": "getMessages", "arg": "{arg.channel}",
                                "message": {"id": "local", "userName": "you", "text": "{arg.text}", "pending": true}}],
                "confirm": {"userName": "you", "text": "{arg.text}"}
            },
            "getMessages": {
                "query": {"graphql": {
                    "url": http,
                    "query": format!("query ($channel: String!) {{ messages(channel: $channel) {fields} }}"),
                    "variables": {"channel": "{arg}"}
                }},
                "keepUnusedDataFor": 0.5,
                "stream": {
                    "graphql": {
                        "url": format!("ws://{}/graphql", server.addr()),
                        "query": format!("subscription ($channel: String!, $after: Int) {{ messageAdded(channel: $channel, after: $after) {fields} }}"),
                        "variables": {"channel": "{arg}", "after": "{cursor}"}
                    },
                    "schema": {"type": "object", "required": ["id", "channel", "text"]},
                    "apply": {"append": {"dedupeBy": "id"}},
                    "resume": {"cursor": "/id"},
                    "reconnect": {"initialDelayMs": 100, "maxDelayMs": 1000}
                }
            }
        }
    })
}

fn config(server: &ChatServer) -> Value {
    json!({
        "baseUrl": server.http_url(),
        "endpoints": {
            "sendMessage": {
                "mutation": {"url": "messages/{arg.channel}", "body": {"userName": "you", "text": "{arg.text}"}},
                "optimistic": [{"endpoint": "getMessages", "arg": "{arg.channel}",
                                "message": {"id": "local", "userName": "you", "text": "{arg.text}", "pending": true}}],
                "confirm": {"userName": "you", "text": "{arg.text}"}
            },
            "getMessages": {
                "query": "messages/{arg}",
                "keepUnusedDataFor": 0.5,
                "stream": {
                    "url": server.ws_url(),
                    "filter": {"channel": "{arg}"},
                    "schema": {"type": "object", "required": ["id", "channel", "text"]},
                    "apply": {"append": {"dedupeBy": "id"}},
                    "reconnect": {"initialDelayMs": 100, "maxDelayMs": 1000},
                    "heartbeat": {"intervalMs": 2000, "timeoutMs": 2000}
                }
            }
        }
    })
}

pub fn run(args: DemoArgs) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("livecache demo: cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let server = rt.block_on(ChatServer::start());
    for (i, line) in LINES.iter().take(3).enumerate() {
        server.post("redux", USERS[i % USERS.len()], line);
    }
    server.post("general", "dave", "this channel is not watched");

    let printer = Arc::new(Printer::new(args.json));
    let (over, config) = match args.graphql {
        true => (format!("GraphQL (graphql-transport-ws) at {}graphql", server.http_url()), graphql_config(&server)),
        false => (format!("WebSocket at {}", server.ws_url()), config(&server)),
    };
    printer.note(&format!("chat server on {} — 3 messages in #redux; subscribing to getMessages(\"redux\") over {over}", server.http_url()));
    let client = match Config::from_value(&config).and_then(|c| Client::new(c, Hooks::new())) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("livecache demo: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The replica a subscriber keeps from the events, and whether the posted message, once shown,
    // was in every state after (no flicker).
    let watch = Arc::new(Mutex::new(Replica::default()));
    let (p, w) = (printer.clone(), watch.clone());
    let sub = client
        .subscribe("getMessages", Some(json!("redux")), move |event| {
            p.event(event);
            w.lock().unwrap().apply(event);
        })
        .expect("subscribe");
    if let Err(e) = client.runtime_handle().block_on(async {
        tokio::time::timeout(Duration::from_secs(10), sub.loaded()).await
    }) {
        eprintln!("livecache demo: the initial fetch did not finish: {e}");
        return ExitCode::FAILURE;
    }

    // The bot: one message every `step`, with the two incidents in the middle.
    let steps = 10u32;
    let step = args.duration / steps;
    let mut posted = None;
    for i in 0..steps {
        std::thread::sleep(step);
        match i {
            3 => {
                printer.note("bot sends a frame that is not JSON");
                server.broadcast_raw("{this is not json");
            }
            5 => {
                printer.note(if args.graphql {
                    "server drops every socket; bot posts while the client is away (the subscription resumes after its last message)"
                } else {
                    "server drops every socket; bot posts while the client is away"
                });
                server.drop_all_sockets();
                server.post("redux", "bob", "(posted while the socket was down)");
            }
            7 => {
                printer.note("you post a message; it shows at once, the server takes 2 bot messages to store it");
                server.set_post_delay(step.as_millis() as u64 * 2 + step.as_millis() as u64 / 2);
                let sent = client.mutate("sendMessage", Some(json!({"channel": "redux", "text": YOURS})));
                let p = printer.clone();
                posted = Some(rt.spawn(async move {
                    match sent.await {
                        Ok(m) => p.note(&format!("mutate resolved: #{} stored and confirmed", m["id"])),
                        Err(e) => p.note(&format!("mutate failed: {e}")),
                    }
                }));
            }
            _ => {}
        }
        if i % 4 == 2 {
            server.post("general", "dave", "still not watched");
        }
        let line = LINES[(3 + i as usize) % LINES.len()];
        server.post("redux", USERS[i as usize % USERS.len()], line);
    }
    std::thread::sleep(Duration::from_millis(400));
    // W4: the mutation resolves once its layer is confirmed (or dropped); wait for it, not a guess.
    if let Some(posted) = posted {
        let _ = rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), posted).await });
    }

    let state = sub.snapshot().expect("snapshot");
    let stats = client.stats().expect("stats");
    // Events reach the subscriber on the delivery thread: wait until it has seen this version.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while watch.lock().unwrap().version < state.version && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let replica = watch.lock().unwrap().clone();
    printer.note("unsubscribing; the entry goes after keepUnusedDataFor = 0.5 s");
    sub.unsubscribe();
    let closed = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(5), server.wait_until("close frame", |s| s.close_frames_received() > 0)).await
    });
    client.close();

    let server_messages = Value::Array(server.messages("redux"));
    let confirmed = replica.shown && replica.flickers == 0 && state.optimistic == 0 && has_text(&state.data, YOURS);
    let complete = state.data == server_messages && replica.data == state.data && confirmed;
    if args.json {
        return if complete { ExitCode::SUCCESS } else { ExitCode::FAILURE };
    }
    println!();
    println!("summary");
    println!("  messages in #redux on the server   {}", server_messages.as_array().map_or(0, Vec::len));
    println!("  messages in the cache              {}  (version {})", state.data.as_array().map_or(0, Vec::len), state.version);
    println!("  cache equals server                {}", if complete { "yes" } else { "NO" });
    println!("  stream messages received           {}", stats.messages_received);
    println!("  applied / filtered / rejected      {} / {} / {}", stats.messages_applied, stats.messages_filtered, stats.messages_rejected_total());
    println!("  reconnects / fetches / resumes     {} / {} / {}", stats.reconnects, stats.fetches, stats.resumes);
    println!("  your post: optimistic, confirmed   {}  (never disappeared: {})", if confirmed { "yes" } else { "NO" }, replica.flickers == 0);
    println!("  replica from the events = cache    {}", if replica.data == state.data { "yes" } else { "NO" });
    println!("  socket closed with a close frame   {}", if closed.is_ok() { "yes" } else { "no" });
    if complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
