//! Form bodies and query strings, parsed the way OAuth wants: a parameter sent
//! twice is an error (RFC 6749 §3.1), and an empty value counts as absent.

use std::collections::HashMap;

use crate::error::OAuthError;

/// The parameters of a form or query string.
#[derive(Debug, Default, Clone)]
pub(crate) struct Params(HashMap<String, String>);

impl Params {
    /// Parses `application/x-www-form-urlencoded` text.
    pub(crate) fn parse(text: &[u8]) -> Result<Self, OAuthError> {
        let mut map = HashMap::new();
        for (key, value) in url::form_urlencoded::parse(text) {
            if value.is_empty() {
                continue;
            }
            if map.insert(key.to_string(), value.to_string()).is_some() {
                return Err(OAuthError::invalid_request(format!("parameter {key:?} is repeated")));
            }
        }
        Ok(Self(map))
    }

    /// One parameter.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
}
