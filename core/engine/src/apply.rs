//! SPEC §2 `stream.apply`: the built-in update rules. Each rule changes the data in place and
//! emits its RFC 6902 patch directly, in time proportional to the change: the document is
//! never cloned and never diffed (E1: patches never target `""`, use `-` only in `add`, carry no
//! `test`). Every rule is all-or-nothing (E3): on Err the data is exactly unchanged.
//!
//! Costs beyond the size of the message: `append` with `dedupeBy` scans the array (O(n));
//! `upsert` / `remove` on an array find the element by a linear scan (O(n)); on an entity-adapter
//! state they are O(1) map lookups, plus the `ids` work described in `adapter`.
//! Ids compare as in the entity adapter: a string equals the same string, numbers compare
//! numerically (`1` = `1.0`); a string never equals a number in an array (JS `===`), while in an
//! entity-adapter state `"1"` and `1` share the key `"1"` (as JS object keys do).
//! `dedupeBy` compares its fields as JSON values (`1` ≠ `1.0`).

use serde_json::{Map, Value};

use crate::adapter::{self, kind};
use crate::config::{ApplyRule, EntityAdapterConfig};
use crate::event::ErrorReason;
use crate::json::within_depth;
use crate::patch::{apply_patch, parse_patch, push_token, PatchOp};

/// What a message did to the data.
#[derive(Debug, PartialEq)]
pub enum Change {
    /// Nothing changed (an `append` skipped by `dedupeBy`, a `remove` of an absent id, an upsert that sets equal values, an empty merge patch…). No version bump.
    Unchanged,
    /// The data changed; these RFC 6902 ops (JSON Pointer paths), applied to the old data, give the new data.
    Patch(Vec<PatchOp>),
    /// The whole data was replaced (root changed): the engine sends a snapshot instead of a patch (E1: patches never target "").
    Replaced,
}

/// Why a message did not apply (E3): `too_deep` when it would make the data deeper than the
/// limit, `apply` when it does not fit the data. The data is unchanged either way.
#[derive(Clone, Debug, PartialEq)]
pub struct ApplyError {
    pub reason: ErrorReason,
    pub message: String,
}

impl From<String> for ApplyError {
    fn from(message: String) -> ApplyError {
        ApplyError { reason: ErrorReason::Apply, message }
    }
}

impl From<&str> for ApplyError {
    fn from(message: &str) -> ApplyError {
        ApplyError::from(message.to_owned())
    }
}

impl std::fmt::Display for ApplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApplyError {}

/// Applies one message with a built-in rule. All-or-nothing: on Err the data is exactly unchanged.
/// `adapter`: the endpoint's entityAdapter config, if any (upsert/remove use its selectId and keep `ids` sorted by its sortBy).
pub fn apply_rule(
    rule: &ApplyRule,
    adapter: Option<&EntityAdapterConfig>,
    data: &mut Value,
    message: Value,
    max_depth: usize,
) -> Result<Change, ApplyError> {
    match rule {
        ApplyRule::Append { max_len, dedupe_by } => append(data, message, *max_len, dedupe_by.as_deref(), max_depth, None),
        ApplyRule::Upsert { select_id } => upsert(select_id.as_deref(), adapter, data, message, max_depth),
        ApplyRule::Remove { select_id } => remove(select_id.as_deref(), adapter, data, message),
        ApplyRule::JsonPatch => json_patch(data, message, max_depth),
        ApplyRule::MergePatch => merge_patch(data, message, max_depth),
        ApplyRule::Replace => {
            check_depth("replace", 0, &message, max_depth, "")?;
            *data = message;
            Ok(Change::Replaced)
        }
    }
}

/// `apply_rule` for one message of a burst applied under one lock. `append` with `maxLen` (and no
/// `dedupeBy`, which must see the trimmed array) leaves the front of the array in place and counts
/// it in `untrimmed`: the burst trims once with `finish_burst` instead of shifting the whole array
/// per message. Each message's patch is the same as `apply_rule` gives; the data is exact again
/// once `finish_burst` ran, and nothing may read it before.
pub fn apply_rule_in_burst(
    rule: &ApplyRule,
    adapter: Option<&EntityAdapterConfig>,
    data: &mut Value,
    message: Value,
    max_depth: usize,
    untrimmed: &mut usize,
) -> Result<Change, ApplyError> {
    match rule {
        ApplyRule::Append { max_len: Some(m), dedupe_by: None } => append(data, message, Some(*m), None, max_depth, Some(untrimmed)),
        _ => apply_rule(rule, adapter, data, message, max_depth),
    }
}

/// Drops the `untrimmed` front of an array left by `apply_rule_in_burst`.
pub fn finish_burst(data: &mut Value, untrimmed: &mut usize) {
    if let (Value::Array(arr), n @ 1..) = (data, std::mem::take(untrimmed)) {
        arr.drain(..n);
    }
}

/// The change from `old` to a whole new value (a host recipe's draft, an `onMessage` result):
/// a diff, or `Replaced` when the root itself changed.
pub fn change_between(old: &Value, new: &Value) -> Change {
    let patch = json_patch::diff(old, new);
    let mut ops = Vec::with_capacity(patch.0.len());
    for op in serde_json::to_value(&patch).ok().and_then(|v| v.as_array().cloned()).unwrap_or_default() {
        match PatchOp::from_value(&op) {
            Ok(op) if op.path().is_empty() => return Change::Replaced,
            Ok(op) => ops.push(op),
            Err(_) => return Change::Replaced,
        }
    }
    if ops.is_empty() {
        Change::Unchanged
    } else {
        Change::Patch(ops)
    }
}

/// E3: `value` inserted at a pointer of `tokens` reference tokens must keep the data within
/// `max_depth` levels (root container = level 1).
fn check_depth(rule: &str, tokens: usize, value: &Value, max_depth: usize, at: &str) -> Result<(), ApplyError> {
    if tokens > max_depth || !within_depth(value, max_depth - tokens) {
        let at = if at.is_empty() { String::new() } else { format!(" (at {at})") };
        return Err(ApplyError {
            reason: ErrorReason::TooDeep,
            message: format!("{rule}: the data would be deeper than {max_depth} levels{at}"),
        });
    }
    Ok(())
}

fn ops_change(ops: Vec<PatchOp>) -> Change {
    if ops.is_empty() {
        Change::Unchanged
    } else {
        Change::Patch(ops)
    }
}

/// The id field: the rule's `selectId`, else the adapter's, else `"id"`.
fn id_field<'a>(select_id: Option<&'a str>, adapter: Option<&'a EntityAdapterConfig>) -> &'a str {
    select_id.or(adapter.map(|a| a.select_id.as_str())).unwrap_or("id")
}

