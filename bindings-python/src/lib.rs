//! `livecache._livecache`: the native half of the `livecache` Python package (pyo3). The
//! hand-written `python/livecache/__init__.py` builds the public API (SPEC §7 Python) on it.

mod bridge;
mod client;
mod convert;
mod errors;
mod hooks;
mod lifecycle;

use pyo3::prelude::*;

/// The extension's Rust allocations (parsed messages, cached data, events) go to mimalloc: the
/// engine makes many small short-lived allocations per message, which glibc's malloc serves
/// slower and keeps resident after a burst. Python's own objects are not affected.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Reports `exc` through `sys.unraisablehook`, naming `obj` (a callback that raised, SPEC §5).
#[pyfunction]
fn report_unraisable(exc: Bound<'_, PyAny>, obj: Bound<'_, PyAny>) {
    PyErr::from_value(exc).write_unraisable(obj.py(), Some(&obj));
}

#[pymodule]
fn _livecache(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::register(m)?;
    m.add_class::<client::NativeClient>()?;
    m.add_class::<client::NativeSubscription>()?;
    m.add_class::<client::NativeEvents>()?;
    m.add_class::<client::NoArg>()?;
    m.add_class::<bridge::NativeHostUpdate>()?;
    m.add_class::<lifecycle::NativeLifecycle>()?;
    m.add_class::<hooks::Completion>()?;
    m.add("NO_ARG", client::NoArg)?;
    m.add_function(wrap_pyfunction!(report_unraisable, m)?)?;
    Ok(())
}
