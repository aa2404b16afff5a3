//! The native client and subscription. Every call that waits on the engine (its lock, a running
//! callback, the close handshake) runs detached from the interpreter (`py.detach`), so engine
//! threads can always attach to call Python.

use livecache_core::{Client, ClientOptions, Clock, Config, Event, RawMessage, Subscription};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};
use serde_json::Value;


use crate::bridge::{optimistic_layers, recipe_fn, notify_when_done, NativeHostUpdate};
use crate::convert::{event_to_py, from_py, state_to_py, stats_to_py, to_py};
use crate::errors::{to_pyerr, ConfigError};
use crate::hooks::build_hooks;

/// The "no arg" marker (`undefined` in RTK Query): `getX(undefined)`, distinct from `None` (`null`).
#[pyclass(frozen, module = "livecache._livecache")]
pub struct NoArg;

#[pymethods]
impl NoArg {
    fn __repr__(&self) -> &'static str {
        "livecache.NO_ARG"
    }

    fn __bool__(&self) -> bool {
        false
    }
}

fn arg_of(arg: &Bound<'_, PyAny>) -> PyResult<Option<Value>> {
    if arg.is_instance_of::<NoArg>() {
        Ok(None)
    } else {
        from_py(arg).map(Some)
    }
}

fn config_of(config: &Bound<'_, PyAny>) -> PyResult<Config> {
    if let Ok(text) = config.cast::<PyString>() {
        return Config::from_json_text(&crate::convert::text_of(text)?).map_err(to_pyerr);
    }
    let value = from_py(config).map_err(|e| ConfigError::new_err(format!("invalid config at (root): {e}")))?;
    Config::from_value(&value).map_err(to_pyerr)
}

#[pyclass(frozen, module = "livecache._livecache")]
pub struct NativeClient {
    client: Client,
}

impl NativeClient {
    fn with<T: Send>(&self, py: Python<'_>, f: impl FnOnce(&Client) -> livecache_core::Result<T> + Send) -> PyResult<T> {
        let client = &self.client;
        py.detach(|| f(client)).map_err(to_pyerr)
    }

    /// `pushMessage` keeps the interpreter while the engine applies the message. Letting it go
    /// for every message hands it to the delivery thread each time (one callback per message
    /// and two thread switches); kept, the callbacks run when the interpreter switches threads
    /// and find the messages pushed meanwhile merged (E2). This cannot deadlock: the engine's
    /// lock is held only for in-memory work, never while host code runs or waits for the
    /// interpreter (hooks, callbacks and wakes all run after it is released).
    fn push(&self, endpoint: &str, arg: Option<Value>, message: RawMessage) -> PyResult<()> {
        self.client.push_message(endpoint, arg.as_ref(), message).map_err(to_pyerr)
    }
}

impl Drop for NativeClient {
    fn drop(&mut self) {
        if !self.client.is_closed() {
            // Closing waits for running callbacks, which need the interpreter.
            let client = &self.client;
            Python::try_attach(|py| py.detach(|| client.close()));
        }
    }
}

#[pymethods]
impl NativeClient {
    /// `config`: a dict or JSON text (SPEC §2). `hooks`: per endpoint, snake_case hook names
    /// (SPEC §6). `runner`: the package's hook runner.
    /// `clock`: `"system"`, or `"manual"` for virtual time moved by `advance` (tests of L7).
    #[new]
    #[pyo3(signature = (config, hooks, runner, clock = "system"))]
    fn new(py: Python<'_>, config: &Bound<'_, PyAny>, hooks: Option<&Bound<'_, PyAny>>, runner: Py<PyAny>, clock: &str) -> PyResult<NativeClient> {
        let config = config_of(config)?;
        let clock = match clock {
            "system" => Clock::System,
            "manual" => Clock::Manual,
            other => {
                let e = livecache_core::Error::InvalidArgument(format!("clock must be \"system\" or \"manual\", not {other:?}"));
                return Err(to_pyerr(e));
            }
        };
        let hooks = build_hooks(py, hooks, &runner)?;
        let options = ClientOptions { clock, ..ClientOptions::default() };
        let client = py.detach(|| Client::with_options(config, hooks, options)).map_err(to_pyerr)?;
        Ok(NativeClient { client })
    }

