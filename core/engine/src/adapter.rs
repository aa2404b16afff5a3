//! SPEC §2 `transformResponse.entityAdapter`: RTK's `createEntityAdapter` state `{ids, entities}`,
//! and the entity operations the `upsert` / `remove` apply rules share with it.
//!
//! Choices (RTK leaves them to the user's `sortComparer`):
//! - Entity keys: a string id is its own key; a number is written as JavaScript's `String(n)`
//!   writes it (`1`, `1.5`, `1e+21`, `1e-7`; `1.0` → `"1"`). Integers that serde_json holds as
//!   i64/u64 are written exactly, even past 2^53 (JavaScript would round them).
//! - `sortBy` order: numbers (numerically), then strings (by UTF-16 code units, as JS `<`), then
//!   booleans (`false` < `true`), then everything else (field missing, `null`, arrays, objects), which
//!   compare equal among themselves. `"-field"` reverses the order *within* each of these groups
//!   only: the groups keep their order, so entities missing the field always come last.
//!   Sorting is stable; an inserted or re-positioned entity goes after the entities whose key
//!   compares equal to its own.
//! - Duplicate ids in a response: the later element wins, at the position of the first (`setAll`).
//! - `upsert_one` is RTK's `upsertOne`: a shallow merge into an existing entity, whose id keeps
//!   its place in `ids` unless its sort key changed. An existing entity that is not an object is
//!   replaced whole.
//!
//! Cost: an upsert of an existing entity whose sort key does not change is O(size of the message)
//! (IndexMap lookups). A new id, a removed id or a sort-key change costs O(log n) comparisons with
//! `sortBy` (plus the `Vec` insert/remove memmove), and a linear scan of `ids` without `sortBy`
//! to find a removed id. Removing a key from `entities` keeps the order of the others (O(n)).

use std::cmp::Ordering;
use std::fmt::Write as _;

use serde_json::{Map, Number, Value};

use crate::config::{EntityAdapterConfig, SortOrder};
use crate::patch::{pointer, push_token, PatchOp};

/// `transformResponse.entityAdapter`: an array response → `{"ids": [...], "entities": {...}}` in
/// RTK's createEntityAdapter shape. See the module doc for the sort order and duplicate ids.
pub fn normalize(cfg: &EntityAdapterConfig, data: Value) -> Result<Value, String> {
    let Value::Array(items) = data else {
        return Err(format!("entityAdapter: the response is {}, not an array", kind(&data)));
    };
    let mut ids: Vec<Value> = Vec::with_capacity(items.len());
    let mut entities = Map::new();
    for (i, item) in items.into_iter().enumerate() {
        let id = id_of(&item, &cfg.select_id, &format!("element {i}"))
            .map_err(|e| format!("entityAdapter: {e}"))?
            .clone();
        let key = entity_key(&id).map_err(|e| format!("entityAdapter: element {i}: {e}"))?;
        // IndexMap insert: an existing key keeps its position, the value is replaced.
        if entities.insert(key, item).is_none() {
            ids.push(id);
        }
    }
    if let Some((field, order)) = &cfg.sort_by {
        // `entities` iterates in first-occurrence order, the same order as `ids`.
        let keys: Vec<Option<&Value>> = entities.values().map(|e| e.get(field.as_str())).collect();
        let mut perm: Vec<usize> = (0..ids.len()).collect();
        perm.sort_by(|&a, &b| sort_cmp(keys[a], keys[b], order)); // stable
        let mut slots: Vec<Option<Value>> = ids.into_iter().map(Some).collect();
        ids = perm.into_iter().map(|i| slots[i].take().expect("a permutation")).collect();
    }
    let mut state = Map::new();
    state.insert("ids".into(), Value::Array(ids));
    state.insert("entities".into(), Value::Object(entities));
    Ok(Value::Object(state))
}

/// The text key under `entities` for an id value (string as is, number as JS writes it).
pub fn entity_key(id: &Value) -> Result<String, String> {
    let mut s = String::new();
    if write_key(id, &mut s) {
        Ok(s)
    } else {
        Err(format!("an id must be a string or a number, not {}", kind(id)))
    }
}

/// Writes the entity key of `id` into `out` (cleared first); false when `id` is no string/number.
fn write_key(id: &Value, out: &mut String) -> bool {
    out.clear();
    match id {
        Value::String(s) => out.push_str(s),
        Value::Number(n) => write_js_number(n, out),
        _ => return false,
    }
    true
}

