//! `livecache watch`: every event of one subscription as one JSON line on stdout (SPEC §5 shape).
//! Ends after `--duration`, on SIGINT/SIGTERM, or when stdout closes — unsubscribed and closed.

use std::io::Write;
use std::process::ExitCode;
use std::sync::mpsc;

use livecache_core::{Client, Config, Hooks};

use crate::args::WatchArgs;

enum Stop {
    StdoutClosed,
    Signal,
}

/// SPEC §7: `watch` ends when stdout closes, also while no event is due. A pipe's write end
/// reports POLLERR once its reader is gone, so a thread waits for exactly that.
fn watch_stdout(stop: mpsc::Sender<Stop>) {
    std::thread::spawn(move || loop {
        let mut fd = libc::pollfd { fd: libc::STDOUT_FILENO, events: 0, revents: 0 };
        // SAFETY: one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut fd, 1, -1) };
        if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        if n < 0 || fd.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
            let _ = stop.send(Stop::StdoutClosed);
            return;
        }
    });
}

pub fn run(args: WatchArgs) -> ExitCode {
    let fail = |message: String| {
        eprintln!("livecache watch: {message}");
        ExitCode::from(2)
    };
    let text = match std::fs::read_to_string(&args.config) {
        Ok(t) => t,
        Err(e) => return fail(format!("cannot read {}: {e}", args.config.display())),
    };
    let config = match Config::from_json_text(&text) {
        Ok(c) => c,
        Err(e) => return fail(e.to_string()),
    };
    let arg = match args.arg.as_deref().map(livecache_core::json::parse_host) {
        None => None,
        Some(Ok(v)) => Some(v),
        Some(Err(e)) => return fail(format!("ARG_JSON is not valid JSON: {e}")),
    };
    let client = match Client::new(config, Hooks::new()) {
        Ok(c) => c,
        Err(e) => return fail(e.to_string()),
    };
    let (stop_tx, stop_rx) = mpsc::channel::<Stop>();
    let on_closed = stop_tx.clone();
    let sub = client.subscribe(&args.endpoint, arg, move |event| {
        let mut out = std::io::stdout().lock();
        if writeln!(out, "{}", event.to_json()).and_then(|_| out.flush()).is_err() {
            let _ = on_closed.send(Stop::StdoutClosed);
        }
    });
    let sub = match sub {
        Ok(s) => s,
        Err(e) => return fail(e.to_string()),
    };
    watch_stdout(stop_tx.clone());
    let signals = client.runtime_handle();
    signals.spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
            return;
        };
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        let _ = stop_tx.send(Stop::Signal);
    });
    let stopped = match args.duration {
        Some(d) => stop_rx.recv_timeout(d).ok(),
        None => stop_rx.recv().ok(),
    };
    sub.unsubscribe();
    client.close();
    match stopped {
        Some(Stop::StdoutClosed) | Some(Stop::Signal) | None => ExitCode::SUCCESS,
    }
}