    /// `callback(event: dict)` runs on the delivery thread with the interpreter attached.
    /// `callback` `None`: a subscription read only by `events()` readers, whose events are never
    /// converted for a callback (nor the GIL taken for them on the delivery thread).
    fn subscribe(&self, py: Python<'_>, endpoint: &str, arg: &Bound<'_, PyAny>, options: &Bound<'_, PyAny>, callback: Option<Py<PyAny>>) -> PyResult<NativeSubscription> {
        let arg = arg_of(arg)?;
        let options = livecache_core::SubscribeOptions::from_value(&from_py(options)?).map_err(crate::errors::InvalidArgument::new_err)?;
        let deliver = move |event: &Event| {
            let Some(callback) = &callback else { return };
            Python::try_attach(|py| {
                let r = event_to_py(py, event).and_then(|d| callback.call1(py, (d,)));
                if let Err(e) = r {
                    e.write_unraisable(py, Some(callback.bind(py)));
                }
            });
        };
        let sub = self.with(py, |c| c.subscribe_with(endpoint, arg, options, deliver))?;
        Ok(NativeSubscription { sub })
    }

    /// A subscription read only through its reader, from its first event on (E4, E5): for a
    /// callback that runs on an asyncio loop, which drains the reader when `wake()` says events
    /// wait, so a busy loop holds at most `queueLimit` of them.
    fn subscribe_reader(
        &self,
        py: Python<'_>,
        endpoint: &str,
        arg: &Bound<'_, PyAny>,
        options: &Bound<'_, PyAny>,
        wake: Py<PyAny>,
    ) -> PyResult<(NativeSubscription, NativeEvents)> {
        let arg = arg_of(arg)?;
        let options = livecache_core::SubscribeOptions::from_value(&from_py(options)?).map_err(crate::errors::InvalidArgument::new_err)?;
        let (sub, reader) = self.with(py, |c| c.subscribe_reader(endpoint, arg, options, python_wake(wake)))?;
        Ok((NativeSubscription { sub }, NativeEvents { reader }))
    }

    /// Moves the manual clock forward by `ms` milliseconds and runs what is due (L7).
    fn advance(&self, py: Python<'_>, ms: u64) -> PyResult<()> {
        self.with(py, |c| c.advance(std::time::Duration::from_millis(ms)))
    }

    fn cache_key(&self, py: Python<'_>, endpoint: &str, arg: &Bound<'_, PyAny>) -> PyResult<String> {
        let arg = arg_of(arg)?;
        self.with(py, |c| {
            if c.is_closed() {
                return Err(livecache_core::Error::Closed);
            }
            c.cache_key(endpoint, arg.as_ref())
        })
    }

