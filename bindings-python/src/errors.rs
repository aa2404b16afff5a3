//! One exception class per core error kind (`Error::kind()`), all under `LivecacheError`.

use livecache_core::Error;
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(livecache, LivecacheError, PyException, "Base class of every livecache error.");
create_exception!(livecache, ConfigError, LivecacheError, "A bad config or hooks argument; the message names the key path.");
create_exception!(livecache, Closed, LivecacheError, "The client is closed.");
create_exception!(livecache, UnknownEndpoint, LivecacheError, "The endpoint is not in the config.");
create_exception!(livecache, NotFound, LivecacheError, "No cache entry exists for the key (L10).");
create_exception!(livecache, NotLoaded, LivecacheError, "The entry has no data yet, so it cannot be updated (L9).");
create_exception!(livecache, PatchError, LivecacheError, "A host patch or update did not apply; nothing changed (L9).");
create_exception!(livecache, InvalidArgument, LivecacheError, "An argument the call cannot use.");
create_exception!(livecache, InvalidInput, LivecacheError, "A value that is not bounded JSON: too deep, NaN, a non-str key, an unsupported type.");
create_exception!(livecache, CacheEntryRemoved, LivecacheError, "The entry was removed before its data loaded (L2).");
create_exception!(livecache, NotConnected, LivecacheError, "The entry's stream has no open connection to send on; nothing was queued (T2).");
create_exception!(livecache, WrongEndpointKind, LivecacheError, "mutate on a query endpoint, or an entry call on a mutation endpoint (W1).");
create_exception!(
    livecache,
    MutationError,
    LivecacheError,
    "The mutation failed (W1): `error` is `{status, data}` (or `{status, error}`) in fetchBaseQuery's shapes; `status` and `data` are its fields."
);

pub fn to_pyerr(e: Error) -> PyErr {
    let message = e.to_string();
    match e {
        Error::Config { .. } => ConfigError::new_err(message),
        Error::Closed => Closed::new_err(message),
        Error::UnknownEndpoint(_) => UnknownEndpoint::new_err(message),
        Error::NotFound(_) => NotFound::new_err(message),
        Error::NotLoaded(_) => NotLoaded::new_err(message),
        Error::Patch(_) => PatchError::new_err(message),
        Error::InvalidArgument(_) => InvalidArgument::new_err(message),
        Error::Input(_) => InvalidInput::new_err(message),
        Error::CacheEntryRemoved(_) => CacheEntryRemoved::new_err(message),
        Error::NotConnected(_) => NotConnected::new_err(message),
        Error::WrongEndpointKind(_) => WrongEndpointKind::new_err(message),
        Error::Mutation(_) => MutationError::new_err(message),
    }
}

/// `to_pyerr` with the interpreter at hand: a `MutationError` also carries the server's answer
/// as `error`, `status` and `data` attributes.
pub fn to_pyerr_in(py: Python<'_>, e: Error) -> PyErr {
    let Error::Mutation(value) = &e else { return to_pyerr(e) };
    let err = MutationError::new_err(e.to_string());
    let attrs = || -> PyResult<()> {
        let obj = err.value(py);
        let error = crate::convert::to_py(py, value)?;
        obj.setattr("error", &error)?;
        obj.setattr("status", crate::convert::to_py(py, &value["status"])?)?;
        let data = value.get("data").or_else(|| value.get("error")).cloned().unwrap_or(serde_json::Value::Null);
        obj.setattr("data", crate::convert::to_py(py, &data)?)?;
        Ok(())
    };
    match attrs() {
        Ok(()) => err,
        Err(conversion) => conversion,
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("LivecacheError", py.get_type::<LivecacheError>())?;
    m.add("ConfigError", py.get_type::<ConfigError>())?;
    m.add("Closed", py.get_type::<Closed>())?;
    m.add("UnknownEndpoint", py.get_type::<UnknownEndpoint>())?;
    m.add("NotFound", py.get_type::<NotFound>())?;
    m.add("NotLoaded", py.get_type::<NotLoaded>())?;
    m.add("PatchError", py.get_type::<PatchError>())?;
    m.add("InvalidArgument", py.get_type::<InvalidArgument>())?;
    m.add("InvalidInput", py.get_type::<InvalidInput>())?;
    m.add("CacheEntryRemoved", py.get_type::<CacheEntryRemoved>())?;
    m.add("NotConnected", py.get_type::<NotConnected>())?;
    m.add("WrongEndpointKind", py.get_type::<WrongEndpointKind>())?;
    m.add("MutationError", py.get_type::<MutationError>())?;
    Ok(())
}
