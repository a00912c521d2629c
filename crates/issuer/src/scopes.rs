//! Scopes and resources: what a request may ask for, and what it gets.
//!
//! Two kinds of permission meet in one `scope` parameter. The OpenID Connect
//! scopes (`openid profile email offline_access`) are about the person; an API
//! resource's scopes (e.g. `mcp:tools` on an MCP server) are about what the token
//! opens there. A request names at most one resource (RFC 8707 `resource`); the
//! token's `aud` is that resource.
//!
//! The rules, in order: a scope nobody defined is refused (`invalid_scope`), so a
//! typo is seen at once; a defined scope beyond the app's ceiling is dropped, as
//! RFC 6749 §3.3 allows, and the token response then names the scopes granted.

use agentgate_guard::{ResourceId, is_valid_scope};

use crate::error::{ErrorCode, OAuthError};
use crate::settings::Settings;
use crate::store::{Client, Resource, Store, Translations};
use crate::ui::i18n::LANGUAGES;

/// The OpenID Connect scopes this issuer supports.
pub const OPENID_SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];

/// Splits a `scope` parameter into scopes, in order, without repeats.
///
/// ```
/// use agentgate_issuer::scopes::parse_scope;
/// assert_eq!(parse_scope(Some("openid  mcp:tools openid")).unwrap(), ["openid", "mcp:tools"]);
/// assert!(parse_scope(Some("bad\"scope")).is_err());
/// ```
pub fn parse_scope(param: Option<&str>) -> Result<Vec<String>, OAuthError> {
    let mut scopes: Vec<String> = Vec::new();
    for scope in param.unwrap_or("").split(' ').filter(|s| !s.is_empty()) {
        if !is_valid_scope(scope) {
            return Err(OAuthError::new(ErrorCode::InvalidScope, format!("{scope:?} is not a valid scope")));
        }
        if !scopes.iter().any(|s| s == scope) {
            scopes.push(scope.to_owned());
        }
    }
    Ok(scopes)
}

/// The resource a request is for: the one it names, else the configured default,
/// else none. Unknown or malformed → `invalid_target`.
pub async fn find_resource<S: Store>(
    store: &S,
    settings: &Settings,
    requested: Option<&str>,
) -> Result<Option<Resource>, OAuthError> {
    let Some(uri) = requested.or(settings.default_resource.as_deref()) else {
        return Ok(None);
    };
    let invalid = |why: &str| OAuthError::new(ErrorCode::InvalidTarget, format!("resource {uri:?} {why}"));
    let id = ResourceId::parse(uri).map_err(|_| invalid("is not an absolute URL without a fragment"))?;
    store.resource_by_canonical(id.canonical()).await?.map(Some).ok_or_else(|| invalid("is not known here"))
}

/// Canonical form of a resource URL, as resources are stored and matched.
pub fn canonical_resource(uri: &str) -> Option<String> {
    ResourceId::parse(uri).ok().map(|id| id.canonical().to_owned())
}

/// The scopes a request gets: `requested` minus what `client` may never have.
/// A scope neither OpenID nor defined by `resource` is refused.
pub fn resolve(
    client: &Client,
    requested: &[String],
    resource: Option<&Resource>,
) -> Result<Vec<String>, OAuthError> {
    let defined = |scope: &str| {
        OPENID_SCOPES.contains(&scope) || resource.is_some_and(|r| r.scopes.iter().any(|s| s.name == scope))
    };
    if let Some(unknown) = requested.iter().find(|s| !defined(s)) {
        let whose = match resource {
            Some(r) => format!("by this server or by resource {}", r.uri),
            None => "by this server (name a resource to ask for its scopes)".to_owned(),
        };
        return Err(OAuthError::new(
            ErrorCode::InvalidScope,
            format!("scope {unknown:?} is not defined {whose}"),
        ));
    }
    Ok(requested.iter().filter(|s| client.scopes.contains(s)).cloned().collect())
}

/// Whether `scopes` holds `scope`.
pub fn has(scopes: &[String], scope: &str) -> bool {
    scopes.iter().any(|s| s == scope)
}

/// Adds an API resource with its scopes; nothing is stored if any part is invalid.
pub async fn add_resource<S: Store>(
    store: &S,
    uri: &str,
    name: &str,
    scopes: &[(&str, &str)],
    now: i64,
) -> Result<Resource, AddResourceError> {
    let resource = checked_resource(uri, name, scopes, &Translations::new(), now)?;
    store.insert_resource(&resource).await?;
    Ok(resource)
}

/// Adds the resource, or brings a stored one with this URL to exactly this name
/// and these scopes (what a configuration file does at every start). Grants keep
/// the scopes they hold; a scope no longer defined simply cannot be asked for.
pub async fn declare_resource<S: Store>(
    store: &S,
    uri: &str,
    name: &str,
    scopes: &[(&str, &str)],
    translations: &Translations,
    now: i64,
) -> Result<Resource, AddResourceError> {
    let resource = checked_resource(uri, name, scopes, translations, now)?;
    store.put_resource(&resource).await?;
    Ok(resource)
}

