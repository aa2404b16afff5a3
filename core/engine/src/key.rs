//! Cache keys (SPEC K1), byte-identical to RTK Query's `defaultSerializeQueryArgs`:
//!
//! ```js
//! `${endpointName}(${JSON.stringify(queryArgs, (key, value) =>
//!   isPlainObject(value)
//!     ? Object.keys(value).sort().reduce((acc, key) => { acc[key] = value[key]; return acc }, {})
//!     : value)})`
//! ```
//!
//! Object keys are sorted by UTF-16 code units (`Array.prototype.sort`'s default order). Because
//! the sorted keys are re-inserted into a fresh JavaScript object, and JavaScript objects always
//! enumerate *array-index* keys (`"0"`, `"7"`, `"42"`, … up to 2^32 − 2) first in ascending numeric
//! order, RTK writes those keys first, numerically: `{"b":1,"10":2,"9":3}` → `{"9":3,"10":2,"b":1}`.
//! This module reproduces that.
//!
//! One deliberate difference: in RTK a key named `__proto__` is lost (`acc["__proto__"] = v`
//! calls the prototype setter instead of creating a property), so `{"__proto__":1}` and `{}`
//! share a key there. Here `__proto__` is kept like any other key, so distinct args never share
//! a cache entry.
//!
//! Numbers are written as JavaScript writes them (`1.0` → `1`, `1e21` → `1e+21`, integers beyond
//! 2^53 rounded to the nearest double), strings with JSON.stringify's escapes.
//!
//! Serialisation is iterative: arbitrarily deep values do not overflow the stack.

use serde_json::{Number, Value};
use std::cmp::Ordering;

/// `endpoint(` + JSON of the arg with object keys sorted at every level + `)`. `None` is "no arg": `getX(undefined)`.
pub fn cache_key(endpoint: &str, arg: Option<&Value>) -> String {
    let mut out = String::with_capacity(endpoint.len() + 16);
    out.push_str(endpoint);
    out.push('(');
    match arg {
        None => out.push_str("undefined"),
        Some(v) => write_stable_json(&mut out, v),
    }
    out.push(')');
    out
}

/// JSON.stringify of `v` with object keys sorted at every level by UTF-16 code units (JavaScript's
/// default sort order; array-index keys first in numeric order, as RTK Query writes them), compact.
pub fn stable_json(v: &Value) -> String {
    let mut out = String::new();
    write_stable_json(&mut out, v);
    out
}

/// A number written as JavaScript's JSON.stringify / Number.prototype.toString writes it.
pub fn js_number(n: &Number) -> String {
    let mut out = String::new();
    write_js_number(&mut out, n);
    out
}

/// 2^53: integers up to this magnitude are exact doubles.
const MAX_SAFE: u64 = 1 << 53;

/// Appends [`js_number`] of `n` to `out`.
pub fn write_js_number(out: &mut String, n: &Number) {
    use std::fmt::Write;
    if let Some(u) = n.as_u64() {
        if u <= MAX_SAFE {
            let _ = write!(out, "{u}");
        } else {
            write_js_f64(out, u as f64);
        }
    } else if let Some(i) = n.as_i64() {
        if i.unsigned_abs() <= MAX_SAFE {
            let _ = write!(out, "{i}");
        } else {
            write_js_f64(out, i as f64);
        }
    } else {
        // Without `arbitrary_precision` every Number is u64, i64 or a finite f64.
        write_js_f64(out, n.as_f64().unwrap_or(f64::NAN));
    }
}

