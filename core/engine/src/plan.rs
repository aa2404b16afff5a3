//! W3: what an apply rule would do to the data, decided without changing it. An optimistic
//! layer is applied with `apply_patch`, which records how to undo it, so a layer can be taken
//! off and put back on new server data at a cost proportional to the layer, not the document.
//! Each plan gives the same ops the rule in `apply` gives (checked by the tests below and the
//! rebase property test).

use serde_json::Value;

use crate::adapter::{self, kind};
use crate::apply::ApplyError;
use crate::config::{ApplyRule, EntityAdapterConfig};
use crate::patch::{parse_patch, push_token, PatchOp};

/// A rule's effect on the data it was planned on.
#[derive(Clone, Debug, PartialEq)]
pub enum Planned {
    Unchanged,
    /// Ops relative to the data (no root path except from a `jsonPatch` message).
    Ops(Vec<PatchOp>),
    /// The whole data becomes this value.
    Root(Value),
}

fn ops(ops: Vec<PatchOp>) -> Planned {
    if ops.is_empty() {
        Planned::Unchanged
    } else {
        Planned::Ops(ops)
    }
}

/// Plans `message` through `rule` on `data` (read-only).
pub fn plan_rule(rule: &ApplyRule, adapter_cfg: Option<&EntityAdapterConfig>, data: &Value, message: &Value) -> Result<Planned, ApplyError> {
    match rule {
        ApplyRule::Append { max_len, dedupe_by } => plan_append(data, message, *max_len, dedupe_by.as_deref()),
        ApplyRule::Upsert { select_id } => plan_upsert(select_id.as_deref(), adapter_cfg, data, message),
        ApplyRule::Remove { select_id } => plan_remove(select_id.as_deref(), adapter_cfg, data, message),
        ApplyRule::JsonPatch => {
            let list = match message {
                v @ Value::Array(_) => v,
                Value::Object(m) => match m.get("patches") {
                    Some(v @ Value::Array(_)) => v,
                    _ => return Err("jsonPatch: the message is an object without a `patches` array".into()),
                },
                other => return Err(ApplyError::from(format!("jsonPatch: the message is {}, not an RFC 6902 operation array", kind(other)))),
            };
            Ok(Planned::Ops(parse_patch(list).map_err(|e| format!("jsonPatch: {e}"))?))
        }
        ApplyRule::MergePatch => match (data, message) {
            (Value::Object(target), Value::Object(patch)) => {
                let mut planned = Vec::new();
                crate::apply::plan_merge(target, patch, &mut String::new(), &mut planned);
                Ok(ops(planned))
            }
            (_, Value::Object(_)) => Ok(Planned::Root(crate::apply::strip_nulls(message.clone()))),
            (_, other) => Ok(Planned::Root(other.clone())),
        },
        ApplyRule::Replace => Ok(Planned::Root(message.clone())),
    }
}

fn id_field<'a>(select_id: Option<&'a str>, adapter_cfg: Option<&'a EntityAdapterConfig>) -> &'a str {
    select_id.or(adapter_cfg.map(|a| a.select_id.as_str())).unwrap_or("id")
}

fn plan_append(data: &Value, message: &Value, max_len: Option<usize>, dedupe_by: Option<&str>) -> Result<Planned, ApplyError> {
    if let Some(field) = dedupe_by {
        match message {
            Value::Object(m) if m.contains_key(field) => {}
            Value::Object(_) => return Err(ApplyError::from(format!("append: the message has no `{field}` field (dedupeBy)"))),
            other => return Err(ApplyError::from(format!("append: the message is {}, not an object with a `{field}` field (dedupeBy)", kind(other)))),
        }
    }
    match data {
        Value::Null => Ok(Planned::Root(Value::Array(if max_len == Some(0) { Vec::new() } else { vec![message.clone()] }))),
        Value::Array(arr) => {
            if let Some(field) = dedupe_by {
                if arr.iter().any(|e| e.get(field) == Some(&message[field])) {
                    return Ok(Planned::Unchanged);
                }
            }
            let excess = max_len.map_or(0, |m| (arr.len() + 1).saturating_sub(m));
            if excess > 0 && arr.is_empty() {
                return Ok(Planned::Unchanged);
            }
            let mut planned = vec![PatchOp::Add { path: "/-".into(), value: message.clone() }];
            planned.extend((0..excess).map(|_| PatchOp::Remove { path: "/0".into() }));
            Ok(Planned::Ops(planned))
        }
        other => Err(ApplyError::from(format!("append: the data is {}, not an array", kind(other)))),
    }
}