/// JavaScript's `Number.prototype.toString()` (ECMA-262 Number::toString, radix 10).
fn write_js_number(n: &Number, out: &mut String) {
    if let Some(u) = n.as_u64() {
        let _ = write!(out, "{u}");
        return;
    }
    if let Some(i) = n.as_i64() {
        let _ = write!(out, "{i}");
        return;
    }
    let x = n.as_f64().unwrap_or(0.0);
    if x == 0.0 || !x.is_finite() {
        // serde_json numbers are finite; -0 prints as "0" in JS.
        out.push('0');
        return;
    }
    if x < 0.0 {
        out.push('-');
    }
    // Rust's `{:e}` gives the shortest round-trip digits, as JS requires.
    let e = format!("{:e}", x.abs());
    let (mant, exp) = e.split_once('e').expect("LowerExp has an 'e'");
    let exp: i32 = exp.parse().expect("LowerExp exponent");
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    let k = digits.len() as i32;
    let n = exp + 1; // decimal point position
    if k <= n && n <= 21 {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', (n - k) as usize));
    } else if 0 < n && n <= 21 {
        out.push_str(&digits[..n as usize]);
        out.push('.');
        out.push_str(&digits[n as usize..]);
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-n) as usize));
        out.push_str(&digits);
    } else {
        out.push_str(&digits[..1]);
        if k > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(out, "e{}{}", if n > 0 { '+' } else { '-' }, (n - 1).abs());
    }
}

/// "an object", "a string", … for error messages.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The id of `entity` (`what` names it in errors: "the message", "element 3"): its `select_id`
/// field, which must be a string or a number.
pub fn id_of<'a>(entity: &'a Value, select_id: &str, what: &str) -> Result<&'a Value, String> {
    let Value::Object(m) = entity else {
        return Err(format!("{what} is {}, not an object", kind(entity)));
    };
    match m.get(select_id) {
        None => Err(format!("{what} has no `{select_id}` field")),
        Some(id @ (Value::String(_) | Value::Number(_))) => Ok(id),
        Some(other) => {
            Err(format!("{what}'s `{select_id}` is {}; an id must be a string or a number", kind(other)))
        }
    }
}

/// Whether `v` is an entity-adapter state: an object with an `ids` array and an `entities` object.
pub fn is_state(v: &Value) -> bool {
    matches!(v, Value::Object(m)
        if matches!(m.get("ids"), Some(Value::Array(_))) && matches!(m.get("entities"), Some(Value::Object(_))))
}

/// A state of one entity: `{ids: [id], entities: {key: entity}}` (for `upsert` onto `null` data).
pub fn single(select_id: &str, entity: Value) -> Result<Value, String> {
    let id = id_of(&entity, select_id, "the message")?.clone();
    let key = entity_key(&id)?;
    let mut entities = Map::new();
    entities.insert(key, entity);
    let mut state = Map::new();
    state.insert("ids".into(), Value::Array(vec![id]));
    state.insert("entities".into(), Value::Object(entities));
    Ok(Value::Object(state))
}

/// The `sortBy` comparator (module doc): numbers < strings < booleans < anything else / missing;
/// `Descending` reverses within each group.
pub fn sort_cmp(a: Option<&Value>, b: Option<&Value>, order: &SortOrder) -> Ordering {
    fn rank(v: Option<&Value>) -> u8 {
        match v {
            Some(Value::Number(_)) => 0,
            Some(Value::String(_)) => 1,
            Some(Value::Bool(_)) => 2,
            _ => 3,
        }
    }
    let (ra, rb) = (rank(a), rank(b));
    if ra != rb {
        return ra.cmp(&rb);
    }
    let o = match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => num_cmp(x, y),
        (Some(Value::String(x)), Some(Value::String(y))) => x.encode_utf16().cmp(y.encode_utf16()),
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        _ => Ordering::Equal,
    };
    match order {
        SortOrder::Ascending => o,
        SortOrder::Descending => o.reverse(),
    }
}

/// Whether two ids are the same id: equal strings, or numbers equal numerically (`1` = `1.0`).
/// A string never equals a number here (JS `===`).
pub fn id_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Number(x), Value::Number(y)) => num_cmp(x, y) == Ordering::Equal,
        _ => false,
    }
}

