//! Per-tool policy: which scopes each tool, prompt and resource of a route
//! needs, and which apps may use it at all.
//!
//! A route's token scopes say what the person allowed an agent to do there;
//! a [`Policy`] says it finer, per thing the upstream offers:
//!
//! - a [`Rule`]'s `scopes` are needed on top of the route's own. A caller
//!   without them is asked to step up ([`Decision::StepUp`]): more consent
//!   would let it in, so it gets the 403 `insufficient_scope` challenge that
//!   names every scope the call needs;
//! - a rule's `apps` say who may use the thing at all: first-party apps,
//!   third-party apps, or apps named by client id. A caller outside them is
//!   [`Decision::Refused`]: no consent would change that, so it gets a
//!   JSON-RPC error that names the policy.
//!
//! Whatever a caller may not use is also left out of what it lists
//! (`tools/list`, `prompts/list`, `resources/list`,
//! `resources/templates/list`), so an agent is not shown tools it would fail
//! to call. Things no rule names are open to anyone the route lets in. This
//! module decides; [`Policed`](crate::Policed) reads the messages and writes the
//! answers.
//!
//! Tools and prompts are named exactly. Resources are named by URI, and a
//! rule's URI that ends in `*` covers every URI that begins with the rest
//! (`file:///private/*`); an exact rule comes before such a prefix, and a
//! longer prefix before a shorter one. URIs are compared as an upstream would
//! read them ([`canonical_uri`]), so `file:///public/../private/x`,
//! `file:///%70rivate/x` or `FILE:////private/x` are no way around a rule. A
//! resource template is decided by the rule its literal beginning (up to the
//! first `{`) falls under: left out of a list when that rule keeps it from the
//! caller, kept when no rule covers it (its reads are then decided one by one).

use std::collections::HashMap;
use std::fmt;

/// What a rule is about: the three things an MCP server offers by name, and
/// the resource templates that resource rules cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A tool, by name (`tools/call`, `tools/list`).
    Tool,
    /// A prompt, by name (`prompts/get`, `prompts/list`).
    Prompt,
    /// A resource, by URI (`resources/read`, `resources/list`).
    Resource,
    /// A resource template, by its URI template (`resources/templates/list`);
    /// decided by the resource rules, never named by a rule of its own.
    ResourceTemplate,
}

impl Kind {
    /// The kind a request method uses one of, and whether it lists them
    /// (`true`) or uses one (`false`).
    pub fn of_method(method: &str) -> Option<(Kind, bool)> {
        Some(match method {
            "tools/call" => (Kind::Tool, false),
            "tools/list" => (Kind::Tool, true),
            "prompts/get" => (Kind::Prompt, false),
            "prompts/list" => (Kind::Prompt, true),
            "resources/read" | "resources/subscribe" => (Kind::Resource, false),
            "resources/list" => (Kind::Resource, true),
            "resources/templates/list" => (Kind::ResourceTemplate, true),
            _ => return None,
        })
    }

    /// The field that names one: in a call's `params` and in a listed item.
    pub fn key(self) -> &'static str {
        match self {
            Kind::Tool | Kind::Prompt => "name",
            Kind::Resource => "uri",
            Kind::ResourceTemplate => "uriTemplate",
        }
    }

    /// The array of a list answer's `result`.
    pub fn list_field(self) -> &'static str {
        match self {
            Kind::Tool => "tools",
            Kind::Prompt => "prompts",
            Kind::Resource => "resources",
            Kind::ResourceTemplate => "resourceTemplates",
        }
    }

    /// The kind whose rules decide this one.
    fn ruled_by(self) -> Kind {
        match self {
            Kind::ResourceTemplate => Kind::Resource,
            kind => kind,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Tool => "tool",
            Kind::Prompt => "prompt",
            Kind::Resource => "resource",
            Kind::ResourceTemplate => "resource template",
        })
    }
}

/// Apps a rule lets in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Apps {
    /// Apps of the issuer's operator (no consent screen).
    FirstParty,
    /// Apps of anyone else.
    ThirdParty,
    /// One app, by client id.
    Client(String),
}

impl Apps {
    /// `first-party`, `third-party`, or a client id.
    pub fn parse(text: &str) -> Apps {
        match text {
            "first-party" => Apps::FirstParty,
            "third-party" => Apps::ThirdParty,
            client_id => Apps::Client(client_id.to_owned()),
        }
    }
}

impl fmt::Display for Apps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Apps::FirstParty => f.write_str("first-party apps"),
            Apps::ThirdParty => f.write_str("third-party apps"),
            Apps::Client(id) => write!(f, "the app {id}"),
        }
    }
}

