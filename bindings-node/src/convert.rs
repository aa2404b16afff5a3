//! Values and errors across the boundary. JavaScript values arrive as JSON text that the
//! JavaScript side has already checked (depth, NaN/Infinity, SPEC E3); this side parses it with
//! the engine's bounded parser, so a caller that skips the check still cannot get past the limits.

use livecache_core::json::parse_host;
use livecache_core::Error;
use serde_json::Value;

/// An error kind (`Error::kind()`): napi makes it the thrown JavaScript error's `code`, from
/// which lib/errors.js picks the `LivecacheError` subclass.
pub struct Code(pub &'static str);

impl AsRef<str> for Code {
    fn as_ref(&self) -> &str {
        self.0
    }
}

/// What an export returns: its error is thrown with the kind as its `code`.
pub type Result<T> = napi::Result<T, Code>;

/// A core error as a thrown JavaScript error.
pub fn to_napi(e: Error) -> napi::Error<Code> {
    napi::Error::new(Code(e.kind()), e.to_string())
}

/// An error of a named kind that did not come from the core.
pub fn kind_error(kind: &'static str, message: impl std::fmt::Display) -> napi::Error<Code> {
    napi::Error::new(Code(kind), message.to_string())
}

/// A failure of napi itself (a JavaScript thread that cannot take calls, a closed environment),
/// thrown with napi's status as its `code`.
pub fn from_napi(e: napi::Error) -> napi::Error<Code> {
    let code = match e.status {
        napi::Status::InvalidArg => "InvalidArgument",
        napi::Status::Closing => "Closed",
        _ => "LivecacheError",
    };
    napi::Error::new(Code(code), e.reason.clone())
}

pub fn parse(text: &str) -> Result<Value> {
    parse_host(text).map_err(|e| to_napi(Error::Input(e)))
}

/// `""` is "no arg" (JavaScript `undefined`); anything else is the arg as JSON text (`null` too, K1).
pub fn arg_of(arg_json: &str) -> Result<Option<Value>> {
    if arg_json.is_empty() {
        Ok(None)
    } else {
        parse(arg_json).map(Some)
    }
}

pub fn to_text<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("engine values always serialise")
}

/// Parses JSON text whose values sit inside `wrapping` levels of transport containers (an
/// operation array holds each value two levels down): every value keeps the full 128 levels
/// (E3), the limit on the data itself is applied by the engine when the operations apply.
pub fn parse_wrapped(text: &str, wrapping: usize) -> Result<Value> {
    livecache_core::json::parse_host_wrapped(text, wrapping)
        .map_err(|e| kind_error("InvalidInput", format!("invalid input: {}: {}", e.kind.as_str(), e.message)))
}
