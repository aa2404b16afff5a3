//! Bounded JSON input (SPEC E3, §9): size and nesting limits enforced before serde parses,
//! depth checks that never recurse, and refusals classified for error events and stats.

use serde::de::DeserializeSeed;
use serde_json::Value;

use crate::value_builder::ValueBuilder;
use std::fmt;

/// Deepest nesting accepted anywhere (E3); the root container is level 1.
pub const MAX_DEPTH: usize = 128;

/// Why input was refused; `kind` maps to an error event's `reason` / a stats counter.
#[derive(Clone, Debug, PartialEq)]
pub struct InputError {
    pub kind: InputErrorKind,
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputErrorKind {
    /// Not JSON text (syntax error, trailing characters, invalid UTF-8).
    InvalidJson,
    /// Over the byte limit.
    TooLarge,
    /// Nested deeper than [`MAX_DEPTH`].
    TooDeep,
    /// `NaN` / `Infinity` / `-Infinity` literals, or a number beyond f64's range (`1e400`).
    NotFinite,
}

impl InputErrorKind {
    /// The `reason` string of the matching error event (same spelling as `event::ErrorReason`).
    pub fn as_str(self) -> &'static str {
        match self {
            InputErrorKind::InvalidJson => "invalid_json",
            InputErrorKind::TooLarge => "too_large",
            InputErrorKind::TooDeep => "too_deep",
            InputErrorKind::NotFinite => "not_finite",
        }
    }
}