/// What one tool, prompt or resource needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rule {
    /// Scopes needed on top of the route's own.
    pub scopes: Vec<String>,
    /// The apps that may use it; empty: every app.
    pub apps: Vec<Apps>,
}

/// Who is asking, as far as the policy cares.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    /// The scopes granted.
    pub scopes: &'a [String],
    /// The app, when the token names one.
    pub client_id: Option<&'a str>,
    /// Whether the app is third-party, when known. Unknown counts as
    /// third-party: a rule for first-party apps never lets in an app it
    /// cannot place.
    pub third_party: Option<bool>,
}

/// The answer for one use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead.
    Allow,
    /// More consent would allow it: every scope the rule needs (some of
    /// which the caller lacks), for the challenge to name them all.
    StepUp(Vec<String>),
    /// Nothing would: why, in words.
    Refused(String),
}

/// The rules of one route.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// By kind, then by exact name.
    rules: HashMap<Kind, HashMap<String, Rule>>,
    /// Resource rules whose URI ends in `*`: the rest, longest first.
    prefixes: Vec<(String, Rule)>,
}

impl Policy {
    /// No rules: everything open.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the rule for the `kind` named `name` (for a
    /// resource, a URI ending in `*` names every URI that begins with the rest).
    ///
    /// ```
    /// use agentgate_gateway::policy::{Apps, Caller, Decision, Kind, Policy, Rule};
    ///
    /// let policy = Policy::new()
    ///     .with(Kind::Tool, "delete_entities", Rule { scopes: vec!["memory:write".into()], apps: vec![Apps::FirstParty] });
    /// let agent = Caller { scopes: &["memory:write".into()], client_id: Some("agent"), third_party: Some(true) };
    /// assert!(matches!(policy.decide(Kind::Tool, "delete_entities", &agent), Decision::Refused(_)));
    /// assert_eq!(policy.decide(Kind::Tool, "read_graph", &agent), Decision::Allow);
    /// ```
    pub fn with(mut self, kind: Kind, name: impl Into<String>, rule: Rule) -> Self {
        let name = name.into();
        let kind = kind.ruled_by();
        if kind != Kind::Resource {
            self.rules.entry(kind).or_default().insert(name, rule);
        } else if let Some(prefix) = name.strip_suffix('*') {
            let prefix = canonical_uri(prefix);
            self.prefixes.retain(|(p, _)| *p != prefix);
            self.prefixes.push((prefix, rule));
            self.prefixes.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        } else {
            self.rules.entry(kind).or_default().insert(canonical_uri(&name), rule);
        }
        self
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty() && self.prefixes.is_empty()
    }

    /// Whether any rule is about `kind`.
    pub fn covers(&self, kind: Kind) -> bool {
        let kind = kind.ruled_by();
        self.rules.contains_key(&kind) || (kind == Kind::Resource && !self.prefixes.is_empty())
    }

    /// Whether a decision may need to know if the app is third-party.
    pub fn needs_app_kind(&self) -> bool {
        self.rules()
            .flat_map(|(_, _, rule)| &rule.apps)
            .any(|a| matches!(a, Apps::FirstParty | Apps::ThirdParty))
    }

    /// Every rule, for the consent page's list of what each scope opens
    /// (a resource prefix with its `*`).
    pub fn rules(&self) -> impl Iterator<Item = (Kind, String, &Rule)> {
        let exact = self
            .rules
            .iter()
            .flat_map(|(kind, named)| named.iter().map(|(name, rule)| (*kind, name.clone(), rule)));
        let prefixes =
            self.prefixes.iter().map(|(prefix, rule)| (Kind::Resource, format!("{prefix}*"), rule));
        exact.chain(prefixes)
    }

    /// The rule that governs the `kind` named `name`, if any.
    fn rule_for(&self, kind: Kind, name: &str) -> Option<&Rule> {
        let exact = |kind: Kind, name: &str| self.rules.get(&kind).and_then(|named| named.get(name));
        match kind {
            Kind::Tool | Kind::Prompt => exact(kind, name),
            Kind::Resource => {
                let uri = canonical_uri(name);
                exact(Kind::Resource, &uri).or_else(|| self.prefix_rule(&uri))
            }
            Kind::ResourceTemplate => {
                let literal = canonical_uri(&name[..name.find('{').unwrap_or(name.len())]);
                exact(Kind::Resource, &canonical_uri(name)).or_else(|| self.prefix_rule(&literal))
            }
        }
    }

    fn prefix_rule(&self, uri: &str) -> Option<&Rule> {
        self.prefixes.iter().find(|(prefix, _)| uri.starts_with(prefix.as_str())).map(|(_, rule)| rule)
    }

