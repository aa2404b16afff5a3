//! T7 requests: `query` as a template or as `{url, method, body, params}` (RTK Query's
//! `query: (arg) => ({url, method, body, params})`), and the policy every fetch runs under:
//! `timeoutMs` and `retry`.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;

use crate::graphql::GraphqlOperation;
use crate::template::{value_text, Template, ValueTemplate};

/// What `URLSearchParams` leaves alone (application/x-www-form-urlencoded); a space is `+`.
const FORM: &AsciiSet = &NON_ALPHANUMERIC.remove(b'*').remove(b'-').remove(b'.').remove(b'_').remove(b' ');

pub const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;
pub const DEFAULT_RETRY_INITIAL_DELAY_MS: u64 = 500;
pub const DEFAULT_RETRY_MAX_DELAY_MS: u64 = 10_000;

/// One endpoint's `query`.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryConfig {
    /// Joined to `baseUrl` when rendered.
    pub url: Template,
    /// Upper case, one of [`METHODS`].
    pub method: String,
    /// Sent as JSON.
    pub body: Option<ValueTemplate>,
    /// Appended to the URL as a query string, in this order; a `null` value is left out.
    pub params: Vec<(String, ValueTemplate)>,
    /// T5: `{"graphql": {url, query, variables}}`: a POST of the operation; the data is the
    /// result's single root field, a result with `errors` is rejected.
    pub graphql: Option<GraphqlOperation>,
}

/// `retry`: how often a fetch that failed on the network, timed out, or got 5xx or 429 is
/// tried again. 4xx other than 429 are never retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryConfig {
    pub max_retries: u32,
    pub initial_delay_ms: u64,
    pub max_delay_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig { max_retries: 0, initial_delay_ms: DEFAULT_RETRY_INITIAL_DELAY_MS, max_delay_ms: DEFAULT_RETRY_MAX_DELAY_MS }
    }
}

impl RetryConfig {
    /// The delay before retry number `attempt` (0-based) before jitter: doubling from
    /// `initial_delay_ms`, capped at `max_delay_ms`.
    pub fn delay_ms(&self, attempt: u32) -> u64 {
        self.initial_delay_ms.saturating_mul(1u64 << attempt.min(32)).min(self.max_delay_ms)
    }
}

/// The policy a fetch runs under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestPolicy {
    /// Bounds each attempt: connect, headers and body together.
    pub timeout_ms: u64,
    pub retry: RetryConfig,
}

impl Default for RequestPolicy {
    fn default() -> Self {
        RequestPolicy { timeout_ms: DEFAULT_TIMEOUT_MS, retry: RetryConfig::default() }
    }
}

/// A query rendered for one arg; the URL is not yet joined to `baseUrl`.
#[derive(Clone, Debug, PartialEq)]
pub struct RenderedQuery {
    pub url: String,
    pub method: String,
    pub body: Option<Value>,
    /// T5: the response is a GraphQL result.
    pub graphql: bool,
}

impl QueryConfig {
    /// `query`: a string template, or `{url, method?, body?, params?}`. `Err` is `(path, message)`.
    pub fn parse(v: &Value, path: &str) -> Result<QueryConfig, (String, String)> {
        Self::parse_with_method(v, path, "GET")
    }

