//! Python values <-> JSON values. Python has no JSON value type of its own, so the binding walks
//! objects directly: `None`, `bool`, `int`, `float`, `str`, `list`/`tuple`, `dict` with `str` keys.
//! Input is bounded like every other host input (SPEC E3, §9): nesting deeper than 128 levels,
//! NaN/Infinity and integers outside i64/u64 are `InvalidInput` errors, never truncated silently.

use livecache_core::json::MAX_DEPTH;
use livecache_core::{EntryState, Event, PatchOp, Stats};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use pyo3::{intern, IntoPyObjectExt};
use serde_json::{Map, Number, Value};

use crate::errors::InvalidInput;

/// A JSON value as a new Python object (dicts keep the JSON key order).
pub fn to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    to_py_with(py, v, &mut KeyMemo::default())
}

/// Object keys already made into Python strings during one conversion, as `json.loads` memoises
/// the keys of one document: the messages of a burst, which share their field names, then share
/// one `str` per field instead of allocating it again for every message. Bounded: past
/// [`KeyMemo::MAX`] distinct keys the rest are made as they come.
#[derive(Default)]
struct KeyMemo<'v, 'py> {
    keys: Vec<(&'v str, Bound<'py, PyString>)>,
}

impl<'v, 'py> KeyMemo<'v, 'py> {
    const MAX: usize = 32;

    fn key(&mut self, py: Python<'py>, k: &'v str) -> Bound<'py, PyString> {
        if let Some((_, s)) = self.keys.iter().find(|(known, _)| *known == k) {
            return s.clone();
        }
        let s = PyString::new(py, k);
        if self.keys.len() < Self::MAX {
            self.keys.push((k, s.clone()));
        }
        s
    }
}

fn to_py_with<'v, 'py>(py: Python<'py>, v: &'v Value, memo: &mut KeyMemo<'v, 'py>) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_bound_py_any(py)?
            } else if let Some(u) = n.as_u64() {
                u.into_bound_py_any(py)?
            } else {
                PyFloat::new(py, n.as_f64().unwrap_or(f64::NAN)).into_any()
            }
        }
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(a) => {
            let items = a.iter().map(|item| to_py_with(py, item, memo)).collect::<PyResult<Vec<_>>>()?;
            PyList::new(py, items)?.into_any()
        }
        Value::Object(m) => {
            let dict = PyDict::new(py);
            for (k, item) in m {
                dict.set_item(memo.key(py, k), to_py_with(py, item, memo)?)?;
            }
            dict.into_any()
        }
    })
}

/// A Python object as a JSON value. `bool` is checked before `int` (it is a subclass of it).
pub fn from_py(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    from_py_at(obj, 0)
}

/// The UTF-8 text of a `str`; lone surrogates cannot be JSON text (SPEC §9). Owned: the stable
/// ABI of Python 3.9 (the abi3 wheel) has no borrowed UTF-8 view of a `str`.
pub(crate) fn text_of(s: &Bound<'_, PyString>) -> PyResult<String> {
    match s.to_cow() {
        Ok(text) => Ok(text.into_owned()),
        Err(_) => Err(InvalidInput::new_err("invalid input: invalid_json: a str with a lone surrogate is not valid UTF-8")),
    }
}

fn too_deep() -> PyErr {
    InvalidInput::new_err(format!("invalid input: too_deep: nested deeper than {MAX_DEPTH} levels"))
}

fn from_py_at(obj: &Bound<'_, PyAny>, depth: usize) -> PyResult<Value> {
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Value::String(text_of(s)?));
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if obj.cast::<PyInt>().is_ok() {
        if let Ok(i) = obj.extract::<i64>() {
            return Ok(Value::Number(i.into()));
        }
        if let Ok(u) = obj.extract::<u64>() {
            return Ok(Value::Number(u.into()));
        }
        return Err(InvalidInput::new_err(format!(
            "invalid input: integer {} is outside the 64-bit range JSON numbers are kept in",
            obj.str()?
        )));
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        let x = f.value();
        return Number::from_f64(x)
            .map(Value::Number)
            .ok_or_else(|| InvalidInput::new_err(format!("invalid input: not_finite: {x} is not a finite number")));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        if depth >= MAX_DEPTH {
            return Err(too_deep());
        }
        let mut map = Map::with_capacity(d.len());
        for (k, v) in d.iter() {
            let key = k.cast::<PyString>().map_err(|_| {
                InvalidInput::new_err(format!(
                    "invalid input: dict keys must be str, got {}",
                    k.get_type().name().map(|n| n.to_string()).unwrap_or_default()
                ))
            })?;
            map.insert(text_of(key)?, from_py_at(&v, depth + 1)?);
        }
        return Ok(Value::Object(map));
    }
    if let Ok(l) = obj.cast::<PyList>() {
        if depth >= MAX_DEPTH {
            return Err(too_deep());
        }
        let mut out = Vec::with_capacity(l.len());
        for v in l.iter() {
            out.push(from_py_at(&v, depth + 1)?);
        }
        return Ok(Value::Array(out));
    }
    if let Ok(t) = obj.cast::<PyTuple>() {
        if depth >= MAX_DEPTH {
            return Err(too_deep());
        }
        let mut out = Vec::with_capacity(t.len());
        for v in t.iter() {
            out.push(from_py_at(&v, depth + 1)?);
        }
        return Ok(Value::Array(out));
    }
    // Recording drafts (and other wrappers) expose the plain value they stand for.
    if let Ok(inner) = obj.getattr(intern!(obj.py(), "__livecache_value__")) {
        return from_py_at(&inner, depth);
    }
    Err(InvalidInput::new_err(format!(
        "invalid input: {} is not a JSON value (None, bool, int, float, str, list, tuple or dict)",
        obj.get_type().name().map(|n| n.to_string()).unwrap_or_default()
    )))
}

