//! The stream message pipeline (SPEC §2): parse → schema → filter → apply / onMessage, one task
//! per entry so messages apply in arrival order, with the pre-load buffer of L4.

use std::collections::VecDeque;
use std::sync::{Arc, Weak};

use serde_json::Value;
use tokio::sync::mpsc;

use crate::client::Inner;
use crate::config::{FilterValue, StreamConfig};
use crate::event::ErrorReason;
use crate::json::{self, InputErrorKind, MAX_DEPTH};
use crate::template::value_text;
use crate::transport::RawMessage;

pub(crate) enum Inbound {
    Raw(RawMessage),
    /// Messages the stream's thread has parsed, checked and filtered already, in order. The
    /// emptied vector goes back to the spare slot for the stream's next batch.
    Prepared(Vec<Prepared>, Arc<parking_lot::Mutex<Vec<Prepared>>>),
    /// The entry got its first data: flush the buffer (L4).
    Loaded,
}

enum Expected {
    Value(Value),
    Text(String),
}

/// `stream.filter` with its templates rendered for one entry's arg.
pub(crate) struct MessageFilter(Vec<(String, Expected)>);

impl MessageFilter {
    pub fn new(config: &StreamConfig, arg: Option<&Value>) -> Result<MessageFilter, String> {
        let mut fields = Vec::with_capacity(config.filter.len());
        for (field, value) in &config.filter {
            let expected = match value {
                FilterValue::Literal(v) => Expected::Value(v.clone()),
                FilterValue::Template(t) if t.is_single_placeholder() => Expected::Value(t.resolve_value(arg)?),
                FilterValue::Template(t) => Expected::Text(t.render_text(arg)?),
            };
            fields.push((field.clone(), expected));
        }
        Ok(MessageFilter(fields))
    }

    /// Lets every message through.
    pub fn none() -> MessageFilter {
        MessageFilter(Vec::new())
    }

