//! Engine-to-Python plumbing shared by clients, subscriptions and lifecycles: one-shot
//! notifications from engine threads, host update recipes, and host update results.

use std::sync::Arc;

use livecache_core::{Completion, HostUpdate, LayerRecipe, OptimisticLayer};
use pyo3::prelude::*;
use serde_json::Value;

use crate::convert::{from_py, ops_to_py, to_py};
use crate::errors::{to_pyerr, to_pyerr_in, Closed};

/// A Python callback `callback(ok, value)` called exactly once from an engine thread: with the
/// result, or — if the engine drops the work (client closed) — with `Closed`, so no Python
/// future waits forever.
pub struct Notify(Option<Py<PyAny>>);

impl Notify {
    pub fn new(callback: Py<PyAny>) -> Notify {
        Notify(Some(callback))
    }

    pub fn send(mut self, make: impl for<'py> FnOnce(Python<'py>) -> PyResult<Bound<'py, PyAny>>) {
        let Some(cb) = self.0.take() else { return };
        Python::try_attach(|py| {
            let (ok, value) = match make(py) {
                Ok(v) => (true, v),
                Err(e) => (false, e.into_value(py).into_bound(py).into_any()),
            };
            if let Err(e) = cb.call1(py, (ok, value)) {
                e.write_unraisable(py, Some(cb.bind(py)));
            }
        });
    }
}

impl Drop for Notify {
    fn drop(&mut self) {
        if let Some(cb) = self.0.take() {
            Notify(Some(cb)).send(|_| Err(Closed::new_err("the client is closed")));
        }
    }
}

/// Reports how `done` ends to `callback(ok, value)`, converting its value with `convert`.
pub fn notify_when_done<T: Send + 'static>(
    done: Completion<T>,
    callback: Py<PyAny>,
    convert: impl for<'py> FnOnce(Python<'py>, T) -> PyResult<Bound<'py, PyAny>> + Send + 'static,
) {
    let notify = Notify::new(callback);
    done.on_done(move |r| {
        notify.send(move |py| match r {
            Ok(v) => convert(py, v),
            Err(e) => Err(to_pyerr_in(py, e)),
        })
    });
}

/// A recipe as the core's draft closure: the draft is converted to Python, `recipe(draft)` mutates
/// it or returns a new value. A raising recipe changes nothing; its exception lands in `failure`.
pub fn recipe_fn<'a>(recipe: Py<PyAny>, failure: &'a mut Option<PyErr>) -> impl FnOnce(&mut Value) -> Option<Value> + Send + 'a {
    move |draft: &mut Value| {
        match run_recipe(&recipe, draft) {
            Ok(v) => Some(v),
            Err(e) => {
                *failure = Some(e);
                None
            }
        }
    }
}

/// `recipe(draft)` on a Python copy of `draft`: the draft as it mutated it, or what it returned.
fn run_recipe(recipe: &Py<PyAny>, draft: &Value) -> PyResult<Value> {
    Python::attach(|py| {
        let obj = to_py(py, draft)?;
        let returned = recipe.call1(py, (obj.clone(),))?;
        if returned.is_none(py) {
            from_py(&obj)
        } else {
            from_py(returned.bind(py))
        }
    })
}

/// W3: a `mutate` call's `optimistic` list as the core takes it: `{"endpoint", "arg"?, "recipe"}`
/// items are host recipes (run by the core on a draft of the entry's visible data, in the call);
/// the others cross as JSON (`{"endpoint", "arg"?, "message"}`). A recipe's exception lands in
/// `failure`, to be raised as it is.
pub fn optimistic_layers(items: &Bound<'_, PyAny>, failure: &Arc<parking_lot::Mutex<Option<PyErr>>>) -> PyResult<Vec<OptimisticLayer>> {
    let bad = |m: String| crate::errors::InvalidArgument::new_err(format!("optimistic: {m}"));
    let list = items.cast::<pyo3::types::PyList>().map_err(|_| bad("expected a list of layers".into()))?;
    let mut layers = Vec::with_capacity(list.len());
    for item in list.iter() {
        let recipe = item.cast::<pyo3::types::PyDict>().ok().and_then(|d| d.get_item("recipe").ok().flatten());
        let Some(recipe) = recipe else {
            layers.push(OptimisticLayer::Value(from_py(&item)?));
            continue;
        };
        let d = item.cast::<pyo3::types::PyDict>()?;
        for key in d.keys() {
            let key: String = key.extract()?;
            if !["endpoint", "arg", "recipe"].contains(&key.as_str()) {
                return Err(bad(format!("a recipe layer has no key {key:?} (expected endpoint, arg, recipe)")));
            }
        }
        if !recipe.is_callable() {
            return Err(bad("a layer's `recipe` must be callable".into()));
        }
        let endpoint: String = d.get_item("endpoint")?.and_then(|e| e.extract().ok()).ok_or_else(|| bad("a layer needs a str `endpoint`".into()))?;
        let arg = d.get_item("arg")?.map(|a| from_py(&a)).transpose()?;
        let (f, slot) = (recipe.unbind(), Arc::clone(failure));
        let run = move |draft: &mut Value| -> Result<Option<Value>, String> {
            run_recipe(&f, draft).map(Some).map_err(|e| {
                let message = e.to_string();
                *slot.lock() = Some(e);
                message
            })
        };
        layers.push(OptimisticLayer::Recipe(LayerRecipe { endpoint, arg, recipe: Box::new(run) }));
    }
    Ok(layers)
}

/// The result of a host update (L9): `patches`, `inverse_patches`, `undo()`.
#[pyclass(frozen, name = "HostUpdate", module = "livecache._livecache")]
pub struct NativeHostUpdate {
    update: HostUpdate,
}

impl NativeHostUpdate {
    pub fn new(update: HostUpdate) -> NativeHostUpdate {
        NativeHostUpdate { update }
    }
}

#[pymethods]
impl NativeHostUpdate {
    #[getter]
    fn patches<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(ops_to_py(py, &self.update.patches)?.into_any())
    }

    #[getter]
    fn inverse_patches<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(ops_to_py(py, &self.update.inverse_patches)?.into_any())
    }

    /// Applies `inverse_patches` as a new host update and returns it.
    fn undo(&self, py: Python<'_>) -> PyResult<NativeHostUpdate> {
        let update = &self.update;
        py.detach(|| update.undo()).map(NativeHostUpdate::new).map_err(to_pyerr)
    }

    fn __repr__(&self) -> String {
        format!("HostUpdate(patches={} ops)", self.update.patches.len())
    }
}
