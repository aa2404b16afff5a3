//! RFC 6902 JSON Patch: the operation type every event carries, and an all-or-nothing
//! application that records its inverse (SPEC L9, E1, E3).

use std::borrow::Cow;
use std::fmt;
use std::mem;

use serde::Serialize;
use serde_json::{Map, Number, Value};

/// One RFC 6902 operation. Serialises to the standard `{"op": …, "path": …}` object.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum PatchOp {
    Add { path: String, value: Value },
    Remove { path: String },
    Replace { path: String, value: Value },
    Move { from: String, path: String },
    Copy { from: String, path: String },
    Test { path: String, value: Value },
}

/// Appends one reference token to a JSON Pointer, escaping `~` and `/` (RFC 6901).
pub fn push_token(pointer: &mut String, token: &str) {
    pointer.push('/');
    for c in token.chars() {
        match c {
            '~' => pointer.push_str("~0"),
            '/' => pointer.push_str("~1"),
            c => pointer.push(c),
        }
    }
}

/// A JSON Pointer from reference tokens.
pub fn pointer<'a>(tokens: impl IntoIterator<Item = &'a str>) -> String {
    let mut p = String::new();
    for t in tokens {
        push_token(&mut p, t);
    }
    p
}

/// A patch that did not apply. `index` is the failing operation's position.
#[derive(Clone, Debug, PartialEq)]
pub struct PatchError {
    pub index: usize,
    pub message: String,
}

impl fmt::Display for PatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "operation {}: {}", self.index, self.message)
    }
}

impl std::error::Error for PatchError {}

/// How every depth refusal (E3) starts, so it can be told from a patch that does not fit the data.
pub const DEPTH_REFUSAL: &str = "the value would be nested deeper than the depth limit of ";

impl PatchError {
    /// E3: the patch was refused because it would make the data too deep (reason `too_deep`).
    pub fn is_too_deep(&self) -> bool {
        is_depth_message(&self.message)
    }
}

/// A depth refusal ends with `DEPTH_REFUSAL` and the limit; any pointer it names is quoted before
/// it, so message content cannot make another failure end that way.
pub fn is_depth_message(message: &str) -> bool {
    message.rsplit_once(DEPTH_REFUSAL).is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

impl PatchOp {
    /// Parses one operation object with clear messages ("missing `value`", "unknown op \"foo\"",
    /// "`path` must be a string"). Members RFC 6902 does not know are ignored (RFC 6902 §4).
    pub fn from_value(v: &Value) -> Result<PatchOp, String> {
        let obj = v
            .as_object()
            .ok_or_else(|| format!("an operation must be a JSON object, not {}", kind(v)))?;
        let name = match obj.get("op") {
            None => return Err("missing `op`".into()),
            Some(Value::String(s)) => s.as_str(),
            Some(_) => return Err("`op` must be a string".into()),
        };
        if !matches!(
            name,
            "add" | "remove" | "replace" | "move" | "copy" | "test"
        ) {
            return Err(format!("unknown op {}", quoted(name)));
        }
        let path = pointer_member(obj, "path")?;
        Ok(match name {
            "add" => PatchOp::Add {
                path,
                value: value_member(obj)?,
            },
            "remove" => PatchOp::Remove { path },
            "replace" => PatchOp::Replace {
                path,
                value: value_member(obj)?,
            },
            "move" => PatchOp::Move {
                from: pointer_member(obj, "from")?,
                path,
            },
            "copy" => PatchOp::Copy {
                from: pointer_member(obj, "from")?,
                path,
            },
            _ => PatchOp::Test {
                path,
                value: value_member(obj)?,
            },
        })
    }

    /// The target location (`path`) of the operation.
    pub fn path(&self) -> &str {
        match self {
            PatchOp::Add { path, .. }
            | PatchOp::Remove { path }
            | PatchOp::Replace { path, .. }
            | PatchOp::Move { path, .. }
            | PatchOp::Copy { path, .. }
            | PatchOp::Test { path, .. } => path,
        }
    }
}

fn pointer_member(obj: &Map<String, Value>, name: &str) -> Result<String, String> {
    match obj.get(name) {
        None => Err(format!("missing `{name}`")),
        Some(Value::String(s)) => match parse_pointer(s) {
            Ok(_) => Ok(s.clone()),
            Err(e) => Err(format!("`{name}` is not a JSON Pointer: {e}")),
        },
        Some(_) => Err(format!("`{name}` must be a string")),
    }
}

fn value_member(obj: &Map<String, Value>) -> Result<Value, String> {
    obj.get("value")
        .cloned()
        .ok_or_else(|| "missing `value`".to_string())
}

/// Parses an RFC 6902 document (a JSON array of operation objects).
pub fn parse_patch(v: &Value) -> Result<Vec<PatchOp>, PatchError> {
    let ops = v.as_array().ok_or_else(|| PatchError {
        index: 0,
        message: format!(
            "a JSON Patch must be an array of operations, not {}",
            kind(v)
        ),
    })?;
    ops.iter()
        .enumerate()
        .map(|(index, op)| PatchOp::from_value(op).map_err(|message| PatchError { index, message }))
        .collect()
}

/// Splits a JSON Pointer into unescaped reference tokens (RFC 6901): `""` is the whole document,
/// anything else starts with `/`; `~0` is `~`, `~1` is `/`, any other `~` is an error.
pub fn parse_pointer(pointer: &str) -> Result<Vec<Cow<'_, str>>, String> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let rest = pointer
        .strip_prefix('/')
        .ok_or_else(|| format!("{} must be empty or start with '/'", quoted(pointer)))?;
    rest.split('/').map(unescape_token).collect()
}

