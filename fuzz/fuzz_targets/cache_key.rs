//! Cache keys (SPEC K1): the same arg gives the same key however it arrives: as JSON text parsed
//! by the engine's bounded parser, as serde_json's value of that text, or re-serialized. The arg
//! part of a key is compact JSON that parses back to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use livecache_engine::json::parse_host;
use livecache_engine::key::{cache_key, stable_json};
use livecache_engine::patch::json_equal;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(arg) = parse_host(text) else { return };
    let key = cache_key("getX", Some(&arg));
    if let Ok(value) = serde_json::from_str::<Value>(text) {
        assert_eq!(cache_key("getX", Some(&value)), key, "the text and its value give one key");
    }
    let again = parse_host(&arg.to_string()).expect("a value re-serialized parses");
    assert_eq!(cache_key("getX", Some(&again)), key, "re-serializing keeps the key");
    let stable = stable_json(&arg);
    assert_eq!(key, format!("getX({stable})"));
    let back: Value = serde_json::from_str(&stable).expect("the key's arg is JSON");
    // Past 2^53 JavaScript's number text is an integer literal with the float's shortest digits
    // (2.3454566991866993e18 is written 2345456699186699300), which serde_json reads back as an
    // integer that is not exactly the float; integers past 2^53 are rounded the same way. Such
    // args are the same JavaScript number, so the keys still agree (checked below).
    if !has_big_number(&arg) {
        assert!(json_equal(&back, &arg), "the key's arg is the arg: {stable} vs {arg}");
    }
    assert_eq!(cache_key("getX", Some(&back)), key, "the key's arg gives the same key");
});

fn has_big_number(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.as_f64().is_none_or(|f| f.abs() >= 9_007_199_254_740_992.0),
        Value::Array(a) => a.iter().any(has_big_number),
        Value::Object(o) => o.values().any(has_big_number),
        _ => false,
    }
}
