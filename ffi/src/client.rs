//! The client handle: creation with options and hooks, pull mode (poll + file descriptor),
//! close and free (SPEC §7 C, §8).

use std::ffi::c_char;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use livecache_core::{Client, ClientOptions, Clock, Config, Delivery, Hooks};
use serde_json::Value;

use crate::hooks::livecache_hooks;
use crate::result::*;
use crate::result::livecache_result::*;

/// A livecache client: its cache entries, streams and subscriptions, on its own runtime.
/// Created by `livecache_client_new` / `livecache_client_new_with_options`, released by
/// `livecache_client_free`.
pub struct livecache_client {
    pub(crate) client: Client,
    /// Pull mode: readable while callbacks wait for `livecache_client_poll`.
    ready_fd: Option<Arc<OwnedFd>>,
}

/// Options beyond the config, as JSON (`options_json` of `livecache_client_new_with_options`).
struct Options {
    delivery: Delivery,
    worker_threads: Option<usize>,
    clock: Clock,
}

fn parse_options(v: Option<Value>) -> FfiResult<Options> {
    let mut options = Options { delivery: Delivery::Thread, worker_threads: None, clock: Clock::System };
    let Some(v) = v else { return Ok(options) };
    let bad = |path: &str, message: &str| Failure::new(LIVECACHE_RESULT_CONFIG, format!("invalid options at {path}: {message}"));
    let map = v.as_object().ok_or_else(|| bad("(root)", "the options must be a JSON object"))?;
    for (key, value) in map {
        match key.as_str() {
            "delivery" => {
                options.delivery = match value.as_str() {
                    Some("thread") => Delivery::Thread,
                    Some("poll") => Delivery::Poll,
                    _ => return Err(bad("delivery", "expected \"thread\" or \"poll\"")),
                }
            }
            "workerThreads" => {
                options.worker_threads = match value.as_u64() {
                    Some(n) if (1..=64).contains(&n) => Some(n as usize),
                    _ => return Err(bad("workerThreads", "expected an integer from 1 to 64")),
                }
            }
            "clock" => {
                options.clock = match value.as_str() {
                    Some("system") => Clock::System,
                    Some("manual") => Clock::Manual,
                    _ => return Err(bad("clock", "expected \"system\" or \"manual\"")),
                }
            }
            other => return Err(bad(other, "unknown option (known: delivery, workerThreads, clock)")),
        }
    }
    Ok(options)
}

/// An eventfd the engine makes readable when callbacks become ready (pull mode).
fn ready_eventfd() -> FfiResult<Arc<OwnedFd>> {
    // SAFETY: plain syscall; a non-negative return is a new descriptor we own.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        return Err(Failure::new(LIVECACHE_RESULT_INVALID_ARGUMENT, format!("cannot create the pull-mode eventfd: {e}")));
    }
    // SAFETY: `fd` is a fresh descriptor owned by nobody else.
    Ok(Arc::new(unsafe { OwnedFd::from_raw_fd(fd) }))
}

