//! W1/W2 on the driver side: runs the mutations the engine renders (an HTTP request through the
//! client's query source, or a T2 `send` on a stream) and reports each outcome back, and
//! carries `invalidateTags` to the engine. The engine decides what the outcome invalidates and
//! when the mutation settles (W4).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::future::FutureExt;
use livecache_engine::{MutateOptions, MutationId, MutationRequest};
use serde_json::{json, Value};
use tokio::sync::oneshot;

use crate::config::EndpointConfig;
use crate::driver::{prepared_fetch, Driver};
use crate::error::{Error, Result};

impl Driver {
    /// W1 `mutate`: resolves with the response data once the mutation settled (W4), or with
    /// its error (`MutationError` carrying `{status, data}`).
    pub fn mutate(self: &Arc<Self>, endpoint: &str, arg: Option<Value>, options: &MutateOptions) -> impl std::future::Future<Output = Result<Value>> + Send + 'static {
        let started = self.start_mutate(endpoint, arg, options);
        async move { started?.await }
    }

    /// Starts a mutation: `Err` when the engine refuses it (nothing was sent), else its outcome.
    pub fn start_mutate(
        self: &Arc<Self>,
        endpoint: &str,
        arg: Option<Value>,
        options: &MutateOptions,
    ) -> Result<impl std::future::Future<Output = Result<Value>> + Send + 'static> {
        let mut guard = self.lock_open()?;
        let id = guard.engine.mutate_with(endpoint, arg, options)?;
        let (tx, rx) = oneshot::channel();
        guard.mutations.insert(id, tx);
        self.run(guard);
        // The engine settles every mutation, `close` included; a dropped sender is a close.
        Ok(async move { rx.await.unwrap_or(Err(Error::Closed)) })
    }

    /// W2 `invalidateTags` from the host.
    pub fn invalidate_tags(self: &Arc<Self>, tags: &[Value]) -> Result<()> {
        let mut guard = self.lock_open()?;
        guard.engine.invalidate_tags(tags)?;
        self.run(guard);
        Ok(())
    }

    /// Runs one mutation off the lock and hands its outcome to the engine.
    pub(crate) fn start_mutation(self: &Arc<Self>, id: MutationId, endpoint: Arc<EndpointConfig>, arg: Option<Value>, request: MutationRequest) {
        let run = match request {
            MutationRequest::Hook => {
                let hook = self.endpoint_hooks(&endpoint.name).and_then(|h| h.mutation_fn.clone());
                async move {
                    match hook {
                        Some(f) => f(arg).await.map_err(Error::Mutation),
                        None => Err(Error::Mutation(json!({"status": "CUSTOM_ERROR", "error": "no mutationFn hook"}))),
                    }
                }
                .boxed()
            }
            MutationRequest::Send { key, message } => {
                let sent = self.send(&key, &message);
                async move { sent.await.map(|()| Value::Null) }.boxed()
            }
            MutationRequest::Http { query, headers } => {
                let request = self.fetch_request(endpoint.name.clone(), &endpoint, arg, query, headers);
                let prepare = self.endpoint_hooks(&endpoint.name).and_then(|h| h.prepare_headers.clone());
                let fetched = match (&self.query_source, prepare) {
                    (None, _) => std::future::ready(Err(json!({"status": "FETCH_ERROR", "error": "no HTTP transport in this build"}))).boxed(),
                    (Some(source), None) => source.fetch(request),
                    (Some(source), Some(hook)) => prepared_fetch(hook, source.clone(), request, "mutation"),
                };
                async move { fetched.await.map(|r| r.data).map_err(Error::Mutation) }.boxed()
            }
        };
        let weak = Arc::downgrade(self);
        self.handle.spawn(async move {
            let result = match AssertUnwindSafe(run).catch_unwind().await {
                Ok(r) => r,
                Err(_) => Err(Error::Mutation(json!({"status": "CUSTOM_ERROR", "error": "the mutation panicked"}))),
            };
            if let Some(driver) = weak.upgrade() {
                let mut guard = driver.lock();
                let now = driver.now();
                guard.engine.mutation_done(now, id, result);
                driver.run(guard);
            }
        });
    }
}
