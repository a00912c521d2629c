//! Scopes per tool: a token good enough to list tools may not be good enough to
//! call every one of them.
//!
//! For a JSON-RPC `tools/call` (or a batch holding some), the layer reads the body
//! — within a size bound — and adds the scopes configured for each named tool to
//! the scopes every request needs. A token lacking any of them gets 403
//! `insufficient_scope` naming *all* the scopes the operation needs, so the client
//! can step up in one round (MCP SEP-835). The body is passed on unchanged.

use std::collections::HashMap;

use serde_json::Value;

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
    /// (base first, no duplicates). `None` when the body calls no scoped tool.
    pub fn required_for(&self, body: &[u8], base: &[String]) -> Option<Vec<String>> {
        let message: Value = serde_json::from_slice(body).ok()?;
        let calls: Vec<&Value> = match &message {
            Value::Array(batch) => batch.iter().collect(),
            single => vec![single],
        };
        let mut needed: Vec<String> = Vec::new();
        for call in calls {
            if call.get("method").and_then(Value::as_str) != Some("tools/call") {
                continue;
            }
            let name = call.pointer("/params/name").and_then(Value::as_str);
            if let Some(scopes) = name.and_then(|n| self.by_tool.get(n)) {
                needed.extend(scopes.iter().cloned());
            }
        }
        if needed.is_empty() {
            return None;
        }
        let mut all: Vec<String> = base.to_vec();
        for scope in needed {
            if !all.contains(&scope) {
                all.push(scope);
            }
        }
        Some(all)
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
        assert_eq!(scopes().required_for(call, &base).unwrap(), ["mcp", "mail:send"]);
        let batch = br#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"send"}},
                         {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"admin"}}]"#;
        assert_eq!(scopes().required_for(batch, &base).unwrap(), ["mcp", "mail:send", "admin"]);
    }

    #[test]
    fn ignores_everything_else() {
        let base = vec![];
        for body in [
            &br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#[..],
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami"}}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":"send"}"#,
            b"not json",
        ] {
            assert_eq!(scopes().required_for(body, &base), None);
        }
    }
}
