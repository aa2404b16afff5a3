//! The values that cross between the engine and its driver: what the engine asks of the driver
//! (`Output`), the hook calls it makes, the ids it hands out, and which host hooks exist.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::config::{EndpointConfig, StreamConfig};
use crate::headers::Headers;
use crate::template::ValueTemplate;
use crate::error::Result;
use crate::event::Event;

/// Unique per entry lifetime, so late work for a removed entry never touches a new one.
pub type EntryId = u64;
/// A subscription, as the driver numbers it.
pub type SubscriberId = u64;
/// A pending `cacheDataLoaded` / `loaded()` (L2), settled by `Output::Settle`.
pub type WaiterId = u64;

/// `cacheDataLoaded`'s value (L2): the first data and its transport metadata.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Loaded {
    pub data: Value,
    pub meta: Value,
}

/// What the host gives an endpoint beyond its config (SPEC §6): which hooks exist, not the
/// hooks themselves (host code never runs in the engine).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostHooks {
    pub query_fn: bool,
    pub on_message: Option<HookShape>,
    pub on_cache_entry_added: bool,
    /// W1: a `mutationFn` makes the endpoint a mutation endpoint.
    pub mutation_fn: bool,
    /// W2: the host computes a query endpoint's `providesTags(data, arg)`; the driver hands its
    /// answer in with each fetch result and upsert (`HostTags`).
    pub provides_tags: bool,
    /// W2: the host computes a mutation's `invalidatesTags(result, error, arg)`; the driver hands
    /// its answer in with the mutation's outcome.
    pub invalidates_tags: bool,
}

/// W2: what a `providesTags` / `invalidatesTags` host hook answered: a list of `"Type"` /
/// `{type, id}` values, or the hook's failure message. The engine checks it (tag types in
/// `tagTypes`) before it uses it.
pub type HostTags = std::result::Result<Value, String>;

/// How the host's `onMessage` takes messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookShape {
    /// One message a call.
    One,
    /// The messages queued for an entry in one call (one host round trip a burst).
    Batched,
}

/// What the driver is to do. `S` is the driver's handle of one subscription (its event queue).
#[derive(Debug)]
pub enum Output<S> {
    /// Queue `event` for one subscriber (SPEC §5), in this order.
    Deliver { to: S, event: Event },
    /// Start request `request` of the entry (the driver runs `queryFn` or HTTP, then `fetch_done`).
    Fetch { key: Arc<str>, entry: EntryId, request: u64, endpoint: Arc<EndpointConfig>, arg: Option<Value> },
    /// Open the entry's stream (L1) at the rendered target; it runs until `Removed`.
    OpenStream { key: Arc<str>, entry: EntryId, endpoint: Arc<EndpointConfig>, target: StreamTarget, config: Arc<StreamConfig>, arg: Option<Value> },
    /// Run `onCacheEntryAdded` (L1); its `cacheDataLoaded` is `waiter`.
    StartLifecycle { key: Arc<str>, entry: EntryId, endpoint: Arc<EndpointConfig>, arg: Option<Value>, waiter: WaiterId },
    /// Call the host's `onMessage`, then `hook_done` with the call's base.
    CallHook(HookCall),
    /// Resolve (or reject) these `loaded()` / `cacheDataLoaded` waiters (L2).
    Settle { waiters: Vec<WaiterId>, result: Result<Loaded> },
    /// The entry is gone (L7, close): close its stream with a close handshake, resolve
    /// `cacheEntryRemoved` (L3).
    Removed { key: Arc<str>, entry: EntryId },
    /// Call `tick` at `at` (or earlier): a removal deadline is due then.
    ArmTimer { at: Duration },
    /// T6: close the entry's stream and connect again at once, resuming from its cursor (a
    /// sequence gap showed messages were missed).
    ReconnectStream { key: Arc<str>, entry: EntryId },
    /// W1: run mutation `mutation` (HTTP, or a `send` on a stream), then `mutation_done`.
    Mutate { mutation: MutationId, endpoint: Arc<EndpointConfig>, arg: Option<Value>, request: MutationRequest },
    /// W1/W4: the mutation's result, now that its invalidation's refetches have ended.
    MutationSettled { mutation: MutationId, result: Result<Value> },
}

/// The data an `onMessage` call was given: its entry lifetime and version (E1). A host that keeps
/// its own replica of the data (a binding's recording draft) compares it with the version its
/// replica is at, instead of converting the whole data on every call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MessageBase {
    pub entry_id: EntryId,
    pub version: u64,
}

/// A call the driver is to make (`Output::CallHook`).
#[derive(Debug)]
pub struct HookCall {
    pub key: Arc<str>,
    pub endpoint: Arc<crate::config::EndpointConfig>,
    pub base: MessageBase,
    pub shape: HookShape,
    pub data: Arc<Value>,
    pub messages: Vec<Value>,
    pub arg: Option<Value>,
}


