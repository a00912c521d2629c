//! The rules every token's claims must pass, in one place.
//!
//! JWT access tokens and introspection answers carry the same claims (RFC 9068,
//! RFC 7662), so both go through [`ClaimRules::check`]. The order is the one the
//! design fixes: `iss` exact, then `aud` contains this resource, then `exp`/`nbf`,
//! then `sub`; scopes are compared later by the layer, which knows the operation.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use crate::auth_info::{AuthInfo, from_epoch_secs};
use crate::error::InvalidToken;
use crate::resource::ResourceId;

/// Where the claims came from; it decides which claims are mandatory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClaimSource {
    /// A signed JWT: `iss`, `aud`, `exp` and `sub` are all required.
    Jwt,
    /// An introspection answer from the issuer itself: `iss` and `exp` may be
    /// absent (the issuer answered directly), `aud` and `sub` are still required.
    Introspection,
}

#[derive(Debug, Clone)]
pub(crate) struct ClaimRules {
    pub issuer: String,
    pub resource: ResourceId,
    pub leeway: Duration,
}

impl ClaimRules {
    pub fn check(&self, claims: Map<String, Value>, source: ClaimSource) -> Result<AuthInfo, InvalidToken> {
        self.check_at(claims, source, SystemTime::now())
    }

    pub fn check_at(
        &self,
        mut claims: Map<String, Value>,
        source: ClaimSource,
        now: SystemTime,
    ) -> Result<AuthInfo, InvalidToken> {
        let required = source == ClaimSource::Jwt;

        match claims.get("iss") {
            Some(Value::String(iss)) if *iss == self.issuer => {}
            None if !required => {}
            _ => return Err(InvalidToken::WrongIssuer),
        }

        let audience = string_list(claims.get("aud")).ok_or(InvalidToken::WrongAudience)?;
        if !audience.iter().any(|aud| self.resource.matches(aud)) {
            return Err(InvalidToken::WrongAudience);
        }

        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let leeway = self.leeway.as_secs();
        let exp = numeric_date(claims.get("exp"))?;
        match exp {
            None if required => return Err(InvalidToken::MissingExpiry),
            Some(exp) if exp.saturating_add(leeway) <= now => return Err(InvalidToken::Expired),
            _ => {}
        }
        if let Some(nbf) = numeric_date(claims.get("nbf"))?
            && nbf > now.saturating_add(leeway)
        {
            return Err(InvalidToken::NotYetValid);
        }

        let subject = match (claims.get("sub"), source, claims.get("client_id")) {
            (Some(Value::String(s)), _, _) if !s.is_empty() => s.clone(),
            // RFC 7662 makes `sub` optional; issuers such as node oidc-provider
            // omit it for client_credentials tokens, whose subject is the client.
            (None, ClaimSource::Introspection, Some(Value::String(c))) if !c.is_empty() => c.clone(),
            (Some(Value::String(_)) | None, _, _) => return Err(InvalidToken::MissingSubject),
            (Some(_), _, _) => return Err(InvalidToken::BadClaim),
        };
        // A derived subject is written back, so tools see `sub` in every identity.
        claims.entry("sub").or_insert_with(|| Value::String(subject.clone()));

        let scopes = match (claims.get("scope"), claims.get("scp")) {
            (Some(Value::String(s)), _) => {
                s.split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect()
            }
            (Some(_), _) => return Err(InvalidToken::BadClaim),
            (None, scp @ Some(_)) => match scp {
                Some(Value::String(s)) => s.split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect(),
                other => string_list(other).ok_or(InvalidToken::BadClaim)?,
            },
            (None, None) => Vec::new(),
        };

        let client_id = match (claims.get("client_id"), claims.get("azp")) {
            (Some(Value::String(c)), _) => Some(c.clone()),
            (None, Some(Value::String(c))) => Some(c.clone()),
            (None, None) => None,
            _ => return Err(InvalidToken::BadClaim),
        };

        Ok(AuthInfo {
            issuer: self.issuer.clone(),
            subject,
            client_id,
            audience,
            scopes,
            expires_at: exp.map(from_epoch_secs),
            claims: claims.into(),
        })
    }
}

/// `aud`-style claims: a string or an array of strings. `None` when absent, empty
/// or of another type.
fn string_list(value: Option<&Value>) -> Option<Vec<String>> {
    match value? {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(items) if !items.is_empty() => {
            items.iter().map(|v| v.as_str().map(str::to_owned)).collect()
        }
        _ => None,
    }
}

/// The last second of the year 9999: later dates are not dates but mistakes (and
/// would overflow the clock types).
const LAST_NUMERIC_DATE: u64 = 253_402_300_799;

