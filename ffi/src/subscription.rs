//! Subscriptions: events as JSON text to a C callback (SPEC §5, §7 C).

use std::ffi::{c_char, c_void, CString};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use livecache_core::{Event, SubscribeOptions, Subscription};

use crate::client::{client_ref, livecache_client};
use crate::result::livecache_result::*;
use crate::result::*;
use crate::userdata::UserData;

/// Receives one event as compact JSON text (SPEC §5): `{"type":"patch","key":…}`.
/// `len` equals `strlen(event_json)`. The text lives only during the call: copy what you keep.
pub type livecache_event_cb = Option<unsafe extern "C" fn(user_data: *mut c_void, event_json: *const c_char, len: usize)>;

/// One subscriber of one cache key. Released by `livecache_unsubscribe`.
pub struct livecache_subscription {
    sub: Subscription,
    key: CString,
}

/// Holds a subscription's callbacks until `livecache_subscribe` has written `*out`, so a
/// callback can always find its own handle (to unsubscribe itself, say).
struct Gate {
    open: AtomicBool,
    lock: Mutex<bool>,
    cond: Condvar,
}

impl Gate {
    fn new() -> Arc<Gate> {
        Arc::new(Gate { open: AtomicBool::new(false), lock: Mutex::new(false), cond: Condvar::new() })
    }

    fn wait(&self) {
        if self.open.load(Ordering::Acquire) {
            return;
        }
        let mut open = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        while !*open {
            open = self.cond.wait(open).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn release(&self) {
        *self.lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.open.store(true, Ordering::Release);
        self.cond.notify_all();
    }
}

/// Subscribes to `(endpoint, arg)`; the first subscriber of a key creates its entry and starts
/// its query and stream (SPEC L1). `arg_json` is the arg as JSON text; NULL means "no arg"
/// (key `endpoint(undefined)`), the text `null` is the JSON null (key `endpoint(null)`).
///
/// `cb(user_data, event_json, len)` gets every event of this subscription, in order, never two
/// at once, on the client's delivery thread (pull mode: inside `livecache_client_poll`). The
/// first callback starts only after this function has written `*out`. A callback may call any
/// livecache function, `livecache_unsubscribe` on its own subscription included.
///
/// On success `*out` is the subscription, released with `livecache_unsubscribe`.
///
/// Errors: `NULL_PARAMETER` (client, endpoint, cb, out), `INVALID_UTF8`, `INVALID_JSON`,
/// `UNKNOWN_ENDPOINT`, `INVALID_ARGUMENT` (the arg lacks a templated field), `CLOSED`.
///
/// # Safety
/// `client` is NULL or live; strings are NULL or NUL-terminated; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn livecache_subscribe(
    client: *mut livecache_client,
    endpoint: *const c_char,
    arg_json: *const c_char,
    cb: livecache_event_cb,
    user_data: *mut c_void,
    out: *mut *mut livecache_subscription,
) -> livecache_result {
    livecache_subscribe_with_options(client, endpoint, arg_json, std::ptr::null(), cb, user_data, out)
}

/// `livecache_subscribe` with `options_json`: NULL or `{"pollingInterval"?: ms,
/// "refetchOnMountOrArgChange"?: true | false | seconds}` (SPEC P1: the entry refetches every
/// smallest interval among its polling subscribers, never with two fetches in flight, and stops
/// when none is left; P2: subscribing to an existing entry refetches when its data is that old).
/// Polls run on the client's threads; events reach `cb` as for `livecache_subscribe`.
///
/// Errors: those of `livecache_subscribe`, and `INVALID_ARGUMENT` for an unknown option or a
/// `pollingInterval` that is not a positive number.
///
/// # Safety
/// As `livecache_subscribe`; `options_json` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn livecache_subscribe_with_options(
    client: *mut livecache_client,
    endpoint: *const c_char,
    arg_json: *const c_char,
    options_json: *const c_char,
    cb: livecache_event_cb,
    user_data: *mut c_void,
    out: *mut *mut livecache_subscription,
) -> livecache_result {
    boundary(|| {
        let out = out_ptr(out, "out")?;
        let client = client_ref(client)?;
        let endpoint = text(endpoint, "endpoint")?;
        let arg = opt_json_arg(arg_json, "arg_json")?;
        let options = match opt_json_arg(options_json, "options_json")? {
            None => SubscribeOptions::default(),
            Some(v) => SubscribeOptions::from_value(&v).map_err(|m| Failure::new(LIVECACHE_RESULT_INVALID_ARGUMENT, m))?,
        };
        let cb = cb.ok_or_else(|| null("cb"))?;
        let user_data = UserData(user_data);
        let gate = Gate::new();
        let callback_gate = gate.clone();
        let sub = client.subscribe_with(endpoint, arg, options, move |event: &Event| {
            callback_gate.wait();
            let text = c_string(event.to_json());
            // SAFETY: `text` outlives the call; `len` is its length without the NUL.
            unsafe { cb(user_data.get(), text.as_ptr(), text.as_bytes().len()) };
        })?;
        let key = c_string(sub.key().to_owned());
        *out = Box::into_raw(Box::new(livecache_subscription { sub, key }));
        gate.release();
        Ok(())
    })
}

/// Ends a subscription and releases its handle. NULL is ignored.
///
/// After it returns no callback of this subscription starts; when one is running on another
/// thread, this waits for it to finish. Called from the subscription's own callback, it returns
/// at once and that callback is the last. The last subscriber of a key leaving starts the
/// entry's `keepUnusedDataFor` timer (SPEC L7). Also valid after `livecache_client_free`, where it
/// only releases the handle.
///
/// # Safety
/// `sub` is NULL or a live subscription, released only once.
#[no_mangle]
pub unsafe extern "C" fn livecache_unsubscribe(sub: *mut livecache_subscription) {
    boundary_void(|| {
        if sub.is_null() {
            return;
        }
        let handle = Box::from_raw(sub);
        handle.sub.unsubscribe();
        drop(handle);
    })
}

/// The subscription's cache key (SPEC K1), e.g. `getMessages("redux")`. Owned by the
/// subscription: valid until `livecache_unsubscribe`; do not free it. NULL for a NULL `sub`.
///
/// # Safety
/// `sub` is NULL or a live subscription.
#[no_mangle]
pub unsafe extern "C" fn livecache_subscription_key(sub: *const livecache_subscription) -> *const c_char {
    boundary_value(std::ptr::null(), || sub.as_ref().map_or(std::ptr::null(), |s| s.key.as_ptr()))
}

/// The entry state of the subscription's key, as `livecache_snapshot` gives it.
///
/// # Safety
/// `sub` is NULL or a live subscription; `out_json` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn livecache_subscription_snapshot(sub: *const livecache_subscription, out_json: *mut *mut c_char) -> livecache_result {
    boundary(|| {
        let out = out_ptr(out_json, "out_json")?;
        let s = sub.as_ref().ok_or_else(|| null("sub"))?;
        let state = s.sub.snapshot()?;
        *out = owned_string(state.to_json());
        Ok(())
    })
}