    /// May `caller` use the `kind` named `name`? The apps first: when no
    /// consent could let the caller in, asking for more would only waste the
    /// person's time.
    pub fn decide(&self, kind: Kind, name: &str, caller: &Caller<'_>) -> Decision {
        let Some(rule) = self.rule_for(kind, name) else {
            return Decision::Allow;
        };
        if !rule.apps.is_empty() && !rule.apps.iter().any(|apps| admits(apps, caller)) {
            let who: Vec<String> = rule.apps.iter().map(ToString::to_string).collect();
            return Decision::Refused(format!("the {kind} {name:?} is open to {} only", who.join(" and ")));
        }
        if rule.scopes.iter().all(|s| caller.scopes.contains(s)) {
            Decision::Allow
        } else {
            Decision::StepUp(rule.scopes.clone())
        }
    }
}

/// A resource URI as an upstream would read it: `\\` as `/`, scheme and host
/// lower-case, `.` and `..` segments resolved, percent-escapes decoded, runs of
/// `/` in the path made one — repeated until nothing changes, since decoding
/// can make new segments (`%2e%2e%2f`). Text that is no URL stays as it is.
///
/// ```
/// use agentgate_gateway::policy::canonical_uri;
///
/// assert_eq!(canonical_uri("FILE:////public/../%70rivate//diary"), "file:///private/diary");
/// assert_eq!(canonical_uri("memo://notes/a%2f..%2fb"), "memo://notes/b");
/// ```
pub fn canonical_uri(uri: &str) -> String {
    let mut current = uri.replace('\\', "/");
    for _ in 0..4 {
        let Ok(url) = url::Url::parse(&current) else { return current };
        let mut path = String::with_capacity(url.path().len());
        for part in url.path().split('/') {
            if !(part.is_empty() && path.ends_with('/')) {
                path.push_str(part);
                path.push('/');
            }
        }
        if !url.path().ends_with('/') {
            path.pop();
        }
        let rebuilt =
            format!("{}{path}{}", &url[..url::Position::BeforePath], &url[url::Position::AfterPath..]);
        let next = percent_encoding::percent_decode_str(&rebuilt).decode_utf8_lossy().replace('\\', "/");
        if next == current {
            break;
        }
        current = next;
    }
    current
}

