//! A fault-injecting TCP proxy for tests: it sits between a client and a real server on
//! 127.0.0.1, forwards bytes both ways, and on command misbehaves the way networks do: added
//! latency, 1-byte segments, throttled bandwidth, a reset in the middle of a frame, a half-open
//! connection that goes silent, refused connects. It runs on a runtime of its own, so the tests
//! stay plain threads.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// How bytes are forwarded from now on (on every connection, open or new).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Shape {
    /// As they come.
    Plain,
    /// Each read waits this long before it is written on.
    Latency(Duration),
    /// One byte per write, each flushed on its own (1-byte TCP segments).
    OneByte,
    /// At most this many bytes per 10 ms.
    Throttle(usize),
}

/// One proxied connection: what stops it.
struct Link {
    /// Cancelled: both sockets are closed with a reset (SO_LINGER 0), nothing more is forwarded.
    reset: CancellationToken,
    /// Cancelled: nothing more is forwarded either way, but both sockets stay open (half-open).
    silence: CancellationToken,
}

struct State {
    upstream: SocketAddr,
    shape: Mutex<Shape>,
    links: Mutex<Vec<Link>>,
    /// Connects still to be refused (accepted, then reset before a byte is read).
    refuse: AtomicUsize,
    refused: AtomicUsize,
    accepted: AtomicUsize,
    /// Set: the next server-to-client read is cut after this many bytes and the connection reset.
    cut_next: Mutex<Option<usize>>,
    cuts: AtomicUsize,
    /// Connections being forwarded, or held half-open, until the client closes its side.
    open: AtomicUsize,
}

pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<State>,
    stop: CancellationToken,
    _runtime: tokio::runtime::Runtime,
}

impl FaultProxy {
    /// A proxy on a free 127.0.0.1 port to `upstream`.
    pub fn start(upstream: SocketAddr) -> FaultProxy {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("proxy runtime");
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).expect("proxy port");
        let addr = listener.local_addr().expect("proxy address");
        let state = Arc::new(State {
            upstream,
            shape: Mutex::new(Shape::Plain),
            links: Mutex::new(Vec::new()),
            refuse: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
            accepted: AtomicUsize::new(0),
            cut_next: Mutex::new(None),
            cuts: AtomicUsize::new(0),
            open: AtomicUsize::new(0),
        });
        let stop = CancellationToken::new();
        runtime.spawn(accept_loop(listener, Arc::clone(&state), stop.clone()));
        FaultProxy { addr, state, stop, _runtime: runtime }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `url` with its host and port replaced by the proxy's.
    pub fn url(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").expect("a URL");
        let path = rest.find('/').map_or("", |i| &rest[i..]);
        format!("{scheme}://{}{path}", self.addr)
    }

    pub fn set_shape(&self, shape: Shape) {
        *self.state.shape.lock() = shape;
    }

    /// Cuts the next read from the server after `bytes` bytes (inside a frame) and resets the
    /// connection it came on.
    pub fn cut_next_read_after(&self, bytes: usize) {
        *self.state.cut_next.lock() = Some(bytes);
    }

    /// Times a read was cut (see `cut_next_read_after`).
    pub fn cuts(&self) -> usize {
        self.state.cuts.load(Ordering::SeqCst)
    }

    /// Resets every open connection (RST, no close handshake, no FIN).
    pub fn reset_all(&self) {
        for link in self.state.links.lock().drain(..) {
            link.reset.cancel();
        }
    }

    /// Every open connection stops forwarding but stays open: a peer that went away without
    /// the network telling (half-open). New connections are forwarded as usual.
    pub fn silence_all(&self) {
        for link in self.state.links.lock().iter() {
            link.silence.cancel();
        }
    }

    /// The next `n` connects are refused: accepted and reset at once.
    pub fn refuse_next(&self, n: usize) {
        self.state.refuse.store(n, Ordering::SeqCst);
    }

    pub fn refused(&self) -> usize {
        self.state.refused.load(Ordering::SeqCst)
    }

    /// Connections accepted and forwarded (refused ones not counted).
    pub fn accepted(&self) -> usize {
        self.state.accepted.load(Ordering::SeqCst)
    }

