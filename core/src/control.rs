//! How the engine side steers a running stream driver, in the shapes every built-in transport
//! loops over: a stop (L7) and the host's commands (T1 `reconnect`, T2 `send`).

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::error::Error;
use crate::transport::{CommandReceiver, StreamCommand};

/// The host's commands; once every sender is gone it waits forever instead of ending the loop.
pub(crate) struct Commands {
    rx: CommandReceiver,
    open: bool,
}

impl Commands {
    pub(crate) fn new(rx: CommandReceiver) -> Self {
        Commands { rx, open: true }
    }

    pub(crate) async fn next(&mut self) -> StreamCommand {
        if self.open {
            if let Some(command) = self.rx.recv().await {
                return command;
            }
            self.open = false;
        }
        std::future::pending().await
    }
}

/// A command while no connection is open: a send fails at once (T2), nothing is queued.
pub(crate) fn refuse_send(key: &str, command: StreamCommand) {
    if let StreamCommand::Send { done, .. } = command {
        let _ = done.send(Err(Error::NotConnected(key.to_owned())));
    }
}

/// Cancellation without a lock per poll: `CancellationToken`'s future takes a mutex every time
/// it is polled, and the read loop polls its shutdown branch on every wake-up. A watcher task
/// turns the token into a oneshot, whose poll is a lock-free atomic check.
pub(crate) struct Stop {
    rx: oneshot::Receiver<()>,
    stopped: bool,
}

impl Stop {
    pub(crate) fn new(shutdown: CancellationToken) -> Self {
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let mut tx = tx;
            tokio::select! {
                _ = shutdown.cancelled() => { let _ = tx.send(()); }
                // The driver finished or was dropped: nothing left to tell.
                _ = tx.closed() => {}
            }
        });
        Stop { rx, stopped: false }
    }

    /// Completes once shutdown was requested (or the watcher is gone, which only happens when
    /// the runtime shuts down — a stop either way).
    pub(crate) async fn wait(&mut self) {
        if !self.stopped {
            let _ = (&mut self.rx).await;
            self.stopped = true;
        }
    }
}
