//! SPEC §2: the one configuration shape, parsed once at client creation into typed form.
//! Every error names the offending key path (`endpoints.getMessages.stream.apply`).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::headers::HeaderTemplates;
use crate::request::{parse_policy, QueryConfig, RequestPolicy};
use crate::tags::TagSpec;
use crate::template::{Template, ValueTemplate};

/// P2 `refetchOnMountOrArgChange`: `true`, or seconds (a subscribe to an existing entry
/// refetches when its last successful fetch is at least that old). `false` is no policy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RefetchOnMount {
    Always,
    OlderThan(std::time::Duration),
}

impl RefetchOnMount {
    /// `true`, `false` (`Err` never: the caller maps `false` to none) or seconds ≥ 0.
    pub fn from_value(v: &Value) -> std::result::Result<RefetchOnMount, String> {
        match v {
            Value::Bool(true) => Ok(RefetchOnMount::Always),
            Value::Bool(false) => Ok(RefetchOnMount::OlderThan(std::time::Duration::MAX)),
            other => match other.as_f64() {
                Some(s) if s.is_finite() && s >= 0.0 => Ok(RefetchOnMount::OlderThan(std::time::Duration::from_secs_f64(s))),
                _ => Err(format!("refetchOnMountOrArgChange: expected true, false or seconds >= 0, found {other}")),
            },
        }
    }
}

/// `keepUnusedDataFor` (L7): seconds, or never.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum KeepUnused {
    Seconds(f64),
    Forever,
}

#[derive(Clone, Debug, PartialEq)]
pub enum SortOrder {
    Ascending,
    Descending,
}

/// `transformResponse.entityAdapter`: RTK's `createEntityAdapter` state `{ids, entities}`.
#[derive(Clone, Debug, PartialEq)]
pub struct EntityAdapterConfig {
    pub select_id: String,
    /// `sortBy`: a field; `"-field"` sorts descending. `None` keeps insertion order.
    pub sort_by: Option<(String, SortOrder)>,
}

/// The built-in update rules of `stream.apply`.
#[derive(Clone, Debug, PartialEq)]
pub enum ApplyRule {
    Append { max_len: Option<usize>, dedupe_by: Option<String> },
    /// `select_id` `None`: the entity adapter's `selectId`, else `"id"`.
    Upsert { select_id: Option<String> },
    Remove { select_id: Option<String> },
    JsonPatch,
    MergePatch,
    Replace,
}

impl ApplyRule {
    /// L5: a rule whose second application of the same message changes nothing more, so
    /// messages seen during a refetch can be applied again on top of its response.
    pub fn is_idempotent(&self) -> bool {
        match self {
            ApplyRule::Append { dedupe_by, .. } => dedupe_by.is_some(),
            ApplyRule::Upsert { .. } | ApplyRule::Remove { .. } | ApplyRule::MergePatch | ApplyRule::Replace => true,
            ApplyRule::JsonPatch => false,
        }
    }
}

/// `stream.reconnect` (L8): exponential backoff with jitter between `initial_delay_ms` and `max_delay_ms`.
#[derive(Clone, Debug, PartialEq)]
pub struct ReconnectConfig {
    pub initial_delay_ms: u64,
    pub max_delay_ms: u64,
}

impl Default for ReconnectConfig {
    fn default() -> Self {
        ReconnectConfig { initial_delay_ms: 100, max_delay_ms: 10_000 }
    }
}

/// `stream.heartbeat` (L8): a ping every `interval_ms`; nothing received within `timeout_ms`
/// after it counts as a drop.
#[derive(Clone, Debug, PartialEq)]
pub struct HeartbeatConfig {
    pub interval_ms: u64,
    pub timeout_ms: u64,
}

impl Default for HeartbeatConfig {
    fn default() -> Self {
        HeartbeatConfig { interval_ms: 15_000, timeout_ms: 10_000 }
    }
}

/// One value of `stream.filter`.
#[derive(Clone, Debug)]
pub enum FilterValue {
    /// A plain JSON value, compared as is.
    Literal(Value),
    /// A string with `{arg…}` placeholders. When it is exactly one placeholder the message
    /// field is compared as the JSON value it names (a number stays a number); else as text.
    Template(Template),
}

/// `stream.transport`: how the stream's `url` is spoken to (T4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Transport {
    /// `ws://` / `wss://`: one text frame is one message.
    #[default]
    WebSocket,
    /// `http://` / `https://` Server-Sent Events: one dispatched event is one message.
    Sse,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::WebSocket => "websocket",
            Transport::Sse => "sse",
        }
    }
}

/// `stream`: where messages come from and how they change the data.
#[derive(Clone)]
pub struct StreamConfig {
    /// `None`: fed only by `pushMessage` (L10).
    pub url: Option<Template>,
    /// Field name → expected value; every field must match (SPEC §2).
    pub filter: Vec<(String, FilterValue)>,
    pub schema: Option<Arc<jsonschema::Validator>>,
    /// `None`: the host's `onMessage` hook updates a draft.
    pub apply: Option<ApplyRule>,
    pub reconnect: ReconnectConfig,
    /// `None` when `heartbeat` is `null` / `false`: no pings.
    pub heartbeat: Option<HeartbeatConfig>,
    pub max_message_bytes: usize,
    pub resync_on_reconnect: bool,
    pub buffer_before_loaded: usize,
    /// T1: the endpoint's headers with `stream.headers` over them, for every handshake.
    pub headers: HeaderTemplates,
    /// T2: WebSocket subprotocols offered in the handshake.
    pub protocols: Vec<String>,
    /// T2: sent as a text frame after every open, before any message is applied.
    pub subscribe_message: Option<ValueTemplate>,
    /// T2: sent before the entry leaves the socket.
    pub unsubscribe_message: Option<ValueTemplate>,
    /// T4: WebSocket unless `"sse"`.
    pub transport: Transport,
    /// T4: the SSE event names that are messages (default `["message"]`); others are filtered.
    pub events: Vec<String>,
    /// T6: reconnects resume from the last cursor instead of refetching.
    pub resume: Option<ResumeConfig>,
    /// T6: a JSON Pointer to each message's sequence number, for gap and duplicate detection.
    pub sequence: Option<String>,
    /// T3: entries with the same URL and headers share one connection.
    pub share: bool,
    /// T5: a GraphQL subscription over graphql-transport-ws (always on a shared connection).
    pub graphql: Option<crate::graphql::GraphqlStream>,
}

/// `stream.resume` (T6).
#[derive(Clone, Debug)]
pub struct ResumeConfig {
    /// A JSON Pointer into each applied message: the position to resume after.
    pub cursor: String,
    /// The URL query parameter the cursor is sent in; `None`: in `subscribeMessage` or, on SSE,
    /// as `Last-Event-ID`.
    pub param: Option<String>,
    /// A JSON Pointer into the query response: the cursor the data is at.
    pub initial: Option<String>,
    /// A message matching this (compared as `filter` compares) says the server cannot resume.
    pub must_refetch: Vec<(String, FilterValue)>,
}

/// A stream fed only by `pushMessage`, with every option at its default.
impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            url: None,
            filter: Vec::new(),
            schema: None,
            apply: None,
            reconnect: ReconnectConfig::default(),
            heartbeat: None,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            resync_on_reconnect: true,
            buffer_before_loaded: DEFAULT_BUFFER_BEFORE_LOADED,
            headers: HeaderTemplates::default(),
            protocols: Vec::new(),
            subscribe_message: None,
            unsubscribe_message: None,
            transport: Transport::WebSocket,
            events: vec!["message".to_owned()],
            resume: None,
            sequence: None,
            share: false,
            graphql: None,
        }
    }
}

