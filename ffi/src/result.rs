//! Result codes, the thread-local last error, the panic boundary and argument conversion: the
//! conventions every exported function shares (STYLE "C ABI").

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use livecache_core::json;
use livecache_core::Error;
use serde_json::Value;

/// What a call did. `LIVECACHE_RESULT_OK` is 0; every other code names one error kind, and
/// `livecache_last_error()` holds the message of the failure on the calling thread.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum livecache_result {
    /// Success; out-parameters are written.
    LIVECACHE_RESULT_OK = 0,
    /// A required pointer argument was NULL.
    LIVECACHE_RESULT_NULL_PARAMETER = 1,
    /// A string argument is not valid UTF-8.
    LIVECACHE_RESULT_INVALID_UTF8 = 2,
    /// A JSON argument is not valid JSON, is nested deeper than 128 levels, or holds NaN/Infinity.
    LIVECACHE_RESULT_INVALID_JSON = 3,
    /// The configuration (or the options JSON) is invalid; the message names the key path.
    LIVECACHE_RESULT_CONFIG = 4,
    /// The client is closed.
    LIVECACHE_RESULT_CLOSED = 5,
    /// The endpoint is not in the configuration.
    LIVECACHE_RESULT_UNKNOWN_ENDPOINT = 6,
    /// No cache entry exists for the key.
    LIVECACHE_RESULT_NOT_FOUND = 7,
    /// The cache entry has no data yet, so it cannot be updated.
    LIVECACHE_RESULT_NOT_LOADED = 8,
    /// A host patch or update did not apply; nothing changed.
    LIVECACHE_RESULT_PATCH = 9,
    /// An argument the call cannot use (an arg missing a templated field, a call that does not
    /// fit the client's delivery mode).
    LIVECACHE_RESULT_INVALID_ARGUMENT = 10,
    /// The cache entry was removed before its data loaded.
    LIVECACHE_RESULT_CACHE_ENTRY_REMOVED = 11,
    /// livecache itself failed unexpectedly; the call was abandoned (a bug: please report it).
    LIVECACHE_RESULT_PANIC = 12,
    /// The entry's stream has no open connection to send on; nothing was queued.
    LIVECACHE_RESULT_NOT_CONNECTED = 13,
    /// `mutate` on a query endpoint, or an entry call on a mutation endpoint.
    LIVECACHE_RESULT_WRONG_ENDPOINT_KIND = 14,
    /// The mutation failed; its result JSON is the server's answer `{"status", "data"}`.
    LIVECACHE_RESULT_MUTATION = 15,
}

use livecache_result::*;

/// A failed call: its code and the message `livecache_last_error` will return.
pub(crate) struct Failure {
    pub code: livecache_result,
    pub message: String,
}

impl Failure {
    pub fn new(code: livecache_result, message: impl Into<String>) -> Failure {
        Failure { code, message: message.into() }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        let code = match &e {
            Error::Config { .. } => LIVECACHE_RESULT_CONFIG,
            Error::Closed => LIVECACHE_RESULT_CLOSED,
            Error::UnknownEndpoint(_) => LIVECACHE_RESULT_UNKNOWN_ENDPOINT,
            Error::NotFound(_) => LIVECACHE_RESULT_NOT_FOUND,
            Error::NotLoaded(_) => LIVECACHE_RESULT_NOT_LOADED,
            Error::Patch(_) => LIVECACHE_RESULT_PATCH,
            Error::InvalidArgument(_) => LIVECACHE_RESULT_INVALID_ARGUMENT,
            Error::Input(_) => LIVECACHE_RESULT_INVALID_JSON,
            Error::CacheEntryRemoved(_) => LIVECACHE_RESULT_CACHE_ENTRY_REMOVED,
            Error::NotConnected(_) => LIVECACHE_RESULT_NOT_CONNECTED,
            Error::WrongEndpointKind(_) => LIVECACHE_RESULT_WRONG_ENDPOINT_KIND,
            Error::Mutation(_) => LIVECACHE_RESULT_MUTATION,
        };
        Failure { code, message: e.to_string() }
    }
}