fn signal(fd: &OwnedFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live u64 to a descriptor kept open by the Arc we hold.
    // A full counter (EAGAIN) still leaves the descriptor readable, which is all that matters.
    unsafe { libc::write(fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
}

fn drain(fd: &OwnedFd) {
    let mut count: u64 = 0;
    // SAFETY: reads 8 bytes into a live u64; non-blocking, EAGAIN when already drained.
    unsafe { libc::read(fd.as_raw_fd(), (&mut count as *mut u64).cast(), 8) };
}

/// Builds a client; shared by both constructors.
///
/// # Safety
/// Pointer arguments as documented on the exported constructors.
unsafe fn new_client(
    config_json: *const c_char,
    options_json: *const c_char,
    hooks: *const livecache_hooks,
    out: *mut *mut livecache_client,
) -> FfiResult {
    let out = out_ptr(out, "out")?;
    let config_value = json_arg(config_json, "config_json")?;
    let options = parse_options(opt_json_arg(options_json, "options_json")?)?;
    let hooks: Hooks = if hooks.is_null() { Hooks::new() } else { (*hooks).to_hooks() };
    let config = Config::from_value(&config_value)?;
    let mut client_options = ClientOptions { delivery: options.delivery, clock: options.clock, ..ClientOptions::default() };
    if let Some(n) = options.worker_threads {
        client_options.worker_threads = n;
    }
    let client = Client::with_options(config, hooks, client_options)?;
    let ready_fd = if options.delivery == Delivery::Poll {
        let fd = ready_eventfd()?;
        let notifier_fd = fd.clone();
        client.set_ready_notifier(Some(Arc::new(move || signal(&notifier_fd))));
        Some(fd)
    } else {
        None
    };
    *out = Box::into_raw(Box::new(livecache_client { client, ready_fd }));
    Ok(())
}

/// Creates a client from configuration JSON text (SPEC §2). Callbacks run on a delivery thread
/// the client owns. On success `*out` is the new client, freed with `livecache_client_free`.
///
/// Errors: `NULL_PARAMETER`, `INVALID_UTF8`, `INVALID_JSON` (not JSON text), `CONFIG` (the
/// message names the offending key path, e.g. `endpoints.getPost.query`).
///
/// # Safety
/// `config_json` is NULL or a NUL-terminated string; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn livecache_client_new(config_json: *const c_char, out: *mut *mut livecache_client) -> livecache_result {
    boundary(|| new_client(config_json, std::ptr::null(), std::ptr::null(), out))
}

/// Creates a client with options and host hooks.
///
/// `options_json` (NULL for the defaults) is a JSON object:
/// - `"delivery"`: `"thread"` (default: callbacks run on the client's delivery thread) or
///   `"poll"` (pull mode: callbacks run only inside `livecache_client_poll`, on the caller's thread;
///   `livecache_client_fd` gives a descriptor to wait on);
/// - `"workerThreads"`: threads of the engine's runtime, 1 to 64 (default 2);
/// - `"clock"`: `"system"` (default) or `"manual"`: virtual time that moves only with
///   `livecache_client_advance`, for tests of `keepUnusedDataFor` (L7) that do not sleep.
///
/// `hooks` (NULL for none) is read during the call and may be freed right after it; the
/// functions and `user_data` pointers it holds must stay valid until `livecache_client_free`.
///
/// Errors: as `livecache_client_new`; an unknown or invalid option is `CONFIG`, and so are hooks
/// for an endpoint the config does not have.
///
/// # Safety
/// String arguments are NULL or NUL-terminated; `hooks` is NULL or a live hooks object; `out`
/// is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn livecache_client_new_with_options(
    config_json: *const c_char,
    options_json: *const c_char,
    hooks: *const livecache_hooks,
    out: *mut *mut livecache_client,
) -> livecache_result {
    boundary(|| new_client(config_json, options_json, hooks, out))
}

/// Moves a manual clock (option `"clock": "manual"`) forward by `ms` milliseconds and runs what
/// is due by then (L7 removals) before returning; their events follow as usual.
///
/// Errors: `INVALID_ARGUMENT` on a client with the system clock, `CLOSED`, `NULL_PARAMETER`.
///
/// # Safety
/// `client` is NULL or a live client.
#[no_mangle]
pub unsafe extern "C" fn livecache_client_advance(client: *mut livecache_client, ms: u64) -> livecache_result {
    boundary(|| {
        let c = client.as_ref().ok_or_else(|| null("client"))?;
        c.client.advance(Duration::from_millis(ms))?;
        Ok(())
    })
}

