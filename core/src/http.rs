//! The built-in query source: HTTP(S) GET of the rendered `baseUrl` + `query` (SPEC §2), with
//! results and errors in RTK Query's `fetchBaseQuery` shapes.

use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::{json, Map, Value};

use crate::json;
use crate::transport::{FetchError, FetchRequest, FetchResponse, QuerySource};

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// A response body larger than this fails the fetch rather than exhaust memory (§9).
pub const MAX_BODY_BYTES: usize = 256 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
#[error("cannot create the HTTP client: {0}")]
pub struct HttpInitError(String);

/// HTTP(S) query source with one connection pool shared by every fetch it makes.
///
/// Redirects are not followed: §9 allows requests only to configured URLs, so a 3xx answer is
/// an error `{"status": 301, "data": …}` like any other non-2xx status.
#[derive(Clone)]
pub struct HttpQuerySource {
    client: reqwest::Client,
    timeout: Duration,
}

impl HttpQuerySource {
    pub fn new() -> Result<Self, HttpInitError> {
        Self::with_timeout(DEFAULT_TIMEOUT)
    }

    /// `timeout` covers the whole request: connect, headers and body.
    pub fn with_timeout(timeout: Duration) -> Result<Self, HttpInitError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| HttpInitError(error_text(&e)))?;
        Ok(HttpQuerySource { client, timeout })
    }
}

impl QuerySource for HttpQuerySource {
    fn fetch(
        &self,
        request: FetchRequest,
    ) -> BoxFuture<'static, Result<FetchResponse, FetchError>> {
        let client = self.client.clone();
        let timeout = self.timeout;
        Box::pin(async move { fetch(client, timeout, request.url, request.headers).await })
    }
}

async fn fetch(
    client: reqwest::Client,
    timeout: Duration,
    url: String,
    headers: crate::transport::Headers,
) -> Result<FetchResponse, FetchError> {
    let transport_error = |e: reqwest::Error| {
        if e.is_timeout() {
            let error = format!("request timed out after {} ms", timeout.as_millis());
            json!({"status": "TIMEOUT_ERROR", "error": error})
        } else {
            json!({"status": "FETCH_ERROR", "error": error_text(&e)})
        }
    };
    let mut builder = client.get(&url).header(reqwest::header::ACCEPT, "application/json");
    // T1: checked for CR/LF/NUL when rendered; a value reqwest still refuses is named, not shown.
    for (name, value) in headers.iter() {
        let value = reqwest::header::HeaderValue::from_str(value).map_err(|_| {
            json!({"status": "FETCH_ERROR", "error": format!("header {name}: not a valid header value")})
        })?;
        builder = builder.header(name, value);
    }
    let mut response = builder
        .send()
        .await
        .map_err(transport_error)?;
    let status = response.status();
    let too_large = || {
        let error = format!("response body is larger than {MAX_BODY_BYTES} bytes");
        json!({"status": "FETCH_ERROR", "error": error})
    };
    if response
        .content_length()
        .is_some_and(|len| len > MAX_BODY_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::with_capacity(response.content_length().map_or(0, |len| len as usize));
    while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    let meta = json!({
        "request": {"url": url, "method": "GET"},
        "response": {"status": status.as_u16(), "headers": headers_json(response.headers())},
    });
    let parsed = parse_body(&body);
    if !status.is_success() {
        // Unlike `fetchBaseQuery`, an error body that is not JSON stays readable as text.
        let data =
            parsed.unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
        return Err(json!({"status": status.as_u16(), "data": data}));
    }
    match parsed {
        Ok(data) => Ok(FetchResponse { data, meta }),
        Err(error) => Err(json!({
            "status": "PARSING_ERROR",
            "originalStatus": status.as_u16(),
            "data": String::from_utf8_lossy(&body),
            "error": error,
        })),
    }
}

/// JSON of a response body: an empty body is `null` (as `fetchBaseQuery`'s JSON handler reads
/// it); nesting deeper than 128 levels, `NaN` and invalid UTF-8 are refused as for stream
/// messages (E3, §9).
fn parse_body(body: &[u8]) -> Result<Value, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    json::parse_host_bytes(body).map_err(|e| e.to_string())
}

fn headers_json(headers: &reqwest::header::HeaderMap) -> Value {
    let mut map = Map::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        match map.get_mut(name.as_str()) {
            // Repeated headers join as `fetch`'s `Headers` joins them.
            Some(Value::String(existing)) => {
                existing.push_str(", ");
                existing.push_str(&value);
            }
            _ => {
                map.insert(name.as_str().to_owned(), Value::String(value.into_owned()));
            }
        }
    }
    Value::Object(map)
}

/// An error with its cause chain (reqwest's and tungstenite's own messages name only the
/// outermost step).
pub(crate) fn error_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(levels: usize) -> String {
        "[".repeat(levels) + &"]".repeat(levels)
    }

    #[test]
    fn e3_body_depth_limit_is_128() {
        assert_eq!(parse_body(b"1").unwrap(), json!(1));
        assert_eq!(parse_body(b"[]").unwrap(), json!([]));
        assert!(parse_body(nested(128).as_bytes()).is_ok());
        assert!(parse_body(nested(129).as_bytes()).is_err());
        assert!(parse_body(br#"{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"["}"#).is_ok());
        assert!(parse_body(format!("[\"\\\\\", {}]", nested(128)).as_bytes()).is_err());
    }

    #[test]
    fn empty_body_is_null() {
        assert_eq!(parse_body(b"").unwrap(), Value::Null);
        assert_eq!(parse_body(b" \n").unwrap(), Value::Null);
        assert!(parse_body(b"[1,]").is_err());
        assert!(parse_body(b"1 2").is_err());
        assert!(parse_body(b"\"\xff\"").is_err());
    }
}
