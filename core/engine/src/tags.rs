//! W2 tags: what a query entry provides (`providesTags`, computed from each fetch result and
//! `upsertQueryData`), what a mutation invalidates (`invalidatesTags`), and RTK Query's matching:
//! a bare type matches every tag of that type, `{type, id}` only that id.

use serde_json::Value;

use crate::template::ValueTemplate;

/// One tag: a type, and an id unless it stands for the whole type.
#[derive(Clone, Debug, PartialEq)]
pub struct Tag {
    pub kind: String,
    pub id: Option<Value>,
}

impl Tag {
    /// RTK's matching: an invalidating tag without id matches every provided tag of its type.
    pub fn matches(&self, provided: &Tag) -> bool {
        self.kind == provided.kind && (self.id.is_none() || self.id == provided.id)
    }

    /// `"Type"` or `{"type", "id"?}`, as a host gives tags to `invalidateTags`.
    pub fn from_value(v: &Value) -> Result<Tag, String> {
        match v {
            Value::String(s) => Ok(Tag { kind: s.clone(), id: None }),
            Value::Object(o) => {
                if let Some(k) = o.keys().find(|k| !["type", "id"].contains(&k.as_str())) {
                    return Err(format!("a tag has no key {k:?} (expected type, id)"));
                }
                let kind = o.get("type").and_then(Value::as_str).ok_or("a tag needs a string `type`")?;
                let id = o.get("id").filter(|i| !i.is_null()).cloned();
                Ok(Tag { kind: kind.to_owned(), id })
            }
            other => Err(format!("a tag is \"Type\" or {{type, id}}, found {other}")),
        }
    }
}

/// W2: the tags a host hook answered: a list of `"Type"` / `{type, id}`, each type in
/// `tag_types` (the same check as the config's).
pub fn from_host(answer: &Value, tag_types: &[String]) -> Result<Vec<Tag>, String> {
    let Value::Array(items) = answer else {
        return Err(format!("expected a list of tags, found {answer}"));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let tag = Tag::from_value(v).map_err(|m| format!("[{i}]: {m}"))?;
            if !tag_types.contains(&tag.kind) {
                return Err(format!("[{i}]: tag type {:?} is not in tagTypes ({})", tag.kind, tag_types.join(", ")));
            }
            Ok(tag)
        })
        .collect()
}

impl serde::Serialize for Tag {
    fn serialize<Z: serde::Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
        match &self.id {
            None => serializer.serialize_str(&self.kind),
            Some(id) => serde_json::json!({"type": self.kind, "id": id}).serialize(serializer),
        }
    }
}

/// One element of a `providesTags` / `invalidatesTags` list in the config.
#[derive(Clone, Debug)]
pub enum TagSpec {
    /// `"Type"`.
    Type(String),
    /// `{"type", "id": template}`: the id rendered over the arg.
    Id { kind: String, id: ValueTemplate },
    /// `{"type", "idsFrom": "/pointer"}`: a tag per element of the array there (in the data for
    /// `providesTags`, in the mutation's result for `invalidatesTags`).
    IdsFrom { kind: String, pointer: String },
}

impl TagSpec {
    pub fn kind(&self) -> &str {
        match self {
            TagSpec::Type(k) | TagSpec::Id { kind: k, .. } | TagSpec::IdsFrom { kind: k, .. } => k,
        }
    }

    /// Parses one element; `Err` is `(path, message)`.
    pub fn parse(v: &Value, path: &str, tag_types: &[String]) -> Result<TagSpec, (String, String)> {
        let known = |kind: &str, at: String| {
            if tag_types.iter().any(|t| t == kind) {
                Ok(())
            } else {
                Err((at, format!("tag type {kind:?} is not in tagTypes ({})", tag_types.join(", "))))
            }
        };
        match v {
            Value::String(s) => {
                known(s, path.to_owned())?;
                Ok(TagSpec::Type(s.clone()))
            }
            Value::Object(o) => {
                if let Some(k) = o.keys().find(|k| !["type", "id", "idsFrom"].contains(&k.as_str())) {
                    return Err((format!("{path}.{k}"), "unknown key (expected one of: type, id, idsFrom)".into()));
                }
                let kind = o.get("type").and_then(Value::as_str).ok_or((format!("{path}.type"), "missing or not a string".to_owned()))?;
                known(kind, format!("{path}.type"))?;
                match (o.get("id"), o.get("idsFrom")) {
                    (Some(_), Some(_)) => Err((format!("{path}.idsFrom"), "give `id` or `idsFrom`, not both".into())),
                    (Some(id), None) => {
                        let id = ValueTemplate::parse(id).map_err(|m| (format!("{path}.id"), m))?;
                        Ok(TagSpec::Id { kind: kind.to_owned(), id })
                    }
                    (None, Some(Value::String(p))) if p.is_empty() || p.starts_with('/') => {
                        Ok(TagSpec::IdsFrom { kind: kind.to_owned(), pointer: p.clone() })
                    }
                    (None, Some(other)) => Err((format!("{path}.idsFrom"), format!("expected a JSON Pointer (starting with `/`), found {other}"))),
                    (None, None) => Ok(TagSpec::Type(kind.to_owned())),
                }
            }
            other => Err((path.to_owned(), format!("a tag is \"Type\", {{type, id}} or {{type, idsFrom}}, found {other}"))),
        }
    }

    /// Parses a list (`null` is none).
    pub fn parse_list(v: Option<&Value>, path: &str, tag_types: &[String]) -> Result<Vec<TagSpec>, (String, String)> {
        match v {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => {
                items.iter().enumerate().map(|(i, t)| TagSpec::parse(t, &format!("{path}[{i}]"), tag_types)).collect()
            }
            Some(other) => Err((path.to_owned(), format!("expected a list of tags, found {other}"))),
        }
    }
}

