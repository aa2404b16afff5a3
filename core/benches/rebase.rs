//! W3: what one stream message costs with optimistic layers pending — applied to the server data,
//! the layers taken off and put back, one event — on the engine alone, one message per call (no
//! burst to spread the rebase over), beside the same message with no layer. The rebase must cost
//! the layers' size, not the document's: flat from 1,000 to 100,000 entities.
//! `cargo bench -p livecache-core --bench rebase`

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use livecache_core::adapter;
use livecache_core::config::EntityAdapterConfig;
use livecache_engine::message::Prepared;
use livecache_engine::{Config, Engine, HostHooks, Output};
use serde_json::{json, Value};

fn entities(n: usize) -> Value {
    let list = Value::Array((0..n).map(|i| json!({"id": i, "name": format!("user {i}"), "score": i % 97, "online": false})).collect());
    adapter::normalize(&EntityAdapterConfig { select_id: "id".into(), sort_by: None }, list).unwrap()
}

/// An engine with `getUsers` loaded with `n` entities, one subscriber, and `layers` pending
/// optimistic upserts (a mutation that is never answered).
fn engine(n: usize, layers: usize) -> (Engine<u8>, Arc<str>, u64) {
    let config = json!({"endpoints": {
        "getUsers": {"query": "users", "transformResponse": {"entityAdapter": {}},
                     "stream": {"url": "ws://127.0.0.1:1/", "apply": "upsert"}},
        "setOnline": {"mutation": "online/{arg}", "optimistic": [{"endpoint": "getUsers", "message": {"id": "{arg}", "online": true}}],
                      "confirmTimeoutMs": 3_600_000}
    }});
    let config = Arc::new(Config::from_value(&config).unwrap());
    let hooks: HashMap<String, HostHooks> = HashMap::new();
    let mut engine: Engine<u8> = Engine::new(config, hooks).unwrap();
    let (key, entry) = engine.subscribe(Duration::ZERO, "getUsers", None, 1, 0).unwrap();
    let mut out = Vec::new();
    engine.take_outputs(&mut out);
    let request = out.iter().find_map(|o| if let Output::Fetch { request, .. } = o { Some(*request) } else { None }).unwrap();
    engine.fetch_done(&key, entry, request, Ok(livecache_engine::Fetched::new(entities(n), Value::Null)));
    for k in 0..layers {
        engine.mutate("setOnline", Some(json!(k * 13 % n))).unwrap();
    }
    engine.take_outputs(&mut out);
    (engine, key, entry)
}

fn bench_rebase(c: &mut Criterion) {
    let mut g = c.benchmark_group("rebase");
    g.throughput(Throughput::Elements(1));
    for n in [1_000usize, 10_000, 100_000] {
        for layers in [0usize, 10] {
            let (mut engine, key, entry) = engine(n, layers);
            let mut out = Vec::new();
            let mut batch = Vec::with_capacity(1);
            let mut i = 0usize;
            g.bench_with_input(BenchmarkId::new(format!("layers{layers}"), n), &n, |b, &n| {
                b.iter(|| {
                    i += 1;
                    // A field of an entity no layer touches (stream traffic about other users).
                    batch.push(Prepared::Message(json!({"id": (i * 7919 + 1) % n, "score": i})));
                    engine.messages(&key, entry, &mut batch);
                    engine.take_outputs(&mut out);
                    black_box(out.len());
                    out.clear();
                })
            });
            assert_eq!(engine.entry_state(&key, None).unwrap().optimistic, layers, "the layers stayed pending");
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
    targets = bench_rebase
}
criterion_main!(benches);
