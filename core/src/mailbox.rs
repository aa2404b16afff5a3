//! The host's commands to one running stream (T1 `reconnect`, T2 `send`): a queue that costs
//! nothing until a command is sent. Every streaming entry has one, and a tokio channel allocates
//! a 32-slot block for each up front, for commands most entries never get (measured with the
//! `transports` bench: an entry on a shared socket went from 7.3 KB to 5.9 KB with this queue).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::transport::StreamCommand;

struct Mailbox {
    queue: Mutex<VecDeque<StreamCommand>>,
    notify: Notify,
    senders: AtomicUsize,
    receiver_gone: AtomicBool,
}

/// The host's side; cloneable.
pub struct CommandSender(Arc<Mailbox>);

/// The stream driver's side.
pub struct CommandReceiver(Arc<Mailbox>);

/// A new mailbox.
pub fn command_channel() -> (CommandSender, CommandReceiver) {
    let mailbox = Arc::new(Mailbox {
        queue: Mutex::new(VecDeque::new()),
        notify: Notify::new(),
        senders: AtomicUsize::new(1),
        receiver_gone: AtomicBool::new(false),
    });
    (CommandSender(mailbox.clone()), CommandReceiver(mailbox))
}

impl CommandSender {
    /// Queues `command`; `Err` gives it back when the stream driver is gone.
    pub fn send(&self, command: StreamCommand) -> Result<(), StreamCommand> {
        if self.0.receiver_gone.load(Ordering::Acquire) {
            return Err(command);
        }
        self.0.queue.lock().push_back(command);
        // A permit is stored when the driver is not waiting yet: no wake-up is lost.
        self.0.notify.notify_one();
        Ok(())
    }
}

impl Clone for CommandSender {
    fn clone(&self) -> Self {
        self.0.senders.fetch_add(1, Ordering::AcqRel);
        CommandSender(self.0.clone())
    }
}

impl Drop for CommandSender {
    fn drop(&mut self) {
        if self.0.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.notify.notify_one();
        }
    }
}

impl CommandReceiver {
    /// The next command, in the order sent; `None` once every sender is gone and the queue is
    /// empty.
    pub async fn recv(&mut self) -> Option<StreamCommand> {
        loop {
            if let Some(command) = self.0.queue.lock().pop_front() {
                return Some(command);
            }
            if self.0.senders.load(Ordering::Acquire) == 0 {
                return None;
            }
            self.0.notify.notified().await;
        }
    }
}

impl Drop for CommandReceiver {
    fn drop(&mut self) {
        self.0.receiver_gone.store(true, Ordering::Release);
        // Commands still queued get their answer: a send's `done` sender drops, which its
        // caller reads as "not connected".
        self.0.queue.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn commands_arrive_in_order_and_the_end_is_seen() {
        let (tx, mut rx) = command_channel();
        let tx2 = tx.clone();
        tx.send(StreamCommand::Reconnect).unwrap();
        let (done, _answer) = tokio::sync::oneshot::channel();
        tx2.send(StreamCommand::Send { text: "a".into(), done }).unwrap();
        assert!(matches!(rx.recv().await, Some(StreamCommand::Reconnect)));
        assert!(matches!(rx.recv().await, Some(StreamCommand::Send { .. })));
        // A waiting receiver is woken by a send from another task.
        let sender = tokio::spawn(async move {
            tokio::task::yield_now().await;
            tx2.send(StreamCommand::Reconnect).unwrap();
        });
        assert!(matches!(rx.recv().await, Some(StreamCommand::Reconnect)));
        sender.await.unwrap();
        drop(tx);
        assert!(rx.recv().await.is_none(), "every sender gone");
    }

    #[test]
    fn a_send_after_the_receiver_is_gone_comes_back() {
        let (tx, rx) = command_channel();
        drop(rx);
        assert!(matches!(tx.send(StreamCommand::Reconnect), Err(StreamCommand::Reconnect)));
    }
}