    fn snapshot<'py>(&self, py: Python<'py>, endpoint: &str, arg: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let arg = arg_of(arg)?;
        let state = self.with(py, |c| c.snapshot(endpoint, arg.as_ref()))?;
        state_to_py(py, &state)
    }

    fn update_query_data(&self, py: Python<'_>, endpoint: &str, arg: &Bound<'_, PyAny>, recipe: Py<PyAny>) -> PyResult<NativeHostUpdate> {
        let arg = arg_of(arg)?;
        let mut failure = None;
        let r = self.with(py, |c| c.update_query_data(endpoint, arg.as_ref(), recipe_fn(recipe, &mut failure)));
        if let Some(e) = failure {
            return Err(e);
        }
        r.map(NativeHostUpdate::new)
    }

    fn patch_query_data(&self, py: Python<'_>, endpoint: &str, arg: &Bound<'_, PyAny>, patches: &Bound<'_, PyAny>) -> PyResult<NativeHostUpdate> {
        let arg = arg_of(arg)?;
        let patches = from_py(patches)?;
        self.with(py, |c| c.patch_query_data_value(endpoint, arg.as_ref(), &patches)).map(NativeHostUpdate::new)
    }

    fn upsert_query_data(&self, py: Python<'_>, endpoint: &str, arg: &Bound<'_, PyAny>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let arg = arg_of(arg)?;
        let data = from_py(data)?;
        self.with(py, |c| c.upsert_query_data(endpoint, arg, data))
    }

    fn refetch(&self, py: Python<'_>, endpoint: &str, arg: &Bound<'_, PyAny>) -> PyResult<()> {
        let arg = arg_of(arg)?;
        self.with(py, |c| c.refetch(endpoint, arg.as_ref()))
    }

    /// T2: `callback(True, None)` once `message` is written on the entry's open stream, or
    /// `callback(False, NotConnected)` at once when it is not open.
    fn send(&self, endpoint: &str, arg: &Bound<'_, PyAny>, message: &Bound<'_, PyAny>, callback: Py<PyAny>) -> PyResult<()> {
        let arg = arg_of(arg)?;
        let message = from_py(message)?;
        let sent = self.client.send(endpoint, arg.as_ref(), &message);
        notify_when_done(sent, callback, |py, ()| Ok(py.None().into_bound(py)));
        Ok(())
    }

    /// P3: creates and fetches an entry without subscribing, or refetches a stale one.
    fn prefetch(&self, py: Python<'_>, endpoint: &str, arg: &Bound<'_, PyAny>, options: &Bound<'_, PyAny>) -> PyResult<()> {
        let arg = arg_of(arg)?;
        let options = livecache_core::PrefetchOptions::from_value(&from_py(options)?).map_err(crate::errors::InvalidArgument::new_err)?;
        self.with(py, |c| c.prefetch(endpoint, arg, options))
    }

    /// P3: removes every entry; the client stays usable.
    fn reset_api_state(&self, py: Python<'_>) -> PyResult<()> {
        self.with(py, |c| c.reset_api_state())
    }

    /// W1: runs the mutation; `callback(ok, value)` gets the response data once the refetches
    /// it caused have landed (W4), or the error (`MutationError`, `WrongEndpointKind`, …).
    /// `options`: `{"optimistic", "confirm", "confirmTimeoutMs"}`; `optimistic` items may hold a
    /// `recipe` (W3), run here. A refusal (a recipe that raised: its own exception) reaches
    /// `callback` at once; nothing was sent.
    fn mutate(&self, py: Python<'_>, endpoint: &str, arg: &Bound<'_, PyAny>, options: &Bound<'_, PyDict>, callback: Py<PyAny>) -> PyResult<()> {
        let arg = arg_of(arg)?;
        let optimistic = options.get_item("optimistic")?.filter(|o| !o.is_none());
        let rest = options.copy()?;
        rest.del_item("optimistic").ok();
        let options = livecache_core::MutateOptions::from_value(&from_py(rest.as_any())?).map_err(crate::errors::InvalidArgument::new_err)?;
        let failure = Default::default();
        let layers = optimistic.map(|items| optimistic_layers(&items, &failure)).transpose()?;
        let client = &self.client;
        let started = py.detach(|| match layers {
            Some(layers) => client.start_mutation_with_layers(endpoint, arg, &options, layers),
            None => client.start_mutation(endpoint, arg, &options),
        });
        match started {
            Ok(done) => notify_when_done(done, callback, |py, v| to_py(py, &v)),
            Err(e) => {
                let err = failure.lock().take().unwrap_or_else(|| crate::errors::to_pyerr_in(py, e));
                callback.call1(py, (false, err.into_value(py)))?;
            }
        }
        Ok(())
    }

    /// W2: refetches the subscribed entries providing a matching tag, removes the unused ones.
    fn invalidate_tags(&self, py: Python<'_>, tags: &Bound<'_, PyAny>) -> PyResult<()> {
        let tags = match from_py(tags)? {
            Value::Array(tags) => tags,
            other => return Err(crate::errors::InvalidArgument::new_err(format!("invalidate_tags takes a list of tags, got {other}"))),
        };
        self.with(py, |c| c.invalidate_tags(&tags))
    }

    /// T1: closes the entry's stream and connects again now, with fresh headers.
    fn reconnect(&self, py: Python<'_>, endpoint: &str, arg: &Bound<'_, PyAny>) -> PyResult<()> {
        let arg = arg_of(arg)?;
        self.with(py, |c| c.reconnect(endpoint, arg.as_ref()))
    }

    fn push_message(&self, endpoint: &str, arg: &Bound<'_, PyAny>, message: &Bound<'_, PyAny>) -> PyResult<()> {
        let arg = arg_of(arg)?;
        let message = from_py(message)?;
        self.push(endpoint, arg, RawMessage::Value(message))
    }

    /// L10 for a burst: every message is converted before any is queued, so a value with no
    /// JSON form fails the call and queues nothing; then one engine step for all of them.
    fn push_messages(&self, py: Python<'_>, endpoint: &str, arg: &Bound<'_, PyAny>, messages: &Bound<'_, PyAny>) -> PyResult<()> {
        let arg = arg_of(arg)?;
        if !(messages.is_instance_of::<PyList>() || messages.is_instance_of::<PyTuple>()) {
            return Err(crate::errors::InvalidArgument::new_err(format!(
                "push_messages needs a list of messages, not {}",
                messages.get_type().name()?
            )));
        }
        let messages = messages.try_iter()?.map(|m| from_py(&m?).map(RawMessage::Value)).collect::<PyResult<Vec<_>>>()?;
        self.with(py, |c| c.push_messages(endpoint, arg.as_ref(), messages))
    }

    /// Raw text through the stream pipeline, exactly as a WebSocket text frame (L10).
    fn push_message_text(&self, endpoint: &str, arg: &Bound<'_, PyAny>, text: String) -> PyResult<()> {
        let arg = arg_of(arg)?;
        self.push(endpoint, arg, RawMessage::Text(text))
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let stats = self.with(py, |c| c.stats())?;
        stats_to_py(py, &stats)
    }

    #[getter]
    fn closed(&self) -> bool {
        self.client.is_closed()
    }

    /// Closes every stream and stops every callback before returning (SPEC §8). Idempotent.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.with(py, |c| {
            c.close();
            Ok(())
        })
    }
}