impl fmt::Display for InputErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl InputError {
    pub fn new(kind: InputErrorKind, message: impl Into<String>) -> Self {
        InputError {
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl std::error::Error for InputError {}

/// An open container during an iterative walk.
enum Children<'a> {
    Array(std::slice::Iter<'a, Value>),
    Object(serde_json::map::Values<'a>),
}

impl<'a> Children<'a> {
    fn of(v: &'a Value) -> Option<Self> {
        match v {
            Value::Array(a) => Some(Children::Array(a.iter())),
            Value::Object(m) => Some(Children::Object(m.values())),
            _ => None,
        }
    }

    fn next(&mut self) -> Option<&'a Value> {
        match self {
            Children::Array(it) => it.next(),
            Children::Object(it) => it.next(),
        }
    }
}

/// Depth of `v`, or `None` as soon as it exceeds `limit`. Memory is O(depth), no recursion.
fn walk(v: &Value, limit: usize) -> Option<usize> {
    let Some(root) = Children::of(v) else {
        return Some(0);
    };
    if limit == 0 {
        return None;
    }
    let mut stack = vec![root];
    let mut max = 1;
    while let Some(top) = stack.last_mut() {
        match top.next() {
            Some(child) => {
                if let Some(c) = Children::of(child) {
                    stack.push(c);
                    if stack.len() > max {
                        max = stack.len();
                        if max > limit {
                            return None;
                        }
                    }
                }
            }
            None => {
                stack.pop();
            }
        }
    }
    Some(max)
}

/// Container nesting depth: scalar 0, `[]` 1, `{"a":[1]}` 2. Iterative (no recursion): must not
/// overflow the stack on 100k-deep values.
pub fn depth(v: &Value) -> usize {
    walk(v, usize::MAX).unwrap_or(usize::MAX)
}

/// `depth(v) <= limit`, but stops as soon as the walk goes deeper than `limit` (a deep chain
/// costs O(limit), a shallow document is visited completely).
pub fn within_depth(v: &Value, limit: usize) -> bool {
    // Recursion bounded by `limit` is safe for the limits livecache uses, and allocates nothing
    // (this runs once per stream message).
    if limit <= 256 {
        within_depth_rec(v, limit)
    } else {
        walk(v, limit).is_some()
    }
}

fn within_depth_rec(v: &Value, limit: usize) -> bool {
    match v {
        Value::Array(a) => limit > 0 && a.iter().all(|c| within_depth_rec(c, limit - 1)),
        Value::Object(o) => limit > 0 && o.values().all(|c| within_depth_rec(c, limit - 1)),
        _ => true,
    }
}

/// Byte pre-scan: refuses nesting deeper than `limit` in linear time without recursion.
/// Brackets inside strings (escapes included) do not count. Malformed text is left to serde.
fn prescan_depth(text: &[u8], limit: usize) -> Result<(), InputError> {
    let mut depth = 0usize;
    let mut i = 0;
    let n = text.len();
    while i < n {
        match text[i] {
            b'"' => {
                // Skip the string: to the next unescaped quote (or the end: serde reports it).
                i += 1;
                while i < n {
                    match text[i] {
                        b'\\' => i += 2,
                        b'"' => break,
                        _ => i += 1,
                    }
                }
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return Err(InputError::new(
                        InputErrorKind::TooDeep,
                        format!("nested deeper than {limit} levels (at byte {i})"),
                    ));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// Byte offset of serde's (1-based line, 1-based byte column) position.
fn offset_of(text: &str, line: usize, column: usize) -> usize {
    let line_start = if line <= 1 {
        0
    } else {
        text.match_indices('\n')
            .nth(line - 2)
            .map_or(text.len(), |(i, _)| i + 1)
    };
    (line_start + column.saturating_sub(1)).min(text.len())
}

/// Maps a serde_json error to an [`InputError`].
fn classify(text: &str, e: serde_json::Error) -> InputError {
    let msg = e.to_string();
    if msg.starts_with("number out of range") {
        return InputError::new(
            InputErrorKind::NotFinite,
            format!("{msg} (numbers must be finite doubles)"),
        );
    }
    if e.is_syntax() && (msg.starts_with("expected value") || msg.starts_with("invalid number")) {
        // `NaN`, `Infinity`: "expected value" at the N/I; `-Infinity`: "invalid number" at the I.
        let at = offset_of(text, e.line(), e.column());
        let bytes = text.as_bytes();
        let from = |i: usize| bytes.get(i..).unwrap_or(&[]);
        let signed = ["-Infinity", "-NaN"]
            .into_iter()
            .find(|lit| at > 0 && from(at - 1).starts_with(lit.as_bytes()));
        let literal = signed.or_else(|| {
            ["NaN", "Infinity"]
                .into_iter()
                .find(|lit| from(at).starts_with(lit.as_bytes()))
        });
        if let Some(lit) = literal {
            return InputError::new(
                InputErrorKind::NotFinite,
                format!(
                    "{lit} is not valid JSON: numbers must be finite (line {} column {})",
                    e.line(),
                    e.column()
                ),
            );
        }
    }
    InputError::new(InputErrorKind::InvalidJson, msg)
}

/// Parses one message: over `max_bytes` → TooLarge (checked before parsing); nesting deeper
/// than [`MAX_DEPTH`] → TooDeep (byte pre-scan that skips string contents, before serde parses:
/// a 1,000,000-deep `[[[[` is refused in linear time without recursion); invalid JSON or
/// trailing characters → InvalidJson with serde's line/column message; `NaN`/`Infinity`
/// literals and numbers overflowing f64 (`1e400`) → NotFinite.
pub fn parse_bounded(text: &str, max_bytes: usize) -> Result<Value, InputError> {
    if text.len() > max_bytes {
        return Err(InputError::new(
            InputErrorKind::TooLarge,
            format!(
                "{} bytes is over the limit of {max_bytes} bytes",
                text.len()
            ),
        ));
    }
    // Fast path: serde's own recursion limit stops at 127 levels, inside MAX_DEPTH, so what it
    // parses is within bounds. Anything it refuses (a 128-level document included) takes the
    // exact path below, which also gives the error its reason.
    let mut de = serde_json::Deserializer::from_str(text);
    if let Ok(value) = ValueBuilder.deserialize(&mut de) {
        if de.end().is_ok() {
            return Ok(value);
        }
    }
    prescan_depth(text.as_bytes(), MAX_DEPTH)?;
    // The pre-scan bounds the recursion at MAX_DEPTH, so serde's own limit is switched off:
    // exactly 128 levels parse.
    let mut de = serde_json::Deserializer::from_str(text);
    de.disable_recursion_limit();
    let value = ValueBuilder.deserialize(&mut de).map_err(|e| classify(text, e))?;
    de.end().map_err(|e| classify(text, e))?;
    Ok(value)
}

/// Host-supplied JSON text (C API, config text): depth-limited, no size limit.
pub fn parse_host(text: &str) -> Result<Value, InputError> {
    parse_bounded(text, usize::MAX)
}

/// Host JSON text whose values sit `wrapping` levels down inside containers of the call (a list
/// of messages: 1; an operation array: 2): each value keeps the full [`MAX_DEPTH`] levels (E3),
/// which the engine checks per value where it takes them.
pub fn parse_host_wrapped(text: &str, wrapping: usize) -> Result<Value, InputError> {
    prescan_depth(text.as_bytes(), MAX_DEPTH + wrapping)
        .map_err(|_| InputError::new(InputErrorKind::TooDeep, format!("a value is nested deeper than {MAX_DEPTH} levels")))?;
    let mut de = serde_json::Deserializer::from_str(text);
    de.disable_recursion_limit();
    let value = ValueBuilder.deserialize(&mut de).map_err(|e| classify(text, e))?;
    de.end().map_err(|e| classify(text, e))?;
    Ok(value)
}

/// Host-supplied bytes: invalid UTF-8 → InvalidJson with the byte offset in the message.
pub fn parse_host_bytes(bytes: &[u8]) -> Result<Value, InputError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        InputError::new(
            InputErrorKind::InvalidJson,
            format!("invalid UTF-8 at byte offset {}", e.valid_up_to()),
        )
    })?;
    parse_host(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;
    use std::time::{Duration, Instant};

    fn nested(levels: usize) -> String {
        format!("{}{}", "[".repeat(levels), "]".repeat(levels))
    }

    fn kind(r: Result<Value, InputError>) -> InputErrorKind {
        r.expect_err("should be refused").kind
    }

    /// A `levels`-deep chain of single-element arrays / one-key objects, built without recursion.
    fn deep_value(levels: usize) -> Value {
        let mut v = json!(0);
        for i in 0..levels {
            v = if i % 2 == 0 {
                Value::Array(vec![v])
            } else {
                Value::Object(std::iter::once(("k".to_string(), v)).collect())
            };
        }
        v
    }

    /// Dropping a deep Value recurses; take it apart in a loop instead.
    fn dismantle(v: Value) {
        let mut stack = vec![v];
        while let Some(mut v) = stack.pop() {
            match &mut v {
                Value::Array(a) => stack.append(a),
                Value::Object(m) => stack.extend(std::mem::take(m).into_iter().map(|(_, v)| v)),
                _ => {}
            }
        }
    }

    #[test]
    fn depth_counts_containers() {
        assert_eq!(depth(&json!(1)), 0);
        assert_eq!(depth(&json!("[[")), 0);
        assert_eq!(depth(&json!(null)), 0);
        assert_eq!(depth(&json!([])), 1);
        assert_eq!(depth(&json!({})), 1);
        assert_eq!(depth(&json!({"a":[1]})), 2);
        assert_eq!(depth(&json!([1, [2, [3]], {"a": {"b": {"c": []}}}, 4])), 5);
        assert_eq!(depth(&json!([[[[]]], [], {"x": [[[[[]]]]]}])), 7);
        assert!(within_depth(&json!({"a":[1]}), 2));
        assert!(!within_depth(&json!({"a":[1]}), 1));
        assert!(within_depth(&json!(1), 0));
        assert!(!within_depth(&json!([]), 0));
        assert!(within_depth(&json!([[], [[]], []]), 3));
        assert!(!within_depth(&json!([[], [[]], [[[]]]]), 3));
    }

    #[test]
    fn depth_of_200k_deep_value_without_recursion() {
        let v = deep_value(200_000);
        assert_eq!(depth(&v), 200_000);
        assert!(within_depth(&v, 200_000));
        let t = Instant::now();
        assert!(!within_depth(&v, MAX_DEPTH));
        assert!(
            t.elapsed() < Duration::from_millis(50),
            "within_depth stops early"
        );
        dismantle(v);
    }

    #[test]
    fn exactly_max_depth_parses_one_more_is_too_deep() {
        let v = parse_bounded(&nested(MAX_DEPTH), 1 << 20).unwrap();
        assert_eq!(depth(&v), MAX_DEPTH);
        let e = parse_bounded(&nested(MAX_DEPTH + 1), 1 << 20).unwrap_err();
        assert_eq!(e.kind, InputErrorKind::TooDeep);
        assert!(e.message.contains("128"), "{e}");
        // Objects count too, and so does a deep branch after shallow ones.
        let obj = format!("{}1{}", r#"{"a":"#.repeat(MAX_DEPTH), "}".repeat(MAX_DEPTH));
        assert_eq!(depth(&parse_host(&obj).unwrap()), MAX_DEPTH);
        let obj = format!(
            "{}1{}",
            r#"{"a":"#.repeat(MAX_DEPTH + 1),
            "}".repeat(MAX_DEPTH + 1)
        );
        assert_eq!(kind(parse_host(&obj)), InputErrorKind::TooDeep);
        let mixed = format!("[{},[],{}]", nested(10), nested(MAX_DEPTH));
        assert_eq!(kind(parse_host(&mixed)), InputErrorKind::TooDeep);
        let mixed = format!("[{},[],{}]", nested(10), nested(MAX_DEPTH - 1));
        assert_eq!(depth(&parse_host(&mixed).unwrap()), MAX_DEPTH);
    }

    #[test]
    fn brackets_inside_strings_do_not_count() {
        let s = format!(
            "{}\"{}\"{}",
            "[".repeat(MAX_DEPTH),
            "[[[[".repeat(100),
            "]".repeat(MAX_DEPTH)
        );
        let v = parse_host(&s).unwrap();
        assert_eq!(depth(&v), MAX_DEPTH);
        assert_eq!(parse_host(r#""[[[[""#).unwrap(), json!("[[[["));
        // Escaped quotes and backslashes: the string ends only at an unescaped quote.
        let tricky = format!(
            r#"["\"{}", "\\", "a\\\"{}"]"#,
            "[".repeat(200),
            "{".repeat(200)
        );
        let v = parse_host(&tricky).unwrap();
        assert_eq!(depth(&v), 1);
        assert_eq!(v[1], json!("\\"));
        // `"\\"` closes the string, so the brackets after it count.
        let s = format!(r#"["\\",{}]"#, nested(MAX_DEPTH));
        assert_eq!(kind(parse_host(&s)), InputErrorKind::TooDeep);
        // Keys are strings too.
        let s = format!(r#"{{"{}":1}}"#, "{[".repeat(300));
        assert_eq!(depth(&parse_host(&s).unwrap()), 1);
    }

    #[test]
    fn size_limit_boundary() {
        let text = r#"{"a":[1,2,3]}"#;
        assert!(parse_bounded(text, text.len()).is_ok());
        let e = parse_bounded(text, text.len() - 1).unwrap_err();
        assert_eq!(e.kind, InputErrorKind::TooLarge);
        assert!(e.message.contains(&text.len().to_string()), "{e}");
        // Checked before anything else: too large and too deep and invalid is TooLarge.
        assert_eq!(
            kind(parse_bounded(&"[".repeat(1000), 999)),
            InputErrorKind::TooLarge
        );
        // Bytes, not chars.
        assert!(parse_bounded(r#""é""#, 4).is_ok());
        assert_eq!(kind(parse_bounded(r#""é""#, 3)), InputErrorKind::TooLarge);
    }

    #[test]
    fn million_deep_input_refused_quickly() {
        let text = "[".repeat(1_000_000);
        let t = Instant::now();
        assert_eq!(kind(parse_host(&text)), InputErrorKind::TooDeep);
        let text = format!("{}{}", "[{\"a\":".repeat(500_000), "}]".repeat(500_000));
        assert_eq!(
            kind(parse_bounded(&text, 16 << 20)),
            InputErrorKind::TooDeep
        );
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    }

    #[test]
    fn invalid_json_and_trailing_garbage() {
        for bad in [
            "",
            "  ",
            "[1,]",
            "{a:1}",
            "[1",
            "'x'",
            "nul",
            "[1]x",
            "1 2",
            "{} {}",
            "\"\\ud800\"",
            "\"\u{1}\"",
        ] {
            let e = parse_host(bad).unwrap_err();
            assert_eq!(e.kind, InputErrorKind::InvalidJson, "{bad:?}: {e}");
            assert!(e.message.contains("line"), "{bad:?}: {e}");
        }
        let e = parse_host("[1]\n  x").unwrap_err();
        assert_eq!(e.message, "trailing characters at line 2 column 3");
        assert_eq!(
            e.to_string(),
            "invalid_json: trailing characters at line 2 column 3"
        );
        // Whitespace around the value is fine.
        assert_eq!(parse_host(" \n\t[1] \r\n").unwrap(), json!([1]));
    }

    #[test]
    fn non_finite_numbers() {
        for bad in ["1e400", "-1e400", "[1, 1e999]", "{\"a\": 2e308}"] {
            let e = parse_host(bad).unwrap_err();
            assert_eq!(e.kind, InputErrorKind::NotFinite, "{bad}: {e}");
            assert!(e.message.contains("number out of range"), "{e}");
        }
        let long = "9".repeat(400);
        assert_eq!(kind(parse_host(&long)), InputErrorKind::NotFinite);
        for bad in [
            "NaN",
            "Infinity",
            "-Infinity",
            "[1, NaN]",
            "{\"a\":\n -Infinity}",
            "[\"é\", Infinity]",
        ] {
            let e = parse_host(bad).unwrap_err();
            assert_eq!(e.kind, InputErrorKind::NotFinite, "{bad}: {e}");
            assert!(
                e.message.contains("NaN") || e.message.contains("Infinity"),
                "{e}"
            );
        }
        assert_eq!(
            parse_host("[1,\n -Infinity]").unwrap_err().message,
            "-Infinity is not valid JSON: numbers must be finite (line 2 column 3)"
        );
        // Other words are plain syntax errors; underflow is zero.
        assert_eq!(kind(parse_host("nan")), InputErrorKind::InvalidJson);
        assert_eq!(kind(parse_host("Inf")), InputErrorKind::InvalidJson);
        assert_eq!(kind(parse_host("\"NaN\" x")), InputErrorKind::InvalidJson);
        assert_eq!(kind(parse_host("[1 NaN]")), InputErrorKind::InvalidJson);
        assert_eq!(parse_host("1e-400").unwrap(), json!(0.0));
        assert_eq!(
            parse_host("1.7976931348623157e308").unwrap(),
            json!(f64::MAX)
        );
    }

    #[test]
    fn host_bytes() {
        assert_eq!(
            parse_host_bytes(b"{\"a\":\"\xc3\xa9\"}").unwrap(),
            json!({"a": "é"})
        );
        let e = parse_host_bytes(b"[\"ok\", \"\xff\"]").unwrap_err();
        assert_eq!(e.kind, InputErrorKind::InvalidJson);
        assert_eq!(e.message, "invalid UTF-8 at byte offset 8");
        // Truncated sequence, overlong encoding, UTF-8-encoded surrogate.
        for bad in [&b"\"\xc3\""[..], b"\"\xc0\xaf\"", b"\"\xed\xa0\x80\""] {
            assert_eq!(
                parse_host_bytes(bad).unwrap_err().message,
                "invalid UTF-8 at byte offset 1"
            );
        }
        assert_eq!(
            kind(parse_host_bytes(nested(MAX_DEPTH + 1).as_bytes())),
            InputErrorKind::TooDeep
        );
    }

    #[test]
    fn error_display_and_kinds() {
        let e = InputError::new(InputErrorKind::TooLarge, "x");
        assert_eq!(e.to_string(), "too_large: x");
        let _: &dyn std::error::Error = &e;
        assert_eq!(InputErrorKind::InvalidJson.as_str(), "invalid_json");
        assert_eq!(InputErrorKind::TooDeep.as_str(), "too_deep");
        assert_eq!(InputErrorKind::NotFinite.as_str(), "not_finite");
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            "[\\[\\]{}\"\\\\a]{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(8, 64, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec(("[\\[\\]{}\"\\\\a]{0,4}", inner), 0..4)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// The byte pre-scan and `depth` agree with each other on serialised values.
        #[test]
        fn prescan_agrees_with_depth(v in arb_json(), limit in 0usize..10, pretty in any::<bool>()) {
            let text = if pretty { serde_json::to_string_pretty(&v) } else { serde_json::to_string(&v) }.unwrap();
            let d = depth(&v);
            prop_assert_eq!(prescan_depth(text.as_bytes(), limit).is_ok(), d <= limit);
            prop_assert_eq!(within_depth(&v, limit), d <= limit);
            prop_assert_eq!(parse_host(&text).unwrap(), v);
        }

        /// The parse builds exactly serde_json's value, key order and number forms included.
        #[test]
        fn parses_as_serde_json_does(v in arb_json(), x in any::<f64>().prop_filter("finite", |x| x.is_finite()), pretty in any::<bool>()) {
            let v = Value::Array(vec![v, Value::from(x)]);
            let text = if pretty { serde_json::to_string_pretty(&v) } else { serde_json::to_string(&v) }.unwrap();
            let theirs: Value = serde_json::from_str(&text).unwrap();
            let ours = parse_host(&text).unwrap();
            prop_assert_eq!(ours.to_string(), theirs.to_string());
            prop_assert_eq!(ours, theirs);
        }

        /// Never panics on arbitrary input.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_host_bytes(&bytes);
            let _ = parse_bounded(&String::from_utf8_lossy(&bytes), 32);
        }
    }
}
