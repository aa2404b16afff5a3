use serde_json::Value;
use crate::config::EntityAdapterConfig;
pub fn normalize(_c: &EntityAdapterConfig, d: Value) -> Result<Value, String> { Ok(d) }