impl std::fmt::Debug for StreamConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamConfig")
            .field("url", &self.url)
            .field("filter", &self.filter)
            .field("schema", &self.schema.is_some())
            .field("apply", &self.apply)
            .field("reconnect", &self.reconnect)
            .field("heartbeat", &self.heartbeat)
            .field("max_message_bytes", &self.max_message_bytes)
            .field("resync_on_reconnect", &self.resync_on_reconnect)
            .field("buffer_before_loaded", &self.buffer_before_loaded)
            .field("headers", &self.headers)
            .field("protocols", &self.protocols)
            .field("subscribe_message", &self.subscribe_message)
            .field("unsubscribe_message", &self.unsubscribe_message)
            .field("transport", &self.transport)
            .field("events", &self.events)
            .field("resume", &self.resume)
            .field("sequence", &self.sequence)
            .field("share", &self.share)
            .field("graphql", &self.graphql.is_some())
            .finish()
    }
}

pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
pub const DEFAULT_BUFFER_BEFORE_LOADED: usize = 10_000;
pub const DEFAULT_QUEUE_LIMIT: usize = 1024;
pub const DEFAULT_KEEP_UNUSED_SECS: f64 = 60.0;

/// One endpoint of `endpoints`.
#[derive(Clone, Debug)]
pub struct EndpointConfig {
    pub name: String,
    /// `query` (T7), joined to `baseUrl` when rendered.
    pub query: Option<QueryConfig>,
    /// T7: `timeoutMs` and `retry`, the endpoint's over the top level's.
    pub policy: RequestPolicy,
    pub entity_adapter: Option<EntityAdapterConfig>,
    pub keep_unused_data_for: Option<KeepUnused>,
    pub stream: Option<Arc<StreamConfig>>,
    /// T1: the top-level headers with the endpoint's over them, for every request.
    pub headers: HeaderTemplates,
    /// W1: set on a mutation endpoint (which then has no `query` or `stream`).
    pub mutation: Option<MutationConfig>,
    /// W2: the tags a query entry's data provides.
    pub provides_tags: Vec<TagSpec>,
    /// W2: the tags a mutation invalidates when it settles.
    pub invalidates_tags: Vec<TagSpec>,
    /// W3: a mutation's optimistic layers and how the server confirms them.
    pub optimistic: OptimisticConfig,
    /// P2: the endpoint's `refetchOnMountOrArgChange`, over the top level's.
    pub refetch_on_mount: Option<RefetchOnMount>,
}

/// W3: `optimistic`, `confirm` and `confirmTimeoutMs` of a mutation endpoint.
#[derive(Clone, Debug, Default)]
pub struct OptimisticConfig {
    /// `{endpoint, arg?, message}`, templated over the mutation's arg.
    pub layers: Vec<LayerTemplate>,
    /// Fields a stream message must have to confirm a layer (compared as `filter` compares;
    /// templates over the arg and `{result…}`). Empty: only a refetch or the timeout ends it.
    pub confirm: Vec<(String, FilterValue)>,
    pub confirm_timeout_ms: u64,
}

/// One optimistic layer of a mutation endpoint's config.
#[derive(Clone, Debug)]
pub struct LayerTemplate {
    pub endpoint: String,
    pub arg: Option<ValueTemplate>,
    pub message: ValueTemplate,
}

pub const DEFAULT_CONFIRM_TIMEOUT_MS: u64 = 10_000;

/// W1: how a mutation endpoint writes.
#[derive(Clone, Debug)]
pub enum MutationConfig {
    /// `{url, method, body, params}` (method default `POST`) or `{"graphql": …}`.
    Request(QueryConfig),
    /// `{"send": {endpoint, arg?, message}}`: `message` written on that query entry's stream (T2).
    Send { endpoint: String, arg: Option<ValueTemplate>, message: ValueTemplate },
}

impl EndpointConfig {
    pub fn is_mutation(&self) -> bool {
        self.mutation.is_some()
    }
}

/// The whole parsed configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub base_url: Option<String>,
    pub keep_unused_data_for: KeepUnused,
    /// E4: events queued per subscription before the queue collapses to one snapshot (E5).
    pub queue_limit: usize,
    pub endpoints: BTreeMap<String, Arc<EndpointConfig>>,
    /// W2 `tagTypes`: the tag types `providesTags` and `invalidatesTags` may name.
    pub tag_types: Vec<String>,
    /// P2: the top-level `refetchOnMountOrArgChange`.
    pub refetch_on_mount: Option<RefetchOnMount>,
}

// ---- parsing -------------------------------------------------------------------------------

type Obj = serde_json::Map<String, Value>;

fn err(path: &str, message: impl Into<String>) -> Error {
    Error::config(path, message)
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn as_object<'a>(v: &'a Value, path: &str) -> Result<&'a Obj> {
    v.as_object().ok_or_else(|| err(path, format!("expected an object, found {}", kind_of(v))))
}

