//! T6: where an entry's stream is in the server's history: the cursor of the last applied
//! message (`resume.cursor`), its sequence number (`sequence`: gaps and duplicates), and the
//! server's word that it cannot resume (`mustRefetch`).
//!
//! Messages are admitted here when they are about to apply (buffered ones when the data loads),
//! so a cursor or a sequence number is always that of data the entry has.

use serde_json::Value;

use crate::config::StreamConfig;
use crate::message::MessageFilter;

/// An entry's position (only entries whose stream has `resume` or `sequence` have one).
pub(crate) struct Position {
    /// The last applied message's cursor, or the query response's (`resume.initial`).
    pub cursor: Option<Value>,
    pub last_sequence: Option<i64>,
    must_refetch: Option<MessageFilter>,
    /// The connection now open (or being made) was asked to resume after a cursor: when it
    /// opens, nothing is refetched.
    pub connected_with_cursor: bool,
    /// A gap asked the driver to reconnect and resume; later gaps wait for that.
    pub reconnect_asked: bool,
}

/// What to do with one message.
#[derive(Debug, PartialEq)]
pub(crate) enum Admit {
    Apply,
    /// At or below the last sequence number (T6): dropped and counted.
    Duplicate,
    /// Not the last sequence number plus one: the entry must resume or resync.
    Gap { expected: i64, got: i64 },
    /// It matches `mustRefetch`: the server cannot resume.
    MustRefetch,
    /// `sequence` is set but the message has no integer there (E3).
    NoSequence(String),
}

impl Position {
    /// `None` when the stream neither resumes nor checks sequences.
    pub fn new(config: &StreamConfig, arg: Option<&Value>) -> Option<Position> {
        if config.resume.is_none() && config.sequence.is_none() {
            return None;
        }
        let must_refetch = config
            .resume
            .as_ref()
            .filter(|r| !r.must_refetch.is_empty())
            // Rendered once when the entry was created, like `filter`; a template the arg cannot
            // fill matches nothing.
            .and_then(|r| MessageFilter::from_fields(&r.must_refetch, arg).ok());
        Some(Position { cursor: None, last_sequence: None, must_refetch, connected_with_cursor: false, reconnect_asked: false })
    }

    pub fn admit(&mut self, config: &StreamConfig, message: &Value) -> Admit {
        if self.must_refetch.as_ref().is_some_and(|f| f.matches(message)) {
            return Admit::MustRefetch;
        }
        if let Some(pointer) = &config.sequence {
            let Some(seq) = message.pointer(pointer).and_then(Value::as_i64) else {
                return Admit::NoSequence(format!("message has no integer sequence number at {pointer:?}"));
            };
            match self.last_sequence {
                Some(last) if seq <= last => return Admit::Duplicate,
                Some(last) if seq != last + 1 => return Admit::Gap { expected: last + 1, got: seq },
                _ => self.last_sequence = Some(seq),
            }
        }
        if let Some(resume) = &config.resume {
            if let Some(cursor) = message.pointer(&resume.cursor) {
                self.cursor = Some(cursor.clone());
            }
        }
        Admit::Apply
    }

    /// A query response replaced the data: the position is the response's (`resume.initial`:
    /// `read`, what the driver found at that pointer in the response as the server sent it, else
    /// the pointer into `data`), or unknown until the next message — a cursor from before the
    /// response could replay what it already holds.
    pub fn fetched(&mut self, config: &StreamConfig, read: Option<Value>, data: &Value) {
        let pointer = config.resume.as_ref().and_then(|r| r.initial.as_deref());
        let initial = pointer.and_then(|p| read.or_else(|| data.pointer(p).cloned()));
        self.last_sequence = match (&config.sequence, &initial) {
            (Some(_), Some(cursor)) => cursor.as_i64(),
            _ => None,
        };
        self.cursor = initial;
    }

    /// The server cannot resume from here: forget where we were.
    pub fn forget(&mut self) {
        self.cursor = None;
        self.last_sequence = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use serde_json::json;

    fn stream(s: Value) -> StreamConfig {
        let c = Config::from_value(&json!({"endpoints": {"e": {"stream": s}}})).unwrap();
        (**c.endpoints["e"].stream.as_ref().unwrap()).clone()
    }

    #[test]
    fn t6_sequence_numbers_apply_once_in_order_and_a_gap_is_reported() {
        let c = stream(json!({"sequence": "/seq"}));
        let mut p = Position::new(&c, None).unwrap();
        assert_eq!(p.admit(&c, &json!({"seq": 5})), Admit::Apply, "the first one sets the baseline");
        assert_eq!(p.admit(&c, &json!({"seq": 6})), Admit::Apply);
        assert_eq!(p.admit(&c, &json!({"seq": 6})), Admit::Duplicate);
        assert_eq!(p.admit(&c, &json!({"seq": 2})), Admit::Duplicate);
        assert_eq!(p.admit(&c, &json!({"seq": 9})), Admit::Gap { expected: 7, got: 9 });
        assert_eq!(p.admit(&c, &json!({"seq": 7})), Admit::Apply, "a gap does not move the position");
        assert!(matches!(p.admit(&c, &json!({"seq": "8"})), Admit::NoSequence(m) if m.contains("/seq")));
        assert!(matches!(p.admit(&c, &json!({})), Admit::NoSequence(_)));
        assert_eq!(p.cursor, None, "no resume, no cursor");
    }

    #[test]
    fn t6_the_cursor_follows_applied_messages_and_the_response() {
        let c = stream(json!({"resume": {"cursor": "/id", "initial": "/last", "mustRefetch": {"type": "reset"}}}));
        let mut p = Position::new(&c, None).unwrap();
        p.fetched(&c, None, &json!({"last": 10, "items": []}));
        assert_eq!(p.cursor, Some(json!(10)));
        assert_eq!(p.admit(&c, &json!({"id": 11})), Admit::Apply);
        assert_eq!(p.admit(&c, &json!({"text": "no cursor here"})), Admit::Apply);
        assert_eq!(p.cursor, Some(json!(11)), "a message without a cursor keeps the last one");
        assert_eq!(p.admit(&c, &json!({"type": "reset", "id": 12})), Admit::MustRefetch);
        assert_eq!(p.cursor, Some(json!(11)));
        p.forget();
        assert_eq!(p.cursor, None);
        let c = stream(json!({"resume": {"cursor": "/id"}}));
        let mut p = Position::new(&c, None).unwrap();
        p.admit(&c, &json!({"id": "a"}));
        p.fetched(&c, None, &json!([]));
        assert_eq!(p.cursor, None, "without `initial`, a response makes the position unknown");
    }

    #[test]
    fn t6_sequence_and_resume_together_start_from_the_initial_cursor() {
        let c = stream(json!({"sequence": "/seq", "resume": {"cursor": "/seq", "initial": "/seq"}}));
        let mut p = Position::new(&c, None).unwrap();
        p.fetched(&c, None, &json!({"seq": 3}));
        assert_eq!(p.admit(&c, &json!({"seq": 3})), Admit::Duplicate, "the response holds it");
        assert_eq!(p.admit(&c, &json!({"seq": 4})), Admit::Apply);
        assert_eq!(p.cursor, Some(json!(4)));
        assert!(Position::new(&stream(json!({})), None).is_none());
    }
}
