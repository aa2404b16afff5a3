//! The standard RFC 6902 suite (github.com/json-patch/json-patch-tests, in
//! `shared/testdata/json-patch-tests/`) through `parse_patch` and `apply_patch` (SPEC L9, E3).

use std::path::PathBuf;

use livecache_core::patch::{apply_patch, parse_patch};
use serde_json::Value;

const MAX_DEPTH: usize = 128;

fn suite_file(name: &str) -> PathBuf {
    let beside_repo = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/testdata/json-patch-tests"
    ));
    let dir = match std::env::var_os("LIVECACHE_SHARED") {
        Some(shared) if !beside_repo.exists() => {
            PathBuf::from(shared).join("testdata/json-patch-tests")
        }
        _ => beside_repo,
    };
    dir.join(name)
}

#[derive(Default)]
struct Tally {
    passed: usize,
    failed: Vec<String>,
    disabled: usize,
}

fn text(v: &Value) -> String {
    serde_json::to_string(v).unwrap()
}

/// `Err` says why the case failed.
fn run_case(case: &Value) -> Result<(), String> {
    let doc = &case["doc"];
    let mut patched = doc.clone();
    let outcome =
        parse_patch(&case["patch"]).and_then(|ops| apply_patch(&mut patched, &ops, MAX_DEPTH));
    match (outcome, case.get("expected")) {
        (Err(e), _) if case.get("error").is_some() => {
            if text(&patched) == text(doc) {
                Ok(())
            } else {
                Err(format!("failed as expected ({e}) but left {patched}"))
            }
        }
        (Err(e), _) => Err(format!("unexpected error: {e}")),
        (Ok(_), _) if case.get("error").is_some() => {
            Err(format!("applied, giving {patched}; expected an error"))
        }
        (Ok(applied), expected) => {
            if let Some(expected) = expected {
                if &patched != expected {
                    return Err(format!("gave {patched}, expected {expected}"));
                }
            }
            let mut inverted = patched.clone();
            apply_patch(&mut inverted, &applied.inverse, MAX_DEPTH)
                .map_err(|e| format!("inverse failed: {e}"))?;
            if &inverted != doc {
                return Err(format!("inverse gave {inverted}, expected {doc}"));
            }
            let mut undone = patched;
            applied
                .undo(&mut undone, MAX_DEPTH)
                .map_err(|e| format!("undo failed: {e}"))?;
            if text(&undone) != text(doc) {
                return Err(format!("undo gave {undone}, expected {doc} exactly"));
            }
            Ok(())
        }
    }
}

fn run_file(name: &str) -> Tally {
    let path = suite_file(name);
    let raw = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {} (set LIVECACHE_SHARED to the shared directory): {e}",
            path.display()
        )
    });
    let cases: Vec<Value> = serde_json::from_str(&raw).expect("the suite is a JSON array");
    let mut tally = Tally::default();
    for (i, case) in cases.iter().enumerate() {
        if case.get("patch").is_none() {
            continue; // a comment-only record
        }
        if case.get("disabled") == Some(&Value::Bool(true)) {
            tally.disabled += 1;
            continue;
        }
        match run_case(case) {
            Ok(()) => tally.passed += 1,
            Err(why) => {
                let comment = case.get("comment").and_then(Value::as_str).unwrap_or("");
                tally.failed.push(format!("{name} #{i} {comment:?}: {why}"));
            }
        }
    }
    println!(
        "json-patch-tests {name}: {} passed, {} failed, {} disabled",
        tally.passed,
        tally.failed.len(),
        tally.disabled
    );
    tally
}

#[test]
fn l9_runs_the_rfc_6902_suite() {
    let failed: Vec<String> = ["tests.json", "spec_tests.json"]
        .into_iter()
        .flat_map(|f| run_file(f).failed)
        .collect();
    for f in &failed {
        println!("FAILED {f}");
    }
    assert!(failed.is_empty(), "{} suite cases failed", failed.len());
}

/// The same suite through the engine's `patchQueryData` (L9): each case's `doc` is upserted as an
/// entry's data, the patch applied as a host update; expected results equal `snapshot()`, error
/// cases fail with `PatchError` and leave the entry's data and version unchanged.
#[test]
fn l9_runs_the_rfc_6902_suite_through_patch_query_data() {
    use livecache_core::{Client, Config, EndpointHooks, Error, Hooks};
    let config = Config::from_value(&serde_json::json!({"endpoints": {"doc": {}}})).unwrap();
    let hooks = Hooks::new().endpoint("doc", EndpointHooks::default().query_fn_sync(|_| Ok(Value::Null)));
    let client = Client::new(config, hooks).unwrap();
    let mut failed = Vec::new();
    let mut passed = 0;
    for name in ["tests.json", "spec_tests.json"] {
        let cases: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(suite_file(name)).unwrap()).unwrap();
        for (i, case) in cases.iter().enumerate() {
            if case.get("patch").is_none() || case.get("disabled") == Some(&Value::Bool(true)) {
                continue;
            }
            let arg = serde_json::json!(format!("{name}#{i}"));
            client.upsert_query_data("doc", Some(arg.clone()), case["doc"].clone()).unwrap();
            let before = client.snapshot("doc", Some(&arg)).unwrap();
            let result = client.patch_query_data_value("doc", Some(&arg), &case["patch"]);
            let after = client.snapshot("doc", Some(&arg)).unwrap();
            let ok = match (&result, case.get("expected")) {
                (Err(Error::Patch(_)), _) if case.get("error").is_some() => {
                    after.data == before.data && after.version == before.version
                }
                (Ok(_), Some(expected)) => &after.data == expected,
                (Ok(_), None) => case.get("error").is_none(),
                _ => false,
            };
            if ok {
                passed += 1;
            } else {
                failed.push(format!("{name} #{i}: {result:?} -> {}", after.data));
            }
        }
    }
    println!("json-patch-tests through patchQueryData: {passed} passed, {} failed", failed.len());
    assert!(failed.is_empty(), "{failed:#?}");
}