/// Refuses keys the shape does not know, so a typo never silently becomes a default.
fn known_keys(obj: &Obj, path: &str, known: &[&str]) -> Result<()> {
    for key in obj.keys() {
        if !known.contains(&key.as_str()) {
            return Err(err(
                &join(path, key),
                format!("unknown key (expected one of: {})", known.join(", ")),
            ));
        }
    }
    Ok(())
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn string_at(v: &Value, path: &str) -> Result<String> {
    v.as_str().map(str::to_owned).ok_or_else(|| err(path, format!("expected a string, found {}", kind_of(v))))
}

fn template_at(v: &Value, path: &str) -> Result<Template> {
    Template::parse(&string_at(v, path)?).map_err(|m| err(path, m))
}

fn uint_at(v: &Value, path: &str) -> Result<u64> {
    v.as_u64().ok_or_else(|| err(path, format!("expected a non-negative integer, found {}", v)))
}

fn bool_at(v: &Value, path: &str) -> Result<bool> {
    v.as_bool().ok_or_else(|| err(path, format!("expected true or false, found {}", kind_of(v))))
}

fn keep_unused_at(v: &Value, path: &str) -> Result<KeepUnused> {
    match v {
        Value::Null => Ok(KeepUnused::Forever),
        Value::String(s) if s == "infinite" => Ok(KeepUnused::Forever),
        Value::Number(n) => match n.as_f64() {
            Some(s) if s >= 0.0 && s.is_finite() => Ok(KeepUnused::Seconds(s)),
            _ => Err(err(path, format!("expected seconds >= 0, null or \"infinite\", found {n}"))),
        },
        other => Err(err(path, format!("expected seconds >= 0, null or \"infinite\", found {}", kind_of(other)))),
    }
}

impl Config {
    /// Parses configuration JSON text (C, and Python/Node when given a string).
    pub fn from_json_text(text: &str) -> Result<Config> {
        let value = crate::json::parse_host(text).map_err(|e| err("", format!("config is not valid JSON: {e}")))?;
        Config::from_value(&value)
    }

    /// Parses a configuration value (SPEC §2).
    pub fn from_value(v: &Value) -> Result<Config> {
        let root = as_object(v, "")
            .map_err(|_| err("(root)", format!("the config must be an object, found {}", kind_of(v))))?;
        known_keys(root, "", &["baseUrl", "keepUnusedDataFor", "queueLimit", "headers", "timeoutMs", "retry", "tagTypes", "refetchOnMountOrArgChange", "endpoints"])?;
        let refetch_on_mount = refetch_on_mount_at(root.get("refetchOnMountOrArgChange"), "refetchOnMountOrArgChange")?;
        let tag_types = tag_types_at(root.get("tagTypes"))?;
        let headers = headers_at(root.get("headers"), "headers", &HeaderTemplates::default())?;
        let policy = parse_policy(root.get("timeoutMs"), root.get("retry"), "", RequestPolicy::default()).map_err(|(p, m)| err(&p, m))?;
        let base_url = match root.get("baseUrl") {
            None | Some(Value::Null) => None,
            Some(b) => Some(string_at(b, "baseUrl")?),
        };
        let keep_unused_data_for = match root.get("keepUnusedDataFor") {
            None => KeepUnused::Seconds(DEFAULT_KEEP_UNUSED_SECS),
            Some(k) => keep_unused_at(k, "keepUnusedDataFor")?,
        };
        let queue_limit = match root.get("queueLimit") {
            None => DEFAULT_QUEUE_LIMIT,
            Some(q) => match uint_at(q, "queueLimit")? {
                0 => return Err(err("queueLimit", "must be at least 1")),
                n => n as usize,
            },
        };
        let endpoints_v = root.get("endpoints").ok_or_else(|| err("endpoints", "missing (at least one endpoint is needed)"))?;
        let mut endpoints = BTreeMap::new();
        for (name, ep) in as_object(endpoints_v, "endpoints")? {
            let path = format!("endpoints.{name}");
            if name.is_empty() {
                return Err(err(&path, "an endpoint name cannot be empty"));
            }
            endpoints.insert(name.clone(), Arc::new(EndpointConfig::parse(name, ep, &path, &headers, policy, &tag_types)?));
        }
        check_sends(&endpoints)?;
        Ok(Config { base_url, keep_unused_data_for, queue_limit, endpoints, tag_types, refetch_on_mount })
    }

    /// The removal delay of an endpoint (L7): its own value, else the global one.
    pub fn keep_unused_for(&self, endpoint: &EndpointConfig) -> KeepUnused {
        endpoint.keep_unused_data_for.unwrap_or(self.keep_unused_data_for)
    }
}

impl EndpointConfig {
    fn parse(name: &str, v: &Value, path: &str, top_headers: &HeaderTemplates, top_policy: RequestPolicy, tag_types: &[String]) -> Result<EndpointConfig> {
        let obj = as_object(v, path)?;
        known_keys(
            obj,
            path,
            &[
                "query",
                "mutation",
                "transformResponse",
                "keepUnusedDataFor",
                "headers",
                "timeoutMs",
                "retry",
                "stream",
                "providesTags",
                "invalidatesTags",
                "optimistic",
                "confirm",
                "confirmTimeoutMs",
                "refetchOnMountOrArgChange",
            ],
        )?;
        let mutation = match obj.get("mutation") {
            None | Some(Value::Null) => None,
            Some(m) => Some(parse_mutation(m, &join(path, "mutation"))?),
        };
        if mutation.is_some() {
            // W1: a mutation is not cached, so nothing that feeds or keeps an entry applies.
            for key in ["query", "stream", "transformResponse", "keepUnusedDataFor", "providesTags"] {
                if obj.get(key).is_some_and(|v| !v.is_null()) {
                    return Err(err(&join(path, key), "a mutation endpoint cannot have one (it has no cache entry)"));
                }
            }
        } else if ["query", "stream"].iter().any(|k| obj.get(*k).is_some_and(|v| !v.is_null())) {
            // Without `query` or `stream` it may be a `mutationFn` endpoint: the engine checks
            // that against the hooks.
            for key in ["invalidatesTags", "optimistic", "confirm", "confirmTimeoutMs"] {
                if obj.get(key).is_some_and(|v| !v.is_null()) {
                    return Err(err(&join(path, key), "only a mutation endpoint has one"));
                }
            }
        }
        let optimistic = optimistic_at(obj, path)?;
        let refetch_on_mount = refetch_on_mount_at(obj.get("refetchOnMountOrArgChange"), &join(path, "refetchOnMountOrArgChange"))?;
        let tags = |key: &str| TagSpec::parse_list(obj.get(key), &join(path, key), tag_types).map_err(|(p, m)| err(&p, m));
        let provides_tags = tags("providesTags")?;
        let invalidates_tags = tags("invalidatesTags")?;
        let headers = headers_at(obj.get("headers"), &join(path, "headers"), top_headers)?;
        let policy = parse_policy(obj.get("timeoutMs"), obj.get("retry"), path, top_policy).map_err(|(p, m)| err(&p, m))?;
        let query = match obj.get("query") {
            None | Some(Value::Null) => None,
            Some(q) => Some(QueryConfig::parse(q, &join(path, "query")).map_err(|(p, m)| err(&p, m))?),
        };
        let entity_adapter = match obj.get("transformResponse") {
            None | Some(Value::Null) => None,
            Some(t) => {
                let tpath = join(path, "transformResponse");
                let tobj = as_object(t, &tpath)?;
                known_keys(tobj, &tpath, &["entityAdapter"])?;
                match tobj.get("entityAdapter") {
                    None | Some(Value::Null) => None,
                    Some(a) => Some(parse_adapter(a, &join(&tpath, "entityAdapter"))?),
                }
            }
        };
        let keep_unused_data_for = match obj.get("keepUnusedDataFor") {
            None => None,
            Some(k) => Some(keep_unused_at(k, &join(path, "keepUnusedDataFor"))?),
        };
        let stream = match obj.get("stream") {
            None | Some(Value::Null) => None,
            Some(s) => Some(Arc::new(parse_stream(s, &join(path, "stream"), &headers)?)),
        };
        Ok(EndpointConfig {
            name: name.to_owned(),
            query,
            policy,
            entity_adapter,
            keep_unused_data_for,
            stream,
            headers,
            mutation,
            provides_tags,
            invalidates_tags,
            optimistic,
            refetch_on_mount,
        })
    }

    /// The id field `upsert` / `remove` use when the rule names none.
    pub fn default_select_id(&self) -> &str {
        self.entity_adapter.as_ref().map_or("id", |a| a.select_id.as_str())
    }
}

/// P2 `refetchOnMountOrArgChange` (absent or `false`: none).
fn refetch_on_mount_at(v: Option<&Value>, path: &str) -> Result<Option<RefetchOnMount>> {
    match v {
        None | Some(Value::Null) | Some(Value::Bool(false)) => Ok(None),
        Some(v) => RefetchOnMount::from_value(v).map(Some).map_err(|m| err(path, m)),
    }
}

/// W2 `tagTypes`: a list of distinct non-empty names.
fn tag_types_at(v: Option<&Value>) -> Result<Vec<String>> {
    let Some(v) = v.filter(|v| !v.is_null()) else { return Ok(Vec::new()) };
    let Value::Array(items) = v else { return Err(err("tagTypes", format!("expected a list of names, found {}", kind_of(v)))) };
    let mut types: Vec<String> = Vec::with_capacity(items.len());
    for (i, t) in items.iter().enumerate() {
        let at = format!("tagTypes[{i}]");
        let name = non_empty(string_at(t, &at)?, &at)?;
        if types.contains(&name) {
            return Err(err(&at, format!("{name:?} is listed twice")));
        }
        types.push(name);
    }
    Ok(types)
}

/// W1 `mutation`: a request template, GraphQL, or `{"send": {endpoint, arg?, message}}`.
fn parse_mutation(v: &Value, path: &str) -> Result<MutationConfig> {
    let Some(send) = v.as_object().and_then(|o| o.get("send")) else {
        return QueryConfig::parse_with_method(v, path, "POST").map(MutationConfig::Request).map_err(|(p, m)| err(&p, m));
    };
    let spath = join(path, "send");
    if let Some(other) = v.as_object().and_then(|o| o.keys().find(|k| *k != "send")) {
        return Err(err(&join(path, other), "cannot be used with send"));
    }
    let obj = as_object(send, &spath)?;
    known_keys(obj, &spath, &["endpoint", "arg", "message"])?;
    let endpoint = string_at(obj.get("endpoint").ok_or_else(|| err(&join(&spath, "endpoint"), "missing"))?, &join(&spath, "endpoint"))?;
    let template = |key: &str| -> Result<Option<ValueTemplate>> {
        obj.get(key).map(|t| ValueTemplate::parse(t).map_err(|m| err(&join(&spath, key), m))).transpose()
    };
    let arg = template("arg")?;
    let message = template("message")?.ok_or_else(|| err(&join(&spath, "message"), "missing"))?;
    Ok(MutationConfig::Send { endpoint, arg, message })
}

/// W3 `confirm` (of the config or of one `mutate` call): `filter`-shaped, with `{result…}`.
pub fn parse_confirm(v: &Value, path: &str) -> Result<Vec<(String, FilterValue)>> {
    fields_at(v, path, Template::parse_with_result)
}

/// W3 `optimistic` (a list of `{endpoint, arg?, message}`), `confirm`, `confirmTimeoutMs`.
fn optimistic_at(obj: &Obj, path: &str) -> Result<OptimisticConfig> {
    let mut cfg = OptimisticConfig { confirm_timeout_ms: DEFAULT_CONFIRM_TIMEOUT_MS, ..Default::default() };
    if let Some(list) = obj.get("optimistic").filter(|v| !v.is_null()) {
        let lpath = join(path, "optimistic");
        let Value::Array(items) = list else { return Err(err(&lpath, "expected a list of {endpoint, arg, message}")) };
        for (i, item) in items.iter().enumerate() {
            let ipath = format!("{lpath}[{i}]");
            let o = as_object(item, &ipath)?;
            known_keys(o, &ipath, &["endpoint", "arg", "message"])?;
            let endpoint = string_at(o.get("endpoint").ok_or_else(|| err(&join(&ipath, "endpoint"), "missing"))?, &join(&ipath, "endpoint"))?;
            let template = |key: &str| o.get(key).map(|t| ValueTemplate::parse(t).map_err(|m| err(&join(&ipath, key), m))).transpose();
            let arg = template("arg")?;
            let message = template("message")?.ok_or_else(|| err(&join(&ipath, "message"), "missing"))?;
            cfg.layers.push(LayerTemplate { endpoint, arg, message });
        }
    }
    if let Some(c) = obj.get("confirm").filter(|v| !v.is_null()) {
        cfg.confirm = fields_at(c, &join(path, "confirm"), Template::parse_with_result)?;
    }
    if let Some(t) = obj.get("confirmTimeoutMs").filter(|v| !v.is_null()) {
        cfg.confirm_timeout_ms = uint_at(t, &join(path, "confirmTimeoutMs"))?;
        if cfg.confirm_timeout_ms == 0 {
            return Err(err(&join(path, "confirmTimeoutMs"), "must be at least 1"));
        }
    }
    Ok(cfg)
}

/// W1: a `send` mutation names a query endpoint that has a stream to write on; W3: an
/// optimistic layer names a query endpoint whose `stream.apply` rule takes its message.
fn check_sends(endpoints: &BTreeMap<String, Arc<EndpointConfig>>) -> Result<()> {
    for (name, ep) in endpoints {
        for (i, layer) in ep.optimistic.layers.iter().enumerate() {
            let path = format!("endpoints.{name}.optimistic[{i}].endpoint");
            match endpoints.get(&layer.endpoint) {
                None => return Err(err(&path, format!("no endpoint {:?}", layer.endpoint))),
                Some(target) if target.is_mutation() => return Err(err(&path, format!("{:?} is a mutation endpoint; layers go on query entries", layer.endpoint))),
                Some(target) if target.stream.as_ref().is_none_or(|s| s.apply.is_none()) => {
                    return Err(err(&path, format!("endpoint {:?} has no stream.apply rule for the layer's message", layer.endpoint)))
                }
                Some(_) => {}
            }
        }
    }
    for (name, ep) in endpoints {
        let Some(MutationConfig::Send { endpoint, .. }) = &ep.mutation else { continue };
        let path = format!("endpoints.{name}.mutation.send.endpoint");
        match endpoints.get(endpoint) {
            None => return Err(err(&path, format!("no endpoint {endpoint:?}"))),
            Some(target) if target.stream.as_ref().is_none_or(|s| s.url.is_none()) => {
                return Err(err(&path, format!("endpoint {endpoint:?} has no stream.url to send on")))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn parse_adapter(v: &Value, path: &str) -> Result<EntityAdapterConfig> {
    let obj = match v {
        Value::Bool(true) => return Ok(EntityAdapterConfig { select_id: "id".into(), sort_by: None }),
        v => as_object(v, path)?,
    };
    known_keys(obj, path, &["selectId", "sortBy"])?;
    let select_id = match obj.get("selectId") {
        None => "id".to_owned(),
        Some(s) => non_empty(string_at(s, &join(path, "selectId"))?, &join(path, "selectId"))?,
    };
    let sort_by = match obj.get("sortBy") {
        None | Some(Value::Null) => None,
        Some(s) => {
            let spath = join(path, "sortBy");
            let s = string_at(s, &spath)?;
            match s.strip_prefix('-') {
                Some(field) => Some((non_empty(field.to_owned(), &spath)?, SortOrder::Descending)),
                None => Some((non_empty(s, &spath)?, SortOrder::Ascending)),
            }
        }
    };
    Ok(EntityAdapterConfig { select_id, sort_by })
}

fn non_empty(s: String, path: &str) -> Result<String> {
    if s.is_empty() {
        Err(err(path, "cannot be empty"))
    } else {
        Ok(s)
    }
}

/// T1: a `headers` object laid over `base` (absent or `null`: `base` alone).
fn headers_at(v: Option<&Value>, path: &str, base: &HeaderTemplates) -> Result<HeaderTemplates> {
    match v {
        None | Some(Value::Null) => Ok(base.clone()),
        Some(h) => Ok(base.merged(&HeaderTemplates::parse(h, path).map_err(|(p, m)| err(&p, m))?)),
    }
}

/// T2: `protocols`, each a token, each once.
fn protocols_at(v: Option<&Value>, path: &str) -> Result<Vec<String>> {
    let Some(v) = v.filter(|v| !v.is_null()) else { return Ok(Vec::new()) };
    let items = v.as_array().ok_or_else(|| err(path, format!("expected an array of strings, found {}", kind_of(v))))?;
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = format!("{path}[{i}]");
        let p = string_at(item, &at)?;
        let tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        if p.is_empty() || !p.chars().all(tchar) {
            return Err(err(&at, format!("{p:?} is not a valid subprotocol name")));
        }
        if out.contains(&p) {
            return Err(err(&at, format!("{p:?} is listed twice")));
        }
        out.push(p);
    }
    Ok(out)
}

/// `cursor`: whether `"{cursor}"` may stand for the T6 cursor (only in `subscribeMessage`, only
/// with `resume`).
fn message_template_at(v: Option<&Value>, path: &str, cursor: bool) -> Result<Option<ValueTemplate>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(m) => {
            let t = ValueTemplate::parse(m).map_err(|e| err(path, e))?;
            if t.has_cursor() && !cursor {
                return Err(err(path, "`{cursor}` is the resume cursor: only subscribeMessage may hold it, and only with stream.resume"));
            }
            Ok(Some(t))
        }
    }
}

/// A JSON Pointer (RFC 6901): empty (the whole value) or starting with `/`.
fn pointer_at(v: &Value, path: &str) -> Result<String> {
    let p = string_at(v, path)?;
    if !(p.is_empty() || p.starts_with('/')) {
        return Err(err(path, format!("{p:?} is not a JSON Pointer (it must start with `/`)")));
    }
    Ok(p)
}

/// T6 `stream.resume`.
fn resume_at(v: &Value, path: &str) -> Result<ResumeConfig> {
    let obj = as_object(v, path)?;
    known_keys(obj, path, &["cursor", "param", "initial", "mustRefetch"])?;
    let cursor = match obj.get("cursor") {
        Some(c) => pointer_at(c, &join(path, "cursor"))?,
        None => return Err(err(&join(path, "cursor"), "is required: a JSON Pointer into each message")),
    };
    let param = match obj.get("param") {
        None | Some(Value::Null) => None,
        Some(p) => Some(non_empty(string_at(p, &join(path, "param"))?, &join(path, "param"))?),
    };
    let initial = match obj.get("initial") {
        None | Some(Value::Null) => None,
        Some(i) => Some(pointer_at(i, &join(path, "initial"))?),
    };
    let must_refetch = match obj.get("mustRefetch") {
        None | Some(Value::Null) => Vec::new(),
        Some(m) => filter_at(m, &join(path, "mustRefetch"))?,
    };
    Ok(ResumeConfig { cursor, param, initial, must_refetch })
}

fn parse_stream(v: &Value, path: &str, endpoint_headers: &HeaderTemplates) -> Result<StreamConfig> {
    let obj = as_object(v, path)?;
    known_keys(
        obj,
        path,
        &[
            "url",
            "filter",
            "schema",
            "apply",
            "reconnect",
            "heartbeat",
            "maxMessageBytes",
            "resyncOnReconnect",
            "bufferBeforeLoaded",
            "headers",
            "protocols",
            "subscribeMessage",
            "unsubscribeMessage",
            "transport",
            "events",
            "resume",
            "sequence",
            "share",
            "graphql",
        ],
    )?;
    let graphql = match obj.get("graphql") {
        None | Some(Value::Null) => None,
        Some(g) => {
            // The protocol decides the URL, the subprotocol and the frames a stream sends.
            for key in ["url", "protocols", "subscribeMessage", "unsubscribeMessage", "transport"] {
                if obj.get(key).is_some_and(|v| !v.is_null()) {
                    return Err(err(&join(path, key), "cannot be used with stream.graphql (graphql-transport-ws decides it)"));
                }
            }
            Some(crate::graphql::GraphqlStream::parse(g, &join(path, "graphql")).map_err(|(p, m)| err(&p, m))?)
        }
    };
    let share = match obj.get("share") {
        None | Some(Value::Null) => false,
        Some(b) => bool_at(b, &join(path, "share"))?,
    };
    let resume = match obj.get("resume") {
        None | Some(Value::Null) => None,
        Some(r) => Some(resume_at(r, &join(path, "resume"))?),
    };
    // T6 on a shared connection (T3, T5): its URL is every member's, so no cursor goes in it.
    if (share || graphql.is_some()) && resume.as_ref().is_some_and(|r| r.param.is_some()) {
        return Err(err(
            &join(path, "resume.param"),
            "a shared connection's URL is the same for every entry: send the cursor as \"{cursor}\" in subscribeMessage (GraphQL: in variables)",
        ));
    }
    if let Some(g) = &graphql {
        // T6: a GraphQL subscription resumes by a `{cursor}` variable.
        if g.operation.has_cursor() && resume.is_none() {
            return Err(err(&join(path, "graphql.variables"), "`{cursor}` is the resume cursor: it needs stream.resume"));
        }
        if resume.is_some() && !g.operation.has_cursor() {
            return Err(err(&join(path, "resume"), "a GraphQL subscription sends its cursor as a \"{cursor}\" variable: give one"));
        }
    }
    let sequence = match obj.get("sequence") {
        None | Some(Value::Null) => None,
        Some(s) => Some(pointer_at(s, &join(path, "sequence"))?),
    };
    let transport = match obj.get("transport") {
        None | Some(Value::Null) => Transport::WebSocket,
        Some(t) => match string_at(t, &join(path, "transport"))?.as_str() {
            "websocket" => Transport::WebSocket,
            "sse" => Transport::Sse,
            other => return Err(err(&join(path, "transport"), format!("expected \"websocket\" or \"sse\", found {other:?}"))),
        },
    };
    let events = events_at(obj.get("events"), &join(path, "events"), transport)?;
    let headers = headers_at(obj.get("headers"), &join(path, "headers"), endpoint_headers)?;
    let protocols = protocols_at(obj.get("protocols"), &join(path, "protocols"))?;
    let subscribe_message = message_template_at(obj.get("subscribeMessage"), &join(path, "subscribeMessage"), resume.is_some())?;
    let unsubscribe_message = message_template_at(obj.get("unsubscribeMessage"), &join(path, "unsubscribeMessage"), false)?;
    if transport == Transport::Sse {
        // An EventSource only listens: nothing of the WebSocket's sending side applies.
        for key in ["protocols", "subscribeMessage", "unsubscribeMessage"] {
            if obj.get(key).is_some_and(|v| !v.is_null()) {
                return Err(err(&join(path, key), "cannot be used with transport \"sse\" (an SSE stream only receives)"));
            }
        }
    }
    if share && transport == Transport::Sse {
        return Err(err(&join(path, "share"), "applies to WebSocket streams (transport \"websocket\")"));
    }
    let url = match obj.get("url") {
        None | Some(Value::Null) => graphql.as_ref().map(|g| g.url.clone()),
        Some(u) => {
            let upath = join(path, "url");
            let t = template_at(u, &upath)?;
            let lower = t.source().to_ascii_lowercase();
            let (schemes, expected) = match transport {
                Transport::WebSocket => (["ws://", "wss://"], "a ws:// or wss:// URL"),
                Transport::Sse => (["http://", "https://"], "an http:// or https:// URL (transport \"sse\")"),
            };
            if !schemes.iter().any(|s| lower.starts_with(s)) {
                return Err(err(&upath, format!("must be {expected}, found {:?}", t.source())));
            }
            Some(t)
        }
    };
    let filter = match obj.get("filter") {
        None | Some(Value::Null) => Vec::new(),
        Some(f) => filter_at(f, &join(path, "filter"))?,
    };
    let schema = match obj.get("schema") {
        None | Some(Value::Null) => None,
        Some(s) => {
            let spath = join(path, "schema");
            let validator = jsonschema::validator_for(s)
                .map_err(|e| err(&spath, format!("not a valid JSON Schema: {e}")))?;
            Some(Arc::new(validator))
        }
    };
    let apply = match obj.get("apply") {
        None | Some(Value::Null) => None,
        Some(a) => Some(parse_apply(a, &join(path, "apply"))?),
    };
    let reconnect = match obj.get("reconnect") {
        None | Some(Value::Null) => ReconnectConfig::default(),
        Some(r) => {
            let rpath = join(path, "reconnect");
            let robj = as_object(r, &rpath)?;
            known_keys(robj, &rpath, &["initialDelayMs", "maxDelayMs"])?;
            let mut rc = ReconnectConfig::default();
            if let Some(d) = robj.get("initialDelayMs") {
                rc.initial_delay_ms = uint_at(d, &join(&rpath, "initialDelayMs"))?;
            }
            if let Some(d) = robj.get("maxDelayMs") {
                rc.max_delay_ms = uint_at(d, &join(&rpath, "maxDelayMs"))?;
            }
            if rc.max_delay_ms < rc.initial_delay_ms {
                return Err(err(&join(&rpath, "maxDelayMs"), "must be >= initialDelayMs"));
            }
            rc
        }
    };
    let heartbeat = match obj.get("heartbeat") {
        None => Some(HeartbeatConfig::default()),
        Some(Value::Null) | Some(Value::Bool(false)) => None,
        Some(h) => {
            let hpath = join(path, "heartbeat");
            let hobj = as_object(h, &hpath)?;
            known_keys(hobj, &hpath, &["intervalMs", "timeoutMs"])?;
            let mut hb = HeartbeatConfig::default();
            if let Some(d) = hobj.get("intervalMs") {
                hb.interval_ms = uint_at(d, &join(&hpath, "intervalMs"))?;
            }
            if let Some(d) = hobj.get("timeoutMs") {
                hb.timeout_ms = uint_at(d, &join(&hpath, "timeoutMs"))?;
            }
            if hb.interval_ms == 0 || hb.timeout_ms == 0 {
                return Err(err(&hpath, "intervalMs and timeoutMs must be at least 1"));
            }
            Some(hb)
        }
    };
    let max_message_bytes = match obj.get("maxMessageBytes") {
        None => DEFAULT_MAX_MESSAGE_BYTES,
        Some(m) => match uint_at(m, &join(path, "maxMessageBytes"))? {
            0 => return Err(err(&join(path, "maxMessageBytes"), "must be at least 1")),
            n => usize::try_from(n).unwrap_or(usize::MAX),
        },
    };
    let resync_on_reconnect = match obj.get("resyncOnReconnect") {
        None => true,
        Some(b) => bool_at(b, &join(path, "resyncOnReconnect"))?,
    };
    let buffer_before_loaded = match obj.get("bufferBeforeLoaded") {
        None => DEFAULT_BUFFER_BEFORE_LOADED,
        Some(b) => usize::try_from(uint_at(b, &join(path, "bufferBeforeLoaded"))?).unwrap_or(usize::MAX),
    };
    Ok(StreamConfig {
        url,
        filter,
        schema,
        apply,
        reconnect,
        heartbeat,
        max_message_bytes,
        resync_on_reconnect,
        buffer_before_loaded,
        headers,
        protocols,
        subscribe_message,
        unsubscribe_message,
        transport,
        events,
        resume,
        sequence,
        share,
        graphql,
    })
}

/// A field → expected value object, as `stream.filter` (and T6 `mustRefetch`) take it.
fn filter_at(f: &Value, fpath: &str) -> Result<Vec<(String, FilterValue)>> {
    fields_at(f, fpath, Template::parse)
}

/// `filter`-shaped fields: a literal per field, or a template (`parse` decides which placeholders).
fn fields_at(f: &Value, fpath: &str, parse: fn(&str) -> std::result::Result<Template, String>) -> Result<Vec<(String, FilterValue)>> {
    let mut filter = Vec::new();
    for (field, expected) in as_object(f, fpath)? {
        let value = match expected {
            Value::String(s) => {
                let t = parse(s).map_err(|m| err(&join(fpath, field), m))?;
                if t.has_placeholders() {
                    FilterValue::Template(t)
                } else {
                    FilterValue::Literal(expected.clone())
                }
            }
            other => FilterValue::Literal(other.clone()),
        };
        filter.push((field.clone(), value));
    }
    Ok(filter)
}

/// T4 `stream.events`: SSE event names, each a non-empty string listed once.
fn events_at(v: Option<&Value>, path: &str, transport: Transport) -> Result<Vec<String>> {
    let Some(v) = v.filter(|v| !v.is_null()) else { return Ok(vec!["message".to_owned()]) };
    if transport != Transport::Sse {
        return Err(err(path, "applies only to transport \"sse\""));
    }
    let items = v.as_array().ok_or_else(|| err(path, format!("expected an array of event names, found {}", kind_of(v))))?;
    if items.is_empty() {
        return Err(err(path, "must name at least one event"));
    }
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = format!("{path}[{i}]");
        let name = non_empty(string_at(item, &at)?, &at)?;
        if name.contains(['\r', '\n']) {
            return Err(err(&at, "an event name cannot hold CR or LF"));
        }
        if out.contains(&name) {
            return Err(err(&at, format!("{name:?} is listed twice")));
        }
        out.push(name);
    }
    Ok(out)
}

const APPLY_RULES: &str = "append, upsert, remove, jsonPatch, mergePatch, replace";

fn parse_apply(v: &Value, path: &str) -> Result<ApplyRule> {
    let (name, opts, opts_path) = match v {
        Value::String(s) => (s.as_str(), None, String::new()),
        Value::Object(o) if o.len() == 1 => {
            let (k, val) = o.iter().next().expect("one member");
            let opts_path = join(path, k);
            (k.as_str(), Some(as_object(val, &opts_path)?), opts_path)
        }
        other => {
            return Err(err(
                path,
                format!("expected a rule name or {{\"rule\": {{options}}}}, found {}", kind_of(other)),
            ))
        }
    };
    let select_id = |opts: Option<&Obj>| -> Result<Option<String>> {
        match opts.and_then(|o| o.get("selectId")) {
            None => Ok(None),
            Some(s) => Ok(Some(non_empty(string_at(s, &join(&opts_path, "selectId"))?, &join(&opts_path, "selectId"))?)),
        }
    };
    let rule = match name {
        "append" => {
            if let Some(o) = opts {
                known_keys(o, &opts_path, &["maxLen", "dedupeBy"])?;
            }
            let max_len = match opts.and_then(|o| o.get("maxLen")) {
                None | Some(Value::Null) => None,
                Some(m) => match uint_at(m, &join(&opts_path, "maxLen"))? {
                    0 => return Err(err(&join(&opts_path, "maxLen"), "must be at least 1")),
                    n => Some(usize::try_from(n).unwrap_or(usize::MAX)),
                },
            };
            let dedupe_by = match opts.and_then(|o| o.get("dedupeBy")) {
                None | Some(Value::Null) => None,
                Some(d) => Some(non_empty(string_at(d, &join(&opts_path, "dedupeBy"))?, &join(&opts_path, "dedupeBy"))?),
            };
            ApplyRule::Append { max_len, dedupe_by }
        }
        "upsert" | "remove" => {
            if let Some(o) = opts {
                known_keys(o, &opts_path, &["selectId"])?;
            }
            let select_id = select_id(opts)?;
            if name == "upsert" {
                ApplyRule::Upsert { select_id }
            } else {
                ApplyRule::Remove { select_id }
            }
        }
        "jsonPatch" | "mergePatch" | "replace" => {
            if let Some(o) = opts {
                known_keys(o, &opts_path, &[])?;
            }
            match name {
                "jsonPatch" => ApplyRule::JsonPatch,
                "mergePatch" => ApplyRule::MergePatch,
                _ => ApplyRule::Replace,
            }
        }
        other => return Err(err(path, format!("unknown apply rule {other:?} (expected one of: {APPLY_RULES})"))),
    };
    Ok(rule)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config_error(v: Value) -> (String, String) {
        match Config::from_value(&v) {
            Err(Error::Config { path, message }) => (path, message),
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn parses_the_spec_example() {
        let c = Config::from_value(&json!({
            "baseUrl": "http://127.0.0.1:8080/",
            "keepUnusedDataFor": 60,
            "endpoints": {"getMessages": {
                "query": "messages/{arg}",
                "transformResponse": {"entityAdapter": {"selectId": "id", "sortBy": "-id"}},
                "keepUnusedDataFor": 5,
                "stream": {
                    "url": "ws://127.0.0.1:8080/",
                    "filter": {"channel": "{arg}"},
                    "schema": {"type": "object", "required": ["id", "channel", "text"]},
                    "apply": {"append": {"maxLen": 100, "dedupeBy": "id"}},
                    "reconnect": {"initialDelayMs": 100, "maxDelayMs": 10000},
                    "heartbeat": {"intervalMs": 15000, "timeoutMs": 10000},
                    "maxMessageBytes": 16777216,
                    "resyncOnReconnect": true,
                    "bufferBeforeLoaded": 10000
                }
            }}
        }))
        .unwrap();
        let ep = &c.endpoints["getMessages"];
        assert_eq!(ep.keep_unused_data_for, Some(KeepUnused::Seconds(5.0)));
        assert_eq!(ep.entity_adapter.as_ref().unwrap().sort_by, Some(("id".into(), SortOrder::Descending)));
        let s = ep.stream.as_ref().unwrap();
        assert_eq!(s.apply, Some(ApplyRule::Append { max_len: Some(100), dedupe_by: Some("id".into()) }));
        assert!(s.schema.is_some());
        assert_eq!(c.queue_limit, DEFAULT_QUEUE_LIMIT);
    }

    #[test]
    fn errors_name_the_key_path() {
        let (p, m) = config_error(json!({"endpoints": {"e": {"query": "x/{arg.}"}}}));
        assert_eq!(p, "endpoints.e.query");
        assert!(m.contains("empty field name"), "{m}");
        let (p, m) = config_error(json!({"endpoints": {"e": {"stream": {"apply": "appendd"}}}}));
        assert_eq!(p, "endpoints.e.stream.apply");
        assert!(m.contains("unknown apply rule \"appendd\""), "{m}");
        let (p, _) = config_error(json!({"endpoints": {"e": {"stream": {"apply": {"append": {"maxLen": -1}}}}}}));
        assert_eq!(p, "endpoints.e.stream.apply.append.maxLen");
        let (p, _) = config_error(json!({"endpoints": {"e": {"quer": "x"}}}));
        assert_eq!(p, "endpoints.e.quer");
        let (p, _) = config_error(json!({"endpoints": {"e": {"stream": {"url": "http://x/"}}}}));
        assert_eq!(p, "endpoints.e.stream.url");
        let (p, _) = config_error(json!({"endpoints": {"e": {"stream": {"schema": {"type": 12}}}}}));
        assert_eq!(p, "endpoints.e.stream.schema");
        let (p, _) = config_error(json!({"keepUnusedDataFor": -1, "endpoints": {}}));
        assert_eq!(p, "keepUnusedDataFor");
        let (p, _) = config_error(json!({"baseUrl": "x"}));
        assert_eq!(p, "endpoints");
        let (p, _) = config_error(json!([1]));
        assert_eq!(p, "(root)");
    }

    #[test]
    fn l7_keep_unused_accepts_zero_null_infinite_and_large() {
        let c = Config::from_value(&json!({"keepUnusedDataFor": null, "endpoints": {
            "a": {"keepUnusedDataFor": 0}, "b": {"keepUnusedDataFor": "infinite"}, "c": {"keepUnusedDataFor": 1e12}
        }}))
        .unwrap();
        assert_eq!(c.keep_unused_data_for, KeepUnused::Forever);
        assert_eq!(c.endpoints["a"].keep_unused_data_for, Some(KeepUnused::Seconds(0.0)));
        assert_eq!(c.endpoints["b"].keep_unused_data_for, Some(KeepUnused::Forever));
        assert_eq!(c.endpoints["c"].keep_unused_data_for, Some(KeepUnused::Seconds(1e12)));
    }

    #[test]
    fn t1_headers_merge_stream_over_endpoint_over_top_level() {
        let c = Config::from_value(&json!({
            "headers": {"Authorization": "Bearer top", "X-App": "demo"},
            "endpoints": {"e": {
                "headers": {"authorization": "Bearer {arg.token}"},
                "stream": {"url": "ws://127.0.0.1/", "headers": {"X-Stream": "1", "x-app": "stream"}}
            }, "plain": {}}
        }))
        .unwrap();
        let arg = json!({"token": "t"});
        let request = c.endpoints["e"].headers.render(Some(&arg)).unwrap().into_pairs();
        assert_eq!(request, vec![("X-App".into(), "demo".into()), ("authorization".into(), "Bearer t".into())]);
        let stream = c.endpoints["e"].stream.as_ref().unwrap().headers.render(Some(&arg)).unwrap().into_pairs();
        assert_eq!(
            stream,
            vec![("authorization".into(), "Bearer t".into()), ("X-Stream".into(), "1".into()), ("x-app".into(), "stream".into())]
        );
        assert_eq!(c.endpoints["plain"].headers.render(None).unwrap().into_pairs().len(), 2);
    }

    #[test]
    fn t1_t2_bad_headers_protocols_and_messages_name_their_path() {
        let (p, m) = config_error(json!({"headers": {"A": "x\r\ny"}, "endpoints": {}}));
        assert_eq!((p.as_str(), m.contains("CR, LF or NUL")), ("headers.A", true));
        let (p, _) = config_error(json!({"endpoints": {"e": {"headers": {"A B": "x"}}}}));
        assert_eq!(p, "endpoints.e.headers.A B");
        let (p, _) = config_error(json!({"endpoints": {"e": {"stream": {"headers": ["x"]}}}}));
        assert_eq!(p, "endpoints.e.stream.headers");
        let (p, _) = config_error(json!({"endpoints": {"e": {"stream": {"protocols": ["a", "a"]}}}}));
        assert_eq!(p, "endpoints.e.stream.protocols[1]");
        let (p, _) = config_error(json!({"endpoints": {"e": {"stream": {"protocols": ["a b"]}}}}));
        assert_eq!(p, "endpoints.e.stream.protocols[0]");
        let (p, _) = config_error(json!({"endpoints": {"e": {"stream": {"protocols": "a"}}}}));
        assert_eq!(p, "endpoints.e.stream.protocols");
        let (p, m) = config_error(json!({"endpoints": {"e": {"stream": {"subscribeMessage": {"ch": "{channel}"}}}}}));
        assert_eq!((p.as_str(), m.contains("unknown placeholder")), ("endpoints.e.stream.subscribeMessage", true));
    }

    #[test]
    fn t4_sse_streams_take_http_urls_and_event_names() {
        let c = Config::from_value(&json!({"endpoints": {"e": {"stream": {
            "transport": "sse", "url": "https://h/events/{arg}", "events": ["message", "update"]
        }}}}))
        .unwrap();
        let s = c.endpoints["e"].stream.as_ref().unwrap();
        assert_eq!((s.transport, s.events.clone()), (Transport::Sse, vec!["message".to_owned(), "update".to_owned()]));
        let c = Config::from_value(&json!({"endpoints": {"e": {"stream": {"url": "ws://h/"}}}})).unwrap();
        let s = c.endpoints["e"].stream.as_ref().unwrap();
        assert_eq!((s.transport, s.events.clone()), (Transport::WebSocket, vec!["message".to_owned()]));
    }

    #[test]
    fn t4_bad_sse_configs_name_their_path() {
        let stream = |s: Value| config_error(json!({"endpoints": {"e": {"stream": s}}}));
        let (p, m) = stream(json!({"transport": "sse", "url": "ws://h/"}));
        assert_eq!((p.as_str(), m.contains("http://")), ("endpoints.e.stream.url", true), "{m}");
        let (p, m) = stream(json!({"url": "http://h/"}));
        assert_eq!((p.as_str(), m.contains("ws://")), ("endpoints.e.stream.url", true), "{m}");
        let (p, m) = stream(json!({"transport": "SSE"}));
        assert_eq!((p.as_str(), m.contains("\"sse\"")), ("endpoints.e.stream.transport", true), "{m}");
        let (p, _) = stream(json!({"transport": 1}));
        assert_eq!(p, "endpoints.e.stream.transport");
        let (p, m) = stream(json!({"events": ["update"]}));
        assert_eq!((p.as_str(), m.contains("sse")), ("endpoints.e.stream.events", true), "{m}");
        let (p, _) = stream(json!({"transport": "sse", "events": []}));
        assert_eq!(p, "endpoints.e.stream.events");
        let (p, _) = stream(json!({"transport": "sse", "events": ["a", "a"]}));
        assert_eq!(p, "endpoints.e.stream.events[1]");
        let (p, _) = stream(json!({"transport": "sse", "events": [""]}));
        assert_eq!(p, "endpoints.e.stream.events[0]");
        let (p, _) = stream(json!({"transport": "sse", "events": "update"}));
        assert_eq!(p, "endpoints.e.stream.events");
        for key in ["protocols", "subscribeMessage", "unsubscribeMessage"] {
            let value = if key == "protocols" { json!(["p"]) } else { json!({"op": "sub"}) };
            let (p, m) = stream(json!({"transport": "sse", key: value}));
            assert_eq!((p, m.contains("only receives")), (format!("endpoints.e.stream.{key}"), true), "{m}");
        }
    }

    #[test]
    fn t6_bad_resume_and_sequence_configs_name_their_path() {
        let stream = |s: Value| config_error(json!({"endpoints": {"e": {"stream": s}}}));
        let (p, m) = stream(json!({"resume": {}}));
        assert_eq!((p.as_str(), m.contains("required")), ("endpoints.e.stream.resume.cursor", true), "{m}");
        let (p, m) = stream(json!({"resume": {"cursor": "seq"}}));
        assert_eq!((p.as_str(), m.contains("JSON Pointer")), ("endpoints.e.stream.resume.cursor", true), "{m}");
        let (p, _) = stream(json!({"resume": {"cursor": "/seq", "initial": 1}}));
        assert_eq!(p, "endpoints.e.stream.resume.initial");
        let (p, _) = stream(json!({"resume": {"cursor": "/seq", "param": ""}}));
        assert_eq!(p, "endpoints.e.stream.resume.param");
        let (p, _) = stream(json!({"resume": {"cursor": "/seq", "mustRefetch": "reset"}}));
        assert_eq!(p, "endpoints.e.stream.resume.mustRefetch");
        let (p, _) = stream(json!({"resume": {"cursor": "/seq", "after": 1}}));
        assert_eq!(p, "endpoints.e.stream.resume.after");
        let (p, _) = stream(json!({"sequence": "seq"}));
        assert_eq!(p, "endpoints.e.stream.sequence");
        let (p, m) = stream(json!({"subscribeMessage": {"from": "{cursor}"}}));
        assert_eq!((p.as_str(), m.contains("stream.resume")), ("endpoints.e.stream.subscribeMessage", true), "{m}");
        let (p, _) = stream(json!({"resume": {"cursor": "/seq"}, "unsubscribeMessage": {"from": "{cursor}"}}));
        assert_eq!(p, "endpoints.e.stream.unsubscribeMessage");
        assert!(Config::from_value(&json!({"endpoints": {"e": {"stream": {
            "resume": {"cursor": "/seq", "initial": "/last", "mustRefetch": {"type": "reset"}},
            "sequence": "/seq", "subscribeMessage": {"from": "{cursor}"}
        }}}})).is_ok());
        // A GraphQL subscription resumes by a `{cursor}` variable or the URL's param.
        let graphql = |variables: Value| json!({"url": "ws://h/", "query": "subscription ($after: Int) { a(after: $after) }", "variables": variables});
        let (p, m) = stream(json!({"graphql": graphql(json!({"after": "{cursor}"})), "apply": "append"}));
        assert_eq!((p.as_str(), m.contains("stream.resume")), ("endpoints.e.stream.graphql.variables", true), "{m}");
        let (p, m) = stream(json!({"graphql": graphql(json!({})), "apply": "append", "resume": {"cursor": "/id"}}));
        assert_eq!((p.as_str(), m.contains("{cursor}")), ("endpoints.e.stream.resume", true), "{m}");
        let ok = json!({"endpoints": {"e": {"stream": {"graphql": graphql(json!({"after": "{cursor}"})), "apply": "append", "resume": {"cursor": "/id"}}}}});
        assert!(Config::from_value(&ok).is_ok(), "{ok}");
        // One URL for every entry of a shared connection: no cursor in it.
        let (p, _) = stream(json!({"graphql": graphql(json!({"after": "{cursor}"})), "apply": "append", "resume": {"cursor": "/id", "param": "after"}}));
        assert_eq!(p, "endpoints.e.stream.resume.param");
        let (p, m) = stream(json!({"url": "ws://h/", "share": true, "apply": "append", "resume": {"cursor": "/id", "param": "after"}}));
        assert_eq!((p.as_str(), m.contains("subscribeMessage")), ("endpoints.e.stream.resume.param", true), "{m}");
        // A request has no cursor.
        let query = json!({"graphql": {"url": "http://h/", "query": "query { a }", "variables": {"after": "{cursor}"}}});
        let (p, _) = config_error(json!({"endpoints": {"e": {"query": query}}}));
        assert_eq!(p, "endpoints.e.query.graphql.variables");
    }

    #[test]
    fn config_text_errors() {
        assert!(matches!(Config::from_json_text("{bad"), Err(Error::Config { .. })));
    }
}