/// An RFC 6902 operation as the dict `jsonpatch` and SPEC §5 use.
fn op_to_py_with<'v, 'py>(py: Python<'py>, op: &'v PatchOp, memo: &mut KeyMemo<'v, 'py>) -> PyResult<Bound<'py, PyAny>> {
    let d = PyDict::new(py);
    let (name, path) = match op {
        PatchOp::Add { path, .. } => (intern!(py, "add"), path),
        PatchOp::Remove { path } => (intern!(py, "remove"), path),
        PatchOp::Replace { path, .. } => (intern!(py, "replace"), path),
        PatchOp::Move { path, .. } => (intern!(py, "move"), path),
        PatchOp::Copy { path, .. } => (intern!(py, "copy"), path),
        PatchOp::Test { path, .. } => (intern!(py, "test"), path),
    };
    d.set_item(intern!(py, "op"), name)?;
    if let PatchOp::Move { from, .. } | PatchOp::Copy { from, .. } = op {
        d.set_item(intern!(py, "from"), from)?;
    }
    // The paths of appends and of `maxLen` trims, one each per message of a chat burst.
    match path.as_str() {
        "/-" => d.set_item(intern!(py, "path"), intern!(py, "/-"))?,
        "/0" => d.set_item(intern!(py, "path"), intern!(py, "/0"))?,
        _ => d.set_item(intern!(py, "path"), path)?,
    }
    if let PatchOp::Add { value, .. } | PatchOp::Replace { value, .. } | PatchOp::Test { value, .. } = op {
        d.set_item(intern!(py, "value"), to_py_with(py, value, memo)?)?;
    }
    Ok(d.into_any())
}

/// A patch as a list of operation dicts; the objects in its values share their keys' strings.
pub fn ops_to_py<'py>(py: Python<'py>, ops: &[PatchOp]) -> PyResult<Bound<'py, PyList>> {
    let mut memo = KeyMemo::default();
    let items = ops.iter().map(|op| op_to_py_with(py, op, &mut memo)).collect::<PyResult<Vec<_>>>()?;
    PyList::new(py, items)
}

/// One event as the dict of SPEC §5.
pub fn event_to_py<'py>(py: Python<'py>, event: &Event) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item(intern!(py, "type"), event.type_name())?;
    d.set_item(intern!(py, "key"), event.key())?;
    match event {
        Event::Snapshot { version, status, data, .. } => {
            d.set_item(intern!(py, "version"), version)?;
            d.set_item(intern!(py, "status"), to_py(py, &serde_json::to_value(status).unwrap_or(Value::Null))?)?;
            d.set_item(intern!(py, "data"), to_py(py, data)?)?;
        }
        Event::Patch { from, version, patches, .. } => {
            d.set_item(intern!(py, "from"), from)?;
            d.set_item(intern!(py, "version"), version)?;
            d.set_item(intern!(py, "patches"), ops_to_py(py, patches)?)?;
        }
        Event::Status { status, error, .. } => {
            d.set_item(intern!(py, "status"), to_py(py, &serde_json::to_value(status).unwrap_or(Value::Null))?)?;
            if let Some(e) = error {
                d.set_item(intern!(py, "error"), to_py(py, e)?)?;
            }
        }
        Event::Stream { state, error, .. } => {
            d.set_item(intern!(py, "state"), to_py(py, &serde_json::to_value(state).unwrap_or(Value::Null))?)?;
            if let Some(e) = error {
                d.set_item(intern!(py, "error"), e)?;
            }
        }
        Event::Error { reason, message, .. } => {
            d.set_item(intern!(py, "reason"), reason.as_str())?;
            d.set_item(intern!(py, "message"), message)?;
        }
        Event::Removed { .. } => {}
    }
    Ok(d)
}

pub fn state_to_py<'py>(py: Python<'py>, state: &EntryState) -> PyResult<Bound<'py, PyAny>> {
    to_py(py, &serde_json::to_value(state).unwrap_or(Value::Null))
}

pub fn stats_to_py<'py>(py: Python<'py>, stats: &Stats) -> PyResult<Bound<'py, PyAny>> {
    to_py(py, &serde_json::to_value(stats).unwrap_or(Value::Null))
}
