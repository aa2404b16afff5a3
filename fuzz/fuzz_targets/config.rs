//! The config parser (SPEC §2): any text is a config or a `ConfigError` with a message, never a
//! panic; an accepted config builds an engine.
#![no_main]

use std::collections::HashMap;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use livecache_engine::{Config, Engine};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match Config::from_json_text(text) {
        Ok(config) => {
            // Hooks are absent, so configs that need one (a `stream` without `apply`) are refused
            // here, as a client refuses them: with an error, not a panic.
            if let Err(e) = Engine::<u32>::new(Arc::new(config), HashMap::new()) {
                assert!(!e.to_string().is_empty());
            }
        }
        Err(e) => assert!(!e.to_string().is_empty(), "a refusal says why"),
    }
});