/// A resource from its parts, each checked.
pub(crate) fn checked_resource(
    uri: &str,
    name: &str,
    scopes: &[(&str, &str)],
    translations: &Translations,
    now: i64,
) -> Result<Resource, AddResourceError> {
    let canonical = canonical_resource(uri).ok_or_else(|| AddResourceError::InvalidUri(uri.to_owned()))?;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(AddResourceError::InvalidName);
    }
    let mut defined = Vec::new();
    for (i, &(scope, description)) in scopes.iter().enumerate() {
        let repeated = scopes[..i].iter().any(|&(earlier, _)| earlier == scope);
        if !is_valid_scope(scope) || OPENID_SCOPES.contains(&scope) || repeated {
            return Err(AddResourceError::InvalidScope(scope.to_owned()));
        }
        if !fits_a_page(description, 200) {
            return Err(AddResourceError::InvalidDescription(scope.to_owned()));
        }
        defined.push(crate::store::ResourceScope {
            name: scope.to_owned(),
            description: description.to_owned(),
        });
    }
    for (lang, texts) in translations {
        if !LANGUAGES.iter().any(|t| t.lang == lang) {
            return Err(AddResourceError::UnknownLanguage(lang.clone()));
        }
        if texts.name.as_deref().is_some_and(|name| name.trim().is_empty() || !fits_a_page(name, 100)) {
            return Err(AddResourceError::InvalidTranslation(lang.clone()));
        }
        for (scope, description) in &texts.scopes {
            if !scopes.iter().any(|&(defined, _)| defined == scope) {
                return Err(AddResourceError::UntranslatableScope(scope.clone()));
            }
            if !fits_a_page(description, 200) {
                return Err(AddResourceError::InvalidTranslation(lang.clone()));
            }
        }
    }
    Ok(Resource {
        uri: uri.to_owned(),
        canonical,
        name: name.to_owned(),
        scopes: defined,
        translations: translations.clone(),
        created_at: now,
    })
}

/// Whether people can read `text` on a page: at most `max` characters, and no
/// control characters.
fn fits_a_page(text: &str, max: usize) -> bool {
    text.chars().count() <= max && !text.contains(char::is_control)
}

/// Why a resource could not be added.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AddResourceError {
    /// Not an absolute http(s) URL without a fragment.
    #[error("invalid resource URL {0:?}: it must be an absolute http(s) URL without a fragment")]
    InvalidUri(String),
    /// The name is empty or too long.
    #[error("the resource name must have 1 to 100 characters")]
    InvalidName,
    /// Not a scope token, an OpenID scope, or named twice.
    #[error("invalid resource scope {0:?}: a scope token, not an OpenID scope, named once")]
    InvalidScope(String),
    /// A scope's description is too long or holds control characters.
    #[error("the description of {0:?} must have at most 200 characters and no control characters")]
    InvalidDescription(String),
    /// A translation for a language the pages do not speak.
    #[error("no page is in the language {0:?}: translations can be given for en, es and ja")]
    UnknownLanguage(String),
    /// A translated name or description does not fit a page.
    #[error(
        "the {0:?} texts must fit a page: a name of 1 to 100 characters, descriptions of at most 200, \
         no control characters"
    )]
    InvalidTranslation(String),
    /// A translation for a scope the resource does not define.
    #[error("a translation names the scope {0:?}, which the resource does not define")]
    UntranslatableScope(String),
    /// The store failed or the URL is taken.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ResourceScope;

    fn client(ceiling: &str) -> Client {
        Client {
            client_id: "c".into(),
            name: "C".into(),
            third_party: true,
            application_type: "web".into(),
            scopes: ceiling.split(' ').map(str::to_owned).collect(),
            ..Default::default()
        }
    }

    fn mcp() -> Resource {
        Resource {
            uri: "http://127.0.0.1:8080/mcp".into(),
            canonical: "http://127.0.0.1:8080/mcp".into(),
            name: "whoami".into(),
            scopes: vec![ResourceScope { name: "mcp:tools".into(), description: "Use the tools".into() }],
            translations: Default::default(),
            created_at: 0,
        }
    }

    fn scopes(text: &str) -> Vec<String> {
        parse_scope(Some(text)).unwrap()
    }

    #[test]
    fn the_ceiling_drops_and_unknown_scopes_are_refused() {
        let app = client("openid profile mcp:tools");
        assert_eq!(
            resolve(&app, &scopes("openid email mcp:tools"), Some(&mcp())).unwrap(),
            ["openid", "mcp:tools"]
        );
        let unknown = resolve(&app, &scopes("openid admin"), Some(&mcp())).unwrap_err();
        assert_eq!(unknown.code, ErrorCode::InvalidScope);
        assert!(unknown.description.contains("\"admin\""), "{unknown}");
        // A resource scope without its resource is not defined.
        assert_eq!(resolve(&app, &scopes("mcp:tools"), None).unwrap_err().code, ErrorCode::InvalidScope);
        assert!(resolve(&app, &[], Some(&mcp())).unwrap().is_empty());
    }
}
