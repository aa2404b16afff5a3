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
use crate::driver::{call_tags_hook, prepared_fetch, Driver};
use crate::error::{Error, Result};

/// W3 `{endpoint, arg, recipe}`: a host recipe that makes one entry's optimistic layer. It runs
/// once, in the `mutate` call and with no engine lock held, on a draft of the entry's visible data
/// (mutate the draft and answer `Ok(None)`, or answer `Ok(Some(new data))`); the patch it made is
/// the layer, put back on every server change. The recipe is not run again on each rebase: it is
/// host code, which the engine never calls (and a JavaScript function can only run on its own
/// thread), so a recipe's change must still make sense as a patch over newer server data.
/// `Err` (the recipe threw) fails the call: no layer goes on, nothing is sent.
pub struct LayerRecipe {
    pub endpoint: String,
    pub arg: Option<Value>,
    pub recipe: Box<dyn FnOnce(&mut Value) -> std::result::Result<Option<Value>, String> + Send>,
}

/// One optimistic layer of a `mutate` call: a `{endpoint, arg?, message}` or
/// `{endpoint, arg?, patch}` value, or a host recipe.
pub enum OptimisticLayer {
    Value(Value),
    Recipe(LayerRecipe),
}

impl Driver {
    /// `start_mutate` with the call's layers (they replace `options.optimistic` and the
    /// endpoint's config); recipes run first, in order, each on the data as it is then.
    pub fn start_mutate_layers(
        self: &Arc<Self>,
        endpoint: &str,
        arg: Option<Value>,
        options: &MutateOptions,
        layers: Vec<OptimisticLayer>,
    ) -> Result<impl std::future::Future<Output = Result<Value>> + Send + 'static> {
        let mut items = Vec::with_capacity(layers.len());
        for layer in layers {
            match layer {
                OptimisticLayer::Value(v) => items.push(v),
                OptimisticLayer::Recipe(r) => items.extend(self.recipe_layer(r)?),
            }
        }
        let options = MutateOptions { optimistic: Some(items), ..options.clone() };
        self.start_mutate(endpoint, arg, &options)
    }

    /// Runs a layer recipe on the entry's visible data: `{endpoint, arg?, patch}`, or nothing
    /// when the entry has no data (as a message layer is skipped there).
    fn recipe_layer(self: &Arc<Self>, r: LayerRecipe) -> Result<Option<Value>> {
        let base = self.lock_open()?.engine.layer_base(&r.endpoint, r.arg.as_ref())?;
        let Some(base) = base else { return Ok(None) };
        let mut draft = (*base).clone();
        let key = || crate::key::cache_key(&r.endpoint, r.arg.as_ref());
        let replaced = match std::panic::catch_unwind(AssertUnwindSafe(|| (r.recipe)(&mut draft))) {
            Ok(Ok(replaced)) => replaced,
            Ok(Err(m)) => return Err(Error::InvalidArgument(format!("optimistic: the recipe for {} failed: {m}", key()))),
            Err(_) => return Err(Error::InvalidArgument(format!("optimistic: the recipe for {} panicked", key()))),
        };
        let made = livecache_engine::host_update::Recipe::new(&base, 0, replaced.unwrap_or(draft))?;
        let mut item = json!({"endpoint": r.endpoint, "patch": made.result.patches});
        if let Some(arg) = r.arg {
            item["arg"] = arg; // absent is "no arg" (K1)
        }
        Ok(Some(item))
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
        let invalidates = self.endpoint_hooks(&endpoint.name).and_then(|h| h.invalidates_tags.clone());
        let arg_for_tags = if invalidates.is_some() { arg.clone() } else { None };
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
            // W2: the host's tags for this outcome, off the lock (host code).
            let tags = invalidates.map(|f| {
                let error = match &result {
                    Ok(_) => None,
                    Err(Error::Mutation(v)) => Some(v.clone()),
                    Err(other) => Some(json!({"status": "CUSTOM_ERROR", "error": other.to_string()})),
                };
                call_tags_hook("invalidatesTags", || f(result.as_ref().ok(), error.as_ref(), arg_for_tags.as_ref()))
            });
            if let Some(driver) = weak.upgrade() {
                let mut guard = driver.lock();
                let now = driver.now();
                guard.engine.mutation_done_tagged(now, id, result, tags);
                driver.run(guard);
            }
        });
    }
}
