//! Host hooks per endpoint (SPEC §6), as Rust closures. Bindings wrap host functions into
//! these; the engine calls them with no lock held and reports their failures as events.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::future::{BoxFuture, FutureExt};
use serde_json::Value;

use crate::lifecycle::Lifecycle;
use crate::patch::PatchOp;
use crate::transport::FetchError;

/// `queryFn(arg) -> data`: `Err` carries the error value the entry's `error` shows (L6).
pub type QueryFn = Arc<dyn Fn(Option<Value>) -> BoxFuture<'static, Result<Value, FetchError>> + Send + Sync>;

/// `transformResponse(data, arg) -> data`, applied to every response before `entityAdapter`.
pub type TransformFn = Arc<dyn Fn(Value, Option<Value>) -> Result<Value, String> + Send + Sync>;

/// W2 `providesTags(data, arg) -> tags`: a list of `"Type"` / `{type, id}` for a query entry's
/// data, called after every fetch (after `transformResponse`) and every `upsertQueryData`.
pub type ProvidesTagsFn = Arc<dyn Fn(&Value, Option<&Value>) -> Result<Value, String> + Send + Sync>;

/// W2 `invalidatesTags(result, error, arg) -> tags`: the tags a mutation invalidates, called
/// once when it settles, with its result on success or its error value (`{status, data}`) on
/// failure.
pub type InvalidatesTagsFn = Arc<dyn Fn(Option<&Value>, Option<&Value>, Option<&Value>) -> Result<Value, String> + Send + Sync>;

pub use livecache_engine::on_message::MessageUpdate;
pub use livecache_engine::protocol::HostTags;
pub use livecache_engine::protocol::MessageBase;

/// `onMessage(draft, message, arg)`: gets the current data (shared, read-only: clone it to make a
/// draft), the message and the arg.
pub type OnMessageFn =
    Arc<dyn Fn(Arc<Value>, Value, Option<Value>) -> BoxFuture<'static, Result<MessageUpdate, String>> + Send + Sync>;

/// One call of the batched `onMessage`: the messages queued for one entry, in arrival order.
pub struct MessageBatch {
    /// Which data the call is given (entry lifetime and version): a host keeping a replica of
    /// the data compares it with its replica's version; the engine applies the outcomes only on
    /// that version.
    pub base: MessageBase,
    /// The current data (shared, read-only: clone it to make a draft).
    pub data: Arc<Value>,
    pub messages: Vec<Value>,
    pub arg: Option<Value>,
}

/// `onMessage` over a [`MessageBatch`]: a host whose every call costs a round trip (a
/// JavaScript thread, an interpreter lock) takes a burst in one call. The hook returns one
/// outcome per message, in order, each computed on the data as the outcomes before it left it;
/// an `Err` outcome is that message's hook failure (the engine reports it and the next outcome
/// must not build on it). It may answer fewer outcomes than messages (at least one): the engine
/// offers the rest again in its next call. An `Err` of the whole call fails every message of the
/// call.
pub type OnMessagesFn =
    Arc<dyn Fn(MessageBatch) -> BoxFuture<'static, Result<Vec<Result<MessageUpdate, String>>, String>> + Send + Sync>;

/// T1 `prepareHeaders(headers, {endpoint, arg, url, kind})`: runs before every request (`kind`
/// `"query"`, `"mutation"`) and every stream (re)connect (`"stream"`), and answers the headers to
/// send, as an object of name to string. `Err` fails that fetch (rejected) or that connect attempt
/// (L8 backoff), so a refreshed token is used from the next reconnect on.
pub type PrepareHeadersFn = Arc<dyn Fn(Value, Value) -> BoxFuture<'static, Result<Value, String>> + Send + Sync>;

/// `onCacheEntryAdded(arg, lifecycle)`: runs once per entry lifetime (L1) on the engine's runtime.
pub type OnCacheEntryAddedFn =
    Arc<dyn Fn(Option<Value>, Lifecycle) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// The hooks of one endpoint.
#[derive(Clone, Default)]
pub struct EndpointHooks {
    pub query_fn: Option<QueryFn>,
    pub transform_response: Option<TransformFn>,
    pub on_message: Option<OnMessageFn>,
    /// The batched form of `on_message`; when both are set, this one is used.
    pub on_messages: Option<OnMessagesFn>,
    pub on_cache_entry_added: Option<OnCacheEntryAddedFn>,
    pub prepare_headers: Option<PrepareHeadersFn>,
    /// W1 `mutationFn(arg)`: the endpoint is a mutation whose write is this host function; its
    /// `Err` value is the `MutationError`'s `{status, data}` (same shape as a `queryFn`'s).
    pub mutation_fn: Option<QueryFn>,
    /// W2: computes a query endpoint's tags instead of the config's `providesTags`.
    pub provides_tags: Option<ProvidesTagsFn>,
    /// W2: computes a mutation endpoint's tags instead of the config's `invalidatesTags`.
    pub invalidates_tags: Option<InvalidatesTagsFn>,
}

