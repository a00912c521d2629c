//! PKCE (RFC 7636), S256 only: the proof that the client redeeming a code is the
//! one that asked for it.
//!
//! OAuth 2.1 and the MCP specification require PKCE for every authorization code;
//! `plain` protects nothing against an attacker who can read the authorization
//! request, so only `S256` is accepted. The verifier's syntax is checked
//! (43–128 unreserved characters, §4.1) and the comparison is constant-time.

use aws_lc_rs::{constant_time, digest};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Why a PKCE parameter was refused; each maps to `invalid_request` (authorization)
/// or `invalid_grant` (token).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PkceError {
    /// No `code_challenge` in the authorization request.
    #[error("code_challenge is required (PKCE with S256)")]
    MissingChallenge,
    /// A method other than `S256` (including `plain`, or none given).
    #[error("code_challenge_method must be S256")]
    UnsupportedMethod,
    /// The challenge is not a base64url SHA-256 (43 characters).
    #[error("code_challenge must be the base64url SHA-256 of the verifier (43 characters)")]
    MalformedChallenge,
    /// The verifier is missing or breaks RFC 7636 §4.1.
    #[error("code_verifier must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~")]
    MalformedVerifier,
    /// The verifier does not match the challenge.
    #[error("code_verifier does not match the code_challenge")]
    Mismatch,
}

/// Checks the PKCE parameters of an authorization request; returns the challenge
/// to store with the code. A missing method counts as `plain` (RFC 7636 §4.3),
/// so it is refused too.
pub fn check_challenge(challenge: Option<&str>, method: Option<&str>) -> Result<String, PkceError> {
    let challenge = challenge.filter(|c| !c.is_empty()).ok_or(PkceError::MissingChallenge)?;
    if method != Some("S256") {
        return Err(PkceError::UnsupportedMethod);
    }
    let decoded = URL_SAFE_NO_PAD.decode(challenge).map_err(|_| PkceError::MalformedChallenge)?;
    if challenge.len() != 43 || decoded.len() != 32 {
        return Err(PkceError::MalformedChallenge);
    }
    Ok(challenge.to_owned())
}

/// The S256 challenge of `verifier` (for requests this issuer makes itself,
/// at an identity provider).
pub fn challenge_of(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()))
}

/// Whether `verifier` is well-formed and hashes to `challenge`.
pub fn verify(verifier: &str, challenge: &str) -> Result<(), PkceError> {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    if !well_formed {
        return Err(PkceError::MalformedVerifier);
    }
    let computed = challenge_of(verifier);
    constant_time::verify_slices_are_equal(computed.as_bytes(), challenge.as_bytes())
        .map_err(|_| PkceError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7636 Appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn the_rfc_example_verifies() {
        assert_eq!(check_challenge(Some(CHALLENGE), Some("S256")).unwrap(), CHALLENGE);
        assert_eq!(verify(VERIFIER, CHALLENGE), Ok(()));
    }

    #[test]
    fn refusals() {
        use PkceError::*;
        assert_eq!(check_challenge(None, Some("S256")), Err(MissingChallenge));
        assert_eq!(check_challenge(Some(""), Some("S256")), Err(MissingChallenge));
        assert_eq!(check_challenge(Some(CHALLENGE), Some("plain")), Err(UnsupportedMethod));
        assert_eq!(check_challenge(Some(CHALLENGE), None), Err(UnsupportedMethod), "absent means plain");
        assert_eq!(check_challenge(Some(CHALLENGE), Some("s256")), Err(UnsupportedMethod));
        assert_eq!(check_challenge(Some("short"), Some("S256")), Err(MalformedChallenge));
        assert_eq!(check_challenge(Some(&format!("{CHALLENGE}=")), Some("S256")), Err(MalformedChallenge));
        assert_eq!(verify(&VERIFIER.replace('d', "e"), CHALLENGE), Err(Mismatch), "wrong verifier");
        assert_eq!(verify(CHALLENGE, CHALLENGE), Err(Mismatch), "the challenge is not its own verifier");
        assert_eq!(verify(&VERIFIER[..42], CHALLENGE), Err(MalformedVerifier), "too short");
        assert_eq!(verify(&"a".repeat(129), CHALLENGE), Err(MalformedVerifier), "too long");
        assert_eq!(
            verify(&format!("{}+", &VERIFIER[..43]), CHALLENGE),
            Err(MalformedVerifier),
            "bad character"
        );
    }
}
