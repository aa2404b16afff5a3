//! `{arg}` / `{arg.a.b}` templates (SPEC §2) for `query`, `stream.url`, `stream.filter`, headers
//! (T1) and the JSON messages a stream sends (T2).
//! Substituted values are percent-encoded in URLs, never spliced raw (§9).

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;

use crate::key::{js_number, stable_json};

/// What `encodeURIComponent` leaves alone, so URLs match what RTK Query builds.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

#[derive(Clone, Debug, PartialEq)]
enum Part {
    Text(String),
    /// A field path into the arg; empty is the whole arg.
    Arg(Vec<String>),
    /// W3 `confirm`: a field path into the mutation's result; empty is the whole result.
    Result(Vec<String>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

impl Template {
    /// Parses a template. Errors say what is wrong (`{arg.}` has an empty field name).
    pub fn parse(source: &str) -> Result<Template, String> {
        Self::parse_roots(source, false)
    }

    /// `parse`, also taking `{result}` / `{result.field}` (W3 `confirm`: the mutation's result).
    pub fn parse_with_result(source: &str) -> Result<Template, String> {
        Self::parse_roots(source, true)
    }

    fn parse_roots(source: &str, with_result: bool) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut rest = source;
        while let Some(open) = rest.find('{') {
            text.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or_else(|| format!("unclosed `{{` in template {source:?}"))?;
            let name = &after[..close];
            let (root, rest_name) = match name.split_once('.') {
                Some((root, fields)) => (root, Some(fields)),
                None => (name, None),
            };
            let is_result = with_result && root == "result";
            if root != "arg" && !is_result {
                let expected = if with_result { "`{arg}`, `{arg.field}`, `{result}` or `{result.field}`" } else { "`{arg}` or `{arg.field}`" };
                return Err(format!("unknown placeholder `{{{name}}}` in template {source:?} (expected {expected})"));
            }
            let path: Vec<String> = match rest_name {
                None => Vec::new(),
                Some(fields) => {
                    let fields: Vec<String> = fields.split('.').map(str::to_owned).collect();
                    if fields.iter().any(String::is_empty) {
                        return Err(format!("empty field name in `{{{name}}}` in template {source:?}"));
                    }
                    fields
                }
            };
            if !text.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut text)));
            }
            parts.push(if is_result { Part::Result(path) } else { Part::Arg(path) });
            rest = &after[close + 1..];
        }
        text.push_str(rest);
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(Template { source: source.to_owned(), parts })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn has_placeholders(&self) -> bool {
        self.parts.iter().any(|p| !matches!(p, Part::Text(_)))
    }

    /// True when the template is exactly one placeholder: a filter then compares JSON values.
    pub fn is_single_placeholder(&self) -> bool {
        matches!(self.parts.as_slice(), [Part::Arg(_) | Part::Result(_)])
    }

    /// The value a single-placeholder template names (a number stays a number).
    pub fn resolve_value(&self, arg: Option<&Value>) -> Result<Value, String> {
        self.resolve_value_in(arg, None)
    }

    /// `resolve_value` with the mutation's result for `{result…}` (W3).
    pub fn resolve_value_in(&self, arg: Option<&Value>, result: Option<&Value>) -> Result<Value, String> {
        match self.parts.as_slice() {
            [part @ (Part::Arg(_) | Part::Result(_))] => self.lookup_part(part, arg, result).cloned(),
            _ => self.render_text_in(arg, result).map(Value::String),
        }
    }

    /// Renders with substituted values as text (filters).
    pub fn render_text(&self, arg: Option<&Value>) -> Result<String, String> {
        self.render(arg, None, false)
    }

    /// `render_text` with the mutation's result for `{result…}` (W3).
    pub fn render_text_in(&self, arg: Option<&Value>, result: Option<&Value>) -> Result<String, String> {
        self.render(arg, result, false)
    }

    /// Renders with every substituted value percent-encoded (URLs).
    pub fn render_url(&self, arg: Option<&Value>) -> Result<String, String> {
        self.render(arg, None, true)
    }

    fn lookup_part<'a>(&self, part: &Part, arg: Option<&'a Value>, result: Option<&'a Value>) -> Result<&'a Value, String> {
        match part {
            Part::Arg(path) => lookup(arg, path, &self.source),
            Part::Result(path) => {
                let Some(result) = result else {
                    return Err(format!("template {:?} needs the mutation's result, which there is none of yet", self.source));
                };
                lookup(Some(result), path, &self.source).map_err(|m| m.replace("the arg has", "the result has"))
            }
            Part::Text(_) => unreachable!("text is no placeholder"),
        }
    }

    fn render(&self, arg: Option<&Value>, result: Option<&Value>, encode: bool) -> Result<String, String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                placeholder => {
                    let text = value_text(self.lookup_part(placeholder, arg, result)?);
                    if encode {
                        out.extend(utf8_percent_encode(&text, COMPONENT));
                    } else {
                        out.push_str(&text);
                    }
                }
            }
        }
        Ok(out)
    }
}