    fn matches(&self, message: &Value) -> bool {
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

/// JSON equality with numbers compared by value (`1` equals `1.0`, as in JavaScript).
pub(crate) fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_equal(a, b)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

pub(crate) enum Prepared {
    Message(Value),
    Filtered,
    Rejected(ErrorReason, String),
}

/// `prepare` for text the caller still owns.
pub(crate) fn prepare_text(text: &str, config: &StreamConfig, filter: &MessageFilter) -> Prepared {
    match json::parse_bounded(text, config.max_message_bytes) {
        Ok(v) => check(v, config, filter),
        Err(e) => {
            let reason = match e.kind {
                InputErrorKind::InvalidJson => ErrorReason::InvalidJson,
                InputErrorKind::TooLarge => ErrorReason::TooLarge,
                InputErrorKind::TooDeep => ErrorReason::TooDeep,
                InputErrorKind::NotFinite => ErrorReason::NotFinite,
            };
            Prepared::Rejected(reason, e.message)
        }
    }
}

/// Parse, schema and filter: everything before the data is touched (no lock needed).
pub(crate) fn prepare(raw: RawMessage, config: &StreamConfig, filter: &MessageFilter) -> Prepared {
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
    if let Some(schema) = &config.schema {
        if let Err(e) = schema.validate(&message) {
            let at = e.instance_path().to_string();
            let place = if at.is_empty() { String::new() } else { format!(" at {at}") };
            return Prepared::Rejected(ErrorReason::Schema, format!("schema: {e}{place}"));
        }
    }
    if !filter.matches(&message) {
        return Prepared::Filtered;
    }
    Prepared::Message(message)
}

/// How many queued messages one burst applies before the delivery thread is woken: bounds how
/// long the events of other entries wait behind a flood.
const BURST: usize = 64;

/// How many queued messages a batched `onMessage` hook is given in one call.
const HOOK_BATCH: usize = 256;

/// How an entry's pipeline starts.
pub(crate) struct Mode {
    /// The entry has data already (or never fetches), so messages apply at once (L4).
    pub loaded: bool,
    /// Messages go to a batched `onMessage` hook (`EndpointHooks::on_messages`).
    pub batched: bool,
}

/// Runs one entry's pipeline until the entry is removed (its inbox sender dropped).
pub(crate) async fn run(
    inner: Weak<Inner>,
    key: Arc<str>,
    entry_id: u64,
    config: Arc<StreamConfig>,
    filter: MessageFilter,
    mut inbox: mpsc::UnboundedReceiver<Inbound>,
    mode: Mode,
) {
    let Mode { mut loaded, batched } = mode;
    // Built-in rules apply a burst under one lock, batched hooks take it in one call.
    let bursts = batched || config.apply.is_some();
    let limit = if batched { HOOK_BATCH } else { BURST };
    let mut buffer: VecDeque<Value> = VecDeque::new();
    // The burst being gathered, applied before anything that comes after it.
    let mut batch: Vec<Value> = Vec::new();
    let mut overflowed = false;
    while let Some(first) = inbox.recv().await {
        let Some(client) = inner.upgrade() else { return };
        // Built-in rules apply without waiting, so the messages already queued are applied as
        // one burst under one lock, with the delivery thread woken once at its end (E2).
        // `onMessage` hooks may wait: no hold then; a batched hook takes the queued messages in
        // one call instead.
        let mut hold = config.apply.is_some().then(|| client.hold_wakes());
        let mut next = Some(first);
        let mut applied = 0;
        while let Some(item) = next.take() {
            let (mut prepared, spare) = match item {
                Inbound::Raw(raw) => (vec![prepare(raw, &config, &filter)], None),
                Inbound::Prepared(prepared, spare) => (prepared, Some(spare)),
                Inbound::Loaded => {
                    loaded = true;
                    while !buffer.is_empty() {
                        let n = if bursts { buffer.len().min(limit) } else { 1 };
                        client.apply_messages(&key, entry_id, buffer.drain(..n).collect()).await;
                        if hold.is_some() {
                            // Let other entries' events out between bursts.
                            drop(hold.take());
                            hold = Some(client.hold_wakes());
                        }
                    }
                    if std::mem::take(&mut overflowed) {
                        client.refetch_when_open(&key, entry_id);
                    }
                    (Vec::new(), None)
                }
            };
            for p in prepared.drain(..) {
                applied += 1;
                match p {
                    Prepared::Message(message) if loaded && bursts => batch.push(message),
                    other => {
                        // Whatever is reported or buffered comes after the messages before it.
                        if !batch.is_empty() && !matches!(other, Prepared::Filtered) {
                            client.apply_messages(&key, entry_id, std::mem::take(&mut batch)).await;
                        }
                        match other {
                            Prepared::Rejected(reason, message) => client.report_error(&key, entry_id, reason, message),
                            Prepared::Filtered => client.count_filtered(),
                            Prepared::Message(message) if loaded => client.apply_message(&key, entry_id, message).await,
                            Prepared::Message(message) => {
                                if buffer.len() >= config.buffer_before_loaded {
                                    // L4: past the bound the buffer goes; a refetch once the
                                    // stream is open brings what it held.
                                    buffer.clear();
                                    if !overflowed {
                                        overflowed = true;
                                        client.count_buffer_overflow();
                                    }
                                }
                                if config.buffer_before_loaded > 0 {
                                    buffer.push_back(message);
                                    client.count_buffered();
                                } else {
                                    overflowed = true;
                                }
                            }
                        }
                    }
                }
            }
            if let Some(spare) = spare {
                let mut slot = spare.lock();
                if slot.capacity() == 0 {
                    *slot = prepared;
                }
            }
            if bursts && applied < limit {
                next = inbox.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            client.apply_messages(&key, entry_id, std::mem::take(&mut batch)).await;
        }
        drop(hold);
    }
}

/// Whether `prepare` would accept a pushed value; used by tests.
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
