//! RFC 6902 JSON Patch: the operation type every event carries, and an all-or-nothing
//! application that records its inverse (SPEC L9, E1, E3).

use serde::Serialize;
use serde_json::Value;

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
#[derive(Clone, Debug, PartialEq)]
pub struct PatchError { pub index: usize, pub message: String }
impl std::fmt::Display for PatchError { fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { write!(f, "operation {}: {}", self.index, self.message) } }
pub struct Applied { pub patches: Vec<PatchOp>, pub inverse: Vec<PatchOp>, pub replaced_root: bool }
impl PatchOp { pub fn from_value(_v: &Value) -> Result<PatchOp, String> { todo!() } pub fn path(&self) -> &str { todo!() } }
pub fn parse_patch(_v: &Value) -> Result<Vec<PatchOp>, PatchError> { todo!() }
pub fn apply_patch(_d: &mut Value, _o: &[PatchOp], _m: usize) -> Result<Applied, PatchError> { todo!() }