/// Closes the client, then releases it. NULL is ignored.
///
/// Closing removes every entry, closes every stream with a WebSocket close handshake (bounded
/// wait) and stops every callback before this returns: in thread delivery the events already
/// queued (`removed` included) are delivered first, in pull mode they are dropped. No callback
/// or hook of this client starts after it returns.
///
/// Subscription handles stay valid after this: each must still be released once with
/// `livecache_unsubscribe` (which then only frees it).
///
/// # Safety
/// `client` is NULL or a live client that no other thread uses during or after this call.
#[no_mangle]
pub unsafe extern "C" fn livecache_client_free(client: *mut livecache_client) {
    boundary_void(|| {
        if client.is_null() {
            return;
        }
        let handle = Box::from_raw(client);
        handle.client.close();
        // The notifier holds its own reference to the descriptor: it closes after both are gone.
        handle.client.set_ready_notifier(None);
        drop(handle);
    })
}

/// Closes the client without releasing it (idempotent): as `livecache_client_free` does, but
/// the handle stays valid and every later call on it returns `LIVECACHE_RESULT_CLOSED`.
///
/// # Safety
/// `client` is NULL or a live client.
#[no_mangle]
pub unsafe extern "C" fn livecache_client_close(client: *mut livecache_client) -> livecache_result {
    boundary(|| {
        let c = client.as_ref().ok_or_else(|| null("client"))?;
        c.client.close();
        Ok(())
    })
}

/// Pull mode: runs the callbacks that are ready, on the calling thread, waiting up to
/// `timeout_ms` milliseconds for the first one (0: do not wait; negative: wait until one is
/// ready or the client closes). `*out_count` (NULL if not wanted) gets how many callbacks ran.
///
/// Drains the descriptor of `livecache_client_fd` first: whenever callbacks become ready after
/// that, it is readable again (it may also turn readable for callbacks this call then runs
/// itself; a later poll then simply runs none). Call it from one thread at a time.
///
/// Errors: `CLOSED`; `INVALID_ARGUMENT` for a client that delivers on its own thread.
///
/// # Safety
/// `client` is NULL or a live client; `out_count` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn livecache_client_poll(client: *mut livecache_client, timeout_ms: i64, out_count: *mut usize) -> livecache_result {
    boundary(|| {
        let c = client.as_ref().ok_or_else(|| null("client"))?;
        let fd = c.ready_fd.as_ref().ok_or_else(|| {
            Failure::new(LIVECACHE_RESULT_INVALID_ARGUMENT, "livecache_client_poll needs a client created with {\"delivery\": \"poll\"}")
        })?;
        drain(fd);
        let timeout = if timeout_ms < 0 { Duration::MAX } else { Duration::from_millis(timeout_ms as u64) };
        let ran = c.client.poll(timeout)?;
        if !out_count.is_null() {
            *out_count = ran;
        }
        Ok(())
    })
}

/// Pull mode: a file descriptor that is readable while callbacks wait for
/// `livecache_client_poll` — wait on it with poll(2), epoll or your event loop, then call
/// `livecache_client_poll(client, 0, …)`. It belongs to the client: do not read, write or close it;
/// it is closed by `livecache_client_free`.
///
/// Errors: `INVALID_ARGUMENT` for a client that delivers on its own thread.
///
/// # Safety
/// `client` is NULL or a live client; `out_fd` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn livecache_client_fd(client: *mut livecache_client, out_fd: *mut i32) -> livecache_result {
    boundary(|| {
        let out_fd = out_ptr(out_fd, "out_fd")?;
        let c = client.as_ref().ok_or_else(|| null("client"))?;
        let fd = c.ready_fd.as_ref().ok_or_else(|| {
            Failure::new(LIVECACHE_RESULT_INVALID_ARGUMENT, "livecache_client_fd needs a client created with {\"delivery\": \"poll\"}")
        })?;
        *out_fd = fd.as_raw_fd();
        Ok(())
    })
}

/// # Safety
/// `client` is NULL or a live client.
pub(crate) unsafe fn client_ref<'a>(client: *const livecache_client) -> FfiResult<&'a Client> {
    client.as_ref().map(|c| &c.client).ok_or_else(|| null("client"))
}
