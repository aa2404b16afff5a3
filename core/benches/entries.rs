//! Native memory and time per cache entry (the S3 workload): 10,000 entries of one endpoint, each
//! with one subscriber, loaded by a `queryFn`; then all unsubscribed and removed
//! (`keepUnusedDataFor: 0`). A counting allocator gives the bytes the engine holds per entry,
//! with the bytes of the data itself shown apart.
//!
//! Prints one table. `cargo bench -p livecache-core --bench entries`.

use std::time::{Duration, Instant};

use livecache_core::{Client, Config, EndpointHooks, Hooks};
use serde_json::{json, Value};

#[path = "support/counting.rs"]
mod counting;

const ENTRIES: usize = 10_000;

fn item(id: &Value) -> Value {
    json!({"id": id, "v": 1})
}

/// Bytes of one entry's data as serde_json holds it (the `Value` itself and its maps), measured
/// the same way.
fn data_bytes() -> f64 {
    let before = counting::live();
    let values: Vec<Value> = (0..1000).map(|i| item(&json!(i))).collect();
    let after = counting::live();
    drop(values);
    (after - before) as f64 / 1000.0
}

fn settle(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn main() {
    let config = Config::from_value(&json!({"keepUnusedDataFor": 0, "endpoints": {"getItem": {}}})).unwrap();
    let hooks = Hooks::new().endpoint("getItem", EndpointHooks::default().query_fn_sync(|arg| Ok(item(arg.as_ref().unwrap()))));
    let client = Client::new(config, hooks).unwrap();
    // Warm the runtime, the delivery thread and the allocator's pools with one entry first.
    let warm = client.subscribe("getItem", Some(json!(-1)), |_| {}).unwrap();
    settle("warm-up", || client.snapshot("getItem", Some(&json!(-1))).unwrap().version == 1);
    std::thread::sleep(Duration::from_millis(50));

    let before = counting::live();
    let start = Instant::now();
    let subs: Vec<_> = (0..ENTRIES).map(|i| client.subscribe("getItem", Some(json!(i)), |_| {}).unwrap()).collect();
    let subscribe = start.elapsed();
    settle("all loaded", || subs.iter().all(|s| s.snapshot().map(|e| e.version == 1).unwrap_or(false)));
    let loaded = start.elapsed();
    std::thread::sleep(Duration::from_millis(100));
    let held = counting::live() - before;

    let start = Instant::now();
    drop(subs);
    let unsubscribe = start.elapsed();
    settle("all removed", || client.stats().unwrap().entries == 1);
    let removed = start.elapsed();
    std::thread::sleep(Duration::from_millis(100));
    let left = counting::live() - before;
    drop(warm);
    client.close();

    let per_entry = held as f64 / ENTRIES as f64;
    let data = data_bytes();
    println!();
    println!("{ENTRIES} cache entries, one subscriber each, data {{\"id\": i, \"v\": 1}} from a queryFn");
    println!("| {:<44} | {:>12} |", "", "");
    println!("|{:-<46}|{:->14}|", "", "");
    println!("| {:<44} | {:>12.2} |", "subscribe, µs per entry", subscribe.as_secs_f64() * 1e6 / ENTRIES as f64);
    println!("| {:<44} | {:>12.1} |", "all loaded, ms", loaded.as_secs_f64() * 1e3);
    println!("| {:<44} | {:>12.0} |", "native bytes held per entry (all)", per_entry);
    println!("| {:<44} | {:>12.0} |", "  of which the data", data);
    println!("| {:<44} | {:>12.0} |", "  beyond the data", per_entry - data);
    println!("| {:<44} | {:>12.1} |", "unsubscribe all, ms", unsubscribe.as_secs_f64() * 1e3);
    println!("| {:<44} | {:>12.1} |", "removed all (keepUnusedDataFor 0), ms", removed.as_secs_f64() * 1e3);
    println!("| {:<44} | {:>12.0} |", "bytes still held after removal, per entry", left as f64 / ENTRIES as f64);
}
