//! RFC 6902 (SPEC E1, L9): parse a patch, apply it all-or-nothing, undo it with its inverse.
//! Input: a JSON document and a patch, separated by a NUL byte.
//! - a patch that fails leaves the document exactly as it was;
//! - a patch that applies gives the same document as the json-patch crate's implementation;
//! - its inverse restores the document exactly, member order included.
#![no_main]

use libfuzzer_sys::fuzz_target;
use livecache_engine::json::{parse_host, MAX_DEPTH};
use livecache_engine::patch::{apply_patch, parse_patch};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Some(split) = data.iter().position(|b| *b == 0) else { return };
    let (Ok(doc), Ok(patch)) = (std::str::from_utf8(&data[..split]), std::str::from_utf8(&data[split + 1..])) else { return };
    let (Ok(doc), Ok(patch)) = (parse_host(doc), parse_host(patch)) else { return };
    let Ok(ops) = parse_patch(&patch) else { return };
    let before = doc.clone();
    let mut mine = doc.clone();
    match apply_patch(&mut mine, &ops, MAX_DEPTH) {
        Err(_) => assert_eq!(text(&mine), text(&before), "a failed patch changes nothing"),
        Ok(applied) => {
            // Another implementation agrees on the result (it does not know the depth limit,
            // which only ever refuses).
            let theirs: Result<json_patch::Patch, _> = serde_json::from_value(patch.clone());
            if let Ok(theirs) = theirs {
                let mut other = before.clone();
                if json_patch::patch(&mut other, &theirs.0).is_ok() {
                    assert_eq!(mine, other, "json-patch gives the same document");
                }
            }
            let mut undone = mine.clone();
            applied.undo(&mut undone, MAX_DEPTH).expect("the inverse applies");
            assert_eq!(text(&undone), text(&before), "the inverse restores the document exactly");
        }
    }
});

/// Serialized text: equal text is equal values with the same member order.
fn text(v: &Value) -> String {
    serde_json::to_string(v).unwrap()
}
