//! The host's commands to one running stream (T1 `reconnect`, T2 `send`): a queue that costs
//! nothing until a command is sent. Every streaming entry has one, and a tokio channel allocates
//! a 32-slot block for each up front, for commands most entries never get (measured with the
//! `transports` bench: an entry on a shared socket went from 7.3 KB to 5.9 KB with this queue).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

struct Mailbox<T> {
    queue: Mutex<VecDeque<T>>,
    notify: Notify,
    senders: AtomicUsize,
    receiver_gone: AtomicBool,
}

/// The host's side; cloneable.
pub struct Sender<T>(Arc<Mailbox<T>>);

/// The stream driver's side.
pub struct Receiver<T>(Arc<Mailbox<T>>);

/// A new mailbox.
pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let mailbox = Arc::new(Mailbox {
        queue: Mutex::new(VecDeque::new()),
        notify: Notify::new(),
        senders: AtomicUsize::new(1),
        receiver_gone: AtomicBool::new(false),
    });
    (Sender(mailbox.clone()), Receiver(mailbox))
}

impl<T> Sender<T> {
    /// Queues `command`; `Err` gives it back when the stream driver is gone.
    pub fn send(&self, command: T) -> Result<(), T> {
        if self.0.receiver_gone.load(Ordering::Acquire) {
            return Err(command);
        }
        self.0.queue.lock().push_back(command);
        // A permit is stored when the driver is not waiting yet: no wake-up is lost.
        self.0.notify.notify_one();
        Ok(())
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.0.senders.fetch_add(1, Ordering::AcqRel);
        Sender(self.0.clone())
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        if self.0.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.notify.notify_one();
        }
    }
}

impl<T> Receiver<T> {
    /// The next command, in the order sent; `None` once every sender is gone and the queue is
    /// empty.
    pub async fn recv(&mut self) -> Option<T> {
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

impl<T> Drop for Receiver<T> {
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
        let (tx, mut rx) = channel::<u32>();
        let tx2 = tx.clone();
        tx.send(1).unwrap();
        tx2.send(2).unwrap();
        assert_eq!(rx.recv().await, Some(1));
        assert_eq!(rx.recv().await, Some(2));
        // A waiting receiver is woken by a send from another task.
        let sender = tokio::spawn(async move {
            tokio::task::yield_now().await;
            tx2.send(3).unwrap();
        });
        assert_eq!(rx.recv().await, Some(3));
        sender.await.unwrap();
        drop(tx);
        assert_eq!(rx.recv().await, None, "every sender gone");
    }

    #[test]
    fn a_send_after_the_receiver_is_gone_comes_back() {
        let (tx, rx) = channel::<u32>();
        drop(rx);
        assert_eq!(tx.send(7), Err(7));
    }
}
