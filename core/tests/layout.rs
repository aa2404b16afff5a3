//! SPEC §1's layout, checked: the engine crate does no IO — no runtime, socket, thread, lock or
//! clock in its dependencies or its code.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace").to_path_buf()
}

/// The module name of each `.rs` file of `dir`, with its code before any `#[cfg(test)]`.
fn modules(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).expect("source folder") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).expect("source");
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            // Comments may name what the code does not use.
            let code: String = code.lines().filter(|l| !l.trim_start().starts_with("//")).map(|l| format!("{l}\n")).collect();
            out.insert(path.file_stem().unwrap().to_string_lossy().into_owned(), code);
        }
    }
    out
}

#[test]
fn the_engine_does_no_io() {
    let manifest = std::fs::read_to_string(root().join("core/engine/Cargo.toml")).unwrap();
    let deps = manifest.split("[dependencies]").nth(1).unwrap().split("\n[").next().unwrap();
    for crate_name in ["tokio", "reqwest", "tungstenite", "parking_lot", "futures", "hyper", "mio"] {
        assert!(!deps.contains(crate_name), "livecache-engine depends on {crate_name}");
    }
    for (name, code) in modules(&root().join("core/engine/src")) {
        for io in ["std::thread", "std::net", "Mutex", "RwLock", "Instant::now", "SystemTime", "std::fs", "tokio"] {
            assert!(!code.contains(io), "engine module {name} uses {io}");
        }
    }
}
