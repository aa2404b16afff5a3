//! How `demo` shows events to a person: one line per event, labelled with its version and patch.

use std::time::Instant;

use livecache_core::{Event, PatchOp};
use serde_json::Value;

pub struct Printer {
    start: Instant,
    json: bool,
}

fn message_line(m: &Value) -> String {
    let id = m.get("id").map(Value::to_string).unwrap_or_default();
    let user = m.get("userName").and_then(Value::as_str).unwrap_or("?");
    let text = m.get("text").and_then(Value::as_str).unwrap_or("");
    let pending = if m.get("pending") == Some(&Value::Bool(true)) { "  (optimistic)" } else { "" };
    format!("#{id} {user}: {text}{pending}")
}

fn op_line(op: &PatchOp) -> String {
    match op {
        PatchOp::Add { path, value } if value.get("text").is_some() => format!("add {path}  {}", message_line(value)),
        PatchOp::Add { path, value } => format!("add {path} {value}"),
        PatchOp::Replace { path, value } => format!("replace {path} {value}"),
        PatchOp::Remove { path } => format!("remove {path}"),
        PatchOp::Move { from, path } => format!("move {from} -> {path}"),
        PatchOp::Copy { from, path } => format!("copy {from} -> {path}"),
        PatchOp::Test { path, value } => format!("test {path} {value}"),
    }
}

impl Printer {
    pub fn new(json: bool) -> Printer {
        Printer { start: Instant::now(), json }
    }

    pub fn note(&self, text: &str) {
        if !self.json {
            println!("{:>8.3}s  {:<9} {text}", self.start.elapsed().as_secs_f64(), "*");
        }
    }

    pub fn event(&self, event: &Event) {
        if self.json {
            println!("{}", event.to_json());
            return;
        }
        let t = self.start.elapsed().as_secs_f64();
        let (kind, text) = match event {
            Event::Snapshot { version, status, data, .. } => {
                let n = data.as_array().map_or(0, Vec::len);
                let mut text = format!("v{version} {status:?} — {n} messages").to_lowercase();
                let all = data.as_array().map(Vec::as_slice).unwrap_or_default();
                for m in &all[all.len().saturating_sub(5)..] {
                    text.push_str(&format!("\n{:>21}{}", "", message_line(m)));
                }
                ("snapshot", text)
            }
            Event::Patch { from, version, patches, .. } => {
                let mut text = format!("v{from}→v{version}");
                for op in patches {
                    text.push_str(&format!("\n{:>21}{}", "", op_line(op)));
                }
                ("patch", text)
            }
            Event::Status { status, error, .. } => {
                let e = error.as_ref().map(|e| format!(" {e}")).unwrap_or_default();
                ("status", format!("{status:?}{e}").to_lowercase())
            }
            Event::Stream { state, error, .. } => {
                let e = error.as_ref().map(|e| format!(" ({e})")).unwrap_or_default();
                ("stream", format!("{}{e}", format!("{state:?}").to_lowercase()))
            }
            Event::Error { reason, message, .. } => ("error", format!("{}: {message}", reason.as_str())),
            Event::Removed { .. } => ("removed", String::new()),
        };
        println!("{t:>8.3}s  {kind:<9} {text}");
    }
}