fn plan_upsert(select_id: Option<&str>, adapter_cfg: Option<&EntityAdapterConfig>, data: &Value, message: &Value) -> Result<Planned, ApplyError> {
    let field = id_field(select_id, adapter_cfg);
    let id = adapter::id_of(message, field, "the message").map_err(|e| format!("upsert: {e}"))?;
    match data {
        Value::Null => Ok(Planned::Root(match adapter_cfg {
            Some(_) => adapter::single(field, message.clone()).map_err(|e| format!("upsert: {e}"))?,
            None => Value::Array(vec![message.clone()]),
        })),
        Value::Array(arr) => {
            let Some(i) = arr.iter().position(|e| e.get(field).is_some_and(|v| adapter::id_eq(v, id))) else {
                return Ok(Planned::Ops(vec![PatchOp::Add { path: "/-".into(), value: message.clone() }]));
            };
            let (Value::Object(target), Value::Object(msg)) = (&arr[i], message) else {
                unreachable!("found by a field, so an object; id_of checked the message")
            };
            let mut planned = Vec::new();
            for (f, v) in msg {
                let cur = target.get(f.as_str());
                if cur != Some(v) {
                    let mut path = format!("/{i}");
                    push_token(&mut path, f);
                    planned.push(match cur {
                        Some(_) => PatchOp::Replace { path, value: v.clone() },
                        None => PatchOp::Add { path, value: v.clone() },
                    });
                }
            }
            Ok(ops(planned))
        }
        state if adapter::is_state(state) => {
            let sort_by = adapter_cfg.and_then(|a| a.sort_by.as_ref());
            Ok(ops(adapter::upsert_one_ops(state, field, sort_by, message).map_err(|e| format!("upsert: {e}"))?))
        }
        other => Err(crate::apply::not_a_collection("upsert", other).into()),
    }
}

