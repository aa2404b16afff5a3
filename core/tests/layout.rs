//! SPEC §1's layout, checked: the engine crate does no IO (no runtime, socket, thread, lock or
//! clock in its dependencies or its code), and no module of `core/` or `ffi/` imports a module
//! that imports it back.

use std::collections::{BTreeMap, BTreeSet};
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

/// `crate::name` references between the modules of one crate.
fn imports(mods: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    mods.iter()
        .map(|(name, code)| {
            let used = code
                .match_indices("crate::")
                .filter_map(|(i, _)| {
                    let rest = &code[i + "crate::".len()..];
                    let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
                    let target = &rest[..end];
                    (target != name && mods.contains_key(target)).then(|| target.to_owned())
                })
                .collect();
            (name.clone(), used)
        })
        .collect()
}

fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_owned(), 1);
        stack.push(n.to_owned());
        for d in graph.get(n).into_iter().flatten() {
            match state.get(d.as_str()) {
                Some(1) => {
                    let at = stack.iter().position(|s| s == d).unwrap();
                    let mut cycle = stack[at..].to_vec();
                    cycle.push(d.clone());
                    return Some(cycle);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(d, graph, state, stack) {
                        return Some(c);
                    }
                }
            }
        }
        stack.pop();
        state.insert(n.to_owned(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in graph.keys() {
        if !state.contains_key(n) {
            if let Some(c) = visit(n, graph, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn no_module_imports_a_module_that_imports_it_back() {
    for dir in ["core/src", "core/engine/src", "ffi/src"] {
        let graph = imports(&modules(&root().join(dir)));
        assert!(graph.len() > 3, "{dir}: modules found");
        assert_eq!(find_cycle(&graph), None, "{dir}: an import cycle");
    }
}

#[test]
fn the_cycle_check_finds_a_cycle() {
    let mods: BTreeMap<String, String> = [("a", "use crate::b::X;"), ("b", "use crate::c::Y;"), ("c", "crate::a::f()")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert_eq!(find_cycle(&imports(&mods)), Some(vec!["a".into(), "b".into(), "c".into(), "a".into()]));
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
