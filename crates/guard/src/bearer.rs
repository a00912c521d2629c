//! Reading the bearer token from a request: the `Authorization` header only.
//!
//! RFC 6750 allows three ways to send a token; MCP allows one. A token in the
//! query string ends up in logs and browser history, so a request that tries it is
//! refused outright rather than silently ignored. The scheme is case-insensitive
//! (RFC 7235 §2.1); the token must be a `b64token` (RFC 6750 §2.1).

use http::{HeaderMap, header};

use crate::error::AuthError;

/// Finds the token, or says why the request has none that can be used.
pub(crate) fn bearer_token<'a>(
    headers: &'a HeaderMap,
    query: Option<&str>,
    max_header_bytes: usize,
) -> Result<&'a str, AuthError> {
    if let Some(query) = query
        && url::form_urlencoded::parse(query.as_bytes()).any(|(name, _)| name == "access_token")
    {
        return Err(AuthError::InvalidRequest("access tokens are accepted only in the Authorization header"));
    }
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(AuthError::MissingToken);
    };
    if values.next().is_some() {
        return Err(AuthError::InvalidRequest("more than one Authorization header"));
    }
    if value.len() > max_header_bytes {
        return Err(AuthError::HeaderTooLarge);
    }
    let value =
        value.to_str().map_err(|_| AuthError::InvalidRequest("the Authorization header is not ASCII"))?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        // Another scheme (Basic, DPoP…) carries no bearer credentials: the answer
        // is the plain challenge, as if nothing had been sent.
        return Err(AuthError::MissingToken);
    }
    let token = rest.trim_start_matches(' ');
    if token.is_empty() {
        return Err(AuthError::InvalidRequest("the Bearer credentials are empty"));
    }
    if !is_b64token(token) {
        return Err(AuthError::InvalidRequest(
            "the bearer token contains characters RFC 6750 does not allow",
        ));
    }
    Ok(token)
}

/// `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty() && body.bytes().all(|b| B64TOKEN[usize::from(b)])
}

/// The characters of a `b64token`, as a table: tokens are checked on every request
/// and JWTs are long, so one load per byte beats a chain of comparisons.
static B64TOKEN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
        b += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn takes_the_token() {
        assert_eq!(bearer_token(&with(&["Bearer abc.def-_~+/=="]), None, 100), Ok("abc.def-_~+/=="));
        assert_eq!(bearer_token(&with(&["bEaReR  abc"]), None, 100), Ok("abc"));
    }

    #[test]
    fn refusals() {
        use AuthError::*;
        assert_eq!(bearer_token(&with(&[]), None, 100), Err(MissingToken));
        assert_eq!(bearer_token(&with(&["Basic dXNlcjpwYXNz"]), None, 100), Err(MissingToken));
        assert!(matches!(bearer_token(&with(&["Bearer"]), None, 100), Err(InvalidRequest(_))));
        assert!(matches!(bearer_token(&with(&["Bearer a b"]), None, 100), Err(InvalidRequest(_))));
        assert!(matches!(bearer_token(&with(&["Bearer a\"b"]), None, 100), Err(InvalidRequest(_))));
        assert!(matches!(bearer_token(&with(&["Bearer ==="]), None, 100), Err(InvalidRequest(_))));
        assert!(matches!(bearer_token(&with(&["Bearer a", "Bearer b"]), None, 100), Err(InvalidRequest(_))));
        assert_eq!(bearer_token(&with(&["Bearer aaaaaaaaaa"]), None, 10), Err(HeaderTooLarge));
        assert!(matches!(
            bearer_token(&with(&["Bearer a"]), Some("x=1&access_token=abc"), 100),
            Err(InvalidRequest(_))
        ));
        assert!(matches!(bearer_token(&with(&[]), Some("access_token=abc"), 100), Err(InvalidRequest(_))));
    }
}
