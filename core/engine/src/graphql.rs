//! T5 GraphQL as configuration: an operation (`query`, `variables`, `operationName`) for a
//! stream's graphql-transport-ws `subscribe` or a query's HTTP POST, and the rule for what its
//! result means (the single root field of `data`).
//!
//! The query text is GraphQL, not a template (its braces are selections); only `variables` and
//! `connectionParams` hold `{arg…}` placeholders.

use serde_json::{Map, Value};

use crate::template::{Template, ValueTemplate};

/// `connection_ack` must come this soon after `connection_init`, unless configured.
pub const DEFAULT_CONNECTION_ACK_TIMEOUT_MS: u64 = 10_000;

#[derive(Clone, Debug, PartialEq)]
pub struct GraphqlOperation {
    pub query: String,
    pub variables: Option<ValueTemplate>,
    pub operation_name: Option<String>,
}

/// `stream.graphql`.
#[derive(Clone, Debug, PartialEq)]
pub struct GraphqlStream {
    pub url: Template,
    pub operation: GraphqlOperation,
    pub connection_params: Option<ValueTemplate>,
    pub connection_ack_timeout_ms: u64,
}

type Obj = Map<String, Value>;

impl GraphqlOperation {
    /// `query`, `variables` and `operationName` of `obj`; `Err` is `(path, message)`.
    pub fn parse(obj: &Obj, path: &str) -> Result<GraphqlOperation, (String, String)> {
        let at = |k: &str| format!("{path}.{k}");
        let query = match obj.get("query") {
            Some(Value::String(q)) if !q.trim().is_empty() => q.clone(),
            Some(Value::String(_)) => return Err((at("query"), "cannot be empty".into())),
            Some(_) => return Err((at("query"), "expected the GraphQL document as a string".into())),
            None => return Err((at("query"), "missing".into())),
        };
        let variables = match obj.get("variables") {
            None | Some(Value::Null) => None,
            Some(v @ Value::Object(_)) => Some(ValueTemplate::parse(v).map_err(|m| (at("variables"), m))?),
            Some(_) => return Err((at("variables"), "expected an object of name to value".into())),
        };
        let operation_name = match obj.get("operationName") {
            None | Some(Value::Null) => None,
            Some(Value::String(n)) if !n.is_empty() => Some(n.clone()),
            Some(_) => return Err((at("operationName"), "expected a non-empty string".into())),
        };
        Ok(GraphqlOperation { query, variables, operation_name })
    }

    /// Whether a variable is `"{cursor}"` (T6; only a resuming subscription has a cursor).
    pub fn has_cursor(&self) -> bool {
        self.variables.as_ref().is_some_and(ValueTemplate::has_cursor)
    }

    /// `{query, variables, operationName}` for `arg`: the `payload` of a `subscribe`, the body
    /// of a POST.
    pub fn payload(&self, arg: Option<&Value>) -> Result<Value, String> {
        self.payload_at(arg, None)
    }

    /// `payload`, with a variable that is exactly `"{cursor}"` set to the T6 resume cursor (null
    /// when there is none yet): a subscription resumes where its last message left off.
    pub fn payload_at(&self, arg: Option<&Value>, cursor: Option<&Value>) -> Result<Value, String> {
        let mut out = Map::new();
        out.insert("query".into(), Value::String(self.query.clone()));
        if let Some(v) = &self.variables {
            out.insert("variables".into(), v.render_with_cursor(arg, cursor)?);
        }
        if let Some(n) = &self.operation_name {
            out.insert("operationName".into(), Value::String(n.clone()));
        }
        Ok(Value::Object(out))
    }
}

