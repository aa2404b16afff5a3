//! Python host hooks (SPEC §6) wrapped into the core's `EndpointHooks`.
//!
//! The engine calls hooks on its own threads with no lock held; each wrapper attaches to the
//! interpreter with `Python::try_attach` (nothing runs during interpreter shutdown) and hands the
//! Python function to the package's hook runner (`livecache._HookRunner`), which runs plain functions
//! at once and schedules coroutines on the client's event loop. Answers come back through a
//! [`Completion`].
//!
//! `on_message` is the per-message hot path. Converting the whole document to Python and diffing
//! it back per message would cost O(size of the data); instead each entry keeps a Python replica
//! of its data, built once, and the hook gets a recording draft over it whose edits become RFC
//! 6902 operations (`MessageUpdate::Ops`), applied by the engine without a diff. The replica is
//! trusted only when the engine says it handed the hook exactly the version the replica is at
//! (`MessageBatch::base`); anything else (a host update, a refetch, a retried message) rebuilds it.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::future::FutureExt;
use livecache_core::hooks::{
    InvalidatesTagsFn, MessageBase, MessageBatch, OnCacheEntryAddedFn, OnMessagesFn, PrepareHeadersFn, ProvidesTagsFn, QueryFn, TransformFn,
};
use livecache_core::json::{within_depth, MAX_DEPTH};
use livecache_core::key::cache_key;
use livecache_core::{EndpointHooks, Hooks, Lifecycle, MessageUpdate, PatchOp};
use parking_lot::Mutex;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};
use serde_json::{json, Value};
use livecache_core::completion::{reply, Answer, Reply};

use crate::convert::{from_py, to_py};
use crate::errors::ConfigError;
use crate::lifecycle::NativeLifecycle;

const HOOK_NAMES: [&str; 8] = [
    "query_fn",
    "transform_response",
    "on_message",
    "on_cache_entry_added",
    "prepare_headers",
    "mutation_fn",
    "provides_tags",
    "invalidates_tags",
];

/// The answer of a Python hook, sent back to the engine once (from any thread).
#[pyclass(frozen, module = "livecache._livecache")]
pub struct Completion {
    tx: Mutex<Option<Reply<Result<Value, Value>>>>,
}

impl Completion {
    fn new(tx: Reply<Result<Value, Value>>) -> Completion {
        Completion { tx: Mutex::new(Some(tx)) }
    }

    fn send(&self, r: Result<Value, Value>) {
        if let Some(tx) = self.tx.lock().take() {
            tx.send(r);
        }
    }
}

#[pymethods]
impl Completion {
    /// The hook's value. A value that is not bounded JSON fails the hook instead.
    fn resolve(&self, value: &Bound<'_, PyAny>) {
        let r = from_py(value).map_err(|e| json!({"status": "CUSTOM_ERROR", "error": e.to_string()}));
        self.send(r);
    }

    /// The hook failed with this error value (a fetch error object, or a message).
    fn reject(&self, error: &Bound<'_, PyAny>) {
        let v = from_py(error).unwrap_or_else(|e| json!({"status": "CUSTOM_ERROR", "error": e.to_string()}));
        self.send(Err(v));
    }
}

fn custom_error(message: impl Into<String>) -> Value {
    json!({"status": "CUSTOM_ERROR", "error": message.into()})
}

pub fn arg_to_py<'py>(py: Python<'py>, arg: Option<&Value>) -> PyResult<Bound<'py, PyAny>> {
    match arg {
        Some(v) => to_py(py, v),
        None => Ok(py.None().into_bound(py)),
    }
}

