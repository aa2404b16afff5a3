//! Sequences of C ABI calls (SPEC §7 C, the header's rules): in any order, with NULLs, invalid
//! UTF-8, bad JSON, and the client freed while subscriptions live on (the header promises they
//! can still be read and released). Every call returns a result code and leaves the library
//! usable; ASan checks that nothing is freed twice, leaked into freed memory or read past.
//! Input: a byte string read as a little program, one operation per byte plus its operands.
#![no_main]

use std::ffi::{c_char, c_void, CStr, CString};
use std::ptr;

use libfuzzer_sys::fuzz_target;
use livecache::*;

const CONFIG: &CStr = c"{\"keepUnusedDataFor\": 0, \"endpoints\": {\"getDoc\": {\"stream\": {\"apply\": \"replace\"}}, \"getLog\": {\"stream\": {\"apply\": {\"append\": {\"maxLen\": 4}}}}, \"getNone\": {\"query\": \"x/{arg.id}\"}}}";
const ENDPOINTS: [&CStr; 3] = [c"getDoc", c"getLog", c"getNone"];

/// The operands of the program: bytes taken from the front.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    /// A C string argument: NULL, a known endpoint, or up to 15 raw bytes (cut at a NUL, maybe not
    /// UTF-8, maybe not JSON).
    fn text(&mut self) -> Option<CString> {
        let b = self.byte().unwrap_or(0);
        match b % 8 {
            0 => None,
            1..=3 => Some(ENDPOINTS[usize::from(b % 3)].to_owned()),
            4 => Some(c"\"a\"".to_owned()),
            5 => Some(c"{\"id\":1}".to_owned()),
            _ => {
                let n = usize::from(b >> 4).min(self.0.len());
                let (raw, rest) = self.0.split_at(n);
                self.0 = rest;
                let raw: Vec<u8> = raw.iter().copied().take_while(|c| *c != 0).collect();
                Some(CString::new(raw).expect("no NUL"))
            }
        }
    }
}

fn p(s: &Option<CString>) -> *const c_char {
    s.as_ref().map_or(ptr::null(), |s| s.as_ptr())
}

/// Frees a string livecache returned, if the call wrote one.
unsafe fn release(rc: livecache_result, s: *mut c_char) {
    if rc == livecache_result::LIVECACHE_RESULT_OK {
        assert!(!s.is_null(), "an OK call writes its out-parameter");
        livecache_string_free(s);
    } else {
        assert!(s.is_null(), "a failed call leaves its out-parameter");
        assert!(!livecache_last_error().is_null());
    }
}

unsafe extern "C" fn on_event(user_data: *mut c_void, event_json: *const c_char, len: usize) {
    let seen = &*(user_data as *const std::sync::atomic::AtomicUsize);
    assert_eq!(CStr::from_ptr(event_json).to_bytes().len(), len);
    seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

static SEEN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let mut client: *mut livecache_client = ptr::null_mut();
    let rc = unsafe { livecache_client_new_with_options(CONFIG.as_ptr(), c"{\"workerThreads\": 1}".as_ptr(), ptr::null(), &mut client) };
    assert_eq!(rc, livecache_result::LIVECACHE_RESULT_OK);
    let mut subs: Vec<*mut livecache_subscription> = Vec::new();
    let mut freed = false;
    let mut ops = 0;
    while let Some(op) = input.byte() {
        ops += 1;
        if ops > 64 {
            break;
        }
        // After `livecache_client_free` only the subscriptions may be used; the client calls go
        // to NULL, which must be NULL_PARAMETER.
        let c = if freed { ptr::null_mut() } else { client };
        unsafe {
            match op % 16 {
                0 => {
                    let (e, a) = (input.text(), input.text());
                    let mut out = ptr::null_mut();
                    release(livecache_cache_key(c, p(&e), p(&a), &mut out), out);
                }
                1 | 2 => {
                    let (e, a) = (input.text(), input.text());
                    let mut sub = ptr::null_mut();
                    let cb: livecache_event_cb = if op % 2 == 0 { Some(on_event) } else { None };
                    let rc = livecache_subscribe(c, p(&e), p(&a), cb, &SEEN as *const _ as *mut c_void, &mut sub);
                    if rc == livecache_result::LIVECACHE_RESULT_OK {
                        subs.push(sub);
                    } else {
                        assert!(sub.is_null());
                    }
                }
                3 => {
                    if let Some(i) = input.byte().map(usize::from).filter(|i| *i < subs.len()) {
                        livecache_unsubscribe(subs.swap_remove(i));
                    } else {
                        livecache_unsubscribe(ptr::null_mut());
                    }
                }
                4 => {
                    let (e, a) = (input.text(), input.text());
                    let mut out = ptr::null_mut();
                    release(livecache_snapshot(c, p(&e), p(&a), &mut out), out);
                }
                5 => {
                    let (e, a, m) = (input.text(), input.text(), input.text());
                    if op & 16 == 0 {
                        let _ = livecache_push_message(c, p(&e), p(&a), p(&m));
                    } else {
                        let _ = livecache_push_messages(c, p(&e), p(&a), p(&m));
                    }
                }
                6 => {
                    let (e, a, patch) = (input.text(), input.text(), input.text());
                    let mut out = ptr::null_mut();
                    let rc = livecache_patch_query_data(c, p(&e), p(&a), p(&patch), &mut out);
                    if rc == livecache_result::LIVECACHE_RESULT_OK {
                        // Undo it with the result it gave.
                        let mut undone = ptr::null_mut();
                        release(livecache_undo(c, p(&e), p(&a), out, &mut undone), undone);
                    }
                    release(rc, out);
                }
                7 => {
                    let (e, a, d) = (input.text(), input.text(), input.text());
                    let _ = livecache_upsert_query_data(c, p(&e), p(&a), p(&d));
                }
                8 => {
                    let mut out = ptr::null_mut();
                    release(livecache_stats(c, &mut out), out);
                }
                9 => {
                    if let Some(&sub) = input.byte().and_then(|i| subs.get(usize::from(i))) {
                        let mut out = ptr::null_mut();
                        release(livecache_subscription_snapshot(sub, &mut out), out);
                        assert!(!livecache_subscription_key(sub).is_null());
                    }
                }
                10 => {
                    let _ = livecache_client_close(c);
                }
                11 => {
                    if !freed {
                        livecache_client_free(client);
                        freed = true;
                    }
                }
                12 => {
                    let code = i32::from(input.byte().unwrap_or(0)) - 64;
                    assert!(!livecache_result_kind(code).is_null());
                }
                13 => {
                    let (e, a) = (input.text(), input.text());
                    let _ = livecache_refetch(c, p(&e), p(&a));
                }
                14 => {
                    // NULL out-parameters are refused, never written.
                    let (e, a) = (input.text(), input.text());
                    let rc = livecache_snapshot(c, p(&e), p(&a), ptr::null_mut());
                    assert_ne!(rc, livecache_result::LIVECACHE_RESULT_OK);
                }
                _ => {
                    livecache_string_free(ptr::null_mut());
                    let _ = livecache_version();
                }
            }
        }
    }
    unsafe {
        // Subscriptions are released before or after the client, as the header allows.
        let split = subs.len() / 2;
        for sub in subs.drain(..split) {
            livecache_unsubscribe(sub);
        }
        if !freed {
            livecache_client_free(client);
        }
        for sub in subs {
            livecache_unsubscribe(sub);
        }
    }
});
