//! Per-update cost of the built-in rules (SPEC §2: proportional to the change, not the document).
//! `apply/…` measures the rule alone; `engine/…` a message through `pushMessage`, the pipeline,
//! the lock and the event queue to a subscriber callback.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use livecache_core::apply::apply_rule;
use livecache_core::config::{ApplyRule, EntityAdapterConfig};
use livecache_core::{adapter, Client, Config, EndpointHooks, Event, Hooks, RawMessage};
use serde_json::{json, Value};

fn messages(n: usize) -> Value {
    Value::Array((0..n).map(|i| json!({"id": i, "channel": "redux", "userName": "bot", "text": format!("message {i}")})).collect())
}

fn entities(n: usize) -> Value {
    let list = Value::Array((0..n).map(|i| json!({"id": i, "name": format!("user {i}"), "score": i % 97, "online": false})).collect());
    adapter::normalize(&EntityAdapterConfig { select_id: "id".into(), sort_by: None }, list).unwrap()
}

fn bench_rules(c: &mut Criterion) {
    let mut g = c.benchmark_group("apply");
    g.throughput(Throughput::Elements(1));
    let rule = ApplyRule::Append { max_len: Some(1000), dedupe_by: None };
    let mut data = messages(1000);
    let mut i = 1000u64;
    g.bench_function("append/1000", |b| {
        b.iter(|| {
            i += 1;
            let m = json!({"id": i, "channel": "redux", "userName": "bot", "text": "hello"});
            black_box(apply_rule(&rule, None, &mut data, m, 128).unwrap());
        })
    });
    let upsert = ApplyRule::Upsert { select_id: None };
    let cfg = EntityAdapterConfig { select_id: "id".into(), sort_by: None };
    for n in [100usize, 10_000, 100_000] {
        let mut data = entities(n);
        let mut k = 0u64;
        g.bench_with_input(BenchmarkId::new("upsert-one-field", n), &n, |b, &n| {
            b.iter(|| {
                k += 1;
                let id = (k * 7919) % n as u64;
                let m = json!({"id": id, "score": k});
                black_box(apply_rule(&upsert, Some(&cfg), &mut data, m, 128).unwrap());
            })
        });
    }
    g.finish();
}

/// One message end to end through the engine, waiting for its event at the subscriber.
fn bench_engine(c: &mut Criterion) {
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(4));
    for n in [100usize, 10_000, 100_000] {
        let config = Config::from_value(&json!({"endpoints": {"users": {
            "transformResponse": {"entityAdapter": {}},
            "stream": {"apply": "upsert"}
        }}}))
        .unwrap();
        let initial = Value::Array((0..n).map(|i| json!({"id": i, "name": format!("user {i}"), "score": 0})).collect());
        let hooks = Hooks::new().endpoint("users", EndpointHooks::default().query_fn_sync(move |_| Ok(initial.clone())));
        let client = Client::new(config, hooks).unwrap();
        let seen = Arc::new(AtomicU64::new(0));
        let s = seen.clone();
        let sub = client
            .subscribe("users", None, move |ev| {
                if let Event::Patch { version, .. } | Event::Snapshot { version, .. } = ev {
                    s.store(*version, Ordering::Release);
                }
            })
            .unwrap();
        while seen.load(Ordering::Acquire) < 1 {
            std::thread::yield_now();
        }
        let mut k = 0u64;
        g.bench_with_input(BenchmarkId::new("upsert-to-callback", n), &n, |b, &n| {
            b.iter_custom(|iters| {
                let start = std::time::Instant::now();
                // Every earlier message was delivered before the last batch ended.
                let base = seen.load(Ordering::Acquire);
                for _ in 0..iters {
                    k += 1;
                    let m = json!({"id": (k * 7919) % n as u64, "score": k});
                    client.push_message("users", None, RawMessage::Value(m)).unwrap();
                }
                while seen.load(Ordering::Acquire) < base + iters {
                    std::hint::spin_loop();
                }
                start.elapsed()
            })
        });
        drop(sub);
    }
    g.finish();
}

criterion_group!(benches, bench_rules, bench_engine);
criterion_main!(benches);
