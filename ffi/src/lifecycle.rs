//! `onCacheEntryAdded(arg, lifecycle)` for C (SPEC §6, L2, L3): the hook gets a lifecycle handle
//! it owns, and waits on it from a thread of its own.

use std::ffi::{c_char, c_void};

use livecache_core::Lifecycle;

use crate::update::{host_update_json, livecache_update_fn, run_recipe};
use crate::result::*;

/// One cache entry's lifetime, as `onCacheEntryAdded` sees it: its first data, its removal, and
/// updates bound to this lifetime. Owned by the host from the hook call on; released with
/// `livecache_lifecycle_free` (before or after the entry or the client is gone).
pub struct livecache_lifecycle {
    lifecycle: Lifecycle,
    key: std::ffi::CString,
}

/// `onCacheEntryAdded`: called once per entry lifetime (SPEC L1) right after the entry is created,
/// with the arg (`arg_json`, NULL for "no arg", valid during the call) and a lifecycle handle the
/// hook now owns. Runs on an engine thread: do not wait there — hand the handle to a thread of
/// your own, which may block in `livecache_lifecycle_cache_data_loaded` /
/// `livecache_lifecycle_cache_entry_removed`.
pub type livecache_entry_added_fn =
    Option<unsafe extern "C" fn(user_data: *mut c_void, arg_json: *const c_char, lifecycle: *mut livecache_lifecycle)>;

pub(crate) fn new_lifecycle(lifecycle: Lifecycle) -> *mut livecache_lifecycle {
    let key = c_string(lifecycle.key().to_owned());
    Box::into_raw(Box::new(livecache_lifecycle { lifecycle, key }))
}

/// `cacheDataLoaded` (SPEC L2): blocks until the entry's first data arrives, then writes
/// `{"data": …, "meta": …}` to `*out_json` (release with `livecache_string_free`). Returns at once
/// when the data is already there. Failed fetches do not end the wait; a later success does.
///
/// Errors: `CACHE_ENTRY_REMOVED` when the entry is removed first (also when the client is freed),
/// `NULL_PARAMETER`.
///
/// # Safety
/// `lifecycle` NULL or live; `out_json` NULL or writable. Call it from a thread of your own, not
/// from a callback or hook.
#[no_mangle]
pub unsafe extern "C" fn livecache_lifecycle_cache_data_loaded(
    lifecycle: *mut livecache_lifecycle,
    out_json: *mut *mut c_char,
) -> livecache_result {
    boundary(|| {
        let out = out_ptr(out_json, "out_json")?;
        let lc = lifecycle.as_ref().ok_or_else(|| null("lifecycle"))?;
        let loaded = lc.lifecycle.cache_data_loaded().wait()?;
        *out = owned_string(serde_json::json!({"data": loaded.data, "meta": loaded.meta}).to_string());
        Ok(())
    })
}

/// `cacheEntryRemoved` (SPEC L3): blocks until the entry is removed (after `keepUnusedDataFor`
/// with no subscriber, or when the client is closed). Returns at once if it already was.
///
/// # Safety
/// As `livecache_lifecycle_cache_data_loaded`.
#[no_mangle]
pub unsafe extern "C" fn livecache_lifecycle_cache_entry_removed(lifecycle: *mut livecache_lifecycle) -> livecache_result {
    boundary(|| {
        let lc = lifecycle.as_ref().ok_or_else(|| null("lifecycle"))?;
        lc.lifecycle.cache_entry_removed().wait()?;
        Ok(())
    })
}

/// `updateCachedData(recipe)`: `livecache_update_query_data` for this entry lifetime only.
///
/// Errors: `CACHE_ENTRY_REMOVED` (this entry was removed, or the client freed), `NOT_LOADED`, `PATCH`.
///
/// # Safety
/// `lifecycle` NULL or live; `out_result_json` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn livecache_lifecycle_update_cached_data(
    lifecycle: *mut livecache_lifecycle,
    recipe: livecache_update_fn,
    user_data: *mut c_void,
    out_result_json: *mut *mut c_char,
) -> livecache_result {
    boundary(|| {
        let lc = lifecycle.as_ref().ok_or_else(|| null("lifecycle"))?;
        let recipe = recipe.ok_or_else(|| null("recipe"))?;
        let mut refused = None;
        let update = lc.lifecycle.update_cached_data(|draft| run_recipe(recipe, user_data, draft, &mut refused))?;
        if let Some(f) = refused {
            return Err(f);
        }
        if !out_result_json.is_null() {
            *out_result_json = owned_string(host_update_json(&update));
        }
        Ok(())
    })
}

/// `getCacheEntry()`: the entry's state, as `livecache_snapshot` gives it; once the entry is
/// removed (or the client freed), RTK Query's uninitialized entry `{"key":…,"status":"uninitialized"}`
/// (SPEC §6).
///
/// Errors: `NULL_PARAMETER`.
///
/// # Safety
/// `lifecycle` NULL or live; `out_json` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn livecache_lifecycle_get_cache_entry(lifecycle: *mut livecache_lifecycle, out_json: *mut *mut c_char) -> livecache_result {
    boundary(|| {
        let out = out_ptr(out_json, "out_json")?;
        let lc = lifecycle.as_ref().ok_or_else(|| null("lifecycle"))?;
        let state = lc.lifecycle.get_cache_entry()?;
        *out = owned_string(state.to_json());
        Ok(())
    })
}

/// The entry's cache key. Owned by the handle: valid until `livecache_lifecycle_free`.
///
/// # Safety
/// `lifecycle` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn livecache_lifecycle_key(lifecycle: *const livecache_lifecycle) -> *const c_char {
    boundary_value(std::ptr::null(), || lifecycle.as_ref().map_or(std::ptr::null(), |l| l.key.as_ptr()))
}

/// Releases a lifecycle handle. NULL is ignored. Do not release it while another thread waits
/// on it.
///
/// # Safety
/// `lifecycle` NULL or live, released once.
#[no_mangle]
pub unsafe extern "C" fn livecache_lifecycle_free(lifecycle: *mut livecache_lifecycle) {
    boundary_void(|| {
        if !lifecycle.is_null() {
            drop(Box::from_raw(lifecycle));
        }
    })
}
