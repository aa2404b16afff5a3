//! `livecache`: `demo` runs the chat scenario on an embedded 127.0.0.1 server and shows the live
//! events; `watch` subscribes with any config and prints every event as one JSON line (SPEC §7).

mod args;
mod demo;
mod render;
mod watch;

use std::process::ExitCode;

const USAGE: &str = "usage:
  livecache demo [--duration SECS] [--json] [--graphql]
  livecache watch --config FILE ENDPOINT [ARG_JSON] [--duration SECS]";

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match argv.first().map(String::as_str) {
        Some("demo") => args::DemoArgs::parse(&argv[1..]).map(demo::run),
        Some("watch") => args::WatchArgs::parse(&argv[1..]).map(watch::run),
        Some("-h") | Some("--help") | Some("help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some(other) => Err(format!("unknown command {other:?}")),
        None => Err("a command is needed".into()),
    };
    match outcome {
        Ok(code) => code,
        Err(message) => {
            // SPEC §7: one line; `livecache --help` has the usage.
            eprintln!("livecache: {message} (see `livecache --help`)");
            ExitCode::from(2)
        }
    }
}