/// The tags of `specs` for `arg`, with `idsFrom` read from `source` (the data or the result).
/// An id template naming a missing arg field is an error; an `idsFrom` pointer that finds no
/// array gives no tags (the data may not have that shape yet).
pub fn resolve(specs: &[TagSpec], arg: Option<&Value>, source: Option<&Value>, select_id: &str) -> Result<Vec<Tag>, String> {
    let mut tags = Vec::with_capacity(specs.len());
    for spec in specs {
        match spec {
            TagSpec::Type(kind) => tags.push(Tag { kind: kind.clone(), id: None }),
            TagSpec::Id { kind, id } => tags.push(Tag { kind: kind.clone(), id: Some(id.render(arg)?) }),
            TagSpec::IdsFrom { kind, pointer } => {
                let Some(Value::Array(items)) = source.and_then(|s| s.pointer(pointer)) else { continue };
                for item in items {
                    let id = match item {
                        Value::Object(o) => match o.get(select_id) {
                            Some(id) => id.clone(),
                            None => continue,
                        },
                        other => other.clone(),
                    };
                    tags.push(Tag { kind: kind.clone(), id: Some(id) });
                }
            }
        }
    }
    Ok(tags)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn types() -> Vec<String> {
        vec!["Post".into(), "User".into()]
    }

    #[test]
    fn w2_rtk_matching() {
        let post = |id: Option<Value>| Tag { kind: "Post".into(), id };
        assert!(post(None).matches(&post(Some(json!(1)))), "a bare type matches every id");
        assert!(post(None).matches(&post(None)));
        assert!(post(Some(json!(1))).matches(&post(Some(json!(1)))));
        assert!(!post(Some(json!(1))).matches(&post(Some(json!(2)))));
        assert!(!post(Some(json!(1))).matches(&post(None)), "an id does not match the bare type provided");
        assert!(!post(Some(json!(1))).matches(&post(Some(json!("1")))), "ids compare as JSON values");
        assert!(!post(None).matches(&Tag { kind: "User".into(), id: None }));
    }

    #[test]
    fn w2_specs_resolve_over_arg_and_data() {
        let specs = TagSpec::parse_list(
            Some(&json!(["Post", {"type": "User", "id": "{arg.user}"}, {"type": "Post", "idsFrom": "/items"}])),
            "p",
            &types(),
        )
        .unwrap();
        let data = json!({"items": [{"id": 1}, {"id": 2}, 7, {"other": 3}]});
        let tags = resolve(&specs, Some(&json!({"user": 9})), Some(&data), "id").unwrap();
        let as_json = serde_json::to_value(&tags).unwrap();
        assert_eq!(as_json, json!(["Post", {"type": "User", "id": 9}, {"type": "Post", "id": 1}, {"type": "Post", "id": 2}, {"type": "Post", "id": 7}]));
        assert!(resolve(&specs, Some(&json!({})), Some(&data), "id").unwrap_err().contains("user"));
        assert_eq!(resolve(&specs[2..], None, Some(&json!({"items": 3})), "id").unwrap(), vec![], "no array, no tags");
    }

    #[test]
    fn w2_bad_tags_name_their_path() {
        let e = |v: Value| TagSpec::parse_list(Some(&v), "endpoints.e.providesTags", &types()).unwrap_err();
        assert_eq!(e(json!(["Comment"])).0, "endpoints.e.providesTags[0]");
        assert!(e(json!(["Comment"])).1.contains("not in tagTypes"));
        assert_eq!(e(json!(["Post", {"type": "Nope"}])).0, "endpoints.e.providesTags[1].type");
        assert_eq!(e(json!([{"type": "Post", "id": 1, "idsFrom": "/a"}])).0, "endpoints.e.providesTags[0].idsFrom");
        assert_eq!(e(json!([{"type": "Post", "idsFrom": "a"}])).0, "endpoints.e.providesTags[0].idsFrom");
        assert_eq!(e(json!([{"type": "Post", "ids": 1}])).0, "endpoints.e.providesTags[0].ids");
        assert_eq!(e(json!("Post")).0, "endpoints.e.providesTags");
        assert_eq!(e(json!([3])).0, "endpoints.e.providesTags[0]");
        assert!(Tag::from_value(&json!({"type": 1})).is_err());
        assert!(Tag::from_value(&json!(["Post"])).is_err());
        assert_eq!(Tag::from_value(&json!({"type": "Post", "id": 3})).unwrap().id, Some(json!(3)));
    }

    #[test]
    fn w2_host_tags_are_checked_like_config_tags() {
        let tags = from_host(&json!(["Post", {"type": "User", "id": 4}, {"type": "Post", "id": null}]), &types()).unwrap();
        assert_eq!(serde_json::to_value(&tags).unwrap(), json!(["Post", {"type": "User", "id": 4}, "Post"]));
        assert_eq!(from_host(&json!([]), &types()).unwrap(), vec![]);
        let e = from_host(&json!(["Post", "Comment"]), &types()).unwrap_err();
        assert!(e.starts_with("[1]") && e.contains("\"Comment\" is not in tagTypes"), "{e}");
        assert!(from_host(&json!("Post"), &types()).unwrap_err().contains("expected a list"));
        assert!(from_host(&json!([{"type": "Post", "idsFrom": "/a"}]), &types()).unwrap_err().contains("no key \"idsFrom\""));
        assert!(from_host(&json!([7]), &types()).unwrap_err().starts_with("[0]"));
    }
}