fn admits(apps: &Apps, caller: &Caller<'_>) -> bool {
    match apps {
        Apps::FirstParty => caller.third_party == Some(false),
        Apps::ThirdParty => caller.third_party != Some(false),
        Apps::Client(id) => caller.client_id == Some(id.as_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller<'a>(scopes: &'a [String], client_id: &'a str, third_party: Option<bool>) -> Caller<'a> {
        Caller { scopes, client_id: Some(client_id), third_party }
    }

    fn policy() -> Policy {
        let write = || vec!["memory:write".to_owned()];
        Policy::new()
            .with(Kind::Tool, "create_entities", Rule { scopes: write(), apps: vec![] })
            .with(Kind::Tool, "delete_entities", Rule { scopes: write(), apps: vec![Apps::FirstParty] })
            .with(Kind::Prompt, "admin", Rule { scopes: vec![], apps: vec![Apps::Client("ops".into())] })
            .with(Kind::Resource, "memory://all", Rule { scopes: write(), apps: vec![Apps::ThirdParty] })
    }

    #[test]
    fn a_missing_scope_asks_for_more_consent_and_a_foreign_app_is_refused() {
        let policy = policy();
        let read = ["mcp:tools".to_owned()];
        let write = ["mcp:tools".to_owned(), "memory:write".to_owned()];
        let agent = caller(&read, "agent", Some(true));
        assert_eq!(policy.decide(Kind::Tool, "read_graph", &agent), Decision::Allow, "no rule: open");
        assert_eq!(
            policy.decide(Kind::Tool, "create_entities", &agent),
            Decision::StepUp(vec!["memory:write".into()])
        );
        assert_eq!(
            policy.decide(Kind::Tool, "create_entities", &caller(&write, "agent", Some(true))),
            Decision::Allow
        );
        // No scope makes a third-party app first-party: refused, not asked.
        let Decision::Refused(why) = policy.decide(Kind::Tool, "delete_entities", &agent) else { panic!() };
        assert!(why.contains("open to first-party apps only"), "{why}");
        assert_eq!(
            policy.decide(Kind::Tool, "delete_entities", &caller(&write, "mine", Some(false))),
            Decision::Allow
        );
        assert_eq!(
            policy.decide(Kind::Tool, "delete_entities", &caller(&read, "mine", Some(false))),
            Decision::StepUp(vec!["memory:write".into()])
        );
        let two =
            Policy::new().with(Kind::Tool, "t", Rule { scopes: vec!["a".into(), "b".into()], apps: vec![] });
        let has_a = ["a".to_owned()];
        assert_eq!(
            two.decide(Kind::Tool, "t", &caller(&has_a, "x", None)),
            Decision::StepUp(vec!["a".into(), "b".into()]),
            "every scope the rule needs, for one round of consent"
        );
    }

    #[test]
    fn an_app_that_cannot_be_placed_is_not_first_party_and_names_match_exactly() {
        let policy = policy();
        let write = ["memory:write".to_owned()];
        let unknown = caller(&write, "agent", None);
        assert!(matches!(policy.decide(Kind::Tool, "delete_entities", &unknown), Decision::Refused(_)));
        assert_eq!(policy.decide(Kind::Resource, "memory://all", &unknown), Decision::Allow);
        assert!(matches!(
            policy.decide(Kind::Prompt, "admin", &caller(&write, "opsx", None)),
            Decision::Refused(_)
        ));
        assert_eq!(policy.decide(Kind::Prompt, "admin", &caller(&write, "ops", None)), Decision::Allow);
        assert_eq!(
            policy.decide(Kind::Tool, "admin", &caller(&write, "x", None)),
            Decision::Allow,
            "another kind"
        );
        let nobody = Caller { scopes: &write, client_id: None, third_party: None };
        assert!(matches!(policy.decide(Kind::Prompt, "admin", &nobody), Decision::Refused(_)));
    }

    #[test]
    fn methods_map_to_what_they_use_or_list() {
        assert_eq!(Kind::of_method("tools/call"), Some((Kind::Tool, false)));
        assert_eq!(Kind::of_method("resources/list"), Some((Kind::Resource, true)));
        assert_eq!(Kind::of_method("resources/templates/list"), Some((Kind::ResourceTemplate, true)));
        assert_eq!(Kind::of_method("resources/unsubscribe"), None);
        assert!(policy().needs_app_kind());
        assert!(!Policy::new().with(Kind::Tool, "x", Rule::default()).needs_app_kind());
        assert!(policy().covers(Kind::Prompt) && !Policy::new().covers(Kind::Tool));
    }

    #[test]
    fn a_resource_prefix_covers_the_uris_and_templates_within_it() {
        let private = || Rule { scopes: vec!["private".into()], apps: vec![] };
        let open = || Rule { scopes: vec![], apps: vec![] };
        let policy = Policy::new()
            .with(Kind::Resource, "file:///private/*", private())
            .with(Kind::Resource, "file:///private/shared/*", open())
            .with(Kind::Resource, "file:///private/readme", open());
        let none: [String; 0] = [];
        let agent = caller(&none, "agent", Some(true));
        let ask = Decision::StepUp(vec!["private".into()]);
        assert_eq!(policy.decide(Kind::Resource, "file:///private/diary", &agent), ask);
        assert_eq!(
            policy.decide(Kind::Resource, "file:///private/readme", &agent),
            Decision::Allow,
            "exact first"
        );
        assert_eq!(
            policy.decide(Kind::Resource, "file:///private/shared/x", &agent),
            Decision::Allow,
            "longest"
        );
        assert_eq!(policy.decide(Kind::Resource, "file:///public/x", &agent), Decision::Allow);
        assert_eq!(policy.decide(Kind::Resource, "file:///private", &agent), Decision::Allow, "not within");
        // Templates: hidden only when all they make is within one refused prefix.
        assert_eq!(policy.decide(Kind::ResourceTemplate, "file:///private/{name}", &agent), ask);
        assert_eq!(policy.decide(Kind::ResourceTemplate, "file:///{path}", &agent), Decision::Allow);
        assert_eq!(
            policy.decide(Kind::ResourceTemplate, "file:///private/shared/{n}", &agent),
            Decision::Allow
        );
        assert!(policy.covers(Kind::ResourceTemplate) && !policy.covers(Kind::Tool));
        // The same URI, written another way, meets the same rule.
        for disguised in [
            "file:///public/../private/diary",
            "file:///public/%2e%2e/private/diary",
            "file:///%70rivate/diary",
            "FILE:///private/diary",
            "file:////private//diary",
            "file:///public/..%2fprivate/diary",
            "file:\\\\\\private\\diary",
        ] {
            assert_eq!(policy.decide(Kind::Resource, disguised, &agent), ask, "{disguised}");
        }
        assert_eq!(
            policy.decide(Kind::Resource, "file:///private/./readme", &agent),
            Decision::Allow,
            "exact"
        );
        let names: Vec<String> = policy.rules().map(|(_, name, _)| name).collect();
        assert!(names.contains(&"file:///private/*".to_owned()), "{names:?}");
    }
}