fn unescape_token(raw: &str) -> Result<Cow<'_, str>, String> {
    if !raw.contains('~') {
        return Ok(Cow::Borrowed(raw));
    }
    let mut token = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '~' {
            token.push(c);
            continue;
        }
        match chars.next() {
            Some('0') => token.push('~'),
            Some('1') => token.push('/'),
            _ => {
                return Err(format!(
                    "bad escape in token {}: `~` must be followed by 0 or 1",
                    quoted(raw)
                ))
            }
        }
    }
    Ok(Cow::Owned(token))
}

/// The array position a reference token names (RFC 6901 §4, RFC 6902 §4.1): decimal digits without
/// leading zeros. With `for_insert` (the target of `add`, `move`, `copy`) `-` means "append" and the
/// length itself is allowed; otherwise the element must exist.
pub fn array_index(token: &str, len: usize, for_insert: bool) -> Result<usize, String> {
    if token == "-" {
        return if for_insert {
            Ok(len)
        } else {
            Err("`-` names no existing array element".into())
        };
    }
    let well_formed = !token.is_empty()
        && token.bytes().all(|b| b.is_ascii_digit())
        && (token == "0" || !token.starts_with('0'));
    if !well_formed {
        return Err(format!("{} is not an array index", quoted(token)));
    }
    let out_of_bounds = || format!("array index {token} is out of bounds (length {len})");
    let index: usize = token.parse().map_err(|_| out_of_bounds())?;
    if index > len || (index == len && !for_insert) {
        return Err(out_of_bounds());
    }
    Ok(index)
}

/// JSON equality as RFC 6902 `test` defines it: numbers compare by value (`1 == 1.0`), objects
/// ignore member order.
pub fn json_equal(a: &Value, b: &Value) -> bool {
    // Scalars (a filter's field against its expected value, once per message) need no stack.
    match (a, b) {
        (Value::Array(_) | Value::Object(_), _) => {}
        (Value::Number(x), Value::Number(y)) => return numbers_equal(x, y),
        (x, y) => return x == y,
    }
    // An explicit stack: documents parsed with `unbounded_depth` may be deeper than the call stack.
    let mut pending = vec![(a, b)];
    while let Some(pair) = pending.pop() {
        match pair {
            (Value::Null, Value::Null) => {}
            (Value::Bool(x), Value::Bool(y)) if x == y => {}
            (Value::Number(x), Value::Number(y)) if numbers_equal(x, y) => {}
            (Value::String(x), Value::String(y)) if x == y => {}
            (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
                pending.extend(x.iter().zip(y))
            }
            (Value::Object(x), Value::Object(y)) if x.len() == y.len() => {
                for (key, xv) in x {
                    match y.get(key) {
                        Some(yv) => pending.push((xv, yv)),
                        None => return false,
                    }
                }
            }
            _ => return false,
        }
    }
    true
}

fn numbers_equal(x: &Number, y: &Number) -> bool {
    fn integer(n: &Number) -> Option<i128> {
        n.as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
    }
    // Exact for every pair: an integer equals a float only if the float is that very integer.
    fn float_is(f: Option<f64>, i: i128) -> bool {
        f.is_some_and(|f| f.fract() == 0.0 && f.abs() < 1e20 && f as i128 == i)
    }
    match (integer(x), integer(y)) {
        (Some(i), Some(j)) => i == j,
        (Some(i), None) => float_is(y.as_f64(), i),
        (None, Some(j)) => float_is(x.as_f64(), j),
        (None, None) => x.as_f64() == y.as_f64(),
    }
}

/// The result of an application.
#[derive(Clone, Debug, PartialEq)]
pub struct Applied {
    /// The operations as applied, for subscribers: `test` ops removed (SPEC E1: no test ops in events).
    pub patches: Vec<PatchOp>,
    /// Operations that undo the change when applied in order to the patched document (already reversed).
    /// Any RFC 6902 implementation gives back a JSON-equal document; a member that was removed from
    /// an object comes back as its last member there, as `add` defines. [`Applied::undo`] also
    /// restores member order.
    pub inverse: Vec<PatchOp>,
    /// True when some operation replaced/added/moved/copied at the root path "" (a whole-document change).
    pub replaced_root: bool,
    /// For each op of `inverse`: where a member it re-adds to an object stood, so `undo` puts it back there.
    inverse_positions: Vec<Option<usize>>,
}

impl Applied {
    /// Applies `inverse` to `doc` (all-or-nothing, like [`apply_patch`]) and puts re-added object
    /// members back at their former positions, so the document before the patch comes back exactly,
    /// member order included. The result's `patches` are the inverse ops and its `inverse` redoes.
    pub fn undo(&self, doc: &mut Value, max_depth: usize) -> Result<Applied, PatchError> {
        apply_positioned(doc, &self.inverse, &self.inverse_positions, Some(max_depth))
    }
}

/// Applies `ops` all-or-nothing: on any failure the document is restored exactly (by applying the
/// inverse of the ops already done, NOT by cloning the document first — cost must be proportional to
/// the change, documents may hold 100,000 entities) and the error names the failing op index.
/// `max_depth`: after applying, no value inserted by the patch may sit deeper than `max_depth`
/// (depth = container nesting with the root container at level 1: `[]` is 1, `{"a":{}}` is 2, a scalar root is 0;
/// a value with container-depth d inserted at a pointer of k tokens makes depth k + d). Exceeding it is an error
/// (message mentions "depth") and the document is restored.
pub fn apply_patch(
    doc: &mut Value,
    ops: &[PatchOp],
    max_depth: usize,
) -> Result<Applied, PatchError> {
    apply_positioned(doc, ops, &[], Some(max_depth))
}

