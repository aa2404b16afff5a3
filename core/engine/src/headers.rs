//! T1 headers: `headers` objects (name → template) at the top level, per endpoint and in
//! `stream`, merged stream over endpoint over top level with names compared case-insensitively.
//!
//! Values are credentials: [`Headers`] prints names only, and every error about a header names
//! the header, never its value (§9).

use serde_json::Value;

use crate::template::Template;

/// A `headers` object after parsing, or several merged: each name once (the last layer wins).
#[derive(Clone, Default, PartialEq)]
pub struct HeaderTemplates(Vec<(String, Template)>);

impl HeaderTemplates {
    /// Parses one `headers` object. `Err` is `(path, message)` for a config error.
    pub fn parse(v: &Value, path: &str) -> Result<HeaderTemplates, (String, String)> {
        let Some(obj) = v.as_object() else {
            return Err((path.to_owned(), "expected an object of header name to value".to_owned()));
        };
        let mut out: Vec<(String, Template)> = Vec::with_capacity(obj.len());
        for (name, value) in obj {
            let at = format!("{path}.{name}");
            check_name(name).map_err(|m| (at.clone(), m))?;
            if out.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
                return Err((at, "the same header name twice (names are case-insensitive)".to_owned()));
            }
            let Some(text) = value.as_str() else {
                return Err((at, "expected a string (a template like \"Bearer {arg.token}\")".to_owned()));
            };
            // Checked on the source: a literal CR/LF/NUL is a config error before any request.
            check_value(name, text).map_err(|m| (at.clone(), m))?;
            out.push((name.clone(), Template::parse(text).map_err(|m| (at, m))?));
        }
        Ok(HeaderTemplates(out))
    }

    /// `over` laid on top of `self`: a name in both takes `over`'s value.
    pub fn merged(&self, over: &HeaderTemplates) -> HeaderTemplates {
        let mut out: Vec<(String, Template)> =
            self.0.iter().filter(|(n, _)| !over.0.iter().any(|(o, _)| o.eq_ignore_ascii_case(n))).cloned().collect();
        out.extend(over.0.iter().cloned());
        HeaderTemplates(out)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(n, _)| n.as_str())
    }

    /// The headers for one entry's arg. A value that renders with CR, LF or NUL is refused.
    pub fn render(&self, arg: Option<&Value>) -> Result<Headers, String> {
        let mut out = Vec::with_capacity(self.0.len());
        for (name, t) in &self.0 {
            let value = t.render_text(arg).map_err(|m| format!("header {name}: {m}"))?;
            check_value(name, &value)?;
            out.push((name.clone(), value));
        }
        Ok(Headers(out))
    }
}

impl std::fmt::Debug for HeaderTemplates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

/// Rendered headers, ready for a request or a handshake. `Debug` shows the names only.
#[derive(Clone, Default, PartialEq)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    /// Headers a host hook (`prepareHeaders`) returned; the same checks as the config's.
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Result<Headers, String> {
        let mut out: Vec<(String, String)> = Vec::with_capacity(pairs.len());
        for (name, value) in pairs {
            check_name(&name).map_err(|m| format!("header {name:?}: {m}"))?;
            check_value(&name, &value)?;
            out.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
            out.push((name, value));
        }
        Ok(Headers(out))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_pairs(self) -> Vec<(String, String)> {
        self.0
    }
}

impl std::fmt::Debug for Headers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.0.iter().map(|(n, _)| (n, "<redacted>"))).finish()
    }
}

/// RFC 9110 field names are tokens.
fn check_name(name: &str) -> Result<(), String> {
    let tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(tchar) {
        return Err("not a valid header name (letters, digits and !#$%&'*+-.^_`|~ only)".to_owned());
    }
    Ok(())
}

/// CR, LF or NUL would split or end the header (request smuggling); the message never quotes
/// the value.
fn check_value(name: &str, value: &str) -> Result<(), String> {
    if value.contains(['\r', '\n', '\0']) {
        return Err(format!("header {name}: the value holds CR, LF or NUL"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> HeaderTemplates {
        HeaderTemplates::parse(&v, "headers").unwrap()
    }

    #[test]
    fn t1_merge_is_case_insensitive_and_the_upper_layer_wins() {
        let top = parse(json!({"Authorization": "Bearer top", "X-App": "app"}));
        let ep = parse(json!({"authorization": "Bearer {arg.token}"}));
        let h = top.merged(&ep).render(Some(&json!({"token": "t1"}))).unwrap();
        let pairs = h.into_pairs();
        assert_eq!(pairs, vec![("X-App".into(), "app".into()), ("authorization".into(), "Bearer t1".into())]);
    }

    #[test]
    fn t1_bad_names_and_values_are_config_errors_that_do_not_quote_the_value() {
        for (v, at) in [
            (json!({"Bad Name": "x"}), "headers.Bad Name"),
            (json!({"A": "secret\r\nX: y"}), "headers.A"),
            (json!({"A": "nul\u{0}"}), "headers.A"),
            (json!({"A": 1}), "headers.A"),
            (json!({"A": "x", "a": "y"}), "headers.a"),
        ] {
            let (path, message) = HeaderTemplates::parse(&v, "headers").unwrap_err();
            assert_eq!(path, at);
            assert!(!message.contains("secret"), "{message}");
        }
        assert!(HeaderTemplates::parse(&json!([]), "headers").is_err());
    }

    #[test]
    fn t1_a_value_rendered_with_a_newline_is_refused() {
        let t = parse(json!({"X-User": "{arg}"}));
        let e = t.render(Some(&json!("evil\r\nX-Admin: 1"))).unwrap_err();
        assert!(e.contains("X-User") && !e.contains("evil"), "{e}");
        assert!(Headers::from_pairs(vec![("A".into(), "a\nb".into())]).is_err());
        assert!(Headers::from_pairs(vec![("".into(), "a".into())]).is_err());
    }

    #[test]
    fn t1_debug_shows_names_only() {
        let h = parse(json!({"Authorization": "Bearer s3cret"})).render(None).unwrap();
        let shown = format!("{h:?} {:?}", parse(json!({"Authorization": "Bearer s3cret"})));
        assert!(shown.contains("Authorization") && !shown.contains("s3cret"), "{shown}");
    }
}
