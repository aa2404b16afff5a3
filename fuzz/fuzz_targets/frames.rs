//! Stream frames through every `apply` rule and every `onMessage` outcome (SPEC §2 pipeline, E1,
//! E3, L4), on the sans-IO engine. Input: a first byte choosing the endpoint, where the data
//! arrives among the frames and the hook's answers; then NUL-separated frames, the first of them
//! the fetched data. Every subscriber's events, replayed with the json-patch crate, must end at
//! the engine's data and version, each patch from the version the one before reached.
#![no_main]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use livecache_engine::engine::{Engine, Fetched};
use livecache_engine::message::{prepare_text, MessageFilter, Prepared};
use livecache_engine::patch::parse_patch;
use livecache_engine::{Config, Event, HookShape, HostHooks, MessageUpdate, Output};
use serde_json::Value;

const CONFIG: &str = r#"{"keepUnusedDataFor": 0, "endpoints": {
  "append": {"stream": {"apply": {"append": {"dedupeBy": "id", "maxLen": 8}}, "bufferBeforeLoaded": 4}},
  "upsert": {"stream": {"apply": {"upsert": {"selectId": "id"}}}},
  "remove": {"stream": {"apply": {"remove": {"selectId": "id"}}}},
  "jsonPatch": {"stream": {"apply": "jsonPatch", "maxMessageBytes": 256}},
  "mergePatch": {"stream": {"apply": "mergePatch", "schema": {"type": "object"}}},
  "replace": {"stream": {"apply": "replace", "filter": {"room": "{arg}"}}},
  "hook": {"stream": {}},
  "batched": {"stream": {}}
}}"#;
const ENDPOINTS: [&str; 8] = ["append", "upsert", "remove", "jsonPatch", "mergePatch", "replace", "hook", "batched"];

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else { return };
    let config = Arc::new(Config::from_json_text(CONFIG).expect("the fuzz config"));
    let mut hooks = HashMap::new();
    hooks.insert("hook".to_owned(), HostHooks { on_message: Some(HookShape::One), ..Default::default() });
    hooks.insert("batched".to_owned(), HostHooks { on_message: Some(HookShape::Batched), ..Default::default() });
    let mut engine: Engine<u32> = Engine::new(config, hooks).expect("engine");
    let endpoint = ENDPOINTS[usize::from(control & 7)];
    // Where the data arrives: after this many frames (L4 buffers the ones before it).
    let data_after = usize::from((control >> 3) & 3);
    let answers = control >> 5;
    let arg = Some(Value::from("r"));
    let now = Duration::ZERO;
    let (key, entry) = engine.subscribe(now, endpoint, arg.clone(), 1, 7).expect("subscribe");
    let mut h = Run { engine, events: Vec::new(), fetch: None, answers, calls: 0 };
    h.collect();
    let (stream, stream_arg) = h.engine.stream_of(&key).expect("a stream endpoint");
    let filter = MessageFilter::new(&stream, stream_arg.as_ref()).expect("filter");
    let mut frames = rest.split(|b| *b == 0).filter_map(|f| std::str::from_utf8(f).ok());
    let initial = frames.next().and_then(|t| livecache_engine::json::parse_host(t).ok()).unwrap_or(Value::Null);
    let mut answered = false;
    for (i, text) in frames.enumerate() {
        if i == data_after && !answered {
            h.answer_fetch(&key, entry, initial.clone());
            answered = true;
        }
        let mut batch: Vec<Prepared> = vec![prepare_text(text, &stream, &filter)];
        h.engine.messages(&key, entry, &mut batch);
        h.collect();
    }
    if !answered {
        h.answer_fetch(&key, entry, initial);
    }
    h.collect();
    let state = h.engine.entry_state(&key, None).expect("the entry");
    let (replica, version) = replay(&h.events);
    if state.version > 0 {
        assert_eq!(version, state.version, "the events reach the entry's version");
        assert_eq!(replica, state.data, "the events replay to the entry's data");
    }
});

struct Run {
    engine: Engine<u32>,
    events: Vec<Event>,
    fetch: Option<u64>,
    /// Bits choosing the hook's outcomes, one per call (see `outcome`).
    answers: u8,
    calls: u32,
}

impl Run {
    /// Runs the engine's outputs: deliveries are recorded, hook calls answered at once.
    fn collect(&mut self) {
        loop {
            let mut out = Vec::new();
            self.engine.take_outputs(&mut out);
            if out.is_empty() {
                return;
            }
            for o in out {
                match o {
                    Output::Deliver { event, .. } => self.events.push(event),
                    Output::Fetch { request, .. } => self.fetch = Some(request),
                    Output::CallHook(call) => {
                        self.calls += 1;
                        let shape = (u32::from(self.answers) + self.calls) % 4;
                        let outcomes = call.messages.iter().map(|m| outcome(shape, &call.data, m)).collect();
                        self.engine.hook_done(&call.key, call.base, Ok(outcomes));
                    }
                    _ => {}
                }
            }
        }
    }

    fn answer_fetch(&mut self, key: &str, entry: livecache_engine::EntryId, data: Value) {
        self.collect();
        if let Some(request) = self.fetch.take() {
            self.engine.fetch_done(key, entry, request, Ok(Fetched::new(data, Value::Null)));
        }
        self.collect();
    }
}

/// The hook's outcome for one message: the message as new data, the message as RFC 6902 ops, no
/// change, or a failure.
fn outcome(shape: u32, _data: &Value, message: &Value) -> Result<MessageUpdate, String> {
    match shape {
        0 => Ok(MessageUpdate::Data(message.clone())),
        1 => parse_patch(message).map(MessageUpdate::Ops).map_err(|e| e.to_string()),
        2 => Ok(MessageUpdate::Unchanged),
        _ => Err("refused".to_owned()),
    }
}

/// A subscriber's events replayed with the json-patch crate: its data and version.
fn replay(events: &[Event]) -> (Value, u64) {
    let mut data = Value::Null;
    let mut version = 0;
    for e in events {
        match e {
            Event::Snapshot { version: v, data: d, .. } => {
                data = d.clone();
                version = *v;
            }
            Event::Patch { from, version: v, patches, .. } => {
                assert_eq!(*from, version, "a patch from {from} on a replica at {version}");
                let p: json_patch::Patch = serde_json::from_value(serde_json::to_value(patches).unwrap()).unwrap();
                json_patch::patch(&mut data, &p.0).expect("the patch applies to the replica");
                version = *v;
            }
            _ => {}
        }
    }
    (data, version)
}
