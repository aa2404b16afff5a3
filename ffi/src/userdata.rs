//! The host's `user_data` pointer, passed back untouched.

use std::ffi::c_void;

/// A host pointer handed back untouched on another thread; the header makes its thread-safety
/// the host's contract.
#[derive(Clone, Copy)]
pub(crate) struct UserData(pub *mut c_void);
// SAFETY: livecache never dereferences it; the host promises it may be used from the threads
// the header names.
unsafe impl Send for UserData {}
unsafe impl Sync for UserData {}

impl UserData {
    /// Through a method, so closures capture the whole `Send` wrapper, not its raw field.
    pub(crate) fn get(self) -> *mut c_void {
        self.0
    }
}

