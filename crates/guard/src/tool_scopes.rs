//! Scopes per tool: a token good enough to list tools may not be good enough to
//! call every one of them.
//!
//! For a JSON-RPC `tools/call` (or a batch holding some), the layer reads the body
//! — within a size bound — and adds the scopes configured for each named tool to
//! the scopes every request needs. A token lacking any of them gets 403
//! `insufficient_scope` naming *all* the scopes the operation needs, so the client
//! can step up in one round (MCP SEP-835). The body is passed on unchanged.

use std::collections::HashMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// Tool name → scopes its calls need, beside the scopes every request needs.
#[derive(Debug, Clone, Default)]
pub(crate) struct ToolScopes {
    by_tool: HashMap<String, Vec<String>>,
}

impl ToolScopes {
    pub fn insert(&mut self, tool: String, scopes: Vec<String>) {
        self.by_tool.insert(tool, scopes);
    }

    pub fn is_empty(&self) -> bool {
        self.by_tool.is_empty()
    }

    /// The scopes a request body needs on top of `base`, merged into one list
    /// (base first, no duplicates); `None` when it calls no scoped tool. A body
    /// that is not a JSON-RPC message (or batch) is an error: letting it through
    /// unchecked would fail open if the service read it differently.
    pub fn required_for(
        &self,
        body: &[u8],
        base: &[String],
    ) -> Result<Option<Vec<String>>, serde_json::Error> {
        let batch = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
        let messages: Vec<Message> =
            if batch { serde_json::from_slice(body)? } else { vec![serde_json::from_slice(body)?] };
        let mut all: Vec<String> = base.to_vec();
        let mut scoped = false;
        for message in messages {
            if message.method.as_deref() != Some("tools/call") {
                continue;
            }
            if let Some(scopes) = message.params.and_then(|name| self.by_tool.get(&name)) {
                scoped = true;
                for scope in scopes {
                    if !all.contains(scope) {
                        all.push(scope.clone());
                    }
                }
            }
        }
        Ok(scoped.then_some(all))
    }
}

/// The two fields of a JSON-RPC message the guard needs. Everything else —
/// arguments of any size — is skipped without being built into a tree.
#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    method: Option<String>,
    #[serde(default, deserialize_with = "tool_name")]
    params: Option<String>,
}

/// `params.name` when `params` is an object with a string `name`.
fn tool_name<'de, D: de::Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    deserializer.deserialize_any(ToolName)
}

struct ToolName;

impl<'de> Visitor<'de> for ToolName {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("JSON-RPC params")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut name = None;
        let mut seen = false;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == "name" {
                if seen {
                    return Err(de::Error::duplicate_field("name"));
                }
                seen = true;
                name = map.next_value::<serde_json::Value>()?.as_str().map(str::to_owned);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(name)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes() -> ToolScopes {
        let mut s = ToolScopes::default();
        s.insert("send".into(), vec!["mail:send".into()]);
        s.insert("admin".into(), vec!["admin".into(), "mail:send".into()]);
        s
    }

    #[test]
    fn finds_called_tools() {
        let base = vec!["mcp".to_string()];
        let call =
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"send","arguments":{}}}"#;
        assert_eq!(scopes().required_for(call, &base).unwrap().unwrap(), ["mcp", "mail:send"]);
        let batch = br#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"send"}},
                         {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"admin"}}]"#;
        assert_eq!(scopes().required_for(batch, &base).unwrap().unwrap(), ["mcp", "mail:send", "admin"]);
    }

    #[test]
    fn ignores_everything_else() {
        let base = vec![];
        for body in [
            &br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#[..],
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami"}}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":"send"}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":7}}"#,
            br#"{"jsonrpc":"2.0","id":1,"result":{}}"#,
        ] {
            assert_eq!(
                scopes().required_for(body, &base).unwrap(),
                None,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        for body in [
            &b"not json"[..],
            br#"{"method":"tools/call","params":{"name":"whoami","name":"send"}}"#,
            br#"{"method":"tools/call","method":"tools/list","params":{"name":"send"}}"#,
            br#"{"method":"tools/call","params":{"name":"send"}} trailing"#,
            br#"{"method":7}"#,
        ] {
            assert!(scopes().required_for(body, &[]).is_err(), "{}", String::from_utf8_lossy(body));
        }
    }
}