fn append(
    data: &mut Value,
    message: Value,
    max_len: Option<usize>,
    dedupe_by: Option<&str>,
    max_depth: usize,
    untrimmed: Option<&mut usize>,
) -> Result<Change, ApplyError> {
    if let Some(field) = dedupe_by {
        match &message {
            Value::Object(m) if m.contains_key(field) => {}
            Value::Object(_) => return Err(ApplyError::from(format!("append: the message has no `{field}` field (dedupeBy)"))),
            other => return Err(ApplyError::from(format!("append: the message is {}, not an object with a `{field}` field (dedupeBy)", kind(other)))),
        }
    }
    check_depth("append", 1, &message, max_depth, "/-")?;
    match data {
        Value::Null => {
            let keep = usize::from(max_len != Some(0));
            *data = Value::Array(if keep == 1 { vec![message] } else { Vec::new() });
            Ok(Change::Replaced)
        }
        Value::Array(arr) => {
            if let Some(field) = dedupe_by {
                let key = &message[field];
                if arr.iter().any(|e| e.get(field) == Some(key)) {
                    return Ok(Change::Unchanged);
                }
            }
            // The array as the data holds it: without a front still to be trimmed (a burst).
            let len = arr.len() - untrimmed.as_deref().copied().unwrap_or(0);
            let excess = max_len.map_or(0, |m| (len + 1).saturating_sub(m));
            if excess > 0 && len == 0 {
                // maxLen 0 on an empty array: the push is dropped at once.
                return Ok(Change::Unchanged);
            }
            let mut ops = Vec::with_capacity(1 + excess);
            ops.push(PatchOp::Add { path: "/-".into(), value: message.clone() });
            ops.extend((0..excess).map(|_| PatchOp::Remove { path: "/0".into() }));
            arr.push(message);
            match untrimmed {
                Some(n) => *n += excess,
                None => drop(arr.drain(..excess)),
            }
            Ok(Change::Patch(ops))
        }
        other => Err(ApplyError::from(format!("append: the data is {}, not an array", kind(other)))),
    }
}

fn upsert(
    select_id: Option<&str>,
    adapter: Option<&EntityAdapterConfig>,
    data: &mut Value,
    message: Value,
    max_depth: usize,
) -> Result<Change, ApplyError> {
    let field = id_field(select_id, adapter);
    let id = adapter::id_of(&message, field, "the message").map_err(|e| format!("upsert: {e}"))?.clone();
    let sort_by = adapter.and_then(|a| a.sort_by.as_ref());
    match data {
        Value::Null => {
            *data = match adapter {
                Some(_) => {
                    check_depth("upsert", 2, &message, max_depth, "/entities")?;
                    adapter::single(field, message).map_err(|e| format!("upsert: {e}"))?
                }
                None => {
                    check_depth("upsert", 1, &message, max_depth, "/-")?;
                    Value::Array(vec![message])
                }
            };
            Ok(Change::Replaced)
        }
        Value::Array(arr) => {
            check_depth("upsert", 1, &message, max_depth, "/-")?;
            // Linear scan: an array has no index by id.
            let found = arr.iter().position(|e| e.get(field).is_some_and(|v| adapter::id_eq(v, &id)));
            let Some(i) = found else {
                let ops = vec![PatchOp::Add { path: "/-".into(), value: message.clone() }];
                arr.push(message);
                return Ok(Change::Patch(ops));
            };
            let (Value::Object(target), Value::Object(msg)) = (&mut arr[i], message) else {
                unreachable!("found by a field, so an object; id_of checked the message")
            };
            let mut ops = Vec::new();
            let prefix = format!("/{i}");
            for (f, v) in msg {
                let cur = target.get(f.as_str());
                if cur != Some(&v) {
                    let mut path = prefix.clone();
                    push_token(&mut path, &f);
                    ops.push(match cur {
                        Some(_) => PatchOp::Replace { path, value: v.clone() },
                        None => PatchOp::Add { path, value: v.clone() },
                    });
                    target.insert(f, v);
                }
            }
            Ok(ops_change(ops))
        }
        state if adapter::is_state(state) => {
            check_depth("upsert", 2, &message, max_depth, "/entities")?;
            let ops = adapter::upsert_one(state, field, sort_by, message).map_err(|e| format!("upsert: {e}"))?;
            Ok(ops_change(ops))
        }
        other => Err(not_a_collection("upsert", other).into()),
    }
}

pub(crate) fn not_a_collection(rule: &str, data: &Value) -> String {
    match data {
        Value::Object(_) => format!(
            "{rule}: the data is an object without an `ids` array and an `entities` object \
             (neither an entity-adapter state nor an array)"
        ),
        other => format!("{rule}: the data is {}, neither an entity-adapter state nor an array", kind(other)),
    }
}

fn remove(
    select_id: Option<&str>,
    adapter: Option<&EntityAdapterConfig>,
    data: &mut Value,
    message: Value,
) -> Result<Change, ApplyError> {
    let field = id_field(select_id, adapter);
    let id = match &message {
        Value::String(_) | Value::Number(_) => &message,
        Value::Object(_) => adapter::id_of(&message, field, "the message").map_err(|e| format!("remove: {e}"))?,
        other => {
            return Err(ApplyError::from(format!(
                "remove: the message is {}; expected an object with a `{field}` field or a bare string/number id",
                kind(other)
            )))
        }
    };
    match data {
        Value::Null => Ok(Change::Unchanged),
        Value::Array(arr) => {
            // Linear scan: an array has no index by id.
            match arr.iter().position(|e| e.get(field).is_some_and(|v| adapter::id_eq(v, id))) {
                None => Ok(Change::Unchanged),
                Some(i) => {
                    arr.remove(i);
                    Ok(Change::Patch(vec![PatchOp::Remove { path: format!("/{i}") }]))
                }
            }
        }
        state if adapter::is_state(state) => {
            let sort_by = adapter.and_then(|a| a.sort_by.as_ref());
            let ops = adapter::remove_one(state, id, sort_by).map_err(|e| format!("remove: {e}"))?;
            Ok(ops_change(ops))
        }
        other => Err(not_a_collection("remove", other).into()),
    }
}

fn json_patch(data: &mut Value, message: Value, max_depth: usize) -> Result<Change, ApplyError> {
    let ops = match message {
        v @ Value::Array(_) => v,
        Value::Object(mut m) => match m.remove("patches") {
            Some(v @ Value::Array(_)) => v,
            _ => return Err("jsonPatch: the message is an object without a `patches` array".into()),
        },
        other => {
            return Err(ApplyError::from(format!("jsonPatch: the message is {}, not an RFC 6902 operation array", kind(&other))))
        }
    };
    let ops = parse_patch(&ops).map_err(|e| format!("jsonPatch: {e}"))?;
    let applied = apply_patch(data, &ops, max_depth).map_err(|e| ApplyError {
        reason: if e.is_too_deep() { ErrorReason::TooDeep } else { ErrorReason::Apply },
        message: format!("jsonPatch: {e}"),
    })?;
    Ok(if applied.replaced_root { Change::Replaced } else { ops_change(applied.patches) })
}

