//! How a host learns that an operation ended, and how the engine waits for a host's answer: the
//! one completion mechanism every binding uses (`loaded()` L2, a lifecycle's `cacheDataLoaded` /
//! `cacheEntryRemoved` L2/L3, `mutate` W1, `send` T2), so no binding runs futures or a runtime of
//! its own.
//!
//! A [`Completion`] is a future (Rust callers `.await` it) that can also hand its result to a
//! callback ([`Completion::on_done`], for a Python future, a JavaScript promise or a C callback)
//! or be waited for on a host thread ([`Completion::wait`]). The callback runs exactly once: a
//! result the engine dropped unsettled (the client closed) arrives as [`Error::Closed`], so no
//! host promise waits forever.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;

use futures_util::future::{BoxFuture, FutureExt};
use tokio::runtime::Handle;
use tokio::sync::oneshot;

use crate::error::{Error, Result};

/// The outcome of one engine operation, settled once.
#[must_use = "a completion does nothing unless awaited, waited for or given a callback"]
pub struct Completion<T> {
    future: BoxFuture<'static, Result<T>>,
    /// The client's runtime, which drives the future when a callback waits for it.
    runtime: Handle,
}

impl<T: Send + 'static> Completion<T> {
    pub(crate) fn new(runtime: Handle, future: impl Future<Output = Result<T>> + Send + 'static) -> Completion<T> {
        Completion { future: future.boxed(), runtime }
    }

    /// Calls `done` exactly once with the result: at once, on this thread, when it is already
    /// known (an operation the engine refused, data already loaded); else on an engine thread
    /// when it settles, with no engine lock held; with `Error::Closed` if the client closes
    /// first.
    pub fn on_done(self, done: impl FnOnce(Result<T>) + Send + 'static) {
        let Completion { mut future, runtime } = self;
        if let Some(result) = (&mut future).now_or_never() {
            return done(result);
        }
        let once = Once(Some(Box::new(done)));
        // On a runtime that is shutting down the task is dropped unrun, and `once` with it.
        runtime.spawn(async move { once.run(future.await) });
    }

    /// The same completion with its value converted by `f`.
    pub fn map<U: Send + 'static>(self, f: impl FnOnce(T) -> U + Send + 'static) -> Completion<U> {
        let Completion { future, runtime } = self;
        Completion { future: future.map(|r| r.map(f)).boxed(), runtime }
    }

    /// Like `on_done`, but `done` always runs on one of the client's threads, even when the
    /// result is known already: for a host that promises its callers a callback never runs inside
    /// the call that started the operation (C's `livecache_mutate`).
    pub fn on_done_from_runtime(self, done: impl FnOnce(Result<T>) + Send + 'static) {
        let Completion { future, runtime } = self;
        let once = Once(Some(Box::new(done)));
        runtime.spawn(async move { once.run(future.await) });
    }

    /// Blocks this (host) thread until the result is known. It needs no runtime of its own, so it
    /// also returns after the client is gone. Not from inside an engine callback or hook, which
    /// would wait for itself.
    pub fn wait(self) -> Result<T> {
        let mut future = self.future;
        let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        loop {
            if let Poll::Ready(v) = future.as_mut().poll(&mut cx) {
                return v;
            }
            std::thread::park();
        }
    }
}

impl<T> Future for Completion<T> {
    type Output = Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        self.future.as_mut().poll(cx)
    }
}

type Callback<T> = Box<dyn FnOnce(Result<T>) + Send>;

/// A callback that runs exactly once: with the result, or with `Closed` when dropped unrun.
struct Once<T>(Option<Callback<T>>);

impl<T> Once<T> {
    fn run(mut self, result: Result<T>) {
        if let Some(f) = self.0.take() {
            f(result);
        }
    }
}

impl<T> Drop for Once<T> {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f(Err(Error::Closed));
        }
    }
}

struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// The other direction: a hook the engine called waits for the host's answer. The binding keeps
/// the [`Reply`] with the host call and answers through it from any thread; the engine awaits
/// the [`Answer`].
pub fn reply<T>() -> (Reply<T>, Answer<T>) {
    let (tx, rx) = oneshot::channel();
    (Reply(tx), Answer(rx))
}