/// The inverse being built, in application order (reversed once the patch has applied).
struct Journal {
    record: bool,
    ops: Vec<PatchOp>,
    positions: Vec<Option<usize>>,
    replaced_root: bool,
}

impl Journal {
    fn new(record: bool) -> Journal {
        Journal {
            record,
            ops: Vec::new(),
            positions: Vec::new(),
            replaced_root: false,
        }
    }

    fn push(&mut self, op: PatchOp, position: Option<usize>) {
        if self.record {
            self.ops.push(op);
            self.positions.push(position);
        }
    }

    /// Records the undo of an insertion at `path`.
    fn inserted(&mut self, path: String, insertion: Insertion) {
        match insertion {
            Insertion::Element(i) => self.push(
                PatchOp::Remove {
                    path: concrete(path, i),
                },
                None,
            ),
            Insertion::Member => self.push(PatchOp::Remove { path }, None),
            Insertion::Replaced(old) => self.push(PatchOp::Replace { path, value: old }, None),
        }
    }
}

/// `positions[i]` (when present) is where op `i` inserts a new object member instead of at the end.
fn apply_positioned(
    doc: &mut Value,
    ops: &[PatchOp],
    positions: &[Option<usize>],
    max_depth: Option<usize>,
) -> Result<Applied, PatchError> {
    let mut journal = Journal::new(true);
    for (index, op) in ops.iter().enumerate() {
        let position = positions.get(index).copied().flatten();
        let outcome = match op {
            PatchOp::Test { path, value } => test(doc, path, value),
            op => apply_op(doc, op.clone(), position, max_depth, &mut journal),
        };
        if let Err(message) = outcome {
            rollback(doc, journal);
            return Err(PatchError { index, message });
        }
    }
    let Journal {
        ops: mut inverse,
        positions: mut inverse_positions,
        replaced_root,
        ..
    } = journal;
    inverse.reverse();
    inverse_positions.reverse();
    Ok(Applied {
        patches: ops
            .iter()
            .filter(|op| !matches!(op, PatchOp::Test { .. }))
            .cloned()
            .collect(),
        inverse,
        replaced_root,
        inverse_positions,
    })
}

fn rollback(doc: &mut Value, journal: Journal) {
    let mut discard = Journal::new(false);
    for (op, position) in journal.ops.into_iter().zip(journal.positions).rev() {
        let restored = apply_op(doc, op, position, None, &mut discard);
        debug_assert!(
            restored.is_ok(),
            "inverse op failed during rollback: {restored:?}"
        );
    }
}

fn test(doc: &Value, path: &str, expected: &Value) -> Result<(), String> {
    let tokens = parse_pointer(path).map_err(|e| at("path", path, e))?;
    let actual = walk(doc, &tokens).map_err(|e| at("path", path, e))?;
    if json_equal(actual, expected) {
        Ok(())
    } else {
        Err(format!(
            "test failed: the value at {} differs",
            quoted(path)
        ))
    }
}

/// Applies one non-`test` operation; on error the document is unchanged.
fn apply_op(
    doc: &mut Value,
    op: PatchOp,
    position: Option<usize>,
    max_depth: Option<usize>,
    journal: &mut Journal,
) -> Result<(), String> {
    match op {
        PatchOp::Add { path, value } => {
            let insertion = {
                let tokens = parse_pointer(&path).map_err(|e| at("path", &path, e))?;
                check_depth(tokens.len(), &value, max_depth).map_err(|e| at("path", &path, e))?;
                insert(doc, &tokens, value, position).map_err(|(e, _)| at("path", &path, e))?
            };
            journal.replaced_root |= path.is_empty();
            journal.inserted(path, insertion);
        }
        PatchOp::Remove { path } => {
            let (old, old_position) = {
                let tokens = parse_pointer(&path).map_err(|e| at("path", &path, e))?;
                remove(doc, &tokens).map_err(|e| at("path", &path, e))?
            };
            journal.push(PatchOp::Add { path, value: old }, old_position);
        }
        PatchOp::Replace { path, value } => {
            let old = {
                let tokens = parse_pointer(&path).map_err(|e| at("path", &path, e))?;
                check_depth(tokens.len(), &value, max_depth).map_err(|e| at("path", &path, e))?;
                let slot = walk_mut(doc, &tokens).map_err(|e| at("path", &path, e))?;
                mem::replace(slot, value)
            };
            journal.replaced_root |= path.is_empty();
            journal.push(PatchOp::Replace { path, value: old }, None);
        }
        PatchOp::Copy { from, path } => {
            let insertion = {
                let from_tokens = parse_pointer(&from).map_err(|e| at("from", &from, e))?;
                let tokens = parse_pointer(&path).map_err(|e| at("path", &path, e))?;
                let source = walk(doc, &from_tokens).map_err(|e| at("from", &from, e))?;
                check_depth(tokens.len(), source, max_depth).map_err(|e| at("path", &path, e))?;
                let value = source.clone();
                insert(doc, &tokens, value, position).map_err(|(e, _)| at("path", &path, e))?
            };
            journal.replaced_root |= path.is_empty();
            journal.inserted(path, insertion);
        }
        PatchOp::Move { from, path } => {
            journal.replaced_root |= path.is_empty();
            move_value(doc, from, path, position, max_depth, journal)?;
        }
        PatchOp::Test { path, value } => test(doc, &path, &value)?,
    }
    Ok(())
}