fn plan_remove(select_id: Option<&str>, adapter_cfg: Option<&EntityAdapterConfig>, data: &Value, message: &Value) -> Result<Planned, ApplyError> {
    let field = id_field(select_id, adapter_cfg);
    let id = match message {
        Value::String(_) | Value::Number(_) => message,
        Value::Object(_) => adapter::id_of(message, field, "the message").map_err(|e| format!("remove: {e}"))?,
        other => {
            return Err(ApplyError::from(format!(
                "remove: the message is {}; expected an object with a `{field}` field or a bare string/number id",
                kind(other)
            )))
        }
    };
    match data {
        Value::Null => Ok(Planned::Unchanged),
        Value::Array(arr) => Ok(match arr.iter().position(|e| e.get(field).is_some_and(|v| adapter::id_eq(v, id))) {
            None => Planned::Unchanged,
            Some(i) => Planned::Ops(vec![PatchOp::Remove { path: format!("/{i}") }]),
        }),
        state if adapter::is_state(state) => {
            let sort_by = adapter_cfg.and_then(|a| a.sort_by.as_ref());
            Ok(ops(adapter::remove_one_ops(state, id, sort_by).map_err(|e| format!("remove: {e}"))?))
        }
        other => Err(crate::apply::not_a_collection("remove", other).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::{apply_rule, Change};
    use crate::patch::apply_patch;
    use serde_json::json;

    /// The plan, applied with `apply_patch`, gives what the rule gives, with the same ops.
    fn same(rule: ApplyRule, adapter_cfg: Option<EntityAdapterConfig>, data: Value, message: Value) {
        let planned = plan_rule(&rule, adapter_cfg.as_ref(), &data, &message);
        let mut by_rule = data.clone();
        let ruled = apply_rule(&rule, adapter_cfg.as_ref(), &mut by_rule, message, 128);
        match (planned, ruled) {
            (Ok(Planned::Unchanged), Ok(Change::Unchanged)) => assert_eq!(by_rule, data),
            (Ok(Planned::Ops(ops)), Ok(Change::Patch(rule_ops))) => {
                assert_eq!(ops, rule_ops, "{rule:?} on {data}");
                let mut by_plan = data.clone();
                apply_patch(&mut by_plan, &ops, 128).unwrap();
                assert_eq!(by_plan, by_rule);
            }
            (Ok(Planned::Root(v)), Ok(Change::Replaced)) => assert_eq!(v, by_rule),
            (Err(a), Err(b)) => assert_eq!(a.message, b.message),
            (p, r) => panic!("{rule:?} on {data}: plan {p:?}, rule {r:?}"),
        }
    }

    #[test]
    fn w3_plans_match_the_rules() {
        let append = |max_len, dedupe: Option<&str>| ApplyRule::Append { max_len, dedupe_by: dedupe.map(str::to_owned) };
        same(append(None, None), None, json!([1]), json!(2));
        same(append(Some(2), None), None, json!([1, 2]), json!(3));
        same(append(Some(0), None), None, json!([]), json!(3));
        same(append(None, Some("id")), None, json!([{"id": 1}]), json!({"id": 1}));
        same(append(None, Some("id")), None, json!([{"id": 1}]), json!({"x": 1}));
        same(append(None, None), None, json!(null), json!(1));
        same(append(None, None), None, json!({}), json!(1));
        let upsert = ApplyRule::Upsert { select_id: None };
        same(upsert.clone(), None, json!([{"id": 1, "a": 1}]), json!({"id": 1, "a": 2, "b": 3}));
        same(upsert.clone(), None, json!([{"id": 1}]), json!({"id": 2}));
        same(upsert.clone(), None, json!([{"id": 1, "a": 1}]), json!({"id": 1, "a": 1}));
        same(upsert.clone(), None, json!(null), json!({"id": 1}));
        same(upsert.clone(), None, json!("x"), json!({"id": 1}));
        let adapter_cfg = || EntityAdapterConfig { select_id: "id".into(), sort_by: Some(("n".into(), crate::config::SortOrder::Ascending)) };
        let state = json!({"ids": [1, 2], "entities": {"1": {"id": 1, "n": 1}, "2": {"id": 2, "n": 5}}});
        same(upsert.clone(), Some(adapter_cfg()), state.clone(), json!({"id": 3, "n": 3}));
        same(upsert.clone(), Some(adapter_cfg()), state.clone(), json!({"id": 1, "n": 9}));
        same(upsert, Some(adapter_cfg()), state.clone(), json!({"n": 9}));
        let remove = ApplyRule::Remove { select_id: None };
        same(remove.clone(), Some(adapter_cfg()), state.clone(), json!(2));
        same(remove.clone(), Some(adapter_cfg()), state, json!(7));
        same(remove.clone(), None, json!([{"id": 1}, {"id": 2}]), json!({"id": 2}));
        same(remove, None, json!([{"id": 1}]), json!([1]));
        same(ApplyRule::JsonPatch, None, json!({"a": 1}), json!([{"op": "replace", "path": "/a", "value": 2}]));
        same(ApplyRule::JsonPatch, None, json!({"a": 1}), json!({"patches": [{"op": "add", "path": "/b", "value": 2}]}));
        same(ApplyRule::JsonPatch, None, json!({"a": 1}), json!(3));
        same(ApplyRule::MergePatch, None, json!({"a": 1, "b": {"c": 1}}), json!({"a": null, "b": {"d": 2}}));
        same(ApplyRule::MergePatch, None, json!({"a": 1}), json!({"a": 1}));
        same(ApplyRule::MergePatch, None, json!([1]), json!({"a": null, "b": 1}));
        same(ApplyRule::Replace, None, json!([1]), json!({"new": true}));
    }
}