/// RFC 7386. An object patch onto object data: the ops are planned read-only (O(patch)), then the
/// patch is merged in place; a non-object patch, or an object patch onto non-object data, replaces
/// the data.
fn merge_patch(data: &mut Value, message: Value, max_depth: usize) -> Result<Change, ApplyError> {
    // Every value a merge patch inserts lands at the same depth it has in the patch (null members
    // add no depth), so "the patch is within the limit" is exactly "every insertion is": one check,
    // which also bounds the recursion below.
    check_depth("mergePatch", 0, &message, max_depth, "")?;
    match (&*data, message) {
        (Value::Object(target), Value::Object(patch)) => {
            let mut ops = Vec::new();
            plan_merge(target, &patch, &mut String::new(), &mut ops);
            if ops.is_empty() {
                return Ok(Change::Unchanged);
            }
            let Value::Object(target) = data else { unreachable!() };
            exec_merge(target, patch);
            Ok(Change::Patch(ops))
        }
        (_, Value::Object(patch)) => {
            *data = strip_nulls(Value::Object(patch));
            Ok(Change::Replaced)
        }
        (_, other) => {
            *data = other;
            Ok(Change::Replaced)
        }
    }
}

/// The ops merging `patch` into `target` (at `path`) makes.
pub(crate) fn plan_merge(target: &Map<String, Value>, patch: &Map<String, Value>, path: &mut String, ops: &mut Vec<PatchOp>) {
    for (key, pv) in patch {
        let len = path.len();
        push_token(path, key);
        let cur = target.get(key.as_str());
        match (cur, pv) {
            (None, Value::Null) => {}
            (Some(_), Value::Null) => ops.push(PatchOp::Remove { path: path.clone() }),
            (Some(Value::Object(t)), Value::Object(p)) => plan_merge(t, p, path, ops),
            _ => {
                let nv = strip_nulls_ref(pv);
                if cur != Some(&nv) {
                    ops.push(match cur {
                        Some(_) => PatchOp::Replace { path: path.clone(), value: nv },
                        None => PatchOp::Add { path: path.clone(), value: nv },
                    });
                }
            }
        }
        path.truncate(len);
    }
}

/// RFC 7386 MergePatch in place (the effect `plan_merge` described).
fn exec_merge(target: &mut Map<String, Value>, patch: Map<String, Value>) {
    for (key, pv) in patch {
        match pv {
            Value::Null => {
                target.shift_remove(key.as_str());
            }
            Value::Object(p) if matches!(target.get(key.as_str()), Some(Value::Object(_))) => {
                let Some(Value::Object(t)) = target.get_mut(key.as_str()) else { unreachable!() };
                exec_merge(t, p);
            }
            other => {
                target.insert(key, strip_nulls(other));
            }
        }
    }
}

/// A merge patch applied to nothing: objects lose their `null` members, recursively
/// (arrays are values and keep theirs).
pub(crate) fn strip_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            Value::Object(m.into_iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k, strip_nulls(v))).collect())
        }
        v => v,
    }
}