fn move_value(
    doc: &mut Value,
    from: String,
    path: String,
    position: Option<usize>,
    max_depth: Option<usize>,
    journal: &mut Journal,
) -> Result<(), String> {
    let from_tokens = parse_pointer(&from).map_err(|e| at("from", &from, e))?;
    let tokens = parse_pointer(&path).map_err(|e| at("path", &path, e))?;
    let source = walk(doc, &from_tokens).map_err(|e| at("from", &from, e))?;
    if from_tokens == tokens {
        return Ok(());
    }
    if tokens.len() > from_tokens.len() && tokens.starts_with(&from_tokens) {
        return Err(format!(
            "cannot move {} into its own child {}",
            quoted(&from),
            quoted(&path)
        ));
    }
    check_depth(tokens.len(), source, max_depth).map_err(|e| at("path", &path, e))?;
    let (value, from_position) = remove(doc, &from_tokens).map_err(|e| at("from", &from, e))?;
    // When `path` names an ancestor of `from` (the root included), no `move` can undo this one
    // (RFC 6902 forbids moving a location into its own child), so the undo takes the moved value
    // out again and re-adds a copy at `from`.
    let to_ancestor = from_tokens.starts_with(&tokens);
    let copy = (journal.record && to_ancestor).then(|| value.clone());
    let insertion = match insert(doc, &tokens, value, position) {
        Ok(insertion) => insertion,
        Err((e, value)) => {
            let restored = insert(doc, &from_tokens, value, from_position);
            debug_assert!(restored.is_ok(), "could not put a moved value back");
            return Err(at("path", &path, e));
        }
    };
    // The journal is reversed at the end, so the undo steps are pushed last-first.
    match insertion {
        insertion if to_ancestor => {
            if let Some(copy) = copy {
                journal.push(
                    PatchOp::Add {
                        path: from,
                        value: copy,
                    },
                    from_position,
                );
            }
            journal.inserted(path, insertion);
        }
        Insertion::Replaced(old) => {
            // The moved value overwrote an object member in place. Undoing moves the value back
            // (the member leaves) and then re-adds the member; when both sit in one object, the
            // positions are those among the members present at each step.
            let now = member_position(doc, &tokens);
            let same_parent = from_tokens[..from_tokens.len() - 1] == tokens[..tokens.len() - 1];
            let (from_at, path_at) = match (from_position, now) {
                (Some(gone), Some(now)) if same_parent && now < gone => (Some(gone - 1), Some(now)),
                (Some(gone), Some(now)) if same_parent => (Some(gone), Some(now + 1)),
                positions => positions,
            };
            let restored_path = match from_position {
                // `from` was an array element: indices after it along `path` moved down by one.
                None => path_before_removal(&tokens, &from_tokens),
                Some(_) => None,
            };
            let restored_path = restored_path.unwrap_or_else(|| path.clone());
            drop(tokens);
            journal.push(
                PatchOp::Add {
                    path: restored_path,
                    value: old,
                },
                path_at,
            );
            journal.push(
                PatchOp::Move {
                    from: path,
                    path: from,
                },
                from_at,
            );
        }
        Insertion::Element(i) => journal.push(
            PatchOp::Move {
                from: concrete(path, i),
                path: from,
            },
            from_position,
        ),
        Insertion::Member => journal.push(
            PatchOp::Move {
                from: path,
                path: from,
            },
            from_position,
        ),
    }
    Ok(())
}

/// `path` (read after the array element `from` left) as it reads with `from` back in place:
/// `None` when taking `from` out shifted no index along `path`.
fn path_before_removal(path: &[Cow<'_, str>], from: &[Cow<'_, str>]) -> Option<String> {
    let (removed, array) = from.split_last()?;
    let removed: usize = removed.parse().ok()?;
    let step: usize = path.get(array.len())?.parse().ok()?;
    if !path.starts_with(array) || step < removed {
        return None;
    }
    let mut shifted = pointer(path[..array.len()].iter().map(|t| t.as_ref()));
    push_token(&mut shifted, &(step + 1).to_string());
    for token in &path[array.len() + 1..] {
        push_token(&mut shifted, token);
    }
    Some(shifted)
}

/// What an insertion did at its target.
enum Insertion {
    /// Inserted into an array at this index.
    Element(usize),
    /// Added a new object member.
    Member,
    /// Replaced this value (an existing object member, or the whole document).
    Replaced(Value),
}