/// Starts a Python hook through the runner; its answer arrives on the returned receiver.
fn start_hook(
    runner: &Py<PyAny>,
    method: &'static str,
    build: impl FnOnce(Python<'_>, Py<Completion>) -> PyResult<Bound<'_, PyTuple>>,
) -> Answer<Result<Value, Value>> {
    let (tx, rx) = reply();
    // When this fails (or the interpreter is shutting down) the completion and its sender are
    // gone, and the receiver reports the hook as abandoned.
    let _ = Python::try_attach(|py| -> PyResult<()> {
        let completion = Py::new(py, Completion::new(tx))?;
        let args = build(py, completion.clone_ref(py))?;
        if let Err(e) = runner.call_method1(py, PyString::new(py, method), args) {
            completion.get().send(Err(custom_error(e.to_string())));
        }
        Ok(())
    });
    rx
}

/// Per entry: the Python replica of its data that recording drafts write through. The engine
/// says which data it hands each call (`MessageBatch::base`); the replica is used only when it
/// is exactly that version of that entry.
struct Replica {
    /// The engine's data this replica equals once the last hook result is applied.
    base: MessageBase,
    /// `None` when the last call cannot vouch for it (see `on_message`).
    data: Option<Py<PyAny>>,
    /// The first message of the last call. The engine calls the hook again with the same
    /// messages when the data moved while it ran, and applies nothing from the earlier call; the
    /// replica that call edited is then stale even if the versions happen to match.
    message: Value,
}

type Replicas = Arc<Mutex<HashMap<String, Replica>>>;

fn query_fn(runner: Py<PyAny>, f: Py<PyAny>) -> QueryFn {
    Arc::new(move |arg: Option<Value>| {
        let rx = start_hook(&runner, "call", |py, completion| {
            let a = arg_to_py(py, arg.as_ref())?;
            PyTuple::new(py, [f.clone_ref(py).into_any(), PyTuple::new(py, [a])?.into_any().unbind(), completion.into_any()])
        });
        async move { rx.await.unwrap_or_else(|| Err(custom_error("queryFn was abandoned (interpreter shutting down or its loop closed)"))) }
            .boxed()
    })
}

/// T1 `prepare_headers(headers, context)`: a dict of the headers to send (a coroutine may produce
/// it); an exception fails that fetch or connect attempt.
fn prepare_headers(runner: Py<PyAny>, f: Py<PyAny>) -> PrepareHeadersFn {
    Arc::new(move |headers: Value, context: Value| {
        let rx = start_hook(&runner, "call", |py, completion| {
            let args = PyTuple::new(py, [to_py(py, &headers)?, to_py(py, &context)?])?;
            PyTuple::new(py, [f.clone_ref(py).into_any(), args.into_any().unbind(), completion.into_any()])
        });
        async move {
            match rx.await {
                Some(Ok(headers)) => Ok(headers),
                // The runner reports an exception as `{"status": "CUSTOM_ERROR", "error": "Type: text"}`.
                Some(Err(error)) => Err(error.get("error").and_then(Value::as_str).map_or_else(|| error.to_string(), str::to_owned)),
                None => Err("prepare_headers was abandoned (interpreter shutting down or its loop closed)".to_owned()),
            }
        }
        .boxed()
    })
}

fn transform_response(f: Py<PyAny>) -> TransformFn {
    Arc::new(move |data: Value, arg: Option<Value>| {
        Python::try_attach(|py| -> Result<Value, String> {
            let d = to_py(py, &data).map_err(|e| e.to_string())?;
            let a = arg_to_py(py, arg.as_ref()).map_err(|e| e.to_string())?;
            let r = f.call1(py, (d, a)).map_err(|e| e.to_string())?;
            from_py(r.bind(py)).map_err(|e| e.to_string())
        })
        .unwrap_or_else(|| Err("the interpreter is shutting down".into()))
    })
}

/// W2 `provides_tags(data, arg)`, synchronous: the list it returns, or its exception's text.
fn provides_tags(f: Py<PyAny>) -> ProvidesTagsFn {
    Arc::new(move |data: &Value, arg: Option<&Value>| {
        Python::try_attach(|py| -> Result<Value, String> {
            let d = to_py(py, data).map_err(|e| e.to_string())?;
            let a = arg_to_py(py, arg).map_err(|e| e.to_string())?;
            let r = f.call1(py, (d, a)).map_err(|e| e.to_string())?;
            from_py(r.bind(py)).map_err(|e| e.to_string())
        })
        .unwrap_or_else(|| Err("the interpreter is shutting down".into()))
    })
}

/// W2 `invalidates_tags(result, error, arg)`, synchronous; `None` stands for the side that is not.
fn invalidates_tags(f: Py<PyAny>) -> InvalidatesTagsFn {
    Arc::new(move |result: Option<&Value>, error: Option<&Value>, arg: Option<&Value>| {
        Python::try_attach(|py| -> Result<Value, String> {
            let optional = |v: Option<&Value>| match v {
                Some(v) => to_py(py, v).map_err(|e| e.to_string()),
                None => Ok(py.None().into_bound(py)),
            };
            let (r, e) = (optional(result)?, optional(error)?);
            let a = arg_to_py(py, arg).map_err(|e| e.to_string())?;
            let out = f.call1(py, (r, e, a)).map_err(|e| e.to_string())?;
            from_py(out.bind(py)).map_err(|e| e.to_string())
        })
        .unwrap_or_else(|| Err("the interpreter is shutting down".into()))
    })
}

/// One operation recorded by a draft: `(op, path, value)`.
fn recorded_op(t: &Bound<'_, PyAny>) -> PyResult<PatchOp> {
    let t = t.cast::<PyTuple>()?;
    let op: String = t.get_item(0)?.extract()?;
    let path: String = t.get_item(1)?.extract()?;
    Ok(match op.as_str() {
        "add" => PatchOp::Add { path, value: from_py(&t.get_item(2)?)? },
        "replace" => PatchOp::Replace { path, value: from_py(&t.get_item(2)?)? },
        "remove" => PatchOp::Remove { path },
        other => return Err(pyo3::exceptions::PyValueError::new_err(format!("unknown recorded op {other:?}"))),
    })
}

/// Whether the engine will refuse a recorded op (E3: deeper than 128 levels): the engine's data
/// then stays behind the replica, so the replica is not kept.
fn refused_by_depth(op: &PatchOp) -> bool {
    match op {
        PatchOp::Add { path, value } | PatchOp::Replace { path, value } => {
            let levels = path.matches('/').count();
            levels >= MAX_DEPTH || !within_depth(value, MAX_DEPTH - levels)
        }
        _ => false,
    }
}

/// `on_message` as the engine's batched hook: the messages queued for an entry go to Python in
/// one call (`_HookRunner.on_messages`), which runs the hook once per message, in order, on
/// recording drafts over one replica. The answer is one outcome per message up to the first that
/// raised or returned a new value; the engine commits those and offers the rest again.
fn on_messages(runner: Py<PyAny>, f: Py<PyAny>, endpoint: String, replicas: Replicas) -> OnMessagesFn {
    Arc::new(move |batch: MessageBatch| {
        let MessageBatch { base, data: current, messages, arg } = batch;
        let key = cache_key(&endpoint, arg.as_ref());
        // Taken out of the map: no Rust lock is held while Python runs.
        let replica = replicas.lock().remove(&key);
        let outcome = Python::try_attach(|py| -> PyResult<(Vec<Result<MessageUpdate, String>>, Option<Replica>)> {
            let first = messages.first().cloned().unwrap_or(Value::Null);
            let retry = replica.as_ref().is_some_and(|r| r.message == first);
            let trusted = replica.as_ref().is_some_and(|r| r.base == base && !retry);
            let data = match replica.and_then(|r| r.data) {
                Some(d) if trusted => d.into_bound(py),
                _ => to_py(py, &current)?,
            };
            drop(current);
            let msgs = PyList::empty(py);
            for m in &messages {
                msgs.append(to_py(py, m)?)?;
            }
            let a = arg_to_py(py, arg.as_ref())?;
            let r = runner.call_method1(py, intern!(py, "on_messages"), (f.clone_ref(py), data.clone(), msgs, a))?;
            let answers = r.bind(py).cast::<PyList>()?.clone();
            let mut outcomes = Vec::with_capacity(answers.len());
            let mut clean = true;
            let mut changes = 0;
            for answer in answers.iter() {
                let t = answer.cast::<PyTuple>()?;
                let kind: u8 = t.get_item(0)?.extract()?;
                match kind {
                    // The draft recorded operations and the replica already holds their result.
                    0 => {
                        let list = t.get_item(1)?;
                        let list = list.cast::<PyList>()?;
                        let ops: PyResult<Vec<PatchOp>> = list.iter().map(|op| recorded_op(&op)).collect();
                        // A value that cannot be converted (too deep, not JSON) fails its own
                        // message only; the engine offers the messages after it again.
                        let ops = match ops {
                            Ok(ops) => ops,
                            Err(e) => {
                                outcomes.push(Err(e.to_string()));
                                clean = false;
                                break;
                            }
                        };
                        clean &= !ops.iter().any(refused_by_depth);
                        if ops.is_empty() {
                            outcomes.push(Ok(MessageUpdate::Unchanged));
                        } else {
                            changes += 1;
                            outcomes.push(Ok(MessageUpdate::Ops(ops)));
                        }
                    }
                    // A returned value: the engine diffs it; the replica is rebuilt next time.
                    1 => {
                        clean = false;
                        match from_py(&t.get_item(1)?) {
                            Ok(v) => outcomes.push(Ok(MessageUpdate::Data(v))),
                            Err(e) => {
                                outcomes.push(Err(e.to_string()));
                                break;
                            }
                        }
                    }
                    // The hook raised: that message's failure. The replica holds its partial edits.
                    _ => {
                        clean = false;
                        outcomes.push(Err(t.get_item(1)?.extract::<String>()?));
                    }
                }
            }
            // A retried call may be the engine's last attempt, whose result is dropped too: only
            // the first message is remembered, and the next call rebuilds the replica.
            let next = Some(Replica {
                base: MessageBase { entry_id: base.entry_id, version: base.version + changes },
                data: (clean && !retry).then(|| data.unbind()),
                message: first,
            });
            Ok((outcomes, next))
        });
        let result = match outcome {
            Some(Ok((outcomes, next))) => {
                if let Some(next) = next {
                    replicas.lock().insert(key, next);
                }
                Ok(outcomes)
            }
            Some(Err(e)) => Err(e.to_string()),
            None => Err("the interpreter is shutting down".to_owned()),
        };
        std::future::ready(result).boxed()
    })
}

fn on_cache_entry_added(runner: Py<PyAny>, f: Option<Py<PyAny>>, replicas: Option<Replicas>) -> OnCacheEntryAddedFn {
    Arc::new(move |arg: Option<Value>, lifecycle: Lifecycle| {
        if let Some(replicas) = replicas.clone() {
            // The replica lives as long as its entry (L3).
            let removed = lifecycle.cache_entry_removed();
            let key = lifecycle.key().to_owned();
            removed.on_done(move |_| {
                let gone = replicas.lock().remove(&key);
                drop(gone);
            });
        }
        let Some(f) = f.as_ref().and_then(|f| Python::try_attach(|py| f.clone_ref(py))) else {
            return std::future::ready(Ok(())).boxed();
        };
        let rx = start_hook(&runner, "call_lifecycle", |py, completion| {
            let native = Py::new(py, NativeLifecycle::new(lifecycle))?;
            let a = arg_to_py(py, arg.as_ref())?;
            PyTuple::new(py, [f.into_any(), a.unbind(), native.into_any(), completion.into_any()])
        });
        async move {
            match rx.await {
                Some(Ok(_)) => Ok(()),
                Some(Err(Value::String(m))) => Err(m),
                Some(Err(v)) => Err(v.get("error").and_then(Value::as_str).map(str::to_owned).unwrap_or_else(|| v.to_string())),
                None => Err("abandoned (interpreter shutting down or its loop closed)".to_owned()),
            }
        }
        .boxed()
    })
}

/// `hooks`: `{endpoint: {"query_fn": f, "transform_response": f, "on_message": f, "on_cache_entry_added": f,
/// "prepare_headers": f, "mutation_fn": f, "provides_tags": f, "invalidates_tags": f}}`.
pub fn build_hooks(py: Python<'_>, hooks: Option<&Bound<'_, PyAny>>, runner: &Py<PyAny>) -> PyResult<Hooks> {
    let mut out = Hooks::new();
    let Some(hooks) = hooks.filter(|h| !h.is_none()) else { return Ok(out) };
    let hooks = hooks.cast::<PyDict>().map_err(|_| ConfigError::new_err("invalid config at hooks: must be a dict keyed by endpoint name"))?;
    for (ep, spec) in hooks.iter() {
        let ep: String = ep
            .extract()
            .map_err(|_| ConfigError::new_err("invalid config at hooks: endpoint names must be str"))?;
        let spec = spec
            .cast::<PyDict>()
            .map_err(|_| ConfigError::new_err(format!("invalid config at hooks.{ep}: must be a dict of hook functions")))?;
        let mut eh = EndpointHooks::default();
        let mut user_entry_added = None;
        let mut endpoint_replicas = None;
        for (name, f) in spec.iter() {
            let name: String = name
                .extract()
                .map_err(|_| ConfigError::new_err(format!("invalid config at hooks.{ep}: hook names must be str")))?;
            if !HOOK_NAMES.contains(&name.as_str()) {
                return Err(ConfigError::new_err(format!(
                    "invalid config at hooks.{ep}.{name}: unknown hook (expected one of {})",
                    HOOK_NAMES.join(", ")
                )));
            }
            if f.is_none() {
                continue;
            }
            if !f.is_callable() {
                return Err(ConfigError::new_err(format!("invalid config at hooks.{ep}.{name}: must be callable")));
            }
            let f = f.unbind();
            match name.as_str() {
                "query_fn" => eh.query_fn = Some(query_fn(runner.clone_ref(py), f)),
                // W1: the same call as a query_fn; its QueryError value is the MutationError's.
                "mutation_fn" => eh.mutation_fn = Some(query_fn(runner.clone_ref(py), f)),
                "transform_response" => eh.transform_response = Some(transform_response(f)),
                "provides_tags" => eh.provides_tags = Some(provides_tags(f)),
                "invalidates_tags" => eh.invalidates_tags = Some(invalidates_tags(f)),
                "prepare_headers" => eh.prepare_headers = Some(prepare_headers(runner.clone_ref(py), f)),
                "on_message" => {
                    let replicas: Replicas = Default::default();
                    eh.on_messages = Some(on_messages(runner.clone_ref(py), f, ep.clone(), replicas.clone()));
                    endpoint_replicas = Some(replicas);
                }
                _ => user_entry_added = Some(f),
            }
        }
        if user_entry_added.is_some() || endpoint_replicas.is_some() {
            eh.on_cache_entry_added = Some(on_cache_entry_added(runner.clone_ref(py), user_entry_added, endpoint_replicas));
        }
        out = out.endpoint(&ep, eh);
    }
    Ok(out)
}
