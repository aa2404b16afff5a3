//! Helpers shared by integration tests (`mod support;`): real servers on 127.0.0.1 and waits.
pub mod util;
