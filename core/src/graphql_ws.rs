//! The graphql-transport-ws protocol (T5), as the `graphql-ws` library defines it: the frames a
//! client writes, and what a server's frames mean. Pure functions; `shared.rs` does the IO.

use serde_json::Value;

/// The WebSocket subprotocol offered in the handshake.
pub const SUBPROTOCOL: &str = "graphql-transport-ws";
pub const PONG: &str = r#"{"type":"pong"}"#;

/// `connection_init`, with `connectionParams` (JSON text) as its payload.
pub fn connection_init(params: Option<&str>) -> String {
    match params {
        Some(p) => format!(r#"{{"type":"connection_init","payload":{p}}}"#),
        None => r#"{"type":"connection_init"}"#.to_owned(),
    }
}

/// `subscribe` for operation `id`; `payload` is `{query, variables, operationName}` as JSON text.
pub fn subscribe(id: &str, payload: &str) -> String {
    format!(r#"{{"id":{},"type":"subscribe","payload":{payload}}}"#, Value::from(id))
}

/// `complete`: the client stops listening to operation `id`.
pub fn complete(id: &str) -> String {
    format!(r#"{{"id":{},"type":"complete"}}"#, Value::from(id))
}

/// A server frame.
#[derive(Debug, PartialEq)]
pub enum Incoming {
    Ack,
    Ping,
    Pong,
    Next { id: String, payload: Value },
    /// The operation failed before it ran (validation); `errors` as readable text.
    Error { id: String, errors: String },
    Complete { id: String },
}

/// Reads a server frame; an error is a protocol violation (the connection is failed).
pub fn incoming(text: &str) -> Result<Incoming, String> {
    // serde's recursion limit bounds the nesting (SPEC §9); the frame size is bounded by the
    // socket's maxMessageBytes.
    let value: Value = serde_json::from_str(text).map_err(|e| format!("a frame is not JSON: {e}"))?;
    let Value::Object(mut obj) = value else { return Err("a frame is not a JSON object".to_owned()) };
    let Some(Value::String(kind)) = obj.remove("type") else { return Err("a frame has no \"type\"".to_owned()) };
    // The values are moved out of the frame, not copied: `next` is the hot path.
    let mut id = || match obj.remove("id") {
        Some(Value::String(id)) => Ok(id),
        _ => Err(format!("a {kind:?} frame has no string \"id\"")),
    };
    Ok(match kind.as_str() {
        "connection_ack" => Incoming::Ack,
        "ping" => Incoming::Ping,
        "pong" => Incoming::Pong,
        "next" => {
            let id = id()?;
            Incoming::Next { id, payload: obj.remove("payload").unwrap_or(Value::Null) }
        }
        "error" => {
            let id = id()?;
            Incoming::Error { id, errors: error_text(obj.get("payload").unwrap_or(&Value::Null)) }
        }
        "complete" => Incoming::Complete { id: id()? },
        other => return Err(format!("unknown message type {other:?}")),
    })
}

/// A `next` payload (an ExecutionResult): the value of its single root field (`data.messageAdded`),
/// or the whole `data` when it has several. `Err`: the payload's `errors`, as text; the data is
/// then left unchanged (T5).
pub fn next_value(payload: Value) -> Result<Value, String> {
    let Value::Object(mut result) = payload else { return Err("a next payload is not an object".to_owned()) };
    if let Some(errors) = result.get("errors").filter(|e| !matches!(e, Value::Null) && e.as_array().is_none_or(|a| !a.is_empty())) {
        return Err(error_text(errors));
    }
    match result.remove("data") {
        Some(data @ Value::Object(_)) => Ok(livecache_engine::graphql::root_field(data)),
        Some(Value::Null) | None => Err("a next payload has no data".to_owned()),
        Some(_) => Err("a next payload's data is not an object".to_owned()),
    }
}

/// GraphQL errors (`[{message, …}]`) as one line: their messages joined.
pub fn error_text(errors: &Value) -> String {
    let messages: Vec<String> = match errors {
        Value::Array(list) => list
            .iter()
            .map(|e| match e.get("message") {
                Some(Value::String(m)) => m.clone(),
                _ => e.to_string(),
            })
            .collect(),
        other => vec![other.to_string()],
    };
    format!("GraphQL: {}", messages.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn t5_frames_read_as_the_protocol_defines_them() {
        assert_eq!(incoming(r#"{"type":"connection_ack"}"#), Ok(Incoming::Ack));
        assert_eq!(incoming(r#"{"type":"ping","payload":{}}"#), Ok(Incoming::Ping));
        assert_eq!(
            incoming(r#"{"type":"next","id":"1","payload":{"data":{"a":1}}}"#),
            Ok(Incoming::Next { id: "1".into(), payload: json!({"data": {"a": 1}}) })
        );
        assert_eq!(
            incoming(r#"{"type":"error","id":"2","payload":[{"message":"bad field"},{"message":"worse"}]}"#),
            Ok(Incoming::Error { id: "2".into(), errors: "GraphQL: bad field; worse".into() })
        );
        assert_eq!(incoming(r#"{"type":"complete","id":"3"}"#), Ok(Incoming::Complete { id: "3".into() }));
        assert!(incoming(r#"{"type":"data","id":"1"}"#).unwrap_err().contains("unknown message type"));
        assert!(incoming(r#"{"type":"next","id":1}"#).unwrap_err().contains("\"id\""));
        assert!(incoming("[]").is_err());
        assert!(incoming("{").is_err());
    }

    #[test]
    fn t5_next_gives_the_single_root_field_or_its_errors() {
        assert_eq!(next_value(json!({"data": {"messageAdded": {"id": 1}}})), Ok(json!({"id": 1})));
        assert_eq!(next_value(json!({"data": {"a": 1, "b": 2}})), Ok(json!({"a": 1, "b": 2})));
        assert_eq!(next_value(json!({"data": {"a": 1}, "errors": []})), Ok(json!(1)));
        assert_eq!(next_value(json!({"data": null, "errors": [{"message": "boom"}]})), Err("GraphQL: boom".into()));
        assert_eq!(next_value(json!({"data": {"a": 1}, "errors": [{"message": "partial"}]})), Err("GraphQL: partial".into()));
        assert!(next_value(json!({})).is_err());
        assert!(next_value(json!(1)).is_err());
    }

    #[test]
    fn t5_client_frames() {
        assert_eq!(connection_init(None), r#"{"type":"connection_init"}"#);
        assert_eq!(connection_init(Some(r#"{"token":"t"}"#)), r#"{"type":"connection_init","payload":{"token":"t"}}"#);
        let s: Value = serde_json::from_str(&subscribe("7", r#"{"query":"subscription { a }"}"#)).unwrap();
        assert_eq!(s, json!({"id": "7", "type": "subscribe", "payload": {"query": "subscription { a }"}}));
        assert_eq!(complete("7"), r#"{"id":"7","type":"complete"}"#);
    }
}
