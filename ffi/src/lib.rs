//! The C ABI of livecache (SPEC §7 C): `liblivecache.so` / `liblivecache.a` and the functions
//! declared in `include/livecache.h`, which cbindgen generates from this crate with
//! `ffi/cbindgen.toml`. Conventions (STYLE "C ABI"): every fallible function returns a
//! `livecache_result`, writes its out-parameters only on success and sets the thread's last
//! error on failure; every exported body runs inside one panic boundary; NULL and invalid UTF-8
//! are error codes, never undefined behaviour. The threading and shutdown rules are written in
//! the header's preamble.

#![allow(non_camel_case_types)]
// Exported functions check their pointers themselves; their safety contract is the header.
#![allow(clippy::missing_safety_doc)]

// In the order the header lists them.
mod result;
mod client;
mod subscription;
mod host;
mod update;
mod hooks;
mod lifecycle;
mod mutation;
mod userdata;

pub use client::*;
pub use hooks::*;
pub use host::*;
pub use lifecycle::*;
pub use mutation::*;
pub use result::*;
pub use subscription::*;
pub use update::*;

/// The library version, e.g. `"0.1.0"`. A static string: do not free it.
#[no_mangle]
pub extern "C" fn livecache_version() -> *const std::ffi::c_char {
    boundary_value(std::ptr::null(), || concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast())
}
