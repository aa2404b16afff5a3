use serde_json::Value;
use crate::config::{ApplyRule, EntityAdapterConfig};
use crate::patch::PatchOp;
#[derive(Debug, PartialEq)]
pub enum Change { Unchanged, Patch(Vec<PatchOp>), Replaced }
pub fn apply_rule(_r: &ApplyRule, _a: Option<&EntityAdapterConfig>, _d: &mut Value, _m: Value, _x: usize) -> Result<Change, String> { todo!() }
