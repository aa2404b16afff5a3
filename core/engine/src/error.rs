//! Errors a host call can get (SPEC §2, L9, L10). Each variant is one error kind that every
//! binding maps to its own type: a `livecache_result` code in C, an exception class in Python,
//! an `Error` with `code` in Node.

use crate::json::InputError;

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Error {
    /// A bad configuration; `path` names the offending key (`endpoints.getMessages.stream.apply`).
    #[error("invalid config at {path}: {message}")]
    Config { path: String, message: String },
    /// Any call on a closed client.
    #[error("the client is closed")]
    Closed,
    /// The endpoint is not in the config.
    #[error("unknown endpoint {0:?}")]
    UnknownEndpoint(String),
    /// No cache entry exists for the key (L10).
    #[error("no cache entry for {0}")]
    NotFound(String),
    /// The entry has no data yet, so it cannot be updated (L9).
    #[error("cache entry {0} has no data yet")]
    NotLoaded(String),
    /// A host patch or update did not apply; nothing changed (L9).
    #[error("update not applied: {0}")]
    Patch(String),
    /// An argument the call cannot use: an arg missing a templated field, a bad endpoint name.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Host JSON input refused: invalid JSON or UTF-8, too deep, not finite.
    #[error("invalid input: {0}")]
    Input(#[from] InputError),
    /// The entry was removed before its data loaded (L2).
    #[error("cache entry {0} was removed")]
    CacheEntryRemoved(String),
    /// T2: the entry's stream has no open connection to write on (nothing was queued).
    #[error("the stream of {0} is not connected")]
    NotConnected(String),
    /// W1: `mutate` on a query endpoint, or `subscribe` (any entry call) on a mutation endpoint.
    #[error("{0}")]
    WrongEndpointKind(String),
    /// W1: the mutation failed; the value is `{status, data}` (or `{status, error}`) in
    /// `fetchBaseQuery`'s shapes.
    #[error("mutation failed: {0}")]
    Mutation(serde_json::Value),
}

impl Error {
    pub fn config(path: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Config { path: path.into(), message: message.into() }
    }

    /// The kind's stable name, shared by every binding (`ConfigError`, `NotLoaded`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Config { .. } => "ConfigError",
            Error::Closed => "Closed",
            Error::UnknownEndpoint(_) => "UnknownEndpoint",
            Error::NotFound(_) => "NotFound",
            Error::NotLoaded(_) => "NotLoaded",
            Error::Patch(_) => "PatchError",
            Error::InvalidArgument(_) => "InvalidArgument",
            Error::Input(_) => "InvalidInput",
            Error::CacheEntryRemoved(_) => "CacheEntryRemoved",
            Error::NotConnected(_) => "NotConnected",
            Error::WrongEndpointKind(_) => "WrongEndpointKind",
            Error::Mutation(_) => "MutationError",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