    /// Connections not closed yet: one the proxy silenced stays open until the client closes
    /// its side, so a client that keeps dead connections shows here.
    pub fn open(&self) -> usize {
        self.state.open.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.cancel();
        self.reset_all();
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>, stop: CancellationToken) {
    loop {
        let client = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => socket,
                Err(_) => continue,
            },
        };
        let refuse = state.refuse.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
        if refuse {
            state.refused.fetch_add(1, Ordering::SeqCst);
            reset(client);
            continue;
        }
        let Ok(server) = TcpStream::connect(state.upstream).await else {
            reset(client);
            continue;
        };
        state.accepted.fetch_add(1, Ordering::SeqCst);
        state.open.fetch_add(1, Ordering::SeqCst);
        let link = Link { reset: CancellationToken::new(), silence: CancellationToken::new() };
        let (reset_token, silence) = (link.reset.clone(), link.silence.clone());
        state.links.lock().push(link);
        tokio::spawn(forward(client, server, Arc::clone(&state), reset_token, silence));
    }
}

/// Closes `socket` with a reset instead of a FIN.
fn reset(socket: TcpStream) {
    let _ = socket.set_zero_linger();
    drop(socket);
}

/// Pumps both ways until either side closes, the link is reset, or (silenced) forever.
async fn forward(client: TcpStream, server: TcpStream, state: Arc<State>, reset_token: CancellationToken, silence: CancellationToken) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let to_server = pump_into(&mut client_read, &mut server_write, &state, false, &silence);
    let to_client = pump_into(&mut server_read, &mut client_write, &state, true, &silence);
    let cut = tokio::select! {
        _ = reset_token.cancelled() => true,
        cut = to_server => cut,
        cut = to_client => cut,
    };
    if silence.is_cancelled() && !cut {
        // Half-open: hold the sockets open, forwarding nothing (what the client sends is read and
        // dropped), until reset, dropped, or the client closes its side.
        let mut sink = [0u8; 1024];
        loop {
            tokio::select! {
                _ = reset_token.cancelled() => break,
                read = client_read.read(&mut sink) => match read {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                },
            }
        }
    }
    state.open.fetch_sub(1, Ordering::SeqCst);
    let (client, server) = (client_read.reunite(client_write), server_read.reunite(server_write));
    if let Ok(client) = client {
        reset(client);
    }
    if let Ok(server) = server {
        reset(server);
    }
}

/// Forwards `from` into `to` in the current shape; `down` is the server-to-client direction
/// (where cuts happen). Returns true when it cut the connection, false when a side closed or
/// the link was silenced.
async fn pump_into<R: AsyncReadExt + Unpin, W: AsyncWriteExt + Unpin>(
    from: &mut R,
    to: &mut W,
    state: &State,
    down: bool,
    silence: &CancellationToken,
) -> bool {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = tokio::select! {
            _ = silence.cancelled() => return false,
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => return false,
                Ok(n) => n,
            },
        };
        let mut chunk = &buf[..n];
        let cut = if down { state.cut_next.lock().take() } else { None };
        if let Some(keep) = cut {
            chunk = &chunk[..keep.min(n.saturating_sub(1))];
        }
        let shape = *state.shape.lock();
        let written = async {
            match shape {
                Shape::Plain => to.write_all(chunk).await,
                Shape::Latency(d) => {
                    // The injected fault itself (the delay is what is under test), not a wait.
                    tokio::time::sleep(d).await;
                    to.write_all(chunk).await
                }
                Shape::OneByte => {
                    for b in chunk {
                        to.write_all(std::slice::from_ref(b)).await?;
                        to.flush().await?;
                    }
                    Ok(())
                }
                Shape::Throttle(per_tick) => {
                    for part in chunk.chunks(per_tick.max(1)) {
                        to.write_all(part).await?;
                        to.flush().await?;
                        // The injected fault: the bandwidth limit is this pause between parts.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    Ok(())
                }
            }
        };
        let ok = tokio::select! {
            _ = silence.cancelled() => return false,
            w = written => w.is_ok(),
        };
        if cut.is_some() {
            let _ = to.flush().await;
            state.cuts.fetch_add(1, Ordering::SeqCst);
            return true;
        }
        if !ok {
            return false;
        }
    }
}