/// The sending half of [`reply`]. Dropped unanswered (the host's loop stopped, the interpreter
/// is shutting down), its [`Answer`] resolves to `None`.
pub struct Reply<T>(oneshot::Sender<T>);

impl<T> Reply<T> {
    pub fn send(self, answer: T) {
        // The engine stopped waiting (the client closed): nothing is left to tell.
        let _ = self.0.send(answer);
    }
}

/// The host's answer to one hook call: `None` when its [`Reply`] was dropped unanswered.
pub struct Answer<T>(oneshot::Receiver<T>);

impl<T> Future for Answer<T> {
    type Output = Option<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        Pin::new(&mut self.0).poll(cx).map(|r| r.ok())
    }
}

impl<T> Answer<T> {
    /// Waits on this engine thread for a host answer a synchronous hook (`transformResponse`)
    /// needs, telling the runtime, so its other tasks move to other threads meanwhile.
    pub fn wait_on_engine_thread(self) -> Option<T> {
        let wait = move || self.0.blocking_recv().ok();
        match Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(wait),
            _ => wait(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap()
    }

    #[test]
    fn a_settled_result_reaches_the_callback_on_the_calling_thread() {
        let rt = runtime();
        let (tx, rx) = mpsc::channel();
        let here = std::thread::current().id();
        Completion::new(rt.handle().clone(), async { Ok(7) }).on_done(move |r| tx.send((r.unwrap(), std::thread::current().id())).unwrap());
        assert_eq!(rx.try_recv().unwrap(), (7, here));
    }

    #[test]
    fn on_done_from_runtime_never_calls_back_on_the_calling_thread() {
        let rt = runtime();
        let (tx, rx) = mpsc::channel();
        let here = std::thread::current().id();
        Completion::new(rt.handle().clone(), async { Ok(7) }).on_done_from_runtime(move |r| tx.send((r.unwrap(), std::thread::current().id())).unwrap());
        let (value, thread) = rx.recv().unwrap();
        assert_eq!(value, 7);
        assert_ne!(thread, here, "a settled result still goes through the runtime");
    }

    #[test]
    fn a_later_result_reaches_the_callback_from_the_runtime() {
        let rt = runtime();
        let (reply, answer) = reply::<u32>();
        let (tx, rx) = mpsc::channel();
        Completion::new(rt.handle().clone(), async move { answer.await.ok_or(Error::Closed) }).on_done(move |r| tx.send(r.unwrap()).unwrap());
        assert!(rx.try_recv().is_err());
        reply.send(3);
        assert_eq!(rx.recv().unwrap(), 3);
    }

    #[test]
    fn a_completion_dropped_by_a_closing_client_calls_back_with_closed() {
        let rt = runtime();
        let (tx, rx) = mpsc::channel();
        let (_reply, answer) = reply::<u32>();
        Completion::new(rt.handle().clone(), async move { answer.await.ok_or(Error::Closed) }).on_done(move |r| tx.send(r).unwrap());
        drop(rt);
        assert!(matches!(rx.recv().unwrap(), Err(Error::Closed)));
        // After the runtime is gone a new completion still settles its callback.
        let rt = runtime();
        let handle = rt.handle().clone();
        drop(rt);
        let (tx, rx) = mpsc::channel();
        Completion::new(handle, std::future::pending::<Result<u32>>()).on_done(move |r| tx.send(r).unwrap());
        assert!(matches!(rx.recv().unwrap(), Err(Error::Closed)));
    }

    #[test]
    fn wait_blocks_the_host_thread_until_the_answer() {
        let rt = runtime();
        let (reply, answer) = reply::<&str>();
        let done = Completion::new(rt.handle().clone(), async move { answer.await.ok_or(Error::Closed) });
        let answering = std::thread::spawn(move || reply.send("ok"));
        assert_eq!(done.wait().unwrap(), "ok");
        answering.join().unwrap();
    }

    #[test]
    fn a_dropped_reply_answers_none() {
        let (reply, answer) = reply::<u8>();
        drop(reply);
        assert_eq!(answer.wait_on_engine_thread(), None);
    }
}
