//! The `livecache_update` handle through which C code hands back a change (an update recipe, an
//! `on_message` hook), and running a C recipe on a draft.

use std::ffi::{c_char, c_void};

use livecache_core::json::MAX_DEPTH;
use livecache_core::patch::{apply_patch, parse_patch};
use livecache_core::{HostUpdate, PatchOp};
use serde_json::Value;

use crate::result::livecache_result::*;
use crate::result::*;

/// A change being described by host code: filled by `livecache_update_set_data`,
/// `livecache_update_set_patches` or `livecache_update_fail` during the callback that receives
/// it (an update recipe or an `on_message` hook). Owned by livecache and valid only during that
/// callback. Leaving it untouched means "no change".
pub struct livecache_update {
    pub(crate) outcome: UpdateOutcome,
}

pub(crate) enum UpdateOutcome {
    Unchanged,
    Data(Value),
    Patches(Vec<PatchOp>),
    Failed(String),
}

impl livecache_update {
    pub(crate) fn new() -> livecache_update {
        livecache_update { outcome: UpdateOutcome::Unchanged }
    }
}

/// An update recipe (`updateQueryData`): `data_json` is the entry's current data as JSON text
/// (valid only during the call); describe the change on `update`.
pub type livecache_update_fn = Option<unsafe extern "C" fn(user_data: *mut c_void, data_json: *const c_char, update: *mut livecache_update)>;

/// Sets the whole new data (JSON text); livecache derives the patch subscribers get.
///
/// Errors: `NULL_PARAMETER`, `INVALID_UTF8`, `INVALID_JSON`; the update is unchanged then.
///
/// # Safety
/// `update` is NULL or the handle passed to the running callback; `data_json` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn livecache_update_set_data(update: *mut livecache_update, data_json: *const c_char) -> livecache_result {
    boundary(|| {
        let u = update.as_mut().ok_or_else(|| null("update"))?;
        let data = json_arg(data_json, "data_json")?;
        u.outcome = UpdateOutcome::Data(data);
        Ok(())
    })
}

/// Sets the change as RFC 6902 operations (JSON text: an array of operations), applied to the
/// current data all or nothing — the fast path: no diff is computed.
///
/// Errors: `NULL_PARAMETER`, `INVALID_UTF8`, `INVALID_JSON`, `PATCH` (not an operation array);
/// the update is unchanged then.
///
/// # Safety
/// As `livecache_update_set_data`.
#[no_mangle]
pub unsafe extern "C" fn livecache_update_set_patches(update: *mut livecache_update, patches_json: *const c_char) -> livecache_result {
    boundary(|| {
        let u = update.as_mut().ok_or_else(|| null("update"))?;
        let patches = json_arg(patches_json, "patches_json")?;
        let ops = parse_patch(&patches).map_err(|e| Failure::new(LIVECACHE_RESULT_PATCH, format!("patches_json: {e}")))?;
        u.outcome = UpdateOutcome::Patches(ops);
        Ok(())
    })
}

/// Refuses the change with a message: an `on_message` hook's message becomes an `error` event
/// (reason `hook`); an update recipe's call returns `LIVECACHE_RESULT_PATCH`. Nothing changes.
///
/// Errors: `NULL_PARAMETER`, `INVALID_UTF8`.
///
/// # Safety
/// `update` is NULL or the handle passed to the running callback; `message` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn livecache_update_fail(update: *mut livecache_update, message: *const c_char) -> livecache_result {
    boundary(|| {
        let u = update.as_mut().ok_or_else(|| null("update"))?;
        let message = text(message, "message")?;
        u.outcome = UpdateOutcome::Failed(message.to_owned());
        Ok(())
    })
}

pub(crate) fn host_update_json(update: &HostUpdate) -> String {
    serde_json::json!({"patches": update.patches, "inversePatches": update.inverse_patches}).to_string()
}

/// Runs a C update recipe on a draft: the new data to use, or `None` (the draft, changed in
/// place by the recipe's patches, or unchanged). A refusal is left in `refused`.
pub(crate) fn run_recipe(
    recipe: unsafe extern "C" fn(*mut c_void, *const c_char, *mut livecache_update),
    user_data: *mut c_void,
    draft: &mut Value,
    refused: &mut Option<Failure>,
) -> Option<Value> {
    let data = c_string(draft.to_string());
    let mut change = livecache_update::new();
    // SAFETY: `data` and `change` outlive the call; the recipe's contract is the header's.
    unsafe { recipe(user_data, data.as_ptr(), &mut change) };
    match change.outcome {
        UpdateOutcome::Unchanged => None,
        UpdateOutcome::Data(v) => Some(v),
        UpdateOutcome::Patches(ops) => {
            // All or nothing: a failing patch leaves the draft as it was, so nothing changes.
            if let Err(e) = apply_patch(draft, &ops, MAX_DEPTH) {
                *refused = Some(Failure::new(LIVECACHE_RESULT_PATCH, format!("update not applied: {e}")));
            }
            None
        }
        UpdateOutcome::Failed(m) => {
            *refused = Some(Failure::new(LIVECACHE_RESULT_PATCH, format!("update refused by the recipe: {m}")));
            None
        }
    }
}