/// `encodeURIComponent`: what a URL part is made of when it comes from data (§9).
pub fn encode_component(text: &str) -> String {
    utf8_percent_encode(text, COMPONENT).to_string()
}

/// A value as it reads inside a string: strings bare, numbers as JavaScript writes them.
pub fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => js_number(n),
        other => stable_json(other),
    }
}

/// A JSON value whose strings are templates (T2 `subscribeMessage`): a string that is one
/// placeholder becomes the value it names (a number stays a number); others render as text.
/// Object keys are never templated. A string that is exactly `"{cursor}"` becomes the T6 resume
/// cursor (`null` when there is none yet).
#[derive(Clone, Debug, PartialEq)]
pub struct ValueTemplate(Value);

/// The T6 cursor's placeholder in a `subscribeMessage`.
const CURSOR: &str = "{cursor}";

impl ValueTemplate {
    /// Checks every string of `v` parses as a template.
    pub fn parse(v: &Value) -> Result<ValueTemplate, String> {
        fn check(v: &Value) -> Result<(), String> {
            match v {
                Value::String(s) if s == CURSOR => Ok(()),
                Value::String(s) => Template::parse(s).map(drop),
                Value::Array(a) => a.iter().try_for_each(check),
                Value::Object(o) => o.values().try_for_each(check),
                _ => Ok(()),
            }
        }
        check(v)?;
        Ok(ValueTemplate(v.clone()))
    }

    /// Whether some string is `"{cursor}"`.
    pub fn has_cursor(&self) -> bool {
        fn any(v: &Value) -> bool {
            match v {
                Value::String(s) => s == CURSOR,
                Value::Array(a) => a.iter().any(any),
                Value::Object(o) => o.values().any(any),
                _ => false,
            }
        }
        any(&self.0)
    }

    pub fn render(&self, arg: Option<&Value>) -> Result<Value, String> {
        self.render_with_cursor(arg, None)
    }

    pub fn render_with_cursor(&self, arg: Option<&Value>, cursor: Option<&Value>) -> Result<Value, String> {
        fn walk(v: &Value, arg: Option<&Value>, cursor: Option<&Value>) -> Result<Value, String> {
            Ok(match v {
                Value::String(s) if s == CURSOR => cursor.cloned().unwrap_or(Value::Null),
                Value::String(s) => {
                    let t = Template::parse(s)?;
                    if t.has_placeholders() {
                        t.resolve_value(arg)?
                    } else {
                        v.clone()
                    }
                }
                Value::Array(a) => Value::Array(a.iter().map(|x| walk(x, arg, cursor)).collect::<Result<_, _>>()?),
                Value::Object(o) => Value::Object(
                    o.iter().map(|(k, x)| Ok((k.clone(), walk(x, arg, cursor)?))).collect::<Result<_, String>>()?,
                ),
                other => other.clone(),
            })
        }
        walk(&self.0, arg, cursor)
    }
}

fn lookup<'a>(arg: Option<&'a Value>, path: &[String], source: &str) -> Result<&'a Value, String> {
    let Some(mut v) = arg else {
        return Err(format!("template {source:?} needs an arg, but none was given"));
    };
    for (i, field) in path.iter().enumerate() {
        let next = match v {
            Value::Object(m) => m.get(field.as_str()),
            Value::Array(a) => field.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        };
        v = next.ok_or_else(|| {
            format!("template {source:?}: the arg has no field `{}`", path[..=i].join("."))
        })?;
    }
    Ok(v)
}

