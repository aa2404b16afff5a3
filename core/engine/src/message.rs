//! A stream message before it touches the data (SPEC §2): parse → schema → filter. Pure work on
//! one message, done on the stream's own thread so it overlaps with applying the ones before it.

use serde_json::Value;

use crate::config::{FilterValue, StreamConfig};
use crate::event::ErrorReason;
use crate::json::{self, InputErrorKind, MAX_DEPTH};
use crate::patch::json_equal;
use crate::template::value_text;

/// What a stream driver reads off the wire, before the pipeline sees it.
#[derive(Debug)]
pub enum RawMessage {
    Text(String),
    /// A binary frame: never data (E3), reported as an `error` event.
    Binary(Vec<u8>),
    /// An already decoded value (host transports, `pushMessage`).
    Value(Value),
}

#[derive(Clone)]
enum Expected {
    Value(Value),
    Text(String),
}

/// `stream.filter` with its templates rendered for one entry's arg.
#[derive(Clone)]
pub struct MessageFilter(Vec<(String, Expected)>);

impl MessageFilter {
    pub fn new(config: &StreamConfig, arg: Option<&Value>) -> Result<MessageFilter, String> {
        Self::from_fields(&config.filter, arg)
    }

    /// Any field → expected value list (T6 `mustRefetch` is compared as `filter` compares).
    pub fn from_fields(filter: &[(String, FilterValue)], arg: Option<&Value>) -> Result<MessageFilter, String> {
        Self::from_fields_in(filter, arg, None)
    }

    /// `from_fields` with the mutation's result for `{result…}` (W3 `confirm`).
    pub fn from_fields_in(filter: &[(String, FilterValue)], arg: Option<&Value>, result: Option<&Value>) -> Result<MessageFilter, String> {
        let mut fields = Vec::with_capacity(filter.len());
        for (field, value) in filter {
            let expected = match value {
                FilterValue::Literal(v) => Expected::Value(v.clone()),
                FilterValue::Template(t) if t.is_single_placeholder() => Expected::Value(t.resolve_value_in(arg, result)?),
                FilterValue::Template(t) => Expected::Text(t.render_text_in(arg, result)?),
            };
            fields.push((field.clone(), expected));
        }
        Ok(MessageFilter(fields))
    }