/// A NumericDate (RFC 7519 §2): seconds since the epoch, possibly fractional.
fn numeric_date(value: Option<&Value>) -> Result<Option<u64>, InvalidToken> {
    let secs = match value {
        None => return Ok(None),
        Some(Value::Number(n)) => match (n.as_u64(), n.as_f64()) {
            (Some(secs), _) => secs,
            (None, Some(f)) if f.is_finite() && f >= 0.0 => f as u64,
            _ => return Err(InvalidToken::BadClaim),
        },
        Some(_) => return Err(InvalidToken::BadClaim),
    };
    if secs > LAST_NUMERIC_DATE { Err(InvalidToken::BadClaim) } else { Ok(Some(secs)) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules() -> ClaimRules {
        ClaimRules {
            issuer: "https://as.example".into(),
            resource: ResourceId::parse("https://mcp.example/mcp").unwrap(),
            leeway: Duration::from_secs(60),
        }
    }

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_000_000)
    }

    fn claims(extra: Value) -> Map<String, Value> {
        let mut base = json!({
            "iss": "https://as.example", "aud": "https://mcp.example/mcp", "sub": "alice",
            "exp": 1_000_600, "scope": "a b", "client_id": "app"
        });
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                base.as_object_mut().unwrap().remove(k);
            } else {
                base[k] = v.clone();
            }
        }
        base.as_object().unwrap().clone()
    }

    fn check(extra: Value, source: ClaimSource) -> Result<AuthInfo, InvalidToken> {
        rules().check_at(claims(extra), source, now())
    }

    #[test]
    fn accepts_a_good_token() {
        let info = check(json!({}), ClaimSource::Jwt).unwrap();
        assert_eq!(info.subject, "alice");
        assert_eq!(info.scopes, ["a", "b"]);
        assert_eq!(info.client_id.as_deref(), Some("app"));
        assert_eq!(info.expires_at, Some(from_epoch_secs(1_000_600)));
    }

    #[test]
    fn each_rule_refuses() {
        use ClaimSource::*;
        use InvalidToken::*;
        let cases = [
            (json!({"iss": "https://as.example/"}), Jwt, WrongIssuer),
            (json!({"iss": null}), Jwt, WrongIssuer),
            (json!({"aud": "https://mcp.example/other"}), Jwt, WrongAudience),
            (json!({"aud": null}), Jwt, WrongAudience),
            (json!({"aud": []}), Jwt, WrongAudience),
            (json!({"exp": null}), Jwt, MissingExpiry),
            (json!({"exp": 1_000_000 - 61}), Jwt, Expired),
            (json!({"exp": "soon"}), Jwt, BadClaim),
            (json!({"exp": u64::MAX}), Jwt, BadClaim),
            (json!({"exp": 1e300}), Jwt, BadClaim),
            (json!({"nbf": 1_000_000 + 61}), Jwt, NotYetValid),
            (json!({"sub": null}), Jwt, MissingSubject),
            (json!({"sub": ""}), Jwt, MissingSubject),
            (json!({"sub": 42}), Jwt, BadClaim),
            (json!({"scope": ["a"]}), Jwt, BadClaim),
            (json!({"aud": null}), Introspection, WrongAudience),
            (json!({"iss": "https://evil"}), Introspection, WrongIssuer),
        ];
        for (extra, source, want) in cases {
            assert_eq!(check(extra.clone(), source).unwrap_err(), want, "{extra}");
        }
    }

    #[test]
    fn leeway_and_alternatives() {
        use ClaimSource::*;
        assert!(check(json!({"exp": 1_000_000 - 59}), Jwt).is_ok(), "inside the leeway");
        assert!(check(json!({"nbf": 1_000_000 + 59}), Jwt).is_ok(), "inside the leeway");
        assert!(check(json!({"iss": null, "exp": null}), Introspection).is_ok());
        let machine = check(json!({"sub": null, "client_id": "m2m"}), Introspection).unwrap();
        assert_eq!(machine.subject, "m2m", "a client_credentials token's subject is its client");
        assert_eq!(machine.claims["sub"], "m2m", "and tools see it as `sub`");
        assert_eq!(check(json!({"sub": null}), Jwt).unwrap_err(), InvalidToken::MissingSubject);
        let info = check(
            json!({"scope": null, "scp": ["x", "y"], "client_id": null, "azp": "z",
                                "aud": ["other", "https://MCP.example/mcp/"]}),
            Jwt,
        )
        .unwrap();
        assert_eq!(info.scopes, ["x", "y"]);
        assert_eq!(info.client_id.as_deref(), Some("z"));
        assert_eq!(info.audience.len(), 2);
    }
}
