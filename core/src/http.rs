//! The built-in query source: HTTP(S) requests of the rendered `baseUrl` + `query` (SPEC §2,
//! T7: method, JSON body, params, timeout, retry, compressed bodies), with results and errors in
//! RTK Query's `fetchBaseQuery` shapes.

use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::{json, Map, Value};

use crate::json;
use crate::transport::{FetchError, FetchRequest, FetchResponse, QuerySource};

/// A response body larger than this fails the fetch rather than exhaust memory (§9).
pub const MAX_BODY_BYTES: usize = 256 * 1024 * 1024;
/// A `Retry-After` longer than this is capped: a fetch never sleeps for hours.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
#[error("cannot create the HTTP client: {0}")]
pub struct HttpInitError(String);

/// HTTP(S) query source with one connection pool shared by every fetch it makes.
///
/// Redirects are not followed: §9 allows requests only to configured URLs (and credentials
/// must not reach another origin), so a 3xx answer is an error `{"status": 301, "data": …}`
/// like any other non-2xx status. gzip, brotli and deflate responses are decoded (T7).
#[derive(Clone)]
pub struct HttpQuerySource {
    client: reqwest::Client,
    /// Overrides every request's `timeoutMs` when set (tests, embedders).
    timeout: Option<Duration>,
}

impl HttpQuerySource {
    pub fn new() -> Result<Self, HttpInitError> {
        let tls = crate::tls::http_tls().map_err(HttpInitError)?;
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| HttpInitError(error_text(&e)))?;
        Ok(HttpQuerySource { client, timeout: None })
    }

    /// Every attempt bounded by `timeout` (connect, headers and body), whatever `timeoutMs` says.
    pub fn with_timeout(timeout: Duration) -> Result<Self, HttpInitError> {
        Ok(HttpQuerySource { timeout: Some(timeout), ..Self::new()? })
    }
}

impl QuerySource for HttpQuerySource {
    fn fetch(
        &self,
        request: FetchRequest,
    ) -> BoxFuture<'static, Result<FetchResponse, FetchError>> {
        let client = self.client.clone();
        let timeout = self.timeout.unwrap_or(Duration::from_millis(request.policy.timeout_ms));
        Box::pin(async move { fetch_with_retries(&client, timeout, &request).await })
    }
}

/// T7: an attempt that failed on the network, timed out, or got 5xx or 429 is tried again up to
/// `retry.maxRetries` times, after the server's `Retry-After` or an exponential backoff with
/// jitter; any other answer (a 4xx above all) is final.
async fn fetch_with_retries(client: &reqwest::Client, timeout: Duration, request: &FetchRequest) -> Result<FetchResponse, FetchError> {
    let retry = request.policy.retry;
    let mut attempt = 0;
    loop {
        let (result, retry_after) = fetch(client, timeout, request).await;
        let retryable = match &result {
            Ok(_) => false,
            Err(e) => match &e["status"] {
                Value::Number(n) => n.as_u64().is_some_and(|s| s >= 500 || s == 429),
                Value::String(s) => s == "FETCH_ERROR" || s == "TIMEOUT_ERROR",
                _ => false,
            },
        };
        if !retryable || attempt >= retry.max_retries {
            return result;
        }
        let backoff = Duration::from_millis(retry.delay_ms(attempt));
        // Half to all of the backoff, so clients that failed together do not retry together.
        let jittered = backoff.mul_f64(0.5 + fastrand::f64() / 2.0);
        tokio::time::sleep(retry_after.map_or(jittered, |d| d.min(MAX_RETRY_AFTER))).await;
        attempt += 1;
    }
}

/// `Retry-After` in seconds (the HTTP-date form is read as "no hint").
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

async fn fetch(client: &reqwest::Client, timeout: Duration, request: &FetchRequest) -> (Result<FetchResponse, FetchError>, Option<Duration>) {
    let transport_error = |e: reqwest::Error| {
        if e.is_timeout() {
            let error = format!("request timed out after {} ms", timeout.as_millis());
            json!({"status": "TIMEOUT_ERROR", "error": error})
        } else {
            json!({"status": "FETCH_ERROR", "error": error_text(&e)})
        }
    };
    let url = &request.url;
    let method = match reqwest::Method::from_bytes(request.method.as_bytes()) {
        Ok(m) => m,
        Err(_) => return (Err(json!({"status": "FETCH_ERROR", "error": format!("not an HTTP method: {:?}", request.method)})), None),
    };
    let mut builder = client.request(method, url).timeout(timeout).header(reqwest::header::ACCEPT, "application/json");
    // T1: checked for CR/LF/NUL when rendered; a value reqwest still refuses is named, not shown.
    for (name, value) in request.headers.iter() {
        match reqwest::header::HeaderValue::from_str(value) {
            Ok(value) => builder = builder.header(name, value),
            Err(_) => return (Err(json!({"status": "FETCH_ERROR", "error": format!("header {name}: not a valid header value")})), None),
        }
    }
    if let Some(body) = &request.body {
        builder = builder.header(reqwest::header::CONTENT_TYPE, "application/json").body(body.to_string());
    }
    let mut response = match builder.send().await {
        Ok(r) => r,
        Err(e) => return (Err(transport_error(e)), None),
    };
    let status = response.status();
    let hint = retry_after(response.headers());
    let too_large = || {
        let error = format!("response body is larger than {MAX_BODY_BYTES} bytes");
        json!({"status": "FETCH_ERROR", "error": error})
    };
    if response
        .content_length()
        .is_some_and(|len| len > MAX_BODY_BYTES as u64)
    {
        return (Err(too_large()), None);
    }
    let mut body = Vec::with_capacity(response.content_length().map_or(0, |len| len as usize));
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_BODY_BYTES {
                    return (Err(too_large()), None);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => return (Err(transport_error(e)), None),
        }
    }
    let meta = json!({
        "request": {"url": url, "method": request.method},
        "response": {"status": status.as_u16(), "headers": headers_json(response.headers())},
    });
    let parsed = parse_body(&body);
    if !status.is_success() {
        // Unlike `fetchBaseQuery`, an error body that is not JSON stays readable as text.
        let data =
            parsed.unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
        return (Err(json!({"status": status.as_u16(), "data": data})), hint);
    }
    let result = match parsed {
        Ok(data) if request.graphql => graphql_result(data).map(|data| FetchResponse { data, meta }),
        Ok(data) => Ok(FetchResponse { data, meta }),
        Err(error) => Err(json!({
            "status": "PARSING_ERROR",
            "originalStatus": status.as_u16(),
            "data": String::from_utf8_lossy(&body),
            "error": error,
        })),
    };
    (result, None)
}

/// T5: a GraphQL result over HTTP: `errors` reject the fetch (with the errors as the server
/// gave them); otherwise the data is the single root field of `data`.
fn graphql_result(result: Value) -> Result<Value, FetchError> {
    let Value::Object(mut result) = result else {
        return Err(json!({"status": "GRAPHQL_ERROR", "errors": [{"message": "the response is not a GraphQL result object"}]}));
    };
    match result.remove("errors") {
        Some(Value::Array(errors)) if !errors.is_empty() => return Err(json!({"status": "GRAPHQL_ERROR", "errors": errors})),
        Some(Value::Null) | Some(Value::Array(_)) | None => {}
        Some(other) => return Err(json!({"status": "GRAPHQL_ERROR", "errors": [other]})),
    }
    match result.remove("data") {
        Some(data @ Value::Object(_)) => Ok(livecache_engine::graphql::root_field(data)),
        _ => Err(json!({"status": "GRAPHQL_ERROR", "errors": [{"message": "the response has no data"}]})),
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