    /// Lets every message through.
    pub fn none() -> MessageFilter {
        MessageFilter(Vec::new())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn matches(&self, message: &Value) -> bool {
        if self.0.is_empty() {
            return true;
        }
        let Some(obj) = message.as_object() else { return false };
        self.0.iter().all(|(field, expected)| match (obj.get(field), expected) {
            (None, _) => false,
            (Some(v), Expected::Value(e)) => json_equal(v, e),
            (Some(v), Expected::Text(t)) => value_text(v) == *t,
        })
    }
}

/// A message after parse, schema and filter.
#[derive(Debug)]
pub enum Prepared {
    Message(Value),
    Filtered,
    Rejected(ErrorReason, String),
}

/// `prepare` for text the caller still owns.
pub fn prepare_text(text: &str, config: &StreamConfig, filter: &MessageFilter) -> Prepared {
    match prepare_text_parse(text, config.max_message_bytes) {
        Ok(v) => check(v, config, filter),
        Err((reason, message)) => Prepared::Rejected(reason, message),
    }
}

/// A frame parsed once for every entry of a shared connection (T3): the value, or why it is no
/// message (reason and text).
pub type Parsed = Result<Value, (ErrorReason, String)>;

/// Parses a frame once, bounded as `prepare_text` bounds it.
pub fn parse_frame(text: &str, config: &StreamConfig) -> Parsed {
    prepare_text_parse(text, config.max_message_bytes)
}

fn prepare_text_parse(text: &str, max_bytes: usize) -> Parsed {
    json::parse_bounded(text, max_bytes).map_err(|e| {
        let reason = match e.kind {
            InputErrorKind::InvalidJson => ErrorReason::InvalidJson,
            InputErrorKind::TooLarge => ErrorReason::TooLarge,
            InputErrorKind::TooDeep => ErrorReason::TooDeep,
            InputErrorKind::NotFinite => ErrorReason::NotFinite,
        };
        (reason, e.message)
    })
}

/// One entry's schema and filter on a frame other entries share: the value is copied only for an
/// entry that takes it.
pub fn prepare_parsed(parsed: &Parsed, config: &StreamConfig, filter: &MessageFilter) -> Prepared {
    match parsed {
        Err((reason, message)) => Prepared::Rejected(*reason, message.clone()),
        Ok(v) => {
            if let Some(rejected) = schema_error(v, config) {
                return rejected;
            }
            if !filter.matches(v) {
                return Prepared::Filtered;
            }
            Prepared::Message(v.clone())
        }
    }
}

fn schema_error(message: &Value, config: &StreamConfig) -> Option<Prepared> {
    let schema = config.schema.as_ref()?;
    let e = schema.validate(message).err()?;
    let at = e.instance_path().to_string();
    let place = if at.is_empty() { String::new() } else { format!(" at {at}") };
    Some(Prepared::Rejected(ErrorReason::Schema, format!("schema: {e}{place}")))
}

/// Parse, schema and filter: everything before the data is touched (no lock needed).
pub fn prepare(raw: RawMessage, config: &StreamConfig, filter: &MessageFilter) -> Prepared {
    let message = match raw {
        RawMessage::Text(text) => return prepare_text(&text, config, filter),
        RawMessage::Binary(bytes) => {
            return Prepared::Rejected(
                ErrorReason::BinaryFrame,
                format!("binary frame of {} bytes: messages must be JSON text", bytes.len()),
            )
        }
        RawMessage::Value(v) => {
            if !json::within_depth(&v, MAX_DEPTH) {
                return Prepared::Rejected(ErrorReason::TooDeep, format!("message nested deeper than {MAX_DEPTH} levels"));
            }
            v
        }
    };
    check(message, config, filter)
}

/// Schema and filter.
fn check(message: Value, config: &StreamConfig, filter: &MessageFilter) -> Prepared {
    if let Some(rejected) = schema_error(&message, config) {
        return rejected;
    }
    if !filter.matches(&message) {
        return Prepared::Filtered;
    }
    Prepared::Message(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stream(filter: Value, schema: Option<Value>) -> StreamConfig {
        let mut cfg = serde_json::Map::new();
        cfg.insert("filter".into(), filter);
        if let Some(s) = schema {
            cfg.insert("schema".into(), s);
        }
        cfg.insert("apply".into(), json!("append"));
        let c = crate::config::Config::from_value(&json!({"endpoints": {"e": {"stream": Value::Object(cfg)}}})).unwrap();
        (*c.endpoints["e"].stream.clone().unwrap()).clone()
    }

    #[test]
    fn filter_compares_json_values_and_text() {
        let cfg = stream(json!({"channel": "{arg}", "room": "r-{arg}", "kind": "chat"}), None);
        let f = MessageFilter::new(&cfg, Some(&json!(7))).unwrap();
        assert!(f.matches(&json!({"channel": 7, "room": "r-7", "kind": "chat"})));
        assert!(f.matches(&json!({"channel": 7.0, "room": "r-7", "kind": "chat"})));
        assert!(!f.matches(&json!({"channel": "7", "room": "r-7", "kind": "chat"})), "a number stays a number");
        assert!(!f.matches(&json!({"channel": 7, "room": "r-8", "kind": "chat"})));
        assert!(!f.matches(&json!({"room": "r-7", "kind": "chat"})));
        assert!(!f.matches(&json!([1])));
    }

    #[test]
    fn e3_each_bad_input_has_its_reason() {
        let cfg = stream(json!({}), Some(json!({"type": "object", "required": ["id"]})));
        let f = MessageFilter::new(&cfg, None).unwrap();
        let reason = |raw| match prepare(raw, &cfg, &f) {
            Prepared::Rejected(r, _) => Some(r),
            _ => None,
        };
        assert_eq!(reason(RawMessage::Text("{oops".into())), Some(ErrorReason::InvalidJson));
        assert_eq!(reason(RawMessage::Text("NaN".into())), Some(ErrorReason::NotFinite));
        assert_eq!(reason(RawMessage::Binary(vec![1, 2])), Some(ErrorReason::BinaryFrame));
        assert_eq!(reason(RawMessage::Text(format!("{}{}", "[".repeat(129), "]".repeat(129)))), Some(ErrorReason::TooDeep));
        assert_eq!(reason(RawMessage::Text("{\"x\":1}".into())), Some(ErrorReason::Schema));
        assert_eq!(reason(RawMessage::Text("{\"id\":1}".into())), None);
    }
}