/// Joins `baseUrl` and a rendered `query` as RTK Query's `fetchBaseQuery` does: one `/`
/// between them whatever slashes either side has; an absolute URL stands alone.
pub fn join_url(base: Option<&str>, url: &str) -> String {
    let Some(base) = base.filter(|b| !b.is_empty()) else {
        return url.to_owned();
    };
    if url.is_empty() {
        return base.to_owned();
    }
    if is_absolute(url) {
        return url.to_owned();
    }
    let delimiter = if base.ends_with('/') || !url.starts_with('?') { "/" } else { "" };
    format!("{}{}{}", base.trim_end_matches('/'), delimiter, url.trim_start_matches('/'))
}

fn is_absolute(url: &str) -> bool {
    let mut chars = url.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() => {}
        _ => return false,
    }
    for c in chars {
        if c == ':' {
            return true;
        }
        if !(c.is_ascii_alphanumeric() || c == '+' || c == '-' || c == '.') {
            return false;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_whole_arg_and_fields_percent_encoded() {
        let t = Template::parse("messages/{arg}").unwrap();
        assert_eq!(t.render_url(Some(&json!("a b/c?"))).unwrap(), "messages/a%20b%2Fc%3F");
        assert_eq!(t.render_url(Some(&json!(1.0))).unwrap(), "messages/1");
        let t = Template::parse("posts/{arg.id}?page={arg.page.n}").unwrap();
        assert_eq!(t.render_url(Some(&json!({"id": 7, "page": {"n": "2&x"}}))).unwrap(), "posts/7?page=2%26x");
    }

    #[test]
    fn missing_field_and_missing_arg_are_errors() {
        let t = Template::parse("posts/{arg.id}").unwrap();
        assert!(t.render_url(Some(&json!({"x": 1}))).unwrap_err().contains("no field `id`"));
        assert!(t.render_url(None).unwrap_err().contains("needs an arg"));
    }

    #[test]
    fn bad_templates_are_refused() {
        assert!(Template::parse("{arg.}").unwrap_err().contains("empty field name"));
        assert!(Template::parse("{foo}").unwrap_err().contains("unknown placeholder"));
        assert!(Template::parse("x/{arg").unwrap_err().contains("unclosed"));
    }

    #[test]
    fn single_placeholder_keeps_json_type() {
        let t = Template::parse("{arg.n}").unwrap();
        assert!(t.is_single_placeholder());
        assert_eq!(t.resolve_value(Some(&json!({"n": 3}))).unwrap(), json!(3));
        let t = Template::parse("ch-{arg}").unwrap();
        assert_eq!(t.resolve_value(Some(&json!(3))).unwrap(), json!("ch-3"));
    }

    #[test]
    fn t2_value_templates_keep_json_types_and_render_nested_strings() {
        let t = ValueTemplate::parse(&json!({"type": "subscribe", "channel": "{arg}", "ids": ["{arg}", "x-{arg}"], "n": 1}))
            .unwrap();
        assert_eq!(
            t.render(Some(&json!(7))).unwrap(),
            json!({"type": "subscribe", "channel": 7, "ids": [7, "x-7"], "n": 1})
        );
        assert!(t.render(None).unwrap_err().contains("needs an arg"));
        assert!(ValueTemplate::parse(&json!({"a": ["{nope}"]})).unwrap_err().contains("unknown placeholder"));
    }

    #[test]
    fn joins_like_fetch_base_query() {
        assert_eq!(join_url(Some("http://h/"), "/m"), "http://h/m");
        assert_eq!(join_url(Some("http://h"), "m"), "http://h/m");
        assert_eq!(join_url(Some("http://h//"), "//m"), "http://h/m");
        assert_eq!(join_url(Some("http://h"), "?q=1"), "http://h?q=1");
        assert_eq!(join_url(Some("http://h/"), "?q=1"), "http://h/?q=1");
        assert_eq!(join_url(Some("http://h/"), "ws://other/x"), "ws://other/x");
        assert_eq!(join_url(None, "m"), "m");
    }
}