impl GraphqlStream {
    pub fn parse(v: &Value, path: &str) -> Result<GraphqlStream, (String, String)> {
        let at = |k: &str| format!("{path}.{k}");
        let Value::Object(obj) = v else { return Err((path.to_owned(), "expected {url, query, variables?, operationName?, connectionParams?}".into())) };
        for key in obj.keys() {
            if !["url", "query", "variables", "operationName", "connectionParams", "connectionAckTimeoutMs"].contains(&key.as_str()) {
                return Err((at(key), "unknown key (expected one of: url, query, variables, operationName, connectionParams, connectionAckTimeoutMs)".into()));
            }
        }
        let url = match obj.get("url") {
            Some(Value::String(s)) => {
                let t = Template::parse(s).map_err(|m| (at("url"), m))?;
                let lower = s.to_ascii_lowercase();
                if !(lower.starts_with("ws://") || lower.starts_with("wss://")) {
                    return Err((at("url"), format!("must be a ws:// or wss:// URL (graphql-transport-ws), found {s:?}")));
                }
                t
            }
            Some(_) => return Err((at("url"), "expected a string".into())),
            None => return Err((at("url"), "missing".into())),
        };
        let connection_params = match obj.get("connectionParams") {
            None | Some(Value::Null) => None,
            Some(v @ Value::Object(_)) => Some(ValueTemplate::parse(v).map_err(|m| (at("connectionParams"), m))?),
            Some(_) => return Err((at("connectionParams"), "expected an object".into())),
        };
        let connection_ack_timeout_ms = match obj.get("connectionAckTimeoutMs") {
            None => DEFAULT_CONNECTION_ACK_TIMEOUT_MS,
            Some(v) => match v.as_u64() {
                Some(n) if n > 0 => n,
                _ => return Err((at("connectionAckTimeoutMs"), "expected a whole number of milliseconds, at least 1".into())),
            },
        };
        Ok(GraphqlStream { url, operation: GraphqlOperation::parse(obj, path)?, connection_params, connection_ack_timeout_ms })
    }
}

/// A GraphQL result's data as the cache holds it: the value of its single root field
/// (`{"messages": [...]}` → `[...]`), or the whole object when it has several fields.
pub fn root_field(data: Value) -> Value {
    match data {
        Value::Object(obj) if obj.len() == 1 => obj.into_iter().next().map_or(Value::Null, |(_, v)| v),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn t5_payload_renders_variables_and_keeps_the_query_text() {
        let obj = json!({"query": "subscription ($room: ID!) { messageAdded(room: $room) { id } }", "variables": {"room": "{arg}"}, "operationName": "Room"});
        let op = GraphqlOperation::parse(obj.as_object().unwrap(), "q").unwrap();
        assert_eq!(
            op.payload(Some(&json!("redux"))).unwrap(),
            json!({"query": "subscription ($room: ID!) { messageAdded(room: $room) { id } }", "variables": {"room": "redux"}, "operationName": "Room"})
        );
        // T6: a `"{cursor}"` variable is the resume cursor, null before there is one.
        let obj = json!({"query": "subscription ($after: Int) { a(after: $after) }", "variables": {"room": "{arg}", "after": "{cursor}"}});
        let op = GraphqlOperation::parse(obj.as_object().unwrap(), "q").unwrap();
        assert!(op.has_cursor());
        assert_eq!(op.payload_at(Some(&json!("r")), Some(&json!(41))).unwrap()["variables"], json!({"room": "r", "after": 41}));
        assert_eq!(op.payload(Some(&json!("r"))).unwrap()["variables"], json!({"room": "r", "after": null}));
        assert_eq!(root_field(json!({"messageAdded": {"id": 1}})), json!({"id": 1}));
        assert_eq!(root_field(json!({"a": 1, "b": 2})), json!({"a": 1, "b": 2}));
    }

    #[test]
    fn t5_bad_graphql_configs_name_their_path() {
        let stream = |v: Value| GraphqlStream::parse(&v, "s.graphql").unwrap_err().0;
        assert_eq!(stream(json!({"query": "subscription { a }"})), "s.graphql.url");
        assert_eq!(stream(json!({"url": "http://h/", "query": "subscription { a }"})), "s.graphql.url");
        assert_eq!(stream(json!({"url": "ws://h/"})), "s.graphql.query");
        assert_eq!(stream(json!({"url": "ws://h/", "query": " "})), "s.graphql.query");
        assert_eq!(stream(json!({"url": "ws://h/", "query": "q", "variables": [1]})), "s.graphql.variables");
        assert_eq!(stream(json!({"url": "ws://h/", "query": "q", "variables": {"a": "{nope}"}})), "s.graphql.variables");
        assert_eq!(stream(json!({"url": "ws://h/", "query": "q", "connectionParams": 1})), "s.graphql.connectionParams");
        assert_eq!(stream(json!({"url": "ws://h/", "query": "q", "connectionAckTimeoutMs": 0})), "s.graphql.connectionAckTimeoutMs");
        assert_eq!(stream(json!({"url": "ws://h/", "query": "q", "headers": {}})), "s.graphql.headers");
        assert_eq!(stream(json!("ws://h/")), "s.graphql");
    }
}