/// ECMAScript Number::toString(x) for a double; non-finite values are written `null`, as
/// JSON.stringify writes them (serde_json's `Number` cannot hold them anyway).
///
/// The shortest round-trip digits come from serde_json's float writer (ryu), which breaks ties
/// between equally short, equally close digit strings towards even, as ECMAScript requires.
/// Rust's `{:e}` / `{}` do not (709854943748726.25 is `…726.3` there, `…726.2` in JavaScript).
pub fn write_js_f64(out: &mut String, x: f64) {
    if !x.is_finite() {
        out.push_str("null");
        return;
    }
    if x == 0.0 {
        out.push('0'); // also -0
        return;
    }
    if x < 0.0 {
        out.push('-');
    }
    let mut buf = [0u8; 40];
    let len = {
        let mut w: &mut [u8] = &mut buf;
        serde_json::to_writer(&mut w, &x.abs()).expect("a finite f64 fits in 40 bytes");
        40 - w.len()
    };
    // ryu writes "ddd.ddd", "ddd.dddeXX" or "dddeXX": gather the digits, strip zeros on both
    // ends, and find n such that the value is 0.DIGITS × 10^n.
    let text = &buf[..len];
    let (mantissa, exp) = match text.iter().position(|&b| b == b'e' || b == b'E') {
        Some(e) => {
            let exp = std::str::from_utf8(&text[e + 1..]).expect("ascii");
            (&text[..e], exp.parse::<i32>().expect("ryu exponent"))
        }
        None => (text, 0),
    };
    let mut digits = [0u8; 40];
    let mut k = 0usize;
    let mut point: Option<usize> = None;
    for &b in mantissa {
        if b == b'.' {
            point = Some(k);
        } else {
            digits[k] = b;
            k += 1;
        }
    }
    let point = point.unwrap_or(k) as i32;
    let lead = digits[..k].iter().take_while(|&&d| d == b'0').count();
    let trail = digits[lead..k]
        .iter()
        .rev()
        .take_while(|&&d| d == b'0')
        .count();
    let digits = std::str::from_utf8(&digits[lead..k - trail]).expect("ascii digits");
    let k = digits.len() as i32;
    let n = point - lead as i32 + exp;
    if k <= n && n <= 21 {
        // Integer: the digits, then n - k zeros.
        out.push_str(digits);
        out.extend(std::iter::repeat_n('0', (n - k) as usize));
    } else if 0 < n && n <= 21 {
        // The decimal point falls inside the digits.
        out.push_str(&digits[..n as usize]);
        out.push('.');
        out.push_str(&digits[n as usize..]);
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-n) as usize));
        out.push_str(digits);
    } else {
        use std::fmt::Write;
        out.push_str(&digits[..1]);
        if k > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let e = n - 1;
        let _ = write!(
            out,
            "e{}{}",
            if e < 0 { '-' } else { '+' },
            e.unsigned_abs()
        );
    }
}

/// Appends `s` as JSON.stringify writes a string: `"` `\` and the controls below U+0020 escaped
/// (`\b \f \n \r \t`, others `\u00XX` lowercase), everything else literal. A Rust `str` cannot
/// hold lone surrogates, the only other case JSON.stringify escapes.
pub fn write_json_string(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0x08 => "\\b",
            0x0c => "\\f",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x00..=0x1f => "",
            _ => continue,
        };
        // All escaped bytes are ASCII, so `i` is a char boundary.
        out.push_str(&s[start..i]);
        if esc.is_empty() {
            out.push_str("\\u00");
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 0xf) as usize] as char);
        } else {
            out.push_str(esc);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// `Some(index)` when `key` is a JavaScript array index: the canonical decimal form of an
/// integer in 0 ..= 2^32 − 2. Such keys are enumerated first, in numeric order.
fn array_index(key: &str) -> Option<u32> {
    let b = key.as_bytes();
    if b.is_empty() || b.len() > 10 || (b[0] == b'0' && b.len() > 1) {
        return None;
    }
    let mut n: u64 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u64::from(c - b'0');
    }
    if n <= u64::from(u32::MAX - 1) {
        Some(n as u32)
    } else {
        None
    }
}

/// Compares two strings by UTF-16 code units, as JavaScript's default `sort()` does. Differs
/// from byte (code point) order only between astral characters and U+E000..=U+FFFF.
pub fn cmp_utf16(a: &str, b: &str) -> Ordering {
    let (ab, bb) = (a.as_bytes(), b.as_bytes());
    let common = ab.iter().zip(bb).take_while(|(x, y)| x == y).count();
    // Back up to a char boundary shared by both (the prefixes are equal bytes).
    let mut i = common;
    while !a.is_char_boundary(i) {
        i -= 1;
    }
    a[i..].encode_utf16().cmp(b[i..].encode_utf16())
}

/// The order RTK Query's cache keys write an object's keys in.
fn cmp_keys(a: &str, b: &str) -> Ordering {
    match (array_index(a), array_index(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => cmp_utf16(a, b),
    }
}

/// An open container on the explicit stack.
enum Frame<'a> {
    Array {
        items: std::slice::Iter<'a, Value>,
        first: bool,
    },
    /// This object's sorted entries live in the shared buffer at `start..end`; `next` is the
    /// one to write next. Children push theirs above `end` and truncate back when they close.
    Object {
        start: usize,
        next: usize,
        end: usize,
    },
}