pub(crate) type FfiResult<T = ()> = Result<T, Failure>;

std::thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(message: String) {
    let text = c_string(message);
    // During thread teardown the slot may be gone; the code alone must do then.
    let _ = LAST_ERROR.try_with(|e| *e.borrow_mut() = text);
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_owned()
    }
}

/// The one boundary every fallible exported body runs in: a panic never crosses into C, and a
/// failure sets this thread's last error.
pub(crate) fn boundary(body: impl FnOnce() -> FfiResult) -> livecache_result {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => LIVECACHE_RESULT_OK,
        Ok(Err(failure)) => {
            set_last_error(failure.message);
            failure.code
        }
        Err(payload) => {
            set_last_error(format!("internal error: {}", panic_message(&*payload)));
            LIVECACHE_RESULT_PANIC
        }
    }
}

/// The boundary for functions that return nothing (`_free`, `unsubscribe`).
pub(crate) fn boundary_void(body: impl FnOnce()) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(body)) {
        set_last_error(format!("internal error: {}", panic_message(&*payload)));
    }
}

/// The boundary for functions that return a value directly; `fallback` on panic.
pub(crate) fn boundary_value<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(v) => v,
        Err(payload) => {
            set_last_error(format!("internal error: {}", panic_message(&*payload)));
            fallback
        }
    }
}

pub(crate) fn null(name: &str) -> Failure {
    Failure::new(LIVECACHE_RESULT_NULL_PARAMETER, format!("{name} is NULL"))
}

/// Checks an out-parameter before any work is done, so a NULL one changes nothing.
pub(crate) fn out_ptr<T>(out: *mut T, name: &str) -> FfiResult<*mut T> {
    if out.is_null() {
        Err(null(name))
    } else {
        Ok(out)
    }
}

/// A required NUL-terminated UTF-8 string argument (SPEC §9: invalid UTF-8 is an error code).
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that outlives the call.
pub(crate) unsafe fn text<'a>(p: *const c_char, name: &str) -> FfiResult<&'a str> {
    if p.is_null() {
        return Err(null(name));
    }
    let bytes = CStr::from_ptr(p).to_bytes();
    std::str::from_utf8(bytes).map_err(|e| {
        Failure::new(
            LIVECACHE_RESULT_INVALID_UTF8,
            format!("{name} is not valid UTF-8 (at byte offset {})", e.valid_up_to()),
        )
    })
}

/// A required JSON text argument, parsed with the engine's bounded parser (depth, NaN).
///
/// # Safety
/// As [`text`].
pub(crate) unsafe fn json_arg(p: *const c_char, name: &str) -> FfiResult<Value> {
    let t = text(p, name)?;
    json::parse_host(t).map_err(|e| Failure::new(LIVECACHE_RESULT_INVALID_JSON, format!("{name} is not accepted: {e}")))
}

/// An optional JSON argument: NULL is "no arg" (`undefined`), the text `null` is JSON null.
///
/// # Safety
/// As [`text`].
pub(crate) unsafe fn opt_json_arg(p: *const c_char, name: &str) -> FfiResult<Option<Value>> {
    if p.is_null() {
        Ok(None)
    } else {
        json_arg(p, name).map(Some)
    }
}

/// A string the caller frees with `livecache_string_free`. JSON text and keys never hold a raw
/// NUL byte (serde escapes it), so the conversion cannot fail for them.
pub(crate) fn owned_string(s: String) -> *mut c_char {
    c_string(s).into_raw()
}

/// `s` as a C string; a raw NUL byte (never produced by serde_json) is dropped.
pub(crate) fn c_string(s: String) -> CString {
    CString::new(s).unwrap_or_else(|e| {
        let mut bytes = e.into_vec();
        bytes.retain(|&b| b != 0);
        CString::new(bytes).expect("NUL bytes removed")
    })
}

