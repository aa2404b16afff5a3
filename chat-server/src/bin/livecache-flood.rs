//! The flood server of the Node and Python WebSocket benches (`bindings-node/bench/flood.js`,
//! `bindings-python/bench/flood.py`): the chat messages of `core/benches/e2e.rs`, as fast as the
//! socket takes them, so every client is measured against the same server as the Rust e2e bench.
//!
//! Prints `PORT {port}` on stdout, then serves WebSocket upgrades on 127.0.0.1 until its stdin
//! closes. A connection to `/{n}` gets `n` text frames
//! `{"id", "channel": "bench", "userName", "text"}` (ids 0..n), then is read until the client
//! closes. The frames are built before the first write, so the flood is writes alone.

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

type Frames = Arc<Vec<Utf8Bytes>>;

fn frames(n: usize) -> Frames {
    Arc::new(
        (0..n as u64)
            .map(|id| Utf8Bytes::from(json!({"id": id, "channel": "bench", "userName": "bot", "text": format!("message number {id} of the flood")}).to_string()))
            .collect(),
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1");
    println!("PORT {}", listener.local_addr().expect("local address").port());
    // The parent ends the server by closing stdin (or by exiting).
    std::thread::spawn(|| {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        std::process::exit(0);
    });
    let built: Arc<Mutex<HashMap<usize, Frames>>> = Arc::default();
    loop {
        let Ok((tcp, _)) = listener.accept().await else { continue };
        let _ = tcp.set_nodelay(true);
        let built = Arc::clone(&built);
        tokio::spawn(async move {
            let mut path = String::new();
            let callback = |req: &Request, resp: Response| {
                path = req.uri().path().to_owned();
                Ok(resp)
            };
            let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else { return };
            let n: usize = path.trim_start_matches('/').parse().unwrap_or(0);
            let frames = Arc::clone(built.lock().unwrap().entry(n).or_insert_with(|| frames(n)));
            for frame in frames.iter() {
                if ws.feed(Message::Text(frame.clone())).await.is_err() {
                    return;
                }
            }
            if ws.flush().await.is_err() {
                return;
            }
            // Read until the client closes; the library answers pings and the close handshake.
            while let Some(Ok(_)) = ws.next().await {}
        });
    }
}
