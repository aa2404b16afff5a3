//! GraphQL over graphql-transport-ws (T5) against scripted servers on 127.0.0.1: what a client
//! does with frames a correct server rarely sends — a `next` for an id no entry has, a `ping`, a
//! frame of an unknown type — and with a server that never acknowledges `connection_init`.
//! (The Node suite runs it against the `graphql-ws` reference server.)

#[path = "support/util.rs"]
mod util;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use livecache_core::{ErrorReason, Event, Hooks, StreamState};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;
use util::{wait_until, Recorder};

/// How a scripted server treats each connection.
#[derive(Clone, Copy)]
enum Script {
    /// Ack, then on the subscribe: a `next` for an unknown id, a `ping`, then one real `next`.
    Strays,
    /// Never answer `connection_init`.
    Mute,
    /// Ack, then answer the subscribe with a frame of an unknown type.
    Unknown,
}

struct Server {
    url: String,
    connections: Arc<AtomicUsize>,
    /// Every text frame the client sent, parsed.
    frames: Arc<Mutex<Vec<Value>>>,
    _runtime: tokio::runtime::Runtime,
}

fn server(script: Script) -> Server {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let url = format!("ws://{}/graphql", listener.local_addr().unwrap());
    let connections = Arc::new(AtomicUsize::new(0));
    let frames: Arc<Mutex<Vec<Value>>> = Arc::default();
    let (count, seen) = (connections.clone(), frames.clone());
    runtime.spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let seen = seen.clone();
            tokio::spawn(async move {
                let accept = |_: &Request, mut response: Response| {
                    response.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse().unwrap());
                    Ok(response)
                };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, accept).await else { return };
                while let Some(Ok(frame)) = ws.next().await {
                    let Message::Text(text) = frame else { continue };
                    let v: Value = serde_json::from_str(text.as_str()).unwrap();
                    seen.lock().unwrap().push(v.clone());
                    let reply: Vec<Value> = match (script, v["type"].as_str()) {
                        (Script::Mute, _) => vec![],
                        (_, Some("connection_init")) => vec![json!({"type": "connection_ack"})],
                        (Script::Strays, Some("subscribe")) => {
                            let id = v["id"].clone();
                            vec![
                                json!({"id": "no-such-operation", "type": "next", "payload": {"data": {"messageAdded": {"id": 99}}}}),
                                json!({"type": "ping"}),
                                json!({"id": id, "type": "next", "payload": {"data": {"messageAdded": {"id": 1}}}}),
                            ]
                        }
                        (Script::Unknown, Some("subscribe")) => vec![json!({"id": v["id"], "type": "data", "payload": {}})],
                        _ => vec![],
                    };
                    for r in reply {
                        if ws.send(Message::text(r.to_string())).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    Server { url, connections, frames, _runtime: runtime }
}

fn config(server: &Server, ack_ms: u64) -> Value {
    json!({"endpoints": {"feed": {"stream": {
        "graphql": {"url": server.url, "query": "subscription { messageAdded { id } }", "connectionAckTimeoutMs": ack_ms},
        "apply": "append", "reconnect": {"initialDelayMs": 10, "maxDelayMs": 50}
    }}}})
}

#[test]
fn t5_a_next_for_an_unknown_id_is_ignored_and_a_ping_is_answered() {
    let s = server(Script::Strays);
    let client = util::client(config(&s, 5_000), Hooks::new());
    let rec = Recorder::default();
    let sub = client.subscribe("feed", None, rec.callback()).unwrap();
    wait_until("the real message", || sub.snapshot().unwrap().data == json!([{"id": 1}]));
    wait_until("a pong", || s.frames.lock().unwrap().iter().any(|f| f["type"] == "pong"));
    let types: Vec<Value> = s.frames.lock().unwrap().iter().map(|f| f["type"].clone()).collect();
    assert_eq!(types, [json!("connection_init"), json!("subscribe"), json!("pong")]);
    assert!(!rec.events().iter().any(|e| matches!(e, Event::Error { .. })), "nothing is reported for another id");
    assert_eq!(s.connections.load(Ordering::SeqCst), 1);
    drop(sub);
    client.close();
    // The entry left: its operation is completed before the close.
    wait_until("a complete", || s.frames.lock().unwrap().iter().any(|f| f["type"] == "complete"));
}

#[test]
fn t5_a_server_that_never_acks_is_a_failed_connect_and_is_retried() {
    let s = server(Script::Mute);
    let client = util::client(config(&s, 100), Hooks::new());
    let sub = client.subscribe("feed", None, |_| {}).unwrap();
    wait_until("the ack timeout", || {
        let stream = sub.snapshot().unwrap().stream;
        stream.state == StreamState::Reconnecting && stream.error.as_deref().is_some_and(|e| e.contains("connection_ack"))
    });
    wait_until("retried", || s.connections.load(Ordering::SeqCst) >= 2);
    assert!(!s.frames.lock().unwrap().iter().any(|f| f["type"] == "subscribe"), "no subscribe before the ack");
}

#[test]
fn t5_a_frame_of_an_unknown_type_is_a_protocol_error_and_the_connection_starts_over() {
    let s = server(Script::Unknown);
    let client = util::client(config(&s, 5_000), Hooks::new());
    let rec = Recorder::default();
    let sub = client.subscribe("feed", None, rec.callback()).unwrap();
    wait_until("a protocol error", || {
        rec.events().iter().any(|e| matches!(e, Event::Error { reason: ErrorReason::Protocol, message, .. } if message.contains("unknown message type")))
    });
    wait_until("reconnected", || s.connections.load(Ordering::SeqCst) >= 2);
    assert_eq!(sub.snapshot().unwrap().data, Value::Null, "nothing was applied");
}