    /// `parse` with another method when none is given (W1: a mutation's is `POST`).
    pub fn parse_with_method(v: &Value, path: &str, default_method: &str) -> Result<QueryConfig, (String, String)> {
        let at = |key: &str| format!("{path}.{key}");
        let obj = match v {
            Value::String(s) => {
                let url = Template::parse(s).map_err(|m| (path.to_owned(), m))?;
                return Ok(QueryConfig { url, method: default_method.into(), body: None, params: Vec::new(), graphql: None });
            }
            Value::Object(o) => o,
            _ => return Err((path.to_owned(), "expected a URL template or {url, method, body, params}".into())),
        };
        if let Some(g) = obj.get("graphql") {
            if obj.len() > 1 {
                let other = obj.keys().find(|k| *k != "graphql").cloned().unwrap_or_default();
                return Err((at(&other), "cannot be used with graphql".into()));
            }
            return Self::parse_graphql(g, &at("graphql"));
        }
        for key in obj.keys() {
            if !["url", "method", "body", "params"].contains(&key.as_str()) {
                return Err((at(key), "unknown key (expected one of: url, method, body, params)".into()));
            }
        }
        let url = match obj.get("url") {
            Some(Value::String(s)) => Template::parse(s).map_err(|m| (at("url"), m))?,
            Some(_) => return Err((at("url"), "expected a string".into())),
            None => return Err((at("url"), "missing".into())),
        };
        let method = match obj.get("method") {
            None | Some(Value::Null) => default_method.to_owned(),
            Some(Value::String(m)) if METHODS.contains(&m.to_ascii_uppercase().as_str()) => m.to_ascii_uppercase(),
            Some(other) => return Err((at("method"), format!("expected one of {}, found {other}", METHODS.join(", ")))),
        };
        let body = match obj.get("body") {
            None => None,
            Some(b) => Some(ValueTemplate::parse(b).map_err(|m| (at("body"), m))?),
        };
        let mut params = Vec::new();
        match obj.get("params") {
            None | Some(Value::Null) => {}
            Some(Value::Object(p)) => {
                for (name, value) in p {
                    if value.is_object() || value.is_array() {
                        return Err((format!("{}.{name}", at("params")), "expected a string, number, boolean or null".into()));
                    }
                    params.push((name.clone(), ValueTemplate::parse(value).map_err(|m| (format!("{}.{name}", at("params")), m))?));
                }
            }
            Some(_) => return Err((at("params"), "expected an object of name to value".into())),
        }
        if body.is_some() && matches!(method.as_str(), "GET" | "HEAD") {
            return Err((at("body"), format!("a {method} request cannot have a body")));
        }
        Ok(QueryConfig { url, method, body, params, graphql: None })
    }

    /// T5 `{"graphql": {url, query, variables?, operationName?}}`.
    fn parse_graphql(v: &Value, path: &str) -> Result<QueryConfig, (String, String)> {
        let at = |key: &str| format!("{path}.{key}");
        let Value::Object(obj) = v else { return Err((path.to_owned(), "expected {url, query, variables?, operationName?}".into())) };
        for key in obj.keys() {
            if !["url", "query", "variables", "operationName"].contains(&key.as_str()) {
                return Err((at(key), "unknown key (expected one of: url, query, variables, operationName)".into()));
            }
        }
        let url = match obj.get("url") {
            Some(Value::String(s)) => Template::parse(s).map_err(|m| (at("url"), m))?,
            Some(_) => return Err((at("url"), "expected a string".into())),
            None => return Err((at("url"), "missing".into())),
        };
        let operation = GraphqlOperation::parse(obj, path)?;
        if operation.has_cursor() {
            return Err((format!("{path}.variables"), "`{cursor}` is a subscription's resume cursor: a request has none".into()));
        }
        Ok(QueryConfig { url, method: "POST".into(), body: None, params: Vec::new(), graphql: Some(operation) })
    }

    /// The request for `arg`: the URL (values percent-encoded) with its query string, the method
    /// and the JSON body.
    pub fn render(&self, arg: Option<&Value>) -> Result<RenderedQuery, String> {
        let mut url = self.url.render_url(arg)?;
        let mut first = !url.contains('?');
        for (name, t) in &self.params {
            let value = t.render(arg)?;
            if value.is_null() {
                continue; // RTK's `stripUndefined`: an absent value is no parameter.
            }
            url.push(if first { '?' } else { '&' });
            first = false;
            url.push_str(&form(name));
            url.push('=');
            url.push_str(&form(&value_text(&value)));
        }
        let body = match &self.graphql {
            Some(op) => Some(op.payload(arg)?),
            None => self.body.as_ref().map(|b| b.render(arg)).transpose()?,
        };
        Ok(RenderedQuery { url, method: self.method.clone(), body, graphql: self.graphql.is_some() })
    }
}

fn form(text: &str) -> String {
    utf8_percent_encode(text, FORM).to_string().replace(' ', "+")
}