impl EndpointHooks {
    /// A synchronous `queryFn`.
    pub fn query_fn_sync(mut self, f: impl Fn(Option<Value>) -> Result<Value, FetchError> + Send + Sync + 'static) -> Self {
        self.query_fn = Some(Arc::new(move |arg| std::future::ready(f(arg)).boxed()));
        self
    }

    /// An async `queryFn`.
    pub fn query_fn_async<F>(mut self, f: impl Fn(Option<Value>) -> F + Send + Sync + 'static) -> Self
    where
        F: std::future::Future<Output = Result<Value, FetchError>> + Send + 'static,
    {
        self.query_fn = Some(Arc::new(move |arg| f(arg).boxed()));
        self
    }

    /// A synchronous `mutationFn` (W1).
    pub fn mutation_fn_sync(mut self, f: impl Fn(Option<Value>) -> Result<Value, FetchError> + Send + Sync + 'static) -> Self {
        self.mutation_fn = Some(Arc::new(move |arg| std::future::ready(f(arg)).boxed()));
        self
    }

    /// An async `mutationFn` (W1).
    pub fn mutation_fn_async<F>(mut self, f: impl Fn(Option<Value>) -> F + Send + Sync + 'static) -> Self
    where
        F: std::future::Future<Output = Result<Value, FetchError>> + Send + 'static,
    {
        self.mutation_fn = Some(Arc::new(move |arg| f(arg).boxed()));
        self
    }

    /// A `providesTags` hook (W2).
    pub fn provides_tags(mut self, f: impl Fn(&Value, Option<&Value>) -> Result<Value, String> + Send + Sync + 'static) -> Self {
        self.provides_tags = Some(Arc::new(f));
        self
    }

    /// An `invalidatesTags` hook (W2).
    pub fn invalidates_tags(
        mut self,
        f: impl Fn(Option<&Value>, Option<&Value>, Option<&Value>) -> Result<Value, String> + Send + Sync + 'static,
    ) -> Self {
        self.invalidates_tags = Some(Arc::new(f));
        self
    }

    pub fn transform_response(mut self, f: impl Fn(Value, Option<Value>) -> Result<Value, String> + Send + Sync + 'static) -> Self {
        self.transform_response = Some(Arc::new(f));
        self
    }

    /// An Immer-style `onMessage`: mutate the draft in place, or return `Some(new data)`.
    pub fn on_message_draft(
        mut self,
        f: impl Fn(&mut Value, &Value, Option<&Value>) -> Result<Option<Value>, String> + Send + Sync + 'static,
    ) -> Self {
        self.on_message = Some(Arc::new(move |data: Arc<Value>, message, arg| {
            let mut draft = (*data).clone();
            let outcome = match f(&mut draft, &message, arg.as_ref()) {
                Ok(Some(replacement)) => Ok(MessageUpdate::Data(replacement)),
                Ok(None) => Ok(MessageUpdate::Data(draft)),
                Err(e) => Err(e),
            };
            std::future::ready(outcome).boxed()
        }));
        self
    }

    /// An `onMessage` that returns RFC 6902 operations for each message.
    pub fn on_message_ops(
        mut self,
        f: impl Fn(&Value, &Value, Option<&Value>) -> Result<Vec<PatchOp>, String> + Send + Sync + 'static,
    ) -> Self {
        self.on_message = Some(Arc::new(move |data: Arc<Value>, message, arg| {
            std::future::ready(f(&data, &message, arg.as_ref()).map(MessageUpdate::Ops)).boxed()
        }));
        self
    }

    /// Whether messages go to a host hook (either form) rather than an apply rule.
    pub fn has_on_message(&self) -> bool {
        self.on_message.is_some() || self.on_messages.is_some()
    }

    /// An async `prepareHeaders`.
    pub fn prepare_headers<F>(mut self, f: impl Fn(Value, Value) -> F + Send + Sync + 'static) -> Self
    where
        F: std::future::Future<Output = Result<Value, String>> + Send + 'static,
    {
        self.prepare_headers = Some(Arc::new(move |headers, context| f(headers, context).boxed()));
        self
    }

    pub fn on_cache_entry_added<F>(mut self, f: impl Fn(Option<Value>, Lifecycle) -> F + Send + Sync + 'static) -> Self
    where
        F: std::future::Future<Output = Result<(), String>> + Send + 'static,
    {
        self.on_cache_entry_added = Some(Arc::new(move |arg, lc| f(arg, lc).boxed()));
        self
    }
}

/// Hooks for every endpoint, keyed by endpoint name — the client's second argument (SPEC §6).
#[derive(Clone, Default)]
pub struct Hooks {
    pub endpoints: HashMap<String, EndpointHooks>,
}

impl Hooks {
    pub fn new() -> Hooks {
        Hooks::default()
    }

    pub fn endpoint(mut self, name: &str, hooks: EndpointHooks) -> Hooks {
        self.endpoints.insert(name.to_owned(), hooks);
        self
    }

    pub fn get(&self, name: &str) -> Option<&EndpointHooks> {
        self.endpoints.get(name)
    }
}
