//! T1 `prepareHeaders`: the host's last word on the headers of every request and every stream
//! connect. The hook gets the rendered headers and `{endpoint, arg, url, kind}` and answers the
//! headers to send; they are checked as configured ones are (CR, LF or NUL refused), and a
//! failure names the hook, never a header value.

use serde_json::{json, Map, Value};

use crate::hooks::PrepareHeadersFn;
use crate::transport::Headers;

/// What the hook is told about the request.
pub(crate) struct HeaderContext<'a> {
    pub endpoint: &'a str,
    pub arg: Option<&'a Value>,
    pub url: &'a str,
    /// `"query"`, `"mutation"` or `"stream"`.
    pub kind: &'static str,
}

/// Runs `hook` on `headers`; `Err` is the text of a failed request or connect.
pub(crate) async fn prepare(hook: &PrepareHeadersFn, headers: &Headers, context: HeaderContext<'_>) -> Result<Headers, String> {
    let given: Map<String, Value> = headers.iter().map(|(n, v)| (n.to_owned(), Value::String(v.to_owned()))).collect();
    let mut ctx = json!({"endpoint": context.endpoint, "url": context.url, "kind": context.kind});
    if let Some(arg) = context.arg {
        ctx["arg"] = arg.clone();
    }
    let answer = hook(Value::Object(given), ctx).await.map_err(|e| format!("prepareHeaders failed: {e}"))?;
    let Value::Object(answer) = answer else {
        return Err("prepareHeaders must return an object of header name to string".to_owned());
    };
    let mut pairs = Vec::with_capacity(answer.len());
    for (name, value) in answer {
        match value {
            Value::String(v) => pairs.push((name, v)),
            // `null` drops a header, as `Headers.delete` would.
            Value::Null => {}
            _ => return Err(format!("prepareHeaders: header {name:?} must be a string")),
        }
    }
    Headers::from_pairs(pairs).map_err(|e| format!("prepareHeaders: {e}"))
}