fn num_cmp(x: &Number, y: &Number) -> Ordering {
    fn int(n: &Number) -> Option<i128> {
        n.as_i64().map(i128::from).or_else(|| n.as_u64().map(i128::from))
    }
    match (int(x), int(y)) {
        (Some(a), Some(b)) => a.cmp(&b),
        _ => {
            let (a, b) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            a.partial_cmp(&b).unwrap_or(Ordering::Equal)
        }
    }
}

/// Borrowed view of a state's parts, for planning.
struct View<'a> {
    ids: &'a [Value],
    entities: &'a Map<String, Value>,
}

impl<'a> View<'a> {
    fn of(state: &'a Value) -> Result<Self, String> {
        match state {
            Value::Object(m) => match (m.get("ids"), m.get("entities")) {
                (Some(Value::Array(ids)), Some(Value::Object(entities))) => Ok(View { ids, entities }),
                _ => Err("the data is an object without an `ids` array and an `entities` object \
                          (not an entity-adapter state)"
                    .into()),
            },
            other => Err(format!("the data is {}, not an entity-adapter state", kind(other))),
        }
    }

    /// The sort field of the entity of `ids[i]` (None when missing).
    fn sort_value(&self, i: usize, field: &str, buf: &mut String) -> Option<&'a Value> {
        if !write_key(&self.ids[i], buf) {
            return None;
        }
        self.entities.get(buf.as_str()).and_then(|e| e.get(field))
    }

    /// First index (of `ids` without index `skip`) whose sort value is greater than `val`:
    /// where an entity with sort value `val` goes, after the equal ones.
    fn upper_bound(&self, field: &str, order: &SortOrder, val: Option<&Value>, skip: Option<usize>) -> usize {
        let n = self.ids.len() - usize::from(skip.is_some());
        let real = |i: usize| match skip {
            Some(s) if i >= s => i + 1,
            _ => i,
        };
        let mut buf = String::new();
        let (mut lo, mut hi) = (0, n);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if sort_cmp(self.sort_value(real(mid), field, &mut buf), val, order) != Ordering::Greater {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// First index whose sort value is not less than `val`.
    fn lower_bound(&self, field: &str, order: &SortOrder, val: Option<&Value>) -> usize {
        let mut buf = String::new();
        let (mut lo, mut hi) = (0, self.ids.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if sort_cmp(self.sort_value(mid, field, &mut buf), val, order) == Ordering::Less {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// The index in `ids` of the id whose key is `key`. With `sort` (field, order, the entity's
    /// current sort value) a binary search finds where to start; otherwise a linear scan.
    fn locate(&self, key: &str, sort: Option<(&str, &SortOrder, Option<&Value>)>) -> Option<usize> {
        let start = match sort {
            Some((field, order, val)) => self.lower_bound(field, order, val),
            None => 0,
        };
        let int_key = key.parse::<i128>().ok().filter(|i| i.to_string() == key);
        let mut buf = String::new();
        let mut matches = |v: &Value| match v {
            Value::String(s) => s == key,
            // Fast path: an integer id matches exactly its decimal text.
            Value::Number(n) if n.is_i64() || n.is_u64() => {
                int_key.is_some_and(|k| Some(k) == n.as_i64().map(i128::from).or(n.as_u64().map(i128::from)))
            }
            v => write_key(v, &mut buf) && buf == key,
        };
        (start..self.ids.len()).chain(0..start).find(|&i| matches(&self.ids[i]))
    }
}

fn ids_path(i: usize) -> String {
    let mut p = String::from("/ids");
    push_token(&mut p, &i.to_string());
    p
}

/// What `upsert_one` will do, decided read-only.
enum UpsertPlan {
    New { pos: usize },
    Merge { changed: Vec<bool>, ids_move: Option<(usize, usize)> },
    ReplaceWhole { ids_move: Option<(usize, usize)> },
}

/// `upsert_one`'s ops without changing `state` (W3: an optimistic layer applies them with
/// `apply_patch`, which records how to undo them).
pub fn upsert_one_ops(state: &Value, select_id: &str, sort_by: Option<&(String, SortOrder)>, entity: &Value) -> Result<Vec<PatchOp>, String> {
    plan_upsert(state, select_id, sort_by, entity).map(|(ops, ..)| ops)
}

/// The ops, the plan, the id and its entity key of an upsert (read-only).
fn plan_upsert(
    state: &Value,
    select_id: &str,
    sort_by: Option<&(String, SortOrder)>,
    entity: &Value,
) -> Result<(Vec<PatchOp>, UpsertPlan, Value, String), String> {
    let id = id_of(entity, select_id, "the message")?.clone();
    let key = entity_key(&id)?;
    let ent_path = pointer(["entities", key.as_str()]);
    let mut ops = Vec::new();
    let view = View::of(state)?;
    let msg = entity.as_object().expect("id_of checked it is an object");
    let plan = match view.entities.get(key.as_str()) {
        None => {
            let pos = match sort_by {
                Some((field, order)) => view.upper_bound(field, order, msg.get(field.as_str()), None),
                None => view.ids.len(),
            };
            ops.push(PatchOp::Add { path: ent_path, value: entity.clone() });
            ops.push(PatchOp::Add { path: ids_path(pos), value: id.clone() });
            UpsertPlan::New { pos }
        }
        Some(existing) => {
            let old_obj = existing.as_object();
            let mut changed = Vec::new();
            if let Some(old) = old_obj {
                for (field, v) in msg {
                    let cur = old.get(field.as_str());
                    let differs = cur != Some(v);
                    changed.push(differs);
                    if differs {
                        let mut path = ent_path.clone();
                        push_token(&mut path, field);
                        ops.push(match cur {
                            Some(_) => PatchOp::Replace { path, value: v.clone() },
                            None => PatchOp::Add { path, value: v.clone() },
                        });
                    }
                }
            } else {
                ops.push(PatchOp::Replace { path: ent_path, value: entity.clone() });
            }
            let ids_move = match sort_by {
                Some((field, order)) if !ops.is_empty() => {
                    let old_val = old_obj.and_then(|o| o.get(field.as_str()));
                    let new_val = match old_obj {
                        Some(_) => msg.get(field.as_str()).or(old_val),
                        None => msg.get(field.as_str()),
                    };
                    if sort_cmp(old_val, new_val, order) != Ordering::Equal {
                        view.locate(&key, Some((field, order, old_val))).and_then(|old_i| {
                            let new_i = view.upper_bound(field, order, new_val, Some(old_i));
                            (new_i != old_i).then_some((old_i, new_i))
                        })
                    } else {
                        None
                    }
                }
                _ => None,
            };
            if let Some((from, to)) = ids_move {
                ops.push(PatchOp::Remove { path: ids_path(from) });
                ops.push(PatchOp::Add { path: ids_path(to), value: view.ids[from].clone() });
            }
            match old_obj {
                Some(_) => UpsertPlan::Merge { changed, ids_move },
                None => UpsertPlan::ReplaceWhole { ids_move },
            }
        }
    };
    Ok((ops, plan, id, key))
}

/// RTK's `upsertOne` on an entity-adapter state: a new entity is added (its id inserted at its
/// sorted position, or at the end); an existing one is shallow-merged field by field. Returns the
/// RFC 6902 ops that turn the old state into the new one (empty: nothing changed).
/// All-or-nothing: on Err `state` is unchanged. The caller checks the depth limit.
pub fn upsert_one(
    state: &mut Value,
    select_id: &str,
    sort_by: Option<&(String, SortOrder)>,
    entity: Value,
) -> Result<Vec<PatchOp>, String> {
    let (ops, plan, id, key) = plan_upsert(state, select_id, sort_by, &entity)?;

    // Execute (infallible: the plan checked the shape).
    let Value::Object(root) = state else { unreachable!("View::of checked") };
    let Some(Value::Object(entities)) = root.get_mut("entities") else { unreachable!() };
    let ids_move = match plan {
        UpsertPlan::New { pos } => {
            entities.insert(key, entity);
            let Some(Value::Array(ids)) = root.get_mut("ids") else { unreachable!() };
            ids.insert(pos, id);
            return Ok(ops);
        }
        UpsertPlan::Merge { changed, ids_move } => {
            let Some(Value::Object(target)) = entities.get_mut(key.as_str()) else { unreachable!() };
            let Value::Object(msg) = entity else { unreachable!() };
            for ((field, v), differs) in msg.into_iter().zip(changed) {
                if differs {
                    target.insert(field, v);
                }
            }
            ids_move
        }
        UpsertPlan::ReplaceWhole { ids_move } => {
            entities.insert(key, entity);
            ids_move
        }
    };
    if let Some((from, to)) = ids_move {
        let Some(Value::Array(ids)) = root.get_mut("ids") else { unreachable!() };
        // remove(from) + insert(to), moving only the elements in between.
        if from < to {
            ids[from..=to].rotate_left(1);
        } else {
            ids[to..=from].rotate_right(1);
        }
    }
    Ok(ops)
}

/// RTK's `removeOne` on an entity-adapter state. Returns the ops (empty: the id is absent).
/// All-or-nothing: on Err `state` is unchanged.
pub fn remove_one(state: &mut Value, id: &Value, sort_by: Option<&(String, SortOrder)>) -> Result<Vec<PatchOp>, String> {
    let key = entity_key(id)?;
    let Some(pos) = plan_remove(state, &key, sort_by)? else { return Ok(Vec::new()) };
    let mut ops = vec![PatchOp::Remove { path: pointer(["entities", key.as_str()]) }];
    let Value::Object(root) = state else { unreachable!("View::of checked") };
    if let Some(Value::Object(entities)) = root.get_mut("entities") {
        entities.shift_remove(key.as_str());
    }
    if let Some(i) = pos {
        ops.push(PatchOp::Remove { path: ids_path(i) });
        if let Some(Value::Array(ids)) = root.get_mut("ids") {
            ids.remove(i);
        }
    }
    Ok(ops)
}

/// Where `key`'s id stands in `ids` (`Some(None)`: the entity exists, its id is not listed;
/// `None`: no such entity). Read-only.
fn plan_remove(state: &Value, key: &str, sort_by: Option<&(String, SortOrder)>) -> Result<Option<Option<usize>>, String> {
    let view = View::of(state)?;
    let Some(existing) = view.entities.get(key) else { return Ok(None) };
    let sort = sort_by.map(|(field, order)| (field.as_str(), order, existing.get(field.as_str())));
    Ok(Some(view.locate(key, sort)))
}

/// `remove_one`'s ops without changing `state` (W3).
pub fn remove_one_ops(state: &Value, id: &Value, sort_by: Option<&(String, SortOrder)>) -> Result<Vec<PatchOp>, String> {
    let key = entity_key(id)?;
    let Some(pos) = plan_remove(state, &key, sort_by)? else { return Ok(Vec::new()) };
    let mut ops = vec![PatchOp::Remove { path: pointer(["entities", key.as_str()]) }];
    ops.extend(pos.map(|i| PatchOp::Remove { path: ids_path(i) }));
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg(sort: Option<&str>) -> EntityAdapterConfig {
        EntityAdapterConfig {
            select_id: "id".into(),
            sort_by: sort.map(|s| match s.strip_prefix('-') {
                Some(f) => (f.to_string(), SortOrder::Descending),
                None => (s.to_string(), SortOrder::Ascending),
            }),
        }
    }

    #[test]
    fn keys_like_javascript() {
        let cases = [
            (json!("abc"), "abc"),
            (json!(1), "1"),
            (json!(-7), "-7"),
            (json!(1.0), "1"),
            (json!(1.5), "1.5"),
            (json!(-0.0), "0"),
            (json!(0.1), "0.1"),
            (json!(1e21), "1e+21"),
            (json!(1e20), "100000000000000000000"),
            (json!(1.5e-7), "1.5e-7"),
            (json!(0.000001), "0.000001"),
            (json!(123456.789), "123456.789"),
            (json!(u64::MAX), "18446744073709551615"),
            (json!(2.5e300), "2.5e+300"),
        ];
        for (v, k) in cases {
            assert_eq!(entity_key(&v).unwrap(), k, "{v}");
        }
        assert!(entity_key(&json!(null)).unwrap_err().contains("string or a number"));
        assert!(entity_key(&json!([1])).is_err());
    }

    #[test]
    fn normalize_unsorted_keeps_order() {
        let out = normalize(&cfg(None), json!([{"id": 2, "t": "b"}, {"id": "x"}, {"id": 1}])).unwrap();
        assert_eq!(
            out,
            json!({"ids": [2, "x", 1], "entities": {"2": {"id": 2, "t": "b"}, "x": {"id": "x"}, "1": {"id": 1}}})
        );
        // key order of the output
        assert_eq!(serde_json::to_string(&out).unwrap(), r#"{"ids":[2,"x",1],"entities":{"2":{"id":2,"t":"b"},"x":{"id":"x"},"1":{"id":1}}}"#);
    }

    #[test]
    fn normalize_duplicates_later_wins_first_position() {
        let out = normalize(&cfg(None), json!([{"id": 1, "v": "a"}, {"id": 2}, {"id": 1, "v": "b"}])).unwrap();
        assert_eq!(out, json!({"ids": [1, 2], "entities": {"1": {"id": 1, "v": "b"}, "2": {"id": 2}}}));
        let keys: Vec<_> = out["entities"].as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["1", "2"]);
    }

    #[test]
    fn normalize_sorted_stable_ascending_descending() {
        let data = json!([
            {"id": "a", "n": 3}, {"id": "b", "n": 1}, {"id": "c", "n": 3}, {"id": "d"},
            {"id": "e", "n": 2.5}, {"id": "f", "n": "z"}, {"id": "g", "n": true}, {"id": "h", "n": -1}
        ]);
        let asc = normalize(&cfg(Some("n")), data.clone()).unwrap();
        assert_eq!(asc["ids"], json!(["h", "b", "e", "a", "c", "f", "g", "d"]));
        let desc = normalize(&cfg(Some("-n")), data).unwrap();
        assert_eq!(desc["ids"], json!(["a", "c", "e", "b", "h", "f", "g", "d"]));
    }

    #[test]
    fn utf16_string_order() {
        // U+FF5E (one UTF-16 unit 0xFF5E) vs U+1F600 (surrogates 0xD83D…): JS puts the emoji first,
        // byte/code-point order would put it last.
        let data = json!([{"id": 1, "s": "\u{FF5E}"}, {"id": 2, "s": "\u{1F600}"}, {"id": 3, "s": "B"}, {"id": 4, "s": "a"}]);
        let out = normalize(&cfg(Some("s")), data).unwrap();
        assert_eq!(out["ids"], json!([3, 4, 2, 1]));
    }

    #[test]
    fn big_integer_compare() {
        let data = json!([{"id": 1, "n": u64::MAX}, {"id": 2, "n": -5}, {"id": 3, "n": 1e30}, {"id": 4, "n": 9007199254740993u64}, {"id": 5, "n": 9007199254740992u64}]);
        let out = normalize(&cfg(Some("n")), data).unwrap();
        assert_eq!(out["ids"], json!([2, 5, 4, 1, 3]));
    }

    #[test]
    fn normalize_errors() {
        let e = normalize(&cfg(None), json!({"a": 1})).unwrap_err();
        assert_eq!(e, "entityAdapter: the response is an object, not an array");
        let e = normalize(&cfg(None), json!([{"id": 1}, {"name": "x"}])).unwrap_err();
        assert_eq!(e, "entityAdapter: element 1 has no `id` field");
        let e = normalize(&cfg(None), json!([3])).unwrap_err();
        assert_eq!(e, "entityAdapter: element 0 is a number, not an object");
        let e = normalize(&cfg(None), json!([{"id": null}])).unwrap_err();
        assert!(e.contains("element 0's `id` is null"), "{e}");
        assert_eq!(normalize(&cfg(None), json!([])).unwrap(), json!({"ids": [], "entities": {}}));
    }

    #[test]
    fn remove_one_sorted_with_ties() {
        let mut s = normalize(&cfg(Some("n")), json!([{"id": 1, "n": 1}, {"id": 2, "n": 1}, {"id": 3, "n": 1}, {"id": 4, "n": 2}])).unwrap();
        let ops = remove_one(&mut s, &json!(3), cfg(Some("n")).sort_by.as_ref()).unwrap();
        assert_eq!(ops, vec![PatchOp::Remove { path: "/entities/3".into() }, PatchOp::Remove { path: "/ids/2".into() }]);
        assert_eq!(s["ids"], json!([1, 2, 4]));
        assert!(remove_one(&mut s, &json!(3), None).unwrap().is_empty());
        assert!(remove_one(&mut json!([1]), &json!(3), None).is_err());
    }
}