#[pyclass(frozen, module = "livecache._livecache")]
pub struct NativeSubscription {
    sub: Subscription,
}

impl Drop for NativeSubscription {
    fn drop(&mut self) {
        if self.sub.is_active() {
            // Unsubscribing waits for a running callback, which needs the interpreter.
            let sub = &self.sub;
            Python::try_attach(|py| py.detach(|| sub.unsubscribe()));
        }
    }
}

#[pymethods]
impl NativeSubscription {
    #[getter]
    fn key(&self) -> &str {
        self.sub.key()
    }

    #[getter]
    fn active(&self) -> bool {
        self.sub.is_active()
    }

    fn snapshot<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let sub = &self.sub;
        let state = py.detach(|| sub.snapshot()).map_err(to_pyerr)?;
        state_to_py(py, &state)
    }

    /// `callback(True, data)` once the entry has data, or `callback(False, CacheEntryRemoved)`.
    /// Binds to the entry now (L2).
    fn loaded(&self, callback: Py<PyAny>) {
        notify_when_done(self.sub.loaded(), callback, |py, data| to_py(py, &data));
    }

    /// No callback of this subscription starts after this returns (SPEC §5). Idempotent.
    fn unsubscribe(&self, py: Python<'_>) {
        let sub = &self.sub;
        py.detach(|| sub.unsubscribe());
    }

    /// An `events()` reader: the events from now on, in a queue the core bounds by `queueLimit`
    /// (E4, E5). `wake()` runs on the delivery thread when the queue fills from empty and when
    /// the subscription ends.
    fn events(&self, wake: Py<PyAny>) -> NativeEvents {
        NativeEvents { reader: self.sub.events(python_wake(wake)) }
    }
}

/// A reader's wake as a call of `wake()` on the delivery thread; what it raises goes to
/// `sys.unraisablehook`.
fn python_wake(wake: Py<PyAny>) -> livecache_core::event_tap::Wake {
    Box::new(move || {
        Python::try_attach(|py| {
            if let Err(e) = wake.call0(py) {
                e.write_unraisable(py, Some(wake.bind(py)));
            }
        });
    })
}

/// One `events()` reader of a subscription (livecache_core::event_tap).
#[pyclass(frozen, module = "livecache._livecache")]
pub struct NativeEvents {
    reader: livecache_core::event_tap::EventTap,
}

#[pymethods]
impl NativeEvents {
    /// The next event as a dict, or `None` when none waits.
    fn next<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        match self.reader.next() {
            livecache_core::event_tap::Tapped::Event(event) => event_to_py(py, &event).map(|d| Some(d.into_any())),
            _ => Ok(None),
        }
    }

    /// Whether the subscription ended and nothing waits: no event will come.
    fn done(&self) -> bool {
        self.reader.peek_ended()
    }

    /// The reader is done: what waits is dropped.
    fn close(&self) {
        self.reader.close();
    }
}