/// RFC 6902 `add` at `tokens`. On error the value is handed back and the document is unchanged.
fn insert(
    doc: &mut Value,
    tokens: &[Cow<'_, str>],
    value: Value,
    position: Option<usize>,
) -> Result<Insertion, (String, Value)> {
    let Some((last, parent_tokens)) = tokens.split_last() else {
        return Ok(Insertion::Replaced(mem::replace(doc, value)));
    };
    let parent = match walk_mut(doc, parent_tokens) {
        Ok(parent) => parent,
        Err(e) => return Err((e, value)),
    };
    match parent {
        Value::Object(members) => {
            if let Some(slot) = members.get_mut(last.as_ref()) {
                return Ok(Insertion::Replaced(mem::replace(slot, value)));
            }
            match position {
                Some(at) => members.shift_insert(at.min(members.len()), last.to_string(), value),
                None => members.insert(last.to_string(), value),
            };
            Ok(Insertion::Member)
        }
        Value::Array(elements) => match array_index(last, elements.len(), true) {
            Ok(i) => {
                elements.insert(i, value);
                Ok(Insertion::Element(i))
            }
            Err(e) => Err((e, value)),
        },
        other => Err((format!("cannot add to {}", kind(other)), value)),
    }
}

/// Removes the value at `tokens`; returns it and, for an object member, where it stood.
fn remove(doc: &mut Value, tokens: &[Cow<'_, str>]) -> Result<(Value, Option<usize>), String> {
    let Some((last, parent_tokens)) = tokens.split_last() else {
        return Err("cannot remove the whole document".into());
    };
    match walk_mut(doc, parent_tokens)? {
        Value::Object(members) => {
            let key = last.as_ref();
            let position = members
                .keys()
                .position(|k| k == key)
                .ok_or_else(|| format!("no member {}", quoted(key)))?;
            // `Map::remove` is `swap_remove` under `preserve_order`; the other members keep their order.
            let value = members.shift_remove(key).expect("member found above");
            Ok((value, Some(position)))
        }
        Value::Array(elements) => {
            let i = array_index(last, elements.len(), false)?;
            Ok((elements.remove(i), None))
        }
        other => Err(format!("cannot remove from {}", kind(other))),
    }
}

/// Where the object member `tokens` names stands in its parent, if it is an object member.
fn member_position(doc: &Value, tokens: &[Cow<'_, str>]) -> Option<usize> {
    let (last, parent_tokens) = tokens.split_last()?;
    match walk(doc, parent_tokens).ok()? {
        Value::Object(members) => members.keys().position(|k| k == last.as_ref()),
        _ => None,
    }
}

fn walk<'v>(doc: &'v Value, tokens: &[Cow<'_, str>]) -> Result<&'v Value, String> {
    let mut current = doc;
    for token in tokens {
        current = match current {
            Value::Object(members) => members
                .get(token.as_ref())
                .ok_or_else(|| format!("no member {}", quoted(token)))?,
            Value::Array(elements) => &elements[array_index(token, elements.len(), false)?],
            other => {
                return Err(format!(
                    "cannot look up {} in {}",
                    quoted(token),
                    kind(other)
                ))
            }
        };
    }
    Ok(current)
}

fn walk_mut<'v>(doc: &'v mut Value, tokens: &[Cow<'_, str>]) -> Result<&'v mut Value, String> {
    let mut current = doc;
    for token in tokens {
        current = match current {
            Value::Object(members) => members
                .get_mut(token.as_ref())
                .ok_or_else(|| format!("no member {}", quoted(token)))?,
            Value::Array(elements) => {
                let i = array_index(token, elements.len(), false)?;
                &mut elements[i]
            }
            other => {
                return Err(format!(
                    "cannot look up {} in {}",
                    quoted(token),
                    kind(other)
                ))
            }
        };
    }
    Ok(current)
}

/// SPEC E3: a value of container depth d inserted under `k` tokens sits at depth k + d.
fn check_depth(k: usize, value: &Value, max_depth: Option<usize>) -> Result<(), String> {
    let Some(max_depth) = max_depth else {
        return Ok(());
    };
    let too_deep = match max_depth.checked_sub(k) {
        None => true,
        Some(room) => depth_exceeds(value, room),
    };
    if too_deep {
        Err(format!("{DEPTH_REFUSAL}{max_depth}"))
    } else {
        Ok(())
    }
}

/// Whether `value`'s container depth exceeds `limit`; looks no deeper than `limit + 1` levels.
fn depth_exceeds(value: &Value, limit: usize) -> bool {
    let mut pending = vec![(value, 0usize)];
    while let Some((value, depth)) = pending.pop() {
        let children: &mut dyn Iterator<Item = &Value> = match value {
            Value::Array(elements) => &mut elements.iter(),
            Value::Object(members) => &mut members.values(),
            _ => continue,
        };
        if depth == limit {
            return true;
        }
        pending.extend(children.map(|child| (child, depth + 1)));
    }
    false
}

/// `path` with a final `-` (append) replaced by the index it stood for.
fn concrete(path: String, index: usize) -> String {
    match path.strip_suffix("/-") {
        Some(parent) => format!("{parent}/{index}"),
        None => path,
    }
}

fn at(role: &str, pointer: &str, message: String) -> String {
    format!("{role} {}: {message}", quoted(pointer))
}

fn quoted(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ops(v: Value) -> Vec<PatchOp> {
        parse_patch(&v).expect("valid patch")
    }

    fn text(v: &Value) -> String {
        serde_json::to_string(v).unwrap()
    }

    /// Applies `patch`, checks the result, then undoes it both ways: exactly with `Applied::undo`,
    /// and JSON-equal with plain `apply_patch(inverse)`.
    fn round_trip(doc: Value, patch: Value, expected: Value) -> Applied {
        let mut patched = doc.clone();
        let applied = apply_patch(&mut patched, &ops(patch), 128).expect("applies");
        assert_eq!(patched, expected);

        let mut undone = patched.clone();
        applied.undo(&mut undone, 128).expect("undo applies");
        assert_eq!(
            text(&undone),
            text(&doc),
            "undo restores the document exactly"
        );

        let mut inverted = patched.clone();
        apply_patch(&mut inverted, &applied.inverse, 128).expect("inverse applies");
        assert!(
            json_equal(&inverted, &doc),
            "inverse gives {inverted} instead of {doc}"
        );
        applied
    }

    #[test]
    fn l9_inverse_of_each_op_restores_the_document() {
        let doc = json!({"a": 1, "b": [1, 2, 3], "c": {"x": true, "y": null}, "d": "s"});
        round_trip(
            doc.clone(),
            json!([{"op": "add", "path": "/e", "value": {"z": 1}}]),
            json!({"a": 1, "b": [1, 2, 3], "c": {"x": true, "y": null}, "d": "s", "e": {"z": 1}}),
        );
        round_trip(
            doc.clone(),
            json!([{"op": "add", "path": "/a", "value": 2}]),
            json!({"a": 2, "b": [1, 2, 3], "c": {"x": true, "y": null}, "d": "s"}),
        );
        round_trip(
            doc.clone(),
            json!([{"op": "add", "path": "/b/-", "value": 4}, {"op": "add", "path": "/b/0", "value": 0}]),
            json!({"a": 1, "b": [0, 1, 2, 3, 4], "c": {"x": true, "y": null}, "d": "s"}),
        );
        round_trip(
            doc.clone(),
            json!([{"op": "remove", "path": "/a"}, {"op": "remove", "path": "/c/x"}, {"op": "remove", "path": "/b/1"}]),
            json!({"b": [1, 3], "c": {"y": null}, "d": "s"}),
        );
        round_trip(
            doc.clone(),
            json!([{"op": "replace", "path": "/c", "value": [1]}]),
            json!({"a": 1, "b": [1, 2, 3], "c": [1], "d": "s"}),
        );
        round_trip(
            doc.clone(),
            json!([{"op": "move", "from": "/a", "path": "/c/a"}]),
            json!({"b": [1, 2, 3], "c": {"x": true, "y": null, "a": 1}, "d": "s"}),
        );
        round_trip(
            doc.clone(),
            json!([{"op": "move", "from": "/a", "path": "/d"}]),
            json!({"b": [1, 2, 3], "c": {"x": true, "y": null}, "d": 1}),
        );
        round_trip(
            doc.clone(),
            json!([{"op": "move", "from": "/d", "path": "/a"}]),
            json!({"a": "s", "b": [1, 2, 3], "c": {"x": true, "y": null}}),
        );
        round_trip(
            doc.clone(),
            json!([{"op": "move", "from": "/b/0", "path": "/b/-"}]),
            json!({"a": 1, "b": [2, 3, 1], "c": {"x": true, "y": null}, "d": "s"}),
        );
        round_trip(
            doc.clone(),
            json!([{"op": "move", "from": "/b/2", "path": "/b/0"}]),
            json!({"a": 1, "b": [3, 1, 2], "c": {"x": true, "y": null}, "d": "s"}),
        );
        round_trip(
            doc.clone(),
            json!([{"op": "move", "from": "/c", "path": "/b/1"}]),
            json!({"a": 1, "b": [1, {"x": true, "y": null}, 2, 3], "d": "s"}),
        );
        round_trip(
            doc.clone(),
            json!([{"op": "copy", "from": "/c", "path": "/b/-"}, {"op": "copy", "from": "/b", "path": "/a"}]),
            json!({"a": [1, 2, 3, {"x": true, "y": null}], "b": [1, 2, 3, {"x": true, "y": null}], "c": {"x": true, "y": null}, "d": "s"}),
        );
        let root = round_trip(
            doc.clone(),
            json!([{"op": "replace", "path": "", "value": [1]}]),
            json!([1]),
        );
        assert!(root.replaced_root);
        let root = round_trip(
            doc.clone(),
            json!([{"op": "move", "from": "/c", "path": ""}]),
            json!({"x": true, "y": null}),
        );
        assert!(root.replaced_root);
        // Moving to an ancestor: no `move` can undo it.
        round_trip(
            json!({"a": {"b": [1], "c": 2}, "z": 0}),
            json!([{"op": "move", "from": "/a/b", "path": "/a"}]),
            json!({"a": [1], "z": 0}),
        );
        round_trip(
            json!([[5, 6]]),
            json!([{"op": "move", "from": "/0/0", "path": "/0"}]),
            json!([5, [6]]),
        );
        // Overwriting a member behind the array element that left: the undo re-adds it at "/2/~1".
        round_trip(
            json!([2, {"c": "y"}, {"/": 1.5, "~": null}]),
            json!([{"op": "move", "from": "/0", "path": "/1/~1"}]),
            json!([{"c": "y"}, {"/": 2, "~": null}]),
        );
        // `from` leaving the array shifts the index in `path`.
        round_trip(
            json!([[1], 2, {"k": 0}]),
            json!([{"op": "move", "from": "/0", "path": "/1/x"}]),
            json!([2, {"k": 0, "x": [1]}]),
        );
    }

    #[test]
    fn l9_inverse_when_order_is_kept_restores_text_through_plain_apply() {
        let doc = json!({"a": 1, "b": {"c": 2}, "z": [1]});
        let patch = ops(json!([
            {"op": "add", "path": "/n", "value": 1},
            {"op": "replace", "path": "/b/c", "value": 3},
            {"op": "add", "path": "/a", "value": 5},
            {"op": "add", "path": "/z/0", "value": 0},
            {"op": "remove", "path": "/n"}
        ]));
        let mut patched = doc.clone();
        let applied = apply_patch(&mut patched, &patch, 128).unwrap();
        apply_patch(&mut patched, &applied.inverse, 128).unwrap();
        assert_eq!(text(&patched), text(&doc));
    }

    #[test]
    fn l9_undo_puts_removed_and_moved_members_back_in_place() {
        let doc = json!({"a": 1, "b": 2, "c": 3, "d": {"e": 4, "f": 5}});
        round_trip(
            doc.clone(),
            json!([{"op": "remove", "path": "/b"}, {"op": "remove", "path": "/a"}]),
            json!({"c": 3, "d": {"e": 4, "f": 5}}),
        );
        // The target `c` is overwritten in place; undo must bring `a` and `c` back at their places.
        round_trip(
            doc.clone(),
            json!([{"op": "move", "from": "/a", "path": "/c"}]),
            json!({"b": 2, "c": 1, "d": {"e": 4, "f": 5}}),
        );
        round_trip(
            doc.clone(),
            json!([{"op": "move", "from": "/c", "path": "/a"}]),
            json!({"a": 3, "b": 2, "d": {"e": 4, "f": 5}}),
        );
        round_trip(
            doc.clone(),
            json!([{"op": "move", "from": "/d/e", "path": "/b"}]),
            json!({"a": 1, "b": 4, "c": 3, "d": {"f": 5}}),
        );
        let mut patched = doc.clone();
        let applied = apply_patch(
            &mut patched,
            &ops(json!([{"op": "remove", "path": "/b"}])),
            128,
        )
        .unwrap();
        assert_eq!(
            text(&patched),
            r#"{"a":1,"c":3,"d":{"e":4,"f":5}}"#,
            "removal keeps the others' order"
        );
        let redo = applied.undo(&mut patched, 128).unwrap();
        assert_eq!(
            redo.patches,
            vec![PatchOp::Add {
                path: "/b".into(),
                value: json!(2)
            }]
        );
        assert_eq!(redo.inverse, vec![PatchOp::Remove { path: "/b".into() }]);
    }

    #[test]
    fn e3_failure_mid_patch_restores_the_document_exactly() {
        let doc = json!({"a": 1, "b": [1, 2, 3], "c": {"x": true, "y": null}, "d": "s"});
        let before = text(&doc);
        let failing = [
            (
                json!([{"op": "remove", "path": "/a"}, {"op": "add", "path": "/b/1", "value": 9},
                    {"op": "move", "from": "/c/x", "path": "/d"}, {"op": "copy", "from": "/b", "path": "/c/y"},
                    {"op": "replace", "path": "", "value": 1}, {"op": "test", "path": "", "value": 2}]),
                5,
            ),
            (
                json!([{"op": "remove", "path": "/c/x"}, {"op": "move", "from": "/a", "path": "/nope/x"}]),
                1,
            ),
            (
                json!([{"op": "move", "from": "/b/0", "path": "/b/-"}, {"op": "remove", "path": "/b/3"}]),
                1,
            ),
            (
                json!([{"op": "add", "path": "/b/-", "value": 1}, {"op": "remove", "path": ""}]),
                1,
            ),
            (
                json!([{"op": "move", "from": "/a", "path": "/d"}, {"op": "add", "path": "/a/b", "value": 1}]),
                1,
            ),
            (
                json!([{"op": "move", "from": "/c", "path": ""}, {"op": "test", "path": "/x", "value": false}]),
                1,
            ),
        ];
        for (patch, index) in failing {
            let mut d = doc.clone();
            let err = apply_patch(&mut d, &ops(patch.clone()), 128).unwrap_err();
            assert_eq!(err.index, index, "{patch}: {err}");
            assert_eq!(text(&d), before, "{patch}");
        }
    }

    #[test]
    fn e3_depth_limit_counts_the_root_as_level_one() {
        let mut doc = json!({"a": {}});
        // {"a": {"b": {}}} is 3 deep.
        assert!(apply_patch(
            &mut doc,
            &ops(json!([{"op": "add", "path": "/a/b", "value": {}}])),
            3
        )
        .is_ok());
        let deeper = ops(
            json!([{"op": "add", "path": "/n", "value": 1}, {"op": "add", "path": "/a/c", "value": {"d": []}}]),
        );
        let err = apply_patch(&mut doc, &deeper, 3).unwrap_err();
        assert_eq!(err.index, 1);
        assert!(err.message.contains("depth"), "{err}");
        assert_eq!(text(&doc), r#"{"a":{"b":{}}}"#);
        // A scalar under the deepest container is fine; moving a container down is not.
        assert!(apply_patch(
            &mut doc,
            &ops(json!([{"op": "add", "path": "/a/b/s", "value": 1}])),
            3
        )
        .is_ok());
        let err = apply_patch(
            &mut doc,
            &ops(json!([{"op": "copy", "from": "/a", "path": "/a/b/t"}])),
            3,
        )
        .unwrap_err();
        assert!(err.message.contains("depth"));
        let err = apply_patch(&mut doc, &ops(json!([{"op": "move", "from": "/a/b", "path": "/a/b2"}, {"op": "replace", "path": "", "value": [[[[]]]]}])), 3).unwrap_err();
        assert_eq!((err.index, err.message.contains("depth")), (1, true));
        assert_eq!(text(&doc), r#"{"a":{"b":{"s":1}}}"#);
        let mut scalar = json!(1);
        assert!(apply_patch(
            &mut scalar,
            &ops(json!([{"op": "replace", "path": "", "value": 2}])),
            0
        )
        .is_ok());
        assert!(apply_patch(
            &mut scalar,
            &ops(json!([{"op": "replace", "path": "", "value": []}])),
            0
        )
        .is_err());
    }

    #[test]
    fn parse_errors_say_what_is_wrong() {
        let cases = [
            (json!({"op": "add", "path": "/a"}), "missing `value`"),
            (json!({"op": "replace", "path": "/a"}), "missing `value`"),
            (json!({"op": "test", "path": "/a"}), "missing `value`"),
            (json!({"op": "foo", "path": "/a"}), "unknown op \"foo\""),
            (json!({"op": "add", "path": null, "value": 1}), "`path` must be a string"),
            (json!({"op": "add", "value": 1}), "missing `path`"),
            (json!({"op": "move", "path": "/a"}), "missing `from`"),
            (json!({"op": "copy", "from": 1, "path": "/a"}), "`from` must be a string"),
            (json!({"path": "/a"}), "missing `op`"),
            (json!({"op": 1, "path": "/a"}), "`op` must be a string"),
            (json!([]), "an operation must be a JSON object, not an array"),
            (json!({"op": "remove", "path": "a"}), "`path` is not a JSON Pointer: \"a\" must be empty or start with '/'"),
            (json!({"op": "remove", "path": "/a~2"}), "`path` is not a JSON Pointer: bad escape in token \"a~2\": `~` must be followed by 0 or 1"),
        ];
        for (op, message) in cases {
            assert_eq!(PatchOp::from_value(&op), Err(message.to_string()), "{op}");
        }
        let err =
            parse_patch(&json!([{"op": "remove", "path": "/a"}, {"op": "add", "path": "/a"}]))
                .unwrap_err();
        assert_eq!(
            err,
            PatchError {
                index: 1,
                message: "missing `value`".into()
            }
        );
        assert_eq!(err.to_string(), "operation 1: missing `value`");
        assert_eq!(parse_patch(&json!({})).unwrap_err().index, 0);
        // Unknown members are ignored (RFC 6902 §4); `null` is a value.
        assert_eq!(
            PatchOp::from_value(&json!({"op": "add", "path": "", "value": null, "x": 1})),
            Ok(PatchOp::Add {
                path: String::new(),
                value: Value::Null
            })
        );
    }

    #[test]
    fn pointers_and_array_indices_follow_rfc_6901() {
        assert_eq!(parse_pointer("").unwrap(), Vec::<Cow<str>>::new());
        assert_eq!(parse_pointer("/").unwrap(), vec![""]);
        assert_eq!(
            parse_pointer("/a~1b/~0/c~01").unwrap(),
            vec!["a/b", "~", "c~1"]
        );
        assert!(parse_pointer("a").is_err());
        assert!(parse_pointer("/~").is_err());
        assert_eq!(pointer(["a/b", "~"]), "/a~1b/~0");
        assert_eq!(array_index("0", 1, false), Ok(0));
        assert_eq!(array_index("1", 1, true), Ok(1));
        assert_eq!(array_index("-", 3, true), Ok(3));
        for (token, insert) in [
            ("1", false),
            ("2", true),
            ("-", false),
            ("01", true),
            ("00", true),
            ("1e0", true),
            ("+1", true),
            ("-1", true),
            ("", true),
            ("99999999999999999999999", true),
        ] {
            assert!(array_index(token, 1, insert).is_err(), "{token}");
        }
    }

    #[test]
    fn test_compares_numbers_by_value_and_objects_regardless_of_order() {
        assert!(json_equal(
            &json!([1, {"a": 2.0, "b": null}]),
            &json!([1.0, {"b": null, "a": 2}])
        ));
        assert!(!json_equal(&json!(1), &json!("1")));
        assert!(!json_equal(
            &json!(9007199254740993u64),
            &json!(9007199254740992.0)
        ));
        assert!(!json_equal(&json!({"a": 1}), &json!({"a": 1, "b": 1})));
        let mut doc = json!({"a": [1, 2]});
        let applied = apply_patch(
            &mut doc,
            &ops(json!([
                {"op": "test", "path": "/a/1", "value": 2.0},
                {"op": "add", "path": "/a/-", "value": 3}
            ])),
            128,
        )
        .unwrap();
        // SPEC E1: no `test` in events; `-` stays as given.
        assert_eq!(
            applied.patches,
            vec![PatchOp::Add {
                path: "/a/-".into(),
                value: json!(3)
            }]
        );
        assert_eq!(
            applied.inverse,
            vec![PatchOp::Remove {
                path: "/a/2".into()
            }]
        );
        assert!(!applied.replaced_root);
    }

    #[test]
    fn move_rules() {
        let mut doc = json!({"a": {"b": 1}, "c": 2});
        let err = apply_patch(
            &mut doc,
            &ops(json!([{"op": "move", "from": "/a", "path": "/a/b/x"}])),
            128,
        )
        .unwrap_err();
        assert!(err.message.contains("own child"), "{err}");
        let same = apply_patch(
            &mut doc,
            &ops(json!([{"op": "move", "from": "/a", "path": "/a"}])),
            128,
        )
        .unwrap();
        assert!(same.inverse.is_empty());
        assert!(apply_patch(
            &mut doc,
            &ops(json!([{"op": "move", "from": "/x", "path": "/x"}])),
            128
        )
        .is_err());
        // "/a" is not a parent of "/ab".
        apply_patch(
            &mut doc,
            &ops(json!([{"op": "move", "from": "/a", "path": "/ab"}])),
            128,
        )
        .unwrap();
        assert_eq!(text(&doc), r#"{"c":2,"ab":{"b":1}}"#);
    }

    #[test]
    fn cost_follows_the_change_not_the_document() {
        let mut entities = Map::new();
        for i in 0..100_000 {
            entities.insert(
                format!("e{i}"),
                json!({"id": i, "name": "x", "tags": [1, 2, 3]}),
            );
        }
        let mut doc = json!({"entities": entities});
        let start = std::time::Instant::now();
        for i in 0..200 {
            let patch = [
                PatchOp::Replace {
                    path: format!("/entities/e{i}/name"),
                    value: json!("y"),
                },
                PatchOp::Add {
                    path: format!("/entities/n{i}"),
                    value: json!({"id": i}),
                },
                PatchOp::Test {
                    path: format!("/entities/e{i}/id"),
                    value: json!(-1),
                },
            ];
            assert!(apply_patch(&mut doc, &patch, 128).is_err());
        }
        // A whole-document clone per patch would be ~100x slower than this bound, even in debug builds.
        assert!(
            start.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(doc["entities"].as_object().unwrap().len(), 100_000);
        assert_eq!(doc["entities"]["e0"]["name"], "x");
    }
}