/// The message of the last call that failed on this thread, or an empty string if none did.
/// The pointer stays valid until the next failing call on this thread; do not free it.
#[no_mangle]
pub extern "C" fn livecache_last_error() -> *const c_char {
    boundary_value(c"".as_ptr(), || LAST_ERROR.try_with(|e| e.borrow().as_ptr()).unwrap_or(c"".as_ptr()))
}

/// The error kind of a result code, with the names every livecache binding shares
/// (`"NotFound"`, `"ConfigError"`, `"PatchError"`, …; `"Ok"` for success). A static string: do
/// not free it. `result` is an `int`, not the enum: a C caller may pass any value (a code of a
/// newer library, garbage), and any value it is given is `"Unknown"` rather than undefined
/// behaviour.
#[no_mangle]
pub extern "C" fn livecache_result_kind(result: std::ffi::c_int) -> *const c_char {
    boundary_value(c"Panic".as_ptr(), || code_of(result).map_or(c"Unknown", result_kind).as_ptr())
}

/// The result code `value` stands for, if any.
fn code_of(value: std::ffi::c_int) -> Option<livecache_result> {
    const ALL: [livecache_result; 16] = [
        LIVECACHE_RESULT_OK,
        LIVECACHE_RESULT_NULL_PARAMETER,
        LIVECACHE_RESULT_INVALID_UTF8,
        LIVECACHE_RESULT_INVALID_JSON,
        LIVECACHE_RESULT_CONFIG,
        LIVECACHE_RESULT_CLOSED,
        LIVECACHE_RESULT_UNKNOWN_ENDPOINT,
        LIVECACHE_RESULT_NOT_FOUND,
        LIVECACHE_RESULT_NOT_LOADED,
        LIVECACHE_RESULT_PATCH,
        LIVECACHE_RESULT_INVALID_ARGUMENT,
        LIVECACHE_RESULT_CACHE_ENTRY_REMOVED,
        LIVECACHE_RESULT_PANIC,
        LIVECACHE_RESULT_NOT_CONNECTED,
        LIVECACHE_RESULT_WRONG_ENDPOINT_KIND,
        LIVECACHE_RESULT_MUTATION,
    ];
    ALL.into_iter().find(|r| *r as std::ffi::c_int == value)
}

fn result_kind(result: livecache_result) -> &'static CStr {
    match result {
        LIVECACHE_RESULT_OK => c"Ok",
        LIVECACHE_RESULT_NULL_PARAMETER => c"NullParameter",
        LIVECACHE_RESULT_INVALID_UTF8 | LIVECACHE_RESULT_INVALID_JSON => c"InvalidInput",
        LIVECACHE_RESULT_CONFIG => c"ConfigError",
        LIVECACHE_RESULT_CLOSED => c"Closed",
        LIVECACHE_RESULT_UNKNOWN_ENDPOINT => c"UnknownEndpoint",
        LIVECACHE_RESULT_NOT_FOUND => c"NotFound",
        LIVECACHE_RESULT_NOT_LOADED => c"NotLoaded",
        LIVECACHE_RESULT_PATCH => c"PatchError",
        LIVECACHE_RESULT_INVALID_ARGUMENT => c"InvalidArgument",
        LIVECACHE_RESULT_CACHE_ENTRY_REMOVED => c"CacheEntryRemoved",
        LIVECACHE_RESULT_PANIC => c"Panic",
        LIVECACHE_RESULT_NOT_CONNECTED => c"NotConnected",
        LIVECACHE_RESULT_WRONG_ENDPOINT_KIND => c"WrongEndpointKind",
        LIVECACHE_RESULT_MUTATION => c"MutationError",
    }
}

/// Frees a string livecache returned (`livecache_snapshot`, `livecache_stats`, …). NULL is
/// ignored. Never pass these strings to `free()`: they come from livecache's allocator.
///
/// # Safety
/// `s` is NULL or a string returned by livecache that was not freed yet.
#[no_mangle]
pub unsafe extern "C" fn livecache_string_free(s: *mut c_char) {
    boundary_void(|| {
        if !s.is_null() {
            drop(CString::from_raw(s));
        }
    })
}