/// `timeoutMs` and `retry` laid over `base` (the top level's, or the defaults).
pub fn parse_policy(timeout: Option<&Value>, retry: Option<&Value>, path: &str, base: RequestPolicy) -> Result<RequestPolicy, (String, String)> {
    let at = |key: &str| if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") };
    let uint = |v: &Value, p: String| v.as_u64().ok_or((p, format!("expected a non-negative integer, found {v}")));
    let mut policy = base;
    if let Some(t) = timeout.filter(|t| !t.is_null()) {
        policy.timeout_ms = uint(t, at("timeoutMs"))?;
        if policy.timeout_ms == 0 {
            return Err((at("timeoutMs"), "must be at least 1".into()));
        }
    }
    if let Some(r) = retry.filter(|r| !r.is_null()) {
        let rpath = at("retry");
        let obj = r.as_object().ok_or((rpath.clone(), "expected {maxRetries, initialDelayMs?, maxDelayMs?}".to_owned()))?;
        let mut rc = RetryConfig::default();
        for (key, v) in obj {
            let p = format!("{rpath}.{key}");
            match key.as_str() {
                "maxRetries" => rc.max_retries = u32::try_from(uint(v, p.clone())?).map_err(|_| (p, "too large".to_owned()))?,
                "initialDelayMs" => rc.initial_delay_ms = uint(v, p)?,
                "maxDelayMs" => rc.max_delay_ms = uint(v, p)?,
                _ => return Err((p, "unknown key (expected one of: maxRetries, initialDelayMs, maxDelayMs)".into())),
            }
        }
        if !obj.contains_key("maxRetries") {
            return Err((format!("{rpath}.maxRetries"), "missing".into()));
        }
        if rc.max_delay_ms < rc.initial_delay_ms {
            return Err((format!("{rpath}.maxDelayMs"), "must be >= initialDelayMs".into()));
        }
        policy.retry = rc;
    }
    Ok(policy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn t7_a_string_query_is_a_get() {
        let q = QueryConfig::parse(&json!("messages/{arg}"), "q").unwrap();
        let r = q.render(Some(&json!("a b"))).unwrap();
        assert_eq!(r, RenderedQuery { url: "messages/a%20b".into(), method: "GET".into(), body: None, graphql: false });
    }

    #[test]
    fn t7_objects_render_method_body_and_params() {
        let q = QueryConfig::parse(
            &json!({"url": "posts/{arg.id}", "method": "patch", "body": {"title": "{arg.title}", "n": "{arg.id}"},
                    "params": {"q": "{arg.title}", "page": 2, "skip": null, "flag": true}}),
            "q",
        )
        .unwrap();
        let r = q.render(Some(&json!({"id": 7, "title": "a b&c"}))).unwrap();
        assert_eq!(r.method, "PATCH");
        assert_eq!(r.url, "posts/7?q=a+b%26c&page=2&flag=true");
        assert_eq!(r.body, Some(json!({"title": "a b&c", "n": 7})));
        let q = QueryConfig::parse(&json!({"url": "x?a=1", "params": {"b": "{arg}"}}), "q").unwrap();
        assert_eq!(q.render(Some(&json!(null))).unwrap().url, "x?a=1", "a null param is left out");
        assert_eq!(q.render(Some(&json!(2))).unwrap().url, "x?a=1&b=2");
    }

    #[test]
    fn t7_bad_queries_name_their_path() {
        let e = |v: Value| QueryConfig::parse(&v, "endpoints.e.query").unwrap_err().0;
        assert_eq!(e(json!({"method": "GET"})), "endpoints.e.query.url");
        assert_eq!(e(json!({"url": "x", "method": "FETCH"})), "endpoints.e.query.method");
        assert_eq!(e(json!({"url": "x", "body": {"a": 1}})), "endpoints.e.query.body");
        assert_eq!(e(json!({"url": "x", "params": {"a": [1]}})), "endpoints.e.query.params.a");
        assert_eq!(e(json!({"url": "x", "verb": "GET"})), "endpoints.e.query.verb");
        assert_eq!(e(json!(3)), "endpoints.e.query");
    }

    #[test]
    fn t7_policy_inherits_and_validates() {
        let top = parse_policy(Some(&json!(5000)), Some(&json!({"maxRetries": 3})), "", RequestPolicy::default()).unwrap();
        assert_eq!(top.timeout_ms, 5000);
        assert_eq!(top.retry.max_retries, 3);
        let ep = parse_policy(None, Some(&json!({"maxRetries": 1, "initialDelayMs": 10, "maxDelayMs": 40})), "endpoints.e", top).unwrap();
        assert_eq!((ep.timeout_ms, ep.retry.max_retries), (5000, 1));
        assert_eq!([ep.retry.delay_ms(0), ep.retry.delay_ms(1), ep.retry.delay_ms(2), ep.retry.delay_ms(40)], [10, 20, 40, 40]);
        let err = |t: Value, r: Value| parse_policy(Some(&t), Some(&r), "endpoints.e", top).unwrap_err().0;
        assert_eq!(err(json!(0), json!(null)), "endpoints.e.timeoutMs");
        assert_eq!(err(json!(1), json!({})), "endpoints.e.retry.maxRetries");
        assert_eq!(err(json!(1), json!({"maxRetries": 1, "initialDelayMs": 9, "maxDelayMs": 1})), "endpoints.e.retry.maxDelayMs");
        assert_eq!(err(json!(1), json!({"maxRetries": 1, "tries": 1})), "endpoints.e.retry.tries");
    }
}
