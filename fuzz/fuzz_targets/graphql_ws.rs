//! graphql-transport-ws frames (T5): any server text is a frame or a protocol error, never a
//! panic; a `next` payload gives the root field's value or the errors as text; the frames the
//! client writes are JSON that reads back as what was written.
#![no_main]

use libfuzzer_sys::fuzz_target;
use livecache_core::graphql_ws::{complete, incoming, next_value, subscribe, Incoming};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match incoming(text) {
        Ok(Incoming::Next { id, payload }) => {
            if let Err(e) = next_value(payload) {
                assert!(!e.is_empty());
            }
            // The client's own `complete` for that id is a frame it reads back.
            let v: Value = serde_json::from_str(&complete(&id)).expect("complete is JSON");
            assert_eq!(v["id"], Value::from(id.as_str()));
        }
        Ok(_) => {}
        Err(e) => assert!(!e.is_empty(), "a refusal says why"),
    }
    // Any text as a subscription id and any JSON as its payload make a valid subscribe frame.
    if let Ok(payload) = serde_json::from_str::<Value>(text) {
        let frame: Value = serde_json::from_str(&subscribe(text, &payload.to_string())).expect("subscribe is JSON");
        assert_eq!(frame["id"], Value::from(text));
        assert_eq!(frame["type"], "subscribe");
        assert_eq!(frame["payload"], payload);
    }
});
