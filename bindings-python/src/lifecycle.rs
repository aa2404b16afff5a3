//! The native half of `on_cache_entry_added`'s `lifecycle` argument (SPEC §6, L2, L3). The Python
//! `Lifecycle` wrapper turns `when_loaded` / `when_removed` into awaitables.

use livecache_core::Lifecycle;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::bridge::{recipe_fn, notify_when_done, NativeHostUpdate};
use crate::convert::{state_to_py, to_py};
use crate::errors::to_pyerr;

#[pyclass(frozen, module = "livecache._livecache")]
pub struct NativeLifecycle {
    lifecycle: Lifecycle,
}

impl NativeLifecycle {
    pub fn new(lifecycle: Lifecycle) -> NativeLifecycle {
        NativeLifecycle { lifecycle }
    }
}

#[pymethods]
impl NativeLifecycle {
    #[getter]
    fn key(&self) -> &str {
        self.lifecycle.key()
    }

    #[getter]
    fn removed(&self) -> bool {
        self.lifecycle.is_removed()
    }

    /// `callback(True, {"data", "meta"})` once the first data arrives (L2), or
    /// `callback(False, CacheEntryRemoved)` when the entry goes first.
    fn when_loaded(&self, callback: Py<PyAny>) {
        notify_when_done(self.lifecycle.cache_data_loaded(), callback, |py, loaded| {
            let d = PyDict::new(py);
            d.set_item("data", to_py(py, &loaded.data)?)?;
            d.set_item("meta", to_py(py, &loaded.meta)?)?;
            Ok(d.into_any())
        });
    }

    /// `callback(True, None)` when the entry is removed (L3).
    fn when_removed(&self, callback: Py<PyAny>) {
        notify_when_done(self.lifecycle.cache_entry_removed(), callback, |py, ()| Ok(py.None().into_bound(py)));
    }

    fn update_cached_data(&self, py: Python<'_>, recipe: Py<PyAny>) -> PyResult<NativeHostUpdate> {
        let mut failure = None;
        let lifecycle = &self.lifecycle;
        let r = py.detach(|| lifecycle.update_cached_data(recipe_fn(recipe, &mut failure)));
        if let Some(e) = failure {
            return Err(e);
        }
        r.map(NativeHostUpdate::new).map_err(to_pyerr)
    }

    fn get_cache_entry<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let lifecycle = &self.lifecycle;
        let state = py.detach(|| lifecycle.get_cache_entry()).map_err(to_pyerr)?;
        state_to_py(py, &state)
    }
}