/// Where an entry's stream connects and what it sends, rendered for its arg (T1, T2) and, when
/// it resumes, its cursor (T6).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StreamTarget {
    pub url: String,
    /// The handshake's headers (`Debug` shows names only).
    pub headers: Headers,
    /// `subscribeMessage` as JSON text: sent after every open.
    pub subscribe: Option<String>,
    /// `unsubscribeMessage` as JSON text: sent before the entry leaves the socket.
    pub unsubscribe: Option<String>,
    /// T6: the cursor this connect resumes after, as text (already in `url` or `subscribe` where
    /// the config puts it). SSE sends it as `Last-Event-ID` when no `resume.param` carries it.
    pub cursor: Option<String>,
    /// T5: the `connection_init` payload (`connectionParams`) as JSON text. With GraphQL,
    /// `subscribe` is the operation (`{query, variables, operationName}`) the transport wraps.
    pub init: Option<String>,
}

impl StreamTarget {
    /// Renders `config`'s url, headers and messages for `arg`; an error names what failed.
    pub fn render(config: &StreamConfig, arg: Option<&Value>) -> Result<StreamTarget, String> {
        Self::render_at(config, arg, None)
    }

    /// `render`, resuming after `cursor` (T6): in the URL's `resume.param`, as `{cursor}` in
    /// `subscribeMessage` or in a GraphQL subscription's variables, and as `cursor` for SSE's
    /// `Last-Event-ID`.
    pub fn render_at(config: &StreamConfig, arg: Option<&Value>, cursor: Option<&Value>) -> Result<StreamTarget, String> {
        let mut url = match &config.url {
            Some(t) => t.render_url(arg)?,
            None => String::new(),
        };
        let param = config.resume.as_ref().and_then(|r| r.param.as_deref());
        let cursor_text = cursor.map(crate::template::value_text);
        if let (Some(param), Some(text)) = (param, &cursor_text) {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str(&crate::template::encode_component(param));
            url.push('=');
            url.push_str(&crate::template::encode_component(text));
        }
        let message = |m: &Option<ValueTemplate>| -> Result<Option<String>, String> {
            m.as_ref().map(|t| t.render_with_cursor(arg, cursor).map(|v| v.to_string())).transpose()
        };
        let (subscribe, init) = match &config.graphql {
            Some(g) => (
                Some(g.operation.payload_at(arg, cursor)?.to_string()),
                g.connection_params.as_ref().map(|p| p.render(arg).map(|v| v.to_string())).transpose()?,
            ),
            None => (message(&config.subscribe_message)?, None),
        };
        Ok(StreamTarget {
            url,
            headers: config.headers.render(arg)?,
            subscribe,
            unsubscribe: message(&config.unsubscribe_message)?,
            cursor: cursor_text,
            init,
        })
    }
}

/// A mutation in flight, as the engine numbers it.
pub type MutationId = u64;

/// W3: what a `mutate` call may set beyond its arg. Each field, when given, is used instead of
/// the endpoint's config.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MutateOptions {
    /// Layers as `{endpoint, arg?, message}` values (not templates: the host rendered them).
    pub optimistic: Option<Vec<Value>>,
    /// `{field: value}`, compared as `filter` compares; strings may name `{arg…}` and `{result…}`.
    pub confirm: Option<Value>,
    pub confirm_timeout_ms: Option<u64>,
}

impl MutateOptions {
    /// Reads `{optimistic?, confirm?, confirmTimeoutMs?}` (`null` is none), as every binding
    /// passes them.
    pub fn from_value(v: &Value) -> Result<MutateOptions, String> {
        let Value::Object(o) = v else {
            return match v {
                Value::Null => Ok(MutateOptions::default()),
                other => Err(format!("mutate options are an object, found {other}")),
            };
        };
        let mut options = MutateOptions::default();
        for (key, value) in o {
            if value.is_null() {
                continue;
            }
            match key.as_str() {
                "optimistic" => match value {
                    Value::Array(items) => options.optimistic = Some(items.clone()),
                    other => return Err(format!("optimistic: expected a list of {{endpoint, arg, message}}, found {other}")),
                },
                "confirm" => options.confirm = Some(value.clone()),
                "confirmTimeoutMs" => match value.as_u64() {
                    Some(ms) if ms > 0 => options.confirm_timeout_ms = Some(ms),
                    _ => return Err(format!("confirmTimeoutMs: expected a positive integer, found {value}")),
                },
                other => return Err(format!("unknown mutate option {other:?} (expected optimistic, confirm, confirmTimeoutMs)")),
            }
        }
        Ok(options)
    }
}

/// What the driver runs for one mutation (`Output::Mutate`).
#[derive(Clone, Debug)]
pub enum MutationRequest {
    /// An HTTP request (the URL not yet joined to `baseUrl`) with the endpoint's headers.
    Http { query: crate::request::RenderedQuery, headers: Headers },
    /// T2 `send` of `message` on the stream of the entry `key`; the result is `null`.
    Send { key: Arc<str>, message: Value },
    /// The endpoint's host `mutationFn(arg)`.
    Hook,
}
