//! `livecache demo`: the chat scenario end to end. An embedded chat server on 127.0.0.1 (HTTP
//! `GET /messages/{channel}` + WebSocket broadcast), a bot posting to it, and a livecache client
//! subscribed to `getMessages("redux")`, showing every event live. Midway the bot sends a frame
//! that is not JSON (an `error` event, data intact) and the server drops every socket (reconnect,
//! then a resync refetch recovers what was posted while down). At the end the client unsubscribes
//! and the entry's socket is closed with a close handshake after `keepUnusedDataFor`.

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

fn config(server: &ChatServer) -> Value {
    json!({
        "baseUrl": server.http_url(),
        "endpoints": {
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
    printer.note(&format!("chat server on {} — 3 messages in #redux; subscribing to getMessages(\"redux\")", server.http_url()));
    let client = match Config::from_value(&config(&server)).and_then(|c| Client::new(c, Hooks::new())) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("livecache demo: {e}");
            return ExitCode::FAILURE;
        }
    };
    let last_data: Arc<Mutex<Value>> = Arc::new(Mutex::new(Value::Null));
    let (p, last) = (printer.clone(), last_data.clone());
    let sub = client
        .subscribe("getMessages", Some(json!("redux")), move |event| {
            p.event(event);
            if let Event::Snapshot { data, .. } = event {
                *last.lock().unwrap() = data.clone();
            }
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
    for i in 0..steps {
        std::thread::sleep(step);
        match i {
            3 => {
                printer.note("bot sends a frame that is not JSON");
                server.broadcast_raw("{this is not json");
            }
            5 => {
                printer.note("server drops every socket; bot posts while the client is away");
                server.drop_all_sockets();
                server.post("redux", "bob", "(posted while the socket was down)");
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

    let state = sub.snapshot().expect("snapshot");
    let stats = client.stats().expect("stats");
    printer.note("unsubscribing; the entry goes after keepUnusedDataFor = 0.5 s");
    sub.unsubscribe();
    let closed = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(5), server.wait_until("close frame", |s| s.close_frames_received() > 0)).await
    });
    client.close();

    let server_messages = Value::Array(server.messages("redux"));
    let complete = state.data == server_messages;
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
    println!("  reconnects / fetches               {} / {}", stats.reconnects, stats.fetches);
    println!("  socket closed with a close frame   {}", if closed.is_ok() { "yes" } else { "no" });
    if complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