fn strip_nulls_ref(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), strip_nulls_ref(v))).collect(),
        ),
        v => v.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SortOrder;
    use serde_json::json;

    const MAX: usize = 128;

    fn ad(sort: Option<&str>) -> EntityAdapterConfig {
        EntityAdapterConfig {
            select_id: "id".into(),
            sort_by: sort.map(|s| match s.strip_prefix('-') {
                Some(f) => (f.to_string(), SortOrder::Descending),
                None => (s.to_string(), SortOrder::Ascending),
            }),
        }
    }
    fn append(max_len: Option<usize>, dedupe_by: Option<&str>) -> ApplyRule {
        ApplyRule::Append { max_len, dedupe_by: dedupe_by.map(str::to_owned) }
    }
    fn upsert() -> ApplyRule {
        ApplyRule::Upsert { select_id: None }
    }
    fn remove() -> ApplyRule {
        ApplyRule::Remove { select_id: None }
    }

    /// Applies and checks the contract; returns the new data and the result.
    fn run(
        rule: &ApplyRule,
        adapter: Option<&EntityAdapterConfig>,
        data: Value,
        msg: Value,
        max_depth: usize,
    ) -> (Value, Result<Change, String>) {
        let old = data.clone();
        let old_text = serde_json::to_string(&old).unwrap();
        let mut d = data;
        let r = apply_rule(rule, adapter, &mut d, msg, max_depth);
        match &r {
            Err(_) | Ok(Change::Unchanged) => {
                assert_eq!(d, old);
                assert_eq!(serde_json::to_string(&d).unwrap(), old_text, "key order unchanged too");
            }
            Ok(Change::Patch(ops)) => {
                assert!(!ops.is_empty());
                check_ops(ops);
                let mut copy = old.clone();
                let p: json_patch::Patch = serde_json::from_value(serde_json::to_value(ops).unwrap()).unwrap();
                json_patch::patch(&mut copy, &p.0).expect("the ops apply to the old data");
                assert_eq!(copy, d, "ops applied to the old data give the new data");
                // json-patch removes object members with swap_remove; compare key order otherwise.
                if !ops.iter().any(|o| matches!(o, PatchOp::Remove { .. } | PatchOp::Move { .. })) {
                    assert_eq!(serde_json::to_string(&copy).unwrap(), serde_json::to_string(&d).unwrap());
                }
                assert_ne!(d, old, "a Patch changes the data");
            }
            Ok(Change::Replaced) => {}
        }
        (d, r.map_err(|e| e.message))
    }

    /// Like `run`, but keeps the refusal's reason.
    fn reason(rule: &ApplyRule, data: Value, msg: Value, max_depth: usize) -> ErrorReason {
        let mut d = data.clone();
        let e = apply_rule(rule, None, &mut d, msg, max_depth).unwrap_err();
        assert_eq!(d, data);
        e.reason
    }

    fn check_ops(ops: &[PatchOp]) {
        for op in ops {
            let (path, from) = match op {
                PatchOp::Test { .. } => panic!("test op emitted: {op:?}"),
                PatchOp::Add { path, .. } => (path, None),
                PatchOp::Remove { path } | PatchOp::Replace { path, .. } => (path, None),
                PatchOp::Move { from, path } | PatchOp::Copy { from, path } => (path, Some(from)),
            };
            assert!(!path.is_empty(), "op on the root: {op:?}");
            let dash = |p: &str| p.split('/').skip(1).any(|t| t == "-");
            if !matches!(op, PatchOp::Add { .. }) {
                assert!(!dash(path), "`-` outside add: {op:?}");
            }
            if let Some(f) = from {
                assert!(!dash(f));
            }
        }
    }

    fn ops(r: Result<Change, String>) -> Vec<PatchOp> {
        match r {
            Ok(Change::Patch(o)) => o,
            other => panic!("expected a patch, got {other:?}"),
        }
    }
    fn add(path: &str, value: Value) -> PatchOp {
        PatchOp::Add { path: path.into(), value }
    }
    fn rep(path: &str, value: Value) -> PatchOp {
        PatchOp::Replace { path: path.into(), value }
    }
    fn rm(path: &str) -> PatchOp {
        PatchOp::Remove { path: path.into() }
    }

    // ---------------- append ----------------

    #[test]
    fn append_pushes() {
        let (d, r) = run(&append(None, None), None, json!([1, 2]), json!({"a": 1}), MAX);
        assert_eq!(d, json!([1, 2, {"a": 1}]));
        assert_eq!(ops(r), vec![add("/-", json!({"a": 1}))]);
    }

    #[test]
    fn append_max_len_drops_several() {
        let (d, r) = run(&append(Some(2), None), None, json!([1, 2, 3, 4, 5]), json!(6), MAX);
        assert_eq!(d, json!([5, 6]));
        assert_eq!(ops(r), vec![add("/-", json!(6)), rm("/0"), rm("/0"), rm("/0"), rm("/0")]);
        let (d, r) = run(&append(Some(3), None), None, json!([1, 2, 3]), json!(4), MAX);
        assert_eq!(d, json!([2, 3, 4]));
        assert_eq!(ops(r).len(), 2);
        let (d, r) = run(&append(Some(3), None), None, json!([1]), json!(2), MAX);
        assert_eq!(d, json!([1, 2]));
        assert_eq!(ops(r).len(), 1);
    }

    #[test]
    fn append_max_len_zero() {
        let (d, r) = run(&append(Some(0), None), None, json!([1, 2]), json!(3), MAX);
        assert_eq!(d, json!([]));
        assert_eq!(ops(r).len(), 4);
        let (d, r) = run(&append(Some(0), None), None, json!([]), json!(3), MAX);
        assert_eq!((d, r), (json!([]), Ok(Change::Unchanged)));
        let (d, r) = run(&append(Some(0), None), None, json!(null), json!(3), MAX);
        assert_eq!((d, r), (json!([]), Ok(Change::Replaced)));
    }

    #[test]
    fn append_dedupe() {
        let data = json!([{"id": 1, "t": "a"}, {"id": 2, "t": "b"}]);
        let (d, r) = run(&append(None, Some("id")), None, data.clone(), json!({"id": 2, "t": "other"}), MAX);
        assert_eq!((d, r), (data.clone(), Ok(Change::Unchanged)));
        let (d, r) = run(&append(Some(2), Some("id")), None, data.clone(), json!({"id": 3}), MAX);
        assert_eq!(d, json!([{"id": 2, "t": "b"}, {"id": 3}]));
        assert_eq!(ops(r), vec![add("/-", json!({"id": 3})), rm("/0")]);
        let (_, r) = run(&append(None, Some("id")), None, data.clone(), json!({"t": "x"}), MAX);
        assert_eq!(r.unwrap_err(), "append: the message has no `id` field (dedupeBy)");
        let (_, r) = run(&append(None, Some("id")), None, data, json!(5), MAX);
        assert!(r.unwrap_err().contains("the message is a number"));
        let (_, r) = run(&append(None, Some("id")), None, json!(null), json!({"t": 1}), MAX);
        assert!(r.is_err(), "a message without the dedupeBy field is an error even onto null");
    }

    #[test]
    fn append_null_and_wrong_type() {
        let (d, r) = run(&append(None, None), None, json!(null), json!({"a": 1}), MAX);
        assert_eq!((d, r), (json!([{"a": 1}]), Ok(Change::Replaced)));
        let (_, r) = run(&append(None, None), None, json!({"a": 1}), json!(1), MAX);
        assert_eq!(r.unwrap_err(), "append: the data is an object, not an array");
        let (_, r) = run(&append(None, None), None, json!("s"), json!(1), MAX);
        assert_eq!(r.unwrap_err(), "append: the data is a string, not an array");
    }

    // ---------------- upsert: entity-adapter state ----------------

    fn state(sort: Option<&str>, items: Value) -> Value {
        adapter::normalize(&ad(sort), items).unwrap()
    }

    #[test]
    fn upsert_new_entity_appends_id() {
        let a = ad(None);
        let s = state(None, json!([{"id": "a", "n": 1}, {"id": "b", "n": 2}]));
        let (d, r) = run(&upsert(), Some(&a), s, json!({"id": "c", "n": 0}), MAX);
        assert_eq!(d["ids"], json!(["a", "b", "c"]));
        assert_eq!(d["entities"]["c"], json!({"id": "c", "n": 0}));
        assert_eq!(ops(r), vec![add("/entities/c", json!({"id": "c", "n": 0})), add("/ids/2", json!("c"))]);
    }

    #[test]
    fn upsert_existing_shallow_merge() {
        let a = ad(None);
        let s = state(None, json!([{"id": 1, "t": "a", "n": {"x": 1}, "k": true}, {"id": 2}]));
        let (d, r) = run(&upsert(), Some(&a), s.clone(), json!({"id": 1, "t": "b", "n": {"y": 2}, "k": true, "new": null}), MAX);
        assert_eq!(d["entities"]["1"], json!({"id": 1, "t": "b", "n": {"y": 2}, "k": true, "new": null}));
        assert_eq!(d["ids"], json!([1, 2]));
        assert_eq!(
            ops(r),
            vec![rep("/entities/1/t", json!("b")), rep("/entities/1/n", json!({"y": 2})), add("/entities/1/new", json!(null))]
        );
        // equal values: nothing to do
        let (d, r) = run(&upsert(), Some(&a), s.clone(), json!({"id": 1, "t": "a", "k": true}), MAX);
        assert_eq!((d, r), (s, Ok(Change::Unchanged)));
    }

    #[test]
    fn upsert_sorted_insert_is_stable() {
        let a = ad(Some("n"));
        let s = state(Some("n"), json!([{"id": "a", "n": 1}, {"id": "b", "n": 2}, {"id": "c", "n": 2}, {"id": "d", "n": 3}]));
        let (d, r) = run(&upsert(), Some(&a), s.clone(), json!({"id": "e", "n": 2}), MAX);
        assert_eq!(d["ids"], json!(["a", "b", "c", "e", "d"]));
        assert_eq!(ops(r)[1], add("/ids/3", json!("e")));
        let (d, _) = run(&upsert(), Some(&a), s.clone(), json!({"id": "f", "n": 0}), MAX);
        assert_eq!(d["ids"], json!(["f", "a", "b", "c", "d"]));
        let (d, _) = run(&upsert(), Some(&a), s.clone(), json!({"id": "g", "n": 9}), MAX);
        assert_eq!(d["ids"], json!(["a", "b", "c", "d", "g"]));
        let (d, _) = run(&upsert(), Some(&a), s, json!({"id": "h"}), MAX);
        assert_eq!(d["ids"], json!(["a", "b", "c", "d", "h"]), "missing sort field goes last");
        // descending
        let a = ad(Some("-n"));
        let s = state(Some("-n"), json!([{"id": "a", "n": 1}, {"id": "b", "n": 2}, {"id": "c", "n": 3}]));
        let (d, _) = run(&upsert(), Some(&a), s, json!({"id": "x", "n": 2}), MAX);
        assert_eq!(d["ids"], json!(["c", "b", "x", "a"]));
    }

    #[test]
    fn upsert_sort_position_change() {
        let a = ad(Some("n"));
        let s = state(Some("n"), json!([{"id": "a", "n": 1}, {"id": "b", "n": 2}, {"id": "c", "n": 3}, {"id": "d", "n": 4}]));
        let (d, r) = run(&upsert(), Some(&a), s.clone(), json!({"id": "a", "n": 3}), MAX);
        assert_eq!(d["ids"], json!(["b", "c", "a", "d"]));
        assert_eq!(ops(r), vec![rep("/entities/a/n", json!(3)), rm("/ids/0"), add("/ids/2", json!("a"))]);
        let (d, _) = run(&upsert(), Some(&a), s.clone(), json!({"id": "d", "n": 0}), MAX);
        assert_eq!(d["ids"], json!(["d", "a", "b", "c"]));
        // key changes but position does not
        let (d, r) = run(&upsert(), Some(&a), s.clone(), json!({"id": "b", "n": 2.5}), MAX);
        assert_eq!(d["ids"], json!(["a", "b", "c", "d"]));
        assert_eq!(ops(r), vec![rep("/entities/b/n", json!(2.5))]);
        // other field: no ids work
        let (_, r) = run(&upsert(), Some(&a), s.clone(), json!({"id": "b", "t": "x"}), MAX);
        assert_eq!(ops(r), vec![add("/entities/b/t", json!("x"))]);
        // sort field removed → missing → last
        let (d, _) = run(&upsert(), Some(&a), s, json!({"id": "a", "n": null}), MAX);
        assert_eq!(d["ids"], json!(["b", "c", "d", "a"]));
    }

    #[test]
    fn upsert_sort_position_change_with_ties() {
        let a = ad(Some("n"));
        let s = state(Some("n"), json!([{"id": 1, "n": 1}, {"id": 2, "n": 1}, {"id": 3, "n": 1}, {"id": 4, "n": 2}, {"id": 5, "n": 2}]));
        let (d, _) = run(&upsert(), Some(&a), s.clone(), json!({"id": 2, "n": 2}), MAX);
        assert_eq!(d["ids"], json!([1, 3, 4, 5, 2]));
        let (d, _) = run(&upsert(), Some(&a), s, json!({"id": 5, "n": 1}), MAX);
        assert_eq!(d["ids"], json!([1, 2, 3, 5, 4]));
    }

    #[test]
    fn upsert_numeric_ids() {
        let a = ad(None);
        let s = state(None, json!([{"id": 1, "t": "a"}, {"id": 2.5, "t": "b"}]));
        let (d, r) = run(&upsert(), Some(&a), s.clone(), json!({"id": 1.0, "t": "z"}), MAX);
        assert_eq!(d["entities"]["1"]["t"], json!("z"));
        assert_eq!(ops(r)[1], rep("/entities/1/t", json!("z")));
        let (d, r) = run(&upsert(), Some(&a), s.clone(), json!({"id": 2.5, "t": "y"}), MAX);
        assert_eq!(d["entities"]["2.5"]["t"], json!("y"));
        assert_eq!(ops(r), vec![rep("/entities/2.5/t", json!("y"))]);
        let (d, r) = run(&upsert(), Some(&a), s, json!({"id": 1e21}), MAX);
        assert_eq!(d["ids"][2], json!(1e21));
        assert_eq!(ops(r)[0], add("/entities/1e+21", json!({"id": 1e21})));
    }

    #[test]
    fn upsert_escapes_pointer_tokens() {
        let a = ad(None);
        let s = state(None, json!([{"id": "a/b~c"}]));
        let (d, r) = run(&upsert(), Some(&a), s, json!({"id": "a/b~c", "x/y": 1}), MAX);
        assert_eq!(d["entities"]["a/b~c"]["x/y"], json!(1));
        assert_eq!(ops(r), vec![add("/entities/a~1b~0c/x~1y", json!(1))]);
    }

    #[test]
    fn upsert_select_id_precedence() {
        let a = EntityAdapterConfig { select_id: "key".into(), sort_by: None };
        let s = json!({"ids": ["k1"], "entities": {"k1": {"key": "k1"}}});
        let (d, _) = run(&upsert(), Some(&a), s.clone(), json!({"key": "k2"}), MAX);
        assert_eq!(d["ids"], json!(["k1", "k2"]));
        let rule = ApplyRule::Upsert { select_id: Some("uid".into()) };
        let (d, _) = run(&rule, Some(&a), s.clone(), json!({"uid": "k1", "key": "other", "v": 1}), MAX);
        assert_eq!(d["entities"]["k1"], json!({"key": "other", "uid": "k1", "v": 1}));
        let (_, r) = run(&upsert(), Some(&a), s, json!({"id": "k1"}), MAX);
        assert_eq!(r.unwrap_err(), "upsert: the message has no `key` field");
    }

    #[test]
    fn upsert_non_object_entity_is_replaced() {
        let s = json!({"ids": [1], "entities": {"1": 5}});
        let (d, r) = run(&upsert(), None, s, json!({"id": 1, "t": 2}), MAX);
        assert_eq!(d["entities"]["1"], json!({"id": 1, "t": 2}));
        assert_eq!(ops(r), vec![rep("/entities/1", json!({"id": 1, "t": 2}))]);
    }

    #[test]
    fn upsert_errors() {
        let a = ad(None);
        let s = state(None, json!([{"id": 1}]));
        for (msg, err) in [
            (json!({"t": 1}), "upsert: the message has no `id` field"),
            (json!("x"), "upsert: the message is a string, not an object"),
            (json!({"id": [1]}), "upsert: the message's `id` is an array; an id must be a string or a number"),
        ] {
            let (_, r) = run(&upsert(), Some(&a), s.clone(), msg, MAX);
            assert_eq!(r.unwrap_err(), err);
        }
        let (_, r) = run(&upsert(), Some(&a), json!({"a": 1}), json!({"id": 1}), MAX);
        assert!(r.unwrap_err().starts_with("upsert: the data is an object without an `ids` array"));
        let (_, r) = run(&upsert(), None, json!(3), json!({"id": 1}), MAX);
        assert_eq!(r.unwrap_err(), "upsert: the data is a number, neither an entity-adapter state nor an array");
    }

    #[test]
    fn upsert_null_data() {
        let a = ad(Some("n"));
        let (d, r) = run(&upsert(), Some(&a), json!(null), json!({"id": 7, "n": 1}), MAX);
        assert_eq!((d, r), (json!({"ids": [7], "entities": {"7": {"id": 7, "n": 1}}}), Ok(Change::Replaced)));
        let (d, r) = run(&upsert(), None, json!(null), json!({"id": 7}), MAX);
        assert_eq!((d, r), (json!([{"id": 7}]), Ok(Change::Replaced)));
        let (d, r) = run(&upsert(), None, json!(null), json!({"x": 7}), MAX);
        assert_eq!(d, json!(null));
        assert!(r.is_err());
    }

    // ---------------- upsert: array ----------------

    #[test]
    fn upsert_array() {
        let data = json!([{"id": 1, "t": "a"}, {"id": "2", "t": "b"}, 3]);
        let (d, r) = run(&upsert(), None, data.clone(), json!({"id": "2", "t": "c", "u": 1}), MAX);
        assert_eq!(d[1], json!({"id": "2", "t": "c", "u": 1}));
        assert_eq!(ops(r), vec![rep("/1/t", json!("c")), add("/1/u", json!(1))]);
        // a number id never equals a string id in an array
        let (d, r) = run(&upsert(), None, data.clone(), json!({"id": 2}), MAX);
        assert_eq!(d.as_array().unwrap().len(), 4);
        assert_eq!(ops(r), vec![add("/-", json!({"id": 2}))]);
        let (d, r) = run(&upsert(), None, data.clone(), json!({"id": 1, "t": "a"}), MAX);
        assert_eq!((d, r), (data.clone(), Ok(Change::Unchanged)));
        // numbers match numerically; the merge then writes the new id value
        let (d, r) = run(&upsert(), None, data.clone(), json!({"id": 1.0, "t": "q"}), MAX);
        assert_eq!(d[0], json!({"id": 1.0, "t": "q"}));
        assert_eq!(ops(r), vec![rep("/0/id", json!(1.0)), rep("/0/t", json!("q"))]);
        // the adapter config does not matter for array data
        let (d, _) = run(&upsert(), Some(&ad(Some("t"))), data, json!({"id": 1, "t": "z"}), MAX);
        assert_eq!(d[0]["t"], json!("z"));
    }

    // ---------------- remove ----------------

    #[test]
    fn remove_from_state() {
        let a = ad(None);
        let s = state(None, json!([{"id": 1}, {"id": "x"}, {"id": 3}]));
        let (d, r) = run(&remove(), Some(&a), s.clone(), json!({"id": "x"}), MAX);
        assert_eq!(d, json!({"ids": [1, 3], "entities": {"1": {"id": 1}, "3": {"id": 3}}}));
        assert_eq!(serde_json::to_string(&d["entities"]).unwrap(), r#"{"1":{"id":1},"3":{"id":3}}"#, "order kept");
        assert_eq!(ops(r), vec![rm("/entities/x"), rm("/ids/1")]);
        let (d, r) = run(&remove(), Some(&a), s.clone(), json!(1), MAX);
        assert_eq!(d["ids"], json!(["x", 3]));
        assert_eq!(ops(r), vec![rm("/entities/1"), rm("/ids/0")]);
        let (d, r) = run(&remove(), Some(&a), s.clone(), json!({"id": 99}), MAX);
        assert_eq!((d, r), (s.clone(), Ok(Change::Unchanged)));
        let (_, r) = run(&remove(), Some(&a), s.clone(), json!({"t": 1}), MAX);
        assert_eq!(r.unwrap_err(), "remove: the message has no `id` field");
        let (_, r) = run(&remove(), Some(&a), s, json!([1]), MAX);
        assert!(r.unwrap_err().starts_with("remove: the message is an array"));
    }

    #[test]
    fn remove_from_sorted_state() {
        let a = ad(Some("-n"));
        let s = state(Some("-n"), json!([{"id": 1, "n": 1}, {"id": 2, "n": 5}, {"id": 3, "n": 3}, {"id": 4}]));
        assert_eq!(s["ids"], json!([2, 3, 1, 4]));
        for (id, ids) in [(3, json!([2, 1, 4])), (4, json!([2, 3, 1])), (2, json!([3, 1, 4]))] {
            let (d, _) = run(&remove(), Some(&a), s.clone(), json!(id), MAX);
            assert_eq!(d["ids"], ids);
        }
    }

    #[test]
    fn remove_from_array_and_null() {
        let data = json!([{"id": 1}, {"id": 2}, {"id": 3}]);
        let (d, r) = run(&remove(), None, data.clone(), json!({"id": 2}), MAX);
        assert_eq!(d, json!([{"id": 1}, {"id": 3}]));
        assert_eq!(ops(r), vec![rm("/1")]);
        let (d, r) = run(&remove(), None, data.clone(), json!(4), MAX);
        assert_eq!((d, r), (data, Ok(Change::Unchanged)));
        let (d, r) = run(&remove(), None, json!(null), json!(4), MAX);
        assert_eq!((d, r), (json!(null), Ok(Change::Unchanged)));
        let (_, r) = run(&remove(), None, json!(true), json!(4), MAX);
        assert!(r.is_err());
    }

    // ---------------- jsonPatch ----------------

    #[test]
    fn json_patch_applies() {
        let (d, r) = run(
            &ApplyRule::JsonPatch,
            None,
            json!({"a": [1, 2]}),
            json!([{"op": "test", "path": "/a/0", "value": 1}, {"op": "add", "path": "/a/-", "value": 3}]),
            MAX,
        );
        assert_eq!(d, json!({"a": [1, 2, 3]}));
        assert_eq!(ops(r), vec![add("/a/-", json!(3))]);
        let (d, _) = run(&ApplyRule::JsonPatch, None, json!({"a": 1}), json!({"patches": [{"op": "remove", "path": "/a"}]}), MAX);
        assert_eq!(d, json!({}));
        let (d, r) = run(&ApplyRule::JsonPatch, None, json!({"a": 1}), json!([{"op": "test", "path": "/a", "value": 1}]), MAX);
        assert_eq!((d, r), (json!({"a": 1}), Ok(Change::Unchanged)));
        let (d, r) = run(&ApplyRule::JsonPatch, None, json!({"a": 1}), json!([]), MAX);
        assert_eq!((d, r), (json!({"a": 1}), Ok(Change::Unchanged)));
    }

    #[test]
    fn json_patch_failing_midway_changes_nothing() {
        let data = json!({"a": [1, 2], "b": {"c": 1}});
        for msg in [
            json!([{"op": "add", "path": "/x", "value": 1}, {"op": "remove", "path": "/a/0"}, {"op": "test", "path": "/b/c", "value": 2}]),
            json!([{"op": "replace", "path": "/b/c", "value": 5}, {"op": "remove", "path": "/missing"}]),
            json!([{"op": "add", "path": "/a/-", "value": 1}, {"op": "bogus", "path": "/a"}]),
            json!({"nopatches": []}),
            json!("x"),
        ] {
            let (d, r) = run(&ApplyRule::JsonPatch, None, data.clone(), msg, MAX);
            assert!(r.unwrap_err().starts_with("jsonPatch: "));
            assert_eq!(d, data);
        }
    }

    #[test]
    fn json_patch_root_and_null() {
        let (d, r) = run(&ApplyRule::JsonPatch, None, json!(null), json!([{"op": "add", "path": "", "value": [1]}]), MAX);
        assert_eq!((d, r), (json!([1]), Ok(Change::Replaced)));
        let (d, r) = run(&ApplyRule::JsonPatch, None, json!(null), json!([{"op": "add", "path": "/a", "value": 1}]), MAX);
        assert_eq!(d, json!(null));
        assert!(r.is_err());
    }

    // ---------------- mergePatch ----------------

    #[test]
    fn merge_patch_nested_and_null_removal() {
        let data = json!({"a": 1, "b": {"c": 2, "d": 3, "e": {"f": 1}}, "g": [1], "h": "x"});
        let patch = json!({"a": null, "b": {"c": 5, "d": null, "e": {"f": 1}, "n": {"x": null, "y": 1}}, "g": {"z": null}, "h": "x", "zz": null});
        let (d, r) = run(&ApplyRule::MergePatch, None, data, patch, MAX);
        assert_eq!(d, json!({"b": {"c": 5, "e": {"f": 1}, "n": {"y": 1}}, "g": {}, "h": "x"}));
        assert_eq!(
            ops(r),
            vec![rm("/a"), rep("/b/c", json!(5)), rm("/b/d"), add("/b/n", json!({"y": 1})), rep("/g", json!({}))]
        );
    }

    #[test]
    fn merge_patch_unchanged_and_order() {
        let data = json!({"a": 1, "b": {"c": 2}});
        let (d, r) = run(&ApplyRule::MergePatch, None, data.clone(), json!({"a": 1, "b": {"c": 2}, "x": null}), MAX);
        assert_eq!((d, r), (data.clone(), Ok(Change::Unchanged)));
        let (d, r) = run(&ApplyRule::MergePatch, None, data.clone(), json!({}), MAX);
        assert_eq!((d, r), (data.clone(), Ok(Change::Unchanged)));
        let (d, _) = run(&ApplyRule::MergePatch, None, data, json!({"z": 1, "a": 2}), MAX);
        assert_eq!(serde_json::to_string(&d).unwrap(), r#"{"a":2,"b":{"c":2},"z":1}"#);
    }

    #[test]
    fn merge_patch_root_replace() {
        let (d, r) = run(&ApplyRule::MergePatch, None, json!({"a": 1}), json!([1, 2]), MAX);
        assert_eq!((d, r), (json!([1, 2]), Ok(Change::Replaced)));
        let (d, r) = run(&ApplyRule::MergePatch, None, json!([1]), json!({"a": 1, "b": null, "c": {"d": null}}), MAX);
        assert_eq!((d, r), (json!({"a": 1, "c": {}}), Ok(Change::Replaced)));
        let (d, r) = run(&ApplyRule::MergePatch, None, json!(null), json!({"a": {"b": null}}), MAX);
        assert_eq!((d, r), (json!({"a": {}}), Ok(Change::Replaced)));
        let (d, r) = run(&ApplyRule::MergePatch, None, json!({"a": 1}), json!(null), MAX);
        assert_eq!((d, r), (json!(null), Ok(Change::Replaced)));
    }

    // ---------------- replace ----------------

    #[test]
    fn replace_always_replaced() {
        let (d, r) = run(&ApplyRule::Replace, None, json!({"a": 1}), json!({"a": 1}), MAX);
        assert_eq!((d, r), (json!({"a": 1}), Ok(Change::Replaced)));
        let (d, r) = run(&ApplyRule::Replace, None, json!(null), json!([3]), MAX);
        assert_eq!((d, r), (json!([3]), Ok(Change::Replaced)));
    }

    // ---------------- depth ----------------

    fn nested(levels: usize) -> Value {
        // `levels` containers deep: depth(nested(n)) == n
        let mut v = json!(1);
        for _ in 0..levels {
            v = json!([v]);
        }
        v
    }

    #[test]
    fn depth_limit() {
        assert_eq!(crate::json::depth(&nested(3)), 3);
        let a = ad(None);
        let err = |r: Result<Change, String>| {
            let e = r.unwrap_err();
            assert!(e.contains("deeper than 128 levels"), "{e}");
        };
        // append: root array (1) + message
        let (_, r) = run(&append(None, None), None, json!([]), nested(127), MAX);
        assert!(r.is_ok());
        let (_, r) = run(&append(None, None), None, json!([]), nested(128), MAX);
        err(r);
        let (_, r) = run(&append(None, None), None, json!(null), nested(128), MAX);
        err(r);
        // upsert into a state: /entities/<id> is 2 tokens, the entity object 1 level
        let ok = json!({"id": 1, "x": nested(125)});
        let bad = json!({"id": 1, "x": nested(126)});
        let s = state(None, json!([{"id": 1}]));
        assert!(run(&upsert(), Some(&a), s.clone(), ok.clone(), MAX).1.is_ok());
        err(run(&upsert(), Some(&a), s.clone(), bad.clone(), MAX).1);
        err(run(&upsert(), Some(&a), json!(null), bad.clone(), MAX).1);
        assert!(run(&upsert(), Some(&a), json!(null), ok, MAX).1.is_ok());
        err(run(&upsert(), None, json!([{"id": 1}]), json!({"id": 1, "x": nested(127)}), MAX).1);
        err(run(&upsert(), None, json!(null), json!({"id": 1, "x": nested(127)}), MAX).1);
        // mergePatch: a value inserted deep in the tree
        let data = json!({"a": {"b": {}}});
        assert!(run(&ApplyRule::MergePatch, None, data.clone(), json!({"a": {"b": {"c": nested(125)}}}), MAX).1.is_ok());
        let (_, r) = run(&ApplyRule::MergePatch, None, data.clone(), json!({"q": 1, "a": {"b": {"c": nested(126)}}}), MAX);
        assert_eq!(r.unwrap_err(), "mergePatch: the data would be deeper than 128 levels");
        err(run(&ApplyRule::MergePatch, None, json!(1), json!({"a": nested(128)}), MAX).1);
        // replace / jsonPatch
        err(run(&ApplyRule::Replace, None, json!(null), nested(129), MAX).1);
        assert!(run(&ApplyRule::Replace, None, json!(null), nested(128), MAX).1.is_ok());
        // jsonPatch: crate::patch words its own error
        let (_, r) = run(&ApplyRule::JsonPatch, None, json!({"a": 1}), json!([{"op": "add", "path": "/b", "value": nested(128)}]), MAX);
        let e = r.unwrap_err();
        assert!(e.starts_with("jsonPatch: ") && e.contains("deep"), "{e}");
        // a small limit
        let (_, r) = run(&append(None, None), None, json!([]), json!({"a": 1}), 1);
        assert_eq!(r.unwrap_err(), "append: the data would be deeper than 1 levels (at /-)");
    }

    // ---------------- big state ----------------

    #[test]
    fn upsert_on_100k_entities_touches_one() {
        for sort in [None, Some("n")] {
            let a = ad(sort);
            let items: Vec<Value> = (0..100_000).map(|i| json!({"id": i, "n": i, "text": format!("m{i}")})).collect();
            let mut data = adapter::normalize(&a, Value::Array(items)).unwrap();
            let before = data.clone();
            let r = apply_rule(&upsert(), Some(&a), &mut data, json!({"id": 54321, "text": "edited"}), MAX);
            assert_eq!(r, Ok(Change::Patch(vec![rep("/entities/54321/text", json!("edited"))])));
            assert_eq!(data["ids"], before["ids"]);
            let (e0, e1) = (before["entities"].as_object().unwrap(), data["entities"].as_object().unwrap());
            assert!(e0.keys().eq(e1.keys()));
            for (k, v) in e1 {
                if k == "54321" {
                    assert_eq!(v, &json!({"id": 54321, "n": 54321, "text": "edited"}));
                } else {
                    assert_eq!(v, &e0[k]);
                }
            }
            // the sort key changes: one move in ids
            let r = apply_rule(&upsert(), Some(&a), &mut data, json!({"id": 3, "n": 99_999.5}), MAX).unwrap();
            let Change::Patch(o) = r else { panic!() };
            if sort.is_some() {
                assert_eq!(o, vec![rep("/entities/3/n", json!(99_999.5)), rm("/ids/3"), add("/ids/99999", json!(3))]);
                assert_eq!(data["ids"][99_999], json!(3));
            } else {
                assert_eq!(o.len(), 1);
            }
        }
    }

    // ---------------- randomized ----------------

    /// xorshift: deterministic, no extra dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn random_value(rng: &mut Rng, depth_left: u32, nulls: bool) -> Value {
        let keys = ["a", "b", "c", "d/e", "f~g"];
        match rng.below(if depth_left == 0 { 4 } else { 7 }) {
            0 if nulls => Value::Null,
            0 | 1 => json!(rng.below(3)),
            2 => json!(["x", "y"][rng.below(2) as usize]),
            3 => json!(rng.below(2) == 0),
            4 => Value::Array((0..rng.below(3)).map(|_| random_value(rng, depth_left - 1, nulls)).collect()),
            _ => Value::Object(
                (0..rng.below(4))
                    .map(|_| (keys[rng.below(5) as usize].to_string(), random_value(rng, depth_left - 1, nulls)))
                    .collect(),
            ),
        }
    }

    #[test]
    fn merge_patch_matches_reference() {
        let mut rng = Rng(0x9E3779B97F4A7C15);
        for _ in 0..3000 {
            let data = random_value(&mut rng, 3, false);
            let patch = random_value(&mut rng, 3, true);
            let mut expected = data.clone();
            json_patch::merge(&mut expected, &patch);
            let (d, r) = run(&ApplyRule::MergePatch, None, data.clone(), patch.clone(), MAX);
            assert_eq!(d, expected, "data {data} patch {patch}");
            let r = r.unwrap();
            if data.is_object() && patch.is_object() {
                assert_eq!(r == Change::Unchanged, d == data, "data {data} patch {patch}");
                assert_ne!(r, Change::Replaced);
            } else {
                assert_eq!(r, Change::Replaced);
            }
        }
    }

    #[test]
    fn random_upserts_and_removes_keep_sorted_state() {
        for sort in [None, Some("n"), Some("-n")] {
            let a = ad(sort);
            let mut rng = Rng(12345);
            let mut data = json!(null);
            for step in 0..2000 {
                let id = if rng.below(3) == 0 { json!(format!("s{}", rng.below(20))) } else { json!(rng.below(40)) };
                let rule = if rng.below(4) == 0 { remove() } else { upsert() };
                let mut msg = json!({"id": id});
                match rng.below(5) {
                    0 => {}
                    1 => msg["n"] = json!(format!("v{}", rng.below(5))),
                    2 => msg["n"] = Value::Null,
                    _ => msg["n"] = json!(rng.below(10)),
                }
                if rng.below(2) == 0 {
                    msg["t"] = json!(rng.below(3));
                }
                let (d, r) = run(&rule, Some(&a), data, msg.clone(), MAX);
                r.unwrap_or_else(|e| panic!("step {step}: {e}"));
                data = d;
                if data.is_null() {
                    continue;
                }
                // invariants: ids ↔ entities, and sorted
                let ids = data["ids"].as_array().unwrap();
                let ents = data["entities"].as_object().unwrap();
                assert_eq!(ids.len(), ents.len(), "step {step}");
                for id in ids {
                    assert!(ents.contains_key(&adapter::entity_key(id).unwrap()));
                }
                if let Some((f, o)) = &a.sort_by {
                    for w in ids.windows(2) {
                        let v = |id: &Value| ents[&adapter::entity_key(id).unwrap()].get(f.as_str());
                        assert_ne!(adapter::sort_cmp(v(&w[0]), v(&w[1]), o), std::cmp::Ordering::Greater, "step {step}");
                    }
                }
            }
        }
    }

    #[test]
    fn e3_depth_refusals_are_told_from_other_failures() {
        let deep = json!([[[[]]]]);
        assert_eq!(reason(&append(None, None), json!([]), deep.clone(), 3), ErrorReason::TooDeep);
        let msg = json!([{"op": "add", "path": "/a", "value": deep}]);
        assert_eq!(reason(&ApplyRule::JsonPatch, json!({}), msg, 3), ErrorReason::TooDeep);
        assert_eq!(reason(&ApplyRule::MergePatch, json!({}), json!({"a": {"b": {"c": {}}}}), 3), ErrorReason::TooDeep);
        assert_eq!(reason(&ApplyRule::Replace, json!({}), json!([[[[1]]]]), 3), ErrorReason::TooDeep);
        // A failure whose text quotes message content is not mistaken for one.
        let forged = "/the value would be nested deeper than the depth limit of 1";
        let msg = json!([{"op": "remove", "path": forged}]);
        assert_eq!(reason(&ApplyRule::JsonPatch, json!({}), msg, MAX), ErrorReason::Apply);
        assert_eq!(reason(&append(None, Some("id")), json!([]), json!({"x": 1}), MAX), ErrorReason::Apply);
    }

    #[test]
    fn a_burst_gives_the_same_patches_and_data_as_message_by_message() {
        // `apply_rule_in_burst` + `finish_burst` against `apply_rule` per message, for every
        // rule and for append's maxLen (including 0 and arrays already over it); replaying the
        // burst's patches from the old data gives the final data.
        let mut rng = Rng(0x05ee_d0fb_00b5);
        let mut rejected = 0;
        let rules = [append(Some(3), None), append(Some(0), None), append(Some(1), None), append(None, None), append(Some(2), Some("id"))];
        for round in 0..400 {
            let rule = &rules[round % rules.len()];
            let start: Vec<Value> = (0..rng.below(6)).map(|i| json!({"id": i})).collect();
            let mut one = Value::Array(start.clone());
            let mut burst = one.clone();
            let mut untrimmed = 0;
            let mut patches = Vec::new();
            for i in 0..rng.below(12) {
                // Too deep for max depth 4 under the array: rejected.
                let msg = if rng.below(8) == 0 { json!([[[[1]]]]) } else { json!({"id": i % 4, "n": i}) };
                let a = apply_rule(rule, None, &mut one, msg.clone(), 4).map_err(|e| e.message);
                let b = apply_rule_in_burst(rule, None, &mut burst, msg, 4, &mut untrimmed).map_err(|e| e.message);
                assert_eq!(a, b, "round {round}: same outcome and patch");
                rejected += usize::from(a.is_err());
                if let Ok(Change::Patch(ops)) = b {
                    patches.extend(ops);
                }
            }
            finish_burst(&mut burst, &mut untrimmed);
            assert_eq!(untrimmed, 0);
            assert_eq!(burst, one, "round {round}: same data");
            let mut replay = Value::Array(start);
            crate::patch::apply_patch(&mut replay, &patches, MAX).unwrap();
            assert_eq!(replay, one, "round {round}: the patches replay");
        }
        assert!(rejected > 20, "rejections mixed in: {rejected}");
    }
}