/// Appends `stable_json(v)` to `out` (no intermediate allocations per level: one shared buffer
/// holds every open object's sorted entries, one explicit stack replaces recursion).
pub fn write_stable_json(out: &mut String, v: &Value) {
    let mut entries: Vec<(&str, &Value)> = Vec::new();
    let mut stack: Vec<Frame<'_>> = Vec::new();
    let mut pending = Some(v);
    loop {
        if let Some(v) = pending.take() {
            match v {
                Value::Null => out.push_str("null"),
                Value::Bool(true) => out.push_str("true"),
                Value::Bool(false) => out.push_str("false"),
                Value::Number(n) => write_js_number(out, n),
                Value::String(s) => write_json_string(out, s),
                Value::Array(a) => {
                    out.push('[');
                    stack.push(Frame::Array {
                        items: a.iter(),
                        first: true,
                    });
                }
                Value::Object(m) => {
                    out.push('{');
                    let start = entries.len();
                    entries.extend(m.iter().map(|(k, v)| (k.as_str(), v)));
                    entries[start..].sort_unstable_by(|x, y| cmp_keys(x.0, y.0));
                    stack.push(Frame::Object {
                        start,
                        next: start,
                        end: entries.len(),
                    });
                }
            }
        }
        let Some(top) = stack.last_mut() else { return };
        match top {
            Frame::Array { items, first } => match items.next() {
                Some(item) => {
                    if !*first {
                        out.push(',');
                    }
                    *first = false;
                    pending = Some(item);
                }
                None => {
                    out.push(']');
                    stack.pop();
                }
            },
            Frame::Object { start, next, end } => {
                if *next < *end {
                    let (k, item) = entries[*next];
                    if *next > *start {
                        out.push(',');
                    }
                    *next += 1;
                    write_json_string(out, k);
                    out.push(':');
                    pending = Some(item);
                } else {
                    let start = *start;
                    out.push('}');
                    stack.pop();
                    entries.truncate(start);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn key(endpoint: &str, text: &str) -> String {
        cache_key(endpoint, Some(&serde_json::from_str(text).unwrap()))
    }

    /// `js_number` of a literal: u64 / i64 when it fits, else the correctly rounded double.
    /// (Not via serde_json: without its `float_roundtrip` feature it may parse a long decimal
    /// to a neighbouring double.)
    fn num(text: &str) -> String {
        let n = if let Ok(u) = text.parse::<u64>() {
            Number::from(u)
        } else if let Ok(i) = text.parse::<i64>() {
            Number::from(i)
        } else {
            Number::from_f64(text.parse::<f64>().unwrap()).unwrap()
        };
        js_number(&n)
    }

    #[test]
    fn spec_examples() {
        assert_eq!(
            cache_key("getMessages", Some(&json!("redux"))),
            r#"getMessages("redux")"#
        );
        assert_eq!(
            key("getPost", r#"{"page":2,"id":1}"#),
            r#"getPost({"id":1,"page":2})"#
        );
        assert_eq!(cache_key("getX", None), "getX(undefined)");
        assert_eq!(cache_key("getX", Some(&Value::Null)), "getX(null)");
        assert_eq!(cache_key("getX", Some(&json!(true))), "getX(true)");
        assert_eq!(cache_key("getX", Some(&json!(false))), "getX(false)");
        assert_eq!(cache_key("", Some(&json!({}))), "({})");
        assert_eq!(cache_key("getX", Some(&json!([]))), "getX([])");
    }

    #[test]
    fn nested_objects_sorted_at_every_level_arrays_keep_order() {
        assert_eq!(
            key(
                "q",
                r#"{"z":{"y":1,"x":{"b":[3,1,2],"a":null}},"a":[{"d":1,"c":2},[{"f":0,"e":0}]]}"#
            ),
            r#"q({"a":[{"c":2,"d":1},[{"e":0,"f":0}]],"z":{"x":{"a":null,"b":[3,1,2]},"y":1}})"#
        );
        // Sorting is by code unit, so upper case before lower case, "" first, prefixes first.
        assert_eq!(
            stable_json(&json!({"b":1,"B":2,"":3,"ab":4,"a":5,"_":6})),
            r#"{"":3,"B":2,"_":6,"a":5,"ab":4,"b":1}"#
        );
    }

    #[test]
    fn array_index_keys_first_in_numeric_order_like_rtk() {
        // JS objects enumerate array-index keys first, ascending; RTK's reduce re-inserts keys
        // into a fresh object, so JSON.stringify writes them that way.
        assert_eq!(
            stable_json(&json!({"b":1,"10":2,"9":3,"a":4,"0":5})),
            r#"{"0":5,"9":3,"10":2,"a":4,"b":1}"#
        );
        // Not array indices: leading zero, sign, fraction, 2^32-1 and beyond, spaces.
        assert_eq!(
            stable_json(&json!({"4294967295":1,"4294967294":2,"01":3,"-1":4,"1.5":5," 1":6,"2":7})),
            r#"{"2":7,"4294967294":2," 1":6,"-1":4,"01":3,"1.5":5,"4294967295":1}"#
        );
        // `__proto__` is kept (RTK loses it; see the module docs).
        assert_eq!(
            stable_json(&json!({"__proto__":1,"a":2})),
            r#"{"__proto__":1,"a":2}"#
        );
    }

    #[test]
    fn unicode_keys_and_values() {
        assert_eq!(
            stable_json(&json!({"é":"ü","e":"é","日本":"語","z":"😀"})),
            r#"{"e":"é","z":"😀","é":"ü","日本":"語"}"#
        );
        // UTF-16 order: U+1F600 is D83D DE00, which sorts before U+FF61 (and before U+E000),
        // although its code point is larger.
        assert_eq!(
            stable_json(&json!({"\u{FF61}":1,"\u{1F600}":2})),
            "{\"\u{1F600}\":2,\"\u{FF61}\":1}"
        );
        assert_eq!(
            stable_json(&json!({"\u{E000}":1,"\u{10000}":2,"\u{D7FF}":3})),
            "{\"\u{D7FF}\":3,\"\u{10000}\":2,\"\u{E000}\":1}"
        );
        assert_eq!(cmp_utf16("\u{FF61}", "\u{1F600}"), Ordering::Greater);
        assert_eq!(cmp_utf16("a\u{FF61}", "a\u{1F600}b"), Ordering::Greater);
        assert_eq!(cmp_utf16("\u{1F600}", "\u{1F601}"), Ordering::Less);
        assert_eq!(cmp_utf16("ab", "abc"), Ordering::Less);
        assert_eq!(cmp_utf16("é", "é"), Ordering::Equal);
        // Same lead byte, different continuation bytes: é (C3 A9) vs Ã (C3 83).
        assert_eq!(cmp_utf16("é", "Ã"), Ordering::Greater);
    }

    #[test]
    #[allow(clippy::excessive_precision)] // exact ties, on purpose
    fn numbers_as_javascript_writes_them() {
        assert_eq!(key("n", "1.0"), "n(1)");
        assert_eq!(key("n", "1.0"), key("n", "1"));
        assert_eq!(key("n", r#"{"a":1.0}"#), key("n", r#"{"a":1}"#));
        assert_eq!(num("-0.0"), "0");
        assert_eq!(num("-0"), "0");
        assert_eq!(num("0"), "0");
        assert_eq!(num("-1"), "-1");
        assert_eq!(num("1e20"), "100000000000000000000");
        assert_eq!(num("1e21"), "1e+21");
        assert_eq!(num("-1e21"), "-1e+21");
        assert_eq!(num("123456789012345678901"), "123456789012345680000");
        assert_eq!(num("1234567890123456789012"), "1.2345678901234568e+21");
        assert_eq!(num("1.2345e25"), "1.2345e+25");
        assert_eq!(num("1e-7"), "1e-7");
        assert_eq!(num("1.5e-7"), "1.5e-7");
        assert_eq!(num("0.000001"), "0.000001");
        assert_eq!(num("0.0000015"), "0.0000015");
        assert_eq!(num("123.456"), "123.456");
        assert_eq!(num("-123.456"), "-123.456");
        assert_eq!(num("0.5"), "0.5");
        assert_eq!(num("100"), "100");
        assert_eq!(num("1e2"), "100");
        assert_eq!(num("1.7976931348623157e308"), "1.7976931348623157e+308");
        assert_eq!(num("5e-324"), "5e-324");
        assert_eq!(num("1e-400"), "0");
        assert_eq!(
            js_number(&Number::from_f64(0.1 + 0.2).unwrap()),
            "0.30000000000000004"
        );
        assert_eq!(js_number(&Number::from_f64(-0.0).unwrap()), "0");
        assert_eq!(
            js_number(&Number::from_f64(2f64.powi(60)).unwrap()),
            "1152921504606847000"
        );
        // Two shortest candidates equally close (…726.2 and …726.3 around …726.25): the even one.
        assert_eq!(
            js_number(&Number::from_f64(709854943748726.25).unwrap()),
            "709854943748726.2"
        );
        assert_eq!(
            js_number(&Number::from_f64(-1234968237734370.25).unwrap()),
            "-1234968237734370.2"
        );
    }

    #[test]
    fn big_integers_are_rounded_like_doubles() {
        assert_eq!(
            js_number(&Number::from(12345678901234567890u64)),
            "12345678901234567000"
        );
        assert_eq!(js_number(&Number::from(u64::MAX)), "18446744073709552000");
        assert_eq!(js_number(&Number::from(i64::MIN)), "-9223372036854776000");
        assert_eq!(js_number(&Number::from(i64::MAX)), "9223372036854776000");
        // Up to 2^53 exactly; 2^53 + 1 is not a double and rounds to 2^53.
        assert_eq!(
            js_number(&Number::from(9007199254740992u64)),
            "9007199254740992"
        );
        assert_eq!(
            js_number(&Number::from(-9007199254740992i64)),
            "-9007199254740992"
        );
        assert_eq!(
            js_number(&Number::from(9007199254740993u64)),
            "9007199254740992"
        );
        assert_eq!(
            js_number(&Number::from(-9007199254740993i64)),
            "-9007199254740992"
        );
        // Integer and float spellings of the same double give the same key.
        assert_eq!(num("12345678901234567890"), num("12345678901234567890.0"));
        assert_eq!(num("18446744073709551616"), "18446744073709552000");
    }

    #[test]
    fn strings_escaped_as_json_stringify() {
        assert_eq!(stable_json(&json!("say \"hi\"\\")), r#""say \"hi\"\\""#);
        assert_eq!(
            stable_json(&json!("a\nb\r\tc\u{8}\u{c}")),
            r#""a\nb\r\tc\b\f""#
        );
        assert_eq!(
            stable_json(&json!("\u{0}\u{1}\u{1f}\u{1b}")),
            r#""\u0000\u0001\u001f\u001b""#
        );
        // DEL, U+2028/2029, non-ASCII and emoji are literal; `/` is not escaped.
        assert_eq!(
            stable_json(&json!("\u{7f}\u{2028}\u{2029}é😀/")),
            "\"\u{7f}\u{2028}\u{2029}é😀/\""
        );
        assert_eq!(
            key("q", r#"{"k\"ey\n":"v\u0000😀"}"#),
            r#"q({"k\"ey\n":"v\u0000😀"})"#
        );
        // serde_json escapes strings exactly the same way.
        let all: String = (0u32..0x80)
            .chain([0x2028, 0xe9, 0x1F600])
            .filter_map(char::from_u32)
            .collect();
        assert_eq!(
            stable_json(&Value::String(all.clone())),
            serde_json::to_string(&all).unwrap()
        );
    }

    #[test]
    fn deep_values_do_not_overflow_the_stack() {
        let n = 100_000;
        let mut v = json!(1);
        for i in 0..n {
            // Not `json!([v])`: that goes through `to_value(&v)`, which recurses.
            v = if i % 2 == 0 {
                Value::Array(vec![v])
            } else {
                Value::Object(std::iter::once(("k".to_string(), v)).collect())
            };
        }
        let s = stable_json(&v);
        assert_eq!(s.len(), n / 2 * 2 + n / 2 * 6 + 1);
        assert!(s.starts_with(r#"{"k":[{"k":["#));
        // Dismantle iteratively: dropping a deep Value recurses.
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
    fn shared_entry_buffer_keeps_siblings_apart() {
        let v = json!({"b":{"d":{"f":1,"e":2},"c":[{"h":1,"g":2},{}]},"a":{"z":0,"y":{}}});
        assert_eq!(
            stable_json(&v),
            r#"{"a":{"y":{},"z":0},"b":{"c":[{"g":2,"h":1},{}],"d":{"e":2,"f":1}}}"#
        );
        let mut out = String::from("prefix:");
        write_stable_json(&mut out, &v);
        assert_eq!(out, format!("prefix:{}", stable_json(&v)));
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
            (-1e6f64..1e6).prop_map(|f| Value::from((f * 1000.0).round() / 1000.0)),
            any::<String>().prop_map(Value::String),
            "[a-c0-9\u{e000}\u{ff61}\u{1f600}]{0,3}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec(
                    (
                        prop_oneof!["[a-c0-9\u{e000}\u{ff61}\u{1f600}]{0,3}", any::<String>()],
                        inner
                    ),
                    0..6
                )
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    /// Same value, numbers compared as doubles (as JavaScript sees them).
    fn js_eq(a: &Value, b: &Value) -> bool {
        match (a, b) {
            // Within one ulp: serde_json (without `float_roundtrip`) may parse a 17-digit
            // decimal to a neighbouring double.
            (Value::Number(x), Value::Number(y)) => {
                let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
                x == y || (x.to_bits() as i64 - y.to_bits() as i64).abs() <= 1
            }
            (Value::Array(x), Value::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(a, b)| js_eq(a, b))
            }
            (Value::Object(x), Value::Object(y)) => {
                x.len() == y.len() && x.iter().all(|(k, a)| y.get(k).is_some_and(|b| js_eq(a, b)))
            }
            _ => a == b,
        }
    }

    fn keys_in_order(v: &Value) -> bool {
        match v {
            Value::Array(a) => a.iter().all(keys_in_order),
            Value::Object(m) => {
                let keys: Vec<&String> = m.keys().collect();
                keys.windows(2)
                    .all(|w| cmp_keys(w[0], w[1]) == Ordering::Less)
                    && m.values().all(keys_in_order)
            }
            _ => true,
        }
    }

    fn reverse_keys(v: &mut Value) {
        match v {
            Value::Array(a) => a.iter_mut().for_each(reverse_keys),
            Value::Object(m) => {
                let mut entries: Vec<(String, Value)> = std::mem::take(m).into_iter().collect();
                entries.reverse();
                entries.iter_mut().for_each(|(_, v)| reverse_keys(v));
                *m = entries.into_iter().collect();
            }
            _ => {}
        }
    }

    proptest! {
        #[test]
        fn output_is_json_of_the_same_value_in_key_order(v in arb_json()) {
            let s = stable_json(&v);
            let back: Value = serde_json::from_str(&s).unwrap();
            prop_assert!(js_eq(&v, &back), "{} vs {}", v, s);
            prop_assert!(keys_in_order(&back), "{}", s);
            // Insertion order does not matter.
            let mut rev = v.clone();
            reverse_keys(&mut rev);
            prop_assert_eq!(&stable_json(&rev), &s);
        }

        #[test]
        fn numbers_round_trip_and_parse_as_json(f in any::<f64>().prop_filter("finite", |f| f.is_finite())) {
            let s = js_number(&Number::from_f64(f).unwrap());
            prop_assert_eq!(s.parse::<f64>().unwrap(), f);
            let v: Value = serde_json::from_str(&s).unwrap();
            prop_assert!(v.is_number());
            // Integral below 1e21: no fraction, no exponent.
            if f.fract() == 0.0 && f.abs() < 1e21 {
                prop_assert!(s.bytes().all(|b| b.is_ascii_digit() || b == b'-'), "{}", s);
            }
        }

        #[test]
        fn integers_agree_with_their_double(i in any::<i64>(), u in any::<u64>()) {
            prop_assert_eq!(js_number(&Number::from(i)), js_number(&Number::from_f64(i as f64).unwrap()));
            prop_assert_eq!(js_number(&Number::from(u)), js_number(&Number::from_f64(u as f64).unwrap()));
        }

        #[test]
        fn string_escapes_match_serde_json(s in any::<String>()) {
            let mut out = String::new();
            write_json_string(&mut out, &s);
            prop_assert_eq!(out, serde_json::to_string(&s).unwrap());
        }

        #[test]
        fn utf16_order_matches_encode_utf16(a in any::<String>(), b in any::<String>()) {
            prop_assert_eq!(cmp_utf16(&a, &b), a.encode_utf16().cmp(b.encode_utf16()));
        }
    }
}
