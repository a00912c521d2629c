//! Codes and tokens: what the token, introspection and revocation endpoints do.
//!
//! - An authorization **code** is single use and bound to its client, redirect
//!   URI, PKCE challenge and resource. Every check runs before the code is
//!   consumed, so a failed exchange changes nothing; then one conditional update
//!   consumes it, so of two racing exchanges exactly one wins. A code presented
//!   again revokes everything its first exchange issued (OAuth 2.1 §4.1.3).
//! - Everything issued from one code is a **family**. Access tokens carry the
//!   family id in their `jti` (`<family>.<random>`), so revoking the family —
//!   code replay, refresh-token reuse, the person disconnecting the app — turns
//!   every token of it inactive at introspection and userinfo at once, without
//!   a row per access token.
//! - **Refresh tokens** are 256 bits, stored hashed, rotated on every use;
//!   presenting one that was already rotated out revokes the whole family —
//!   unless it is a retry: the same app, within `refresh_overlap` seconds of
//!   the rotation, while the successor is still unused. An answer lost on the
//!   network (or in a crash after the commit), or two processes of one app
//!   refreshing at once, then cost nothing: the retry gets the very successor
//!   the first request got, so the family keeps exactly one live refresh
//!   token and never forks. That successor needs no secret kept at rest: it
//!   is the HMAC of the token it succeeds, under a key derived from the
//!   key-encryption key, so any instance can give it again. The first token
//!   of a family is random.
//! - **Access tokens** are RFC 9068 JWTs (`typ: at+jwt`), signed ES256.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::client_assertions::{self, Accepted};
use crate::clients::{registered_by, secret_matches};
use crate::error::{ErrorCode, OAuthError};
use crate::keys::{Alg, KeyRing};
use crate::scopes::{self, has};
use crate::store::{
    AuthCode, Client, CodeRedemption, Redemption, RefreshToken, Resource, Store, TokenFamily, User,
};
use crate::{Issuer, hash_secret, now, pkce, random_token};

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, Clone, Serialize)]
pub struct TokenResponse {
    /// The access token (a JWT).
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// The scopes granted, space-separated.
    pub scope: String,
    /// A refresh token, when one was issued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// An OpenID Connect ID token, when `openid` was granted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

/// What an authorization decided, to be turned into a code.
#[derive(Debug, Clone)]
pub struct CodeRequest {
    /// The app.
    pub client_id: String,
    /// The person.
    pub user_id: String,
    /// Where the code goes.
    pub redirect_uri: String,
    /// The PKCE challenge (S256).
    pub code_challenge: String,
    /// The resource (`""` for none).
    pub resource: String,
    /// The scopes granted.
    pub scopes: Vec<String>,
    /// The OpenID Connect nonce.
    pub nonce: Option<String>,
    /// When the person signed in.
    pub auth_time: i64,
}

/// How the client presented itself at the token, introspection or revocation
/// endpoint.
#[derive(Debug, Clone, Default)]
pub struct ClientCredentials {
    /// Id and secret from `Authorization: Basic` (already form-decoded).
    pub basic: Option<(String, String)>,
    /// `client_id` from the form body.
    pub client_id: Option<String>,
    /// `client_secret` from the form body.
    pub client_secret: Option<String>,
    /// `client_assertion_type` from the form body (RFC 7521 §4.2).
    pub client_assertion_type: Option<String>,
    /// `client_assertion` from the form body: a JWT for `private_key_jwt`.
    pub client_assertion: Option<String>,
}

/// What a client offered to prove its identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proof<'a> {
    /// Nothing: a public client.
    Nothing,
    /// A secret (`client_secret_basic` or `client_secret_post`).
    Secret(&'a str),
    /// A signed JWT (`private_key_jwt`).
    Assertion(&'a str),
}

impl ClientCredentials {
    /// The client id the request claims and the proof it offers, if it used
    /// exactly one way to present them.
    fn claimed(&self) -> Result<(Cow<'_, str>, Proof<'_>), OAuthError> {
        if let Some(assertion) = &self.client_assertion {
            if self.basic.is_some() || self.client_secret.is_some() {
                return Err(OAuthError::invalid_request("use one client authentication method, not two"));
            }
            if self.client_assertion_type.as_deref() != Some(client_assertions::ASSERTION_TYPE) {
                return Err(OAuthError::invalid_client(format!(
                    "client_assertion_type must be {}",
                    client_assertions::ASSERTION_TYPE
                )));
            }
            // The assertion names its app in `sub`; checked later with the app's keys.
            let claimed = client_assertions::claimed_client_id(assertion)
                .ok_or_else(|| OAuthError::invalid_client("the client assertion is not a readable JWT"))?;
            return match &self.client_id {
                Some(id) if *id != claimed => {
                    Err(OAuthError::invalid_client("client_id differs from the client assertion's sub"))
                }
                _ => Ok((Cow::Owned(claimed), Proof::Assertion(assertion))),
            };
        }
        if self.client_assertion_type.is_some() {
            return Err(OAuthError::invalid_request("client_assertion_type without client_assertion"));
        }
        match (&self.basic, &self.client_secret) {
            (Some(_), Some(_)) => {
                Err(OAuthError::invalid_request("use one client authentication method, not two"))
            }
            (Some((id, secret)), None) => {
                if self.client_id.as_ref().is_some_and(|form_id| form_id != id) {
                    return Err(OAuthError::invalid_request(
                        "client_id differs from the Authorization header",
                    ));
                }
                Ok((Cow::Borrowed(id), Proof::Secret(secret)))
            }
            (None, secret) => match &self.client_id {
                Some(id) => Ok((Cow::Borrowed(id), secret.as_deref().map_or(Proof::Nothing, Proof::Secret))),
                None => Err(OAuthError::invalid_client("client authentication is required")),
            },
        }
    }
}

/// The client the store found for a claimed id, if the offered proof is the
/// one it must give: a confidential client its secret (compared in constant
/// time), a `private_key_jwt` client an assertion its keys verify, a public one
/// nothing. An accepted assertion comes back to be recorded as used.
fn check_client(
    client: Option<Client>,
    proof: Proof<'_>,
    issuer: &str,
    now: i64,
) -> Result<(Client, Option<Accepted>), OAuthError> {
    let client = client.ok_or_else(|| {
        OAuthError::invalid_client(
            "no app with this client_id is registered here; an app registered before (this server's data may \
             have been reset since) must register again",
        )
    })?;
    if client.token_endpoint_auth_method == "private_key_jwt" {
        let Proof::Assertion(assertion) = proof else {
            return Err(OAuthError::invalid_client("this client authenticates with private_key_jwt"));
        };
        let keys = client.jwks.as_deref().unwrap_or_default();
        return match client_assertions::verify(assertion, &client.client_id, keys, issuer, now) {
            Ok(accepted) => Ok((client, Some(accepted))),
            Err(why) => Err(OAuthError::invalid_client(why)),
        };
    }
    match (&client.secret_hash, proof) {
        (_, Proof::Assertion(_)) => {
            Err(OAuthError::invalid_client("this client does not use private_key_jwt"))
        }
        (Some(_), Proof::Secret(secret)) if secret_matches(&client, secret) => Ok((client, None)),
        (Some(_), Proof::Secret(_)) => Err(OAuthError::invalid_client("the client secret is not right")),
        (Some(_), Proof::Nothing) => Err(OAuthError::invalid_client(
            "this app is confidential and sent no secret: send its client_secret (HTTP Basic, or in the form)",
        )),
        (None, Proof::Nothing) => Ok((client, None)),
        (None, Proof::Secret(_)) => Err(OAuthError::invalid_client("a public client has no secret")),
    }
}

/// The parameters of an `authorization_code` token request (RFC 6749 §4.1.3,
/// RFC 7636 §4.5, RFC 8707 §2.2), as the client sent them.
#[derive(Debug, Clone, Copy, Default)]
pub struct CodeExchange<'a> {
    /// `code`.
    pub code: Option<&'a str>,
    /// `redirect_uri`: must equal the authorization request's.
    pub redirect_uri: Option<&'a str>,
    /// `code_verifier` (PKCE).
    pub code_verifier: Option<&'a str>,
    /// `resource`: if sent, must be the one the code was issued for.
    pub resource: Option<&'a str>,
}

/// A token that passed every check: its claims.
pub type Claims = Map<String, Value>;

/// The `jti` of an access token of `family`.
fn family_jti(family: &str) -> String {
    format!("{family}.{}", random_token(12))
}

/// The family an access token's `jti` names, if it belongs to one.
pub(crate) fn family_of_jti(jti: &str) -> Option<&str> {
    jti.split_once('.').map(|(family, _)| family)
}

/// The claims about the person an access token may carry, and a token minted
/// on its behalf passes on.
const PERSON_CLAIMS: [&str; 5] = ["preferred_username", "name", "picture", "email", "email_verified"];

/// Whom [`Issuer::mint_on_behalf`] mints for: what the agent's verified token
/// said, and the upstream it is for.
#[derive(Debug, Clone, Copy)]
pub struct OnBehalf<'a> {
    /// The person (`sub`).
    pub subject: &'a str,
    /// The agent (`client_id`).
    pub client_id: &'a str,
    /// The scopes the person granted it.
    pub scopes: &'a [String],
    /// The agent token's `jti`, when it has one.
    pub jti: Option<&'a str>,
    /// The agent token's claims (the person's are passed on).
    pub claims: &'a Claims,
    /// The upstream's audience.
    pub audience: &'a str,
    /// When the minted token expires (seconds since the epoch).
    pub expires_at: i64,
}

impl<S: Store> Issuer<S> {
    /// Authenticates the client of a back-channel request: `client_secret_basic`,
    /// `client_secret_post`, or `none` for a public client. Exactly one method;
    /// a confidential client must prove its secret.
    pub async fn authenticate_client(&self, credentials: &ClientCredentials) -> Result<Client, OAuthError> {
        let (client_id, proof) = credentials.claimed()?;
        let client = self.store.client(&client_id).await?;
        self.accept_client(client, proof).await
    }

    /// The rest of client authentication once the client is read: the proof,
    /// the app's source, and an assertion's single use.
    async fn accept_client(&self, client: Option<Client>, proof: Proof<'_>) -> Result<Client, OAuthError> {
        let client = match client {
            // An app known by its document is checked against the document as
            // it is now (cached per its headers): a key it withdrew stops working.
            Some(stored)
                if stored.registration == registered_by::DOCUMENT && self.settings.client_documents =>
            {
                let current = self.document_client(&stored.client_id).await.map_err(|error| {
                    tracing::info!(client_id = %stored.client_id, %error, "a document app's metadata is unusable");
                    OAuthError::invalid_client(format!("the app's metadata document is unusable: {error}"))
                })?;
                Some(current)
            }
            other => other,
        };
        let (client, accepted) = check_client(client, proof, &self.settings.issuer, now())?;
        self.check_client_source(&client)?;
        if let Some(accepted) = accepted {
            let id = format!("{}\n{}", client.client_id, accepted.jti);
            if !self.store.first_use(&id, accepted.remember_until).await? {
                return Err(OAuthError::invalid_client("this client assertion was already used"));
            }
        }
        Ok(client)
    }

    /// Stores a new authorization code; returns the code (shown only now).
    pub async fn issue_code(&self, request: CodeRequest) -> Result<String, OAuthError> {
        self.issue_code_to(request, None).await
    }

    /// [`Issuer::issue_code`], keeping the code with `client` (the app as it
    /// was read for this authorization request) for a one-trip exchange. Apps
    /// known by their metadata document, and apps that sign assertions, are
    /// not kept: their exchange always reads them afresh.
    pub async fn issue_code_to(
        &self,
        request: CodeRequest,
        client: Option<&Client>,
    ) -> Result<String, OAuthError> {
        let code = random_token(32);
        let now = now();
        let stored = AuthCode {
            code_hash: hash_secret(&code),
            client_id: request.client_id,
            user_id: request.user_id,
            redirect_uri: request.redirect_uri,
            code_challenge: request.code_challenge,
            resource: request.resource,
            scopes: request.scopes,
            nonce: request.nonce,
            auth_time: request.auth_time,
            expires_at: now + self.settings.code_ttl,
            redeemed_at: None,
            family_id: None,
        };
        self.store.insert_code(&stored).await?;
        let keep = |client: &&Client| {
            client.client_id == stored.client_id
                && client.registration != registered_by::DOCUMENT
                && client.token_endpoint_auth_method != "private_key_jwt"
        };
        if let Some(client) = client.filter(keep) {
            self.recent_codes.keep(stored, client.clone(), now);
        }
        Ok(code)
    }

    /// The `authorization_code` grant, client authentication included. A code
    /// this instance issued lately is checked against the app as read when it
    /// was issued, and redeemed in one trip to the store, which redeems only
    /// while the app is unchanged and the person exists; any other code (or
    /// one the store would not redeem that way) is read together with the
    /// client, in one trip, checked, and redeemed in another.
    pub async fn exchange_code(
        &self,
        credentials: &ClientCredentials,
        request: CodeExchange<'_>,
    ) -> Result<TokenResponse, OAuthError> {
        let (client_id, proof) = credentials.claimed()?;
        let Some(code) = request.code else {
            self.authenticate_client(credentials).await?;
            return Err(OAuthError::invalid_request("code is required"));
        };
        let code_hash = hash_secret(code);
        // Another app presenting the code takes the usual path, and its answer.
        let recent = self.recent_codes.take(&code_hash, now()).filter(|r| r.client.client_id == client_id);
        if let Some(recent) = recent {
            let client = self.accept_client(Some(recent.client), proof).await?;
            match self.redeem(&client, &recent.code, false, &request).await? {
                Some(tokens) => return Ok(tokens),
                None => tracing::debug!("the app or the person changed since the code was issued"),
            }
        }
        let found = self.store.client_and_code(&client_id, &code_hash).await?;
        let client = self.accept_client(found.client, proof).await?;
        let stored = found.code.ok_or_else(|| OAuthError::invalid_grant("unknown authorization code"))?;
        match self.redeem(&client, &stored, found.user.is_none(), &request).await? {
            Some(tokens) => Ok(tokens),
            None => {
                Err(OAuthError::invalid_grant("the app or the person changed during the exchange; try again"))
            }
        }
    }

    /// Checks `code` for `client` and the request, then redeems it: the
    /// tokens, or `None` when the store would not redeem it because the app
    /// changed or the person or code is gone since they were read.
    /// `person_gone` says the person was found missing when the code was read
    /// (an error only once the code is known to be this client's and unused).
    async fn redeem(
        &self,
        client: &Client,
        code: &AuthCode,
        person_gone: bool,
        request: &CodeExchange<'_>,
    ) -> Result<Option<TokenResponse>, OAuthError> {
        let verifier = request
            .code_verifier
            .ok_or_else(|| OAuthError::invalid_request("code_verifier is required (PKCE)"))?;
        let now = now();
        if code.redeemed_at.is_some() {
            self.revoke_replayed(code.family_id.as_deref(), now).await?;
            return Err(OAuthError::invalid_grant("authorization code already used; its tokens are revoked"));
        }
        // Every check before the code is consumed: a failed exchange changes nothing.
        if code.client_id != client.client_id {
            return Err(OAuthError::invalid_grant("authorization code was issued to another client"));
        }
        if code.expires_at <= now {
            return Err(OAuthError::invalid_grant("authorization code expired"));
        }
        if request.redirect_uri != Some(code.redirect_uri.as_str()) {
            return Err(OAuthError::invalid_grant("redirect_uri differs from the authorization request"));
        }
        pkce::verify(verifier, &code.code_challenge).map_err(|e| OAuthError::invalid_grant(e.to_string()))?;
        if let Some(asked) = request.resource {
            check_same_resource(asked, &code.resource)?;
        }
        if person_gone {
            return Err(OAuthError::invalid_grant("the person no longer exists"));
        }

        let family = TokenFamily {
            id: random_token(16),
            client_id: client.client_id.clone(),
            user_id: code.user_id.clone(),
            resource: code.resource.clone(),
            scopes: code.scopes.clone(),
            auth_time: code.auth_time,
            created_at: now,
            revoked_at: None,
        };
        // The signing key first: once the code is redeemed, nothing may fail.
        let keys = self.keys_with(id_token_alg(client)).await?;
        let refresh = self.refresh_allowed(client, &family.scopes).then(|| self.new_refresh(&family.id, now));
        let redemption = CodeRedemption {
            code_hash: &code.code_hash,
            now,
            family: &family,
            refresh: refresh.as_ref().map(|(_, row)| row),
            // An app known by its document was just checked against the document
            // itself, its authority; any other app, as the store had it.
            client_version: (client.registration != registered_by::DOCUMENT).then_some(client.version),
        };
        let user = match self.store.redeem_code(&redemption).await? {
            Redemption::Won(user) => user,
            Redemption::AlreadyUsed(first) => {
                self.revoke_replayed(Some(&first), now).await?;
                return Err(OAuthError::invalid_grant(
                    "authorization code already used; its tokens are revoked",
                ));
            }
            Redemption::Stale => return Ok(None),
        };
        Ok(Some(self.respond(
            &keys,
            client,
            &user,
            &family,
            &family.scopes,
            code.nonce.as_deref(),
            refresh.map(|(t, _)| t),
            now,
        )))
    }

    async fn revoke_replayed(&self, family: Option<&str>, now: i64) -> Result<(), OAuthError> {
        if let Some(family) = family {
            tracing::warn!("authorization code replayed; revoking the tokens it issued");
            self.revoke_family(family, now).await?;
        }
        Ok(())
    }

    /// Revokes a token family; this instance's MCP servers refuse its tokens
    /// from the next call on, every other instance's within seconds.
    async fn revoke_family(&self, family: &str, now: i64) -> Result<(), OAuthError> {
        self.store.revoke_family(family, now).await?;
        self.spread_revocations().await;
        Ok(())
    }

    /// The `refresh_token` grant: rotates the token; a token already rotated out
    /// revokes its family. `scope` may narrow the new access token; `resource`,
    /// when given, must be the family's.
    pub async fn refresh(
        &self,
        client: &Client,
        token: Option<&str>,
        scope: Option<&str>,
        resource: Option<&str>,
    ) -> Result<TokenResponse, OAuthError> {
        let token = token.ok_or_else(|| OAuthError::invalid_request("refresh_token is required"))?;
        if !client.grant_types.iter().any(|g| g == "refresh_token") {
            return Err(OAuthError::new(
                ErrorCode::UnauthorizedClient,
                "this client may not use refresh tokens",
            ));
        }
        let token_hash = hash_secret(token);
        let found = self.store.refresh_token(&token_hash).await?;
        let (stored, family) = found.ok_or_else(|| OAuthError::invalid_grant("unknown refresh token"))?;
        let now = now();
        if family.revoked_at.is_some() {
            return Err(OAuthError::invalid_grant("refresh token revoked"));
        }
        if stored.rotated_at.is_some() {
            return self.rotated_again(client, token, &stored, &family, scope, resource, now).await;
        }
        if family.client_id != client.client_id {
            return Err(OAuthError::invalid_grant("refresh token was issued to another client"));
        }
        if stored.expires_at <= now {
            return Err(OAuthError::invalid_grant("refresh token expired"));
        }
        let scopes = self.refreshed_scopes(client, &family, scope, resource)?;
        let user = self.live_user(&family.user_id).await?;
        let keys = self.keys_with(id_token_alg(client)).await?;
        let successor = self.successor_of(token);
        let row = self.refresh_row(&successor, &family.id, now);
        if !self.store.rotate_refresh_token(&token_hash, now, &row).await? {
            // Another request rotated it meanwhile: this one is its retry.
            let (stored, family) = self
                .store
                .refresh_token(&token_hash)
                .await?
                .ok_or_else(|| OAuthError::invalid_grant("unknown refresh token"))?;
            return self.rotated_again(client, token, &stored, &family, scope, resource, now).await;
        }
        Ok(self.respond(&keys, client, &user, &family, &scopes, None, Some(successor), now))
    }

    /// A refresh token presented again after its rotation: a retry when it is
    /// the same app, within the overlap, and its successor is unused — it gets
    /// that successor again, with a fresh access token. Anything else is a
    /// stolen token's reuse (or a copy that lived too long): the family is
    /// revoked.
    #[allow(clippy::too_many_arguments)]
    async fn rotated_again(
        &self,
        client: &Client,
        token: &str,
        stored: &RefreshToken,
        family: &TokenFamily,
        scope: Option<&str>,
        resource: Option<&str>,
        now: i64,
    ) -> Result<TokenResponse, OAuthError> {
        let overlap = self.settings.refresh_overlap;
        let in_time = overlap > 0 && stored.rotated_at.is_some_and(|at| now - at <= overlap);
        let successor = self.successor_of(token);
        let mut unused = false;
        if in_time && family.client_id == client.client_id {
            let next = self.store.refresh_token(&hash_secret(&successor)).await?;
            unused = next.is_some_and(|(next, next_family)| {
                next.family_id == family.id
                    && next.rotated_at.is_none()
                    && next.expires_at > now
                    && next_family.revoked_at.is_none()
            });
        }
        if !unused {
            tracing::warn!("rotated-out refresh token presented; revoking its family");
            self.revoke_family(&family.id, now).await?;
            return Err(OAuthError::invalid_grant("refresh token already used; its family is revoked"));
        }
        tracing::info!("a refresh retried within the overlap; the same successor is given again");
        let scopes = self.refreshed_scopes(client, family, scope, resource)?;
        let user = self.live_user(&family.user_id).await?;
        let keys = self.keys_with(id_token_alg(client)).await?;
        Ok(self.respond(&keys, client, &user, family, &scopes, None, Some(successor), now))
    }

    /// The scopes of a refreshed access token: what was granted, within what
    /// the app may have today (an app whose registration was narrowed since
    /// keeps only what it may still have), narrowed to `scope` when asked;
    /// `resource`, when given, must be the family's.
    fn refreshed_scopes(
        &self,
        client: &Client,
        family: &TokenFamily,
        scope: Option<&str>,
        resource: Option<&str>,
    ) -> Result<Vec<String>, OAuthError> {
        let scopes = match scope {
            None => family.scopes.iter().filter(|s| has(&client.scopes, s)).cloned().collect(),
            Some(scope) => {
                let asked = scopes::parse_scope(Some(scope))?;
                if let Some(extra) = asked.iter().find(|s| !has(&family.scopes, s)) {
                    return Err(OAuthError::new(
                        ErrorCode::InvalidScope,
                        format!("scope {extra:?} was not granted; a refresh may only narrow the scope"),
                    ));
                }
                if let Some(gone) = asked.iter().find(|s| !has(&client.scopes, s)) {
                    return Err(OAuthError::new(
                        ErrorCode::InvalidScope,
                        format!("scope {gone:?} is no longer allowed for this app"),
                    ));
                }
                asked
            }
        };
        if let Some(asked) = resource {
            check_same_resource(asked, &family.resource)?;
        }
        Ok(scopes)
    }

    /// The `client_credentials` grant, for confidential first-party machine apps.
    pub async fn client_credentials(
        &self,
        client: &Client,
        scope: Option<&str>,
        resource: Option<&str>,
    ) -> Result<TokenResponse, OAuthError> {
        if client.secret_hash.is_none()
            || client.third_party
            || !client.grant_types.iter().any(|g| g == "client_credentials")
        {
            return Err(OAuthError::new(
                ErrorCode::UnauthorizedClient,
                "client_credentials is for confidential first-party machine apps",
            ));
        }
        let resource = scopes::find_resource(&self.store, &self.settings, resource).await?;
        let asked = scopes::parse_scope(scope)?;
        if let Some(oidc) = asked.iter().find(|s| scopes::OPENID_SCOPES.contains(&s.as_str())) {
            return Err(OAuthError::new(
                ErrorCode::InvalidScope,
                format!("{oidc:?} needs a person; machines get none"),
            ));
        }
        let granted = scopes::resolve(client, &asked, resource.as_ref())?;
        let now = now();
        let access_token = self.access_token(
            &client.client_id,
            &client.client_id,
            resource.as_ref().map_or("", |r| r.uri.as_str()),
            &granted,
            &random_token(16),
            None,
            None,
            now,
        );
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: self.settings.access_token_ttl,
            scope: granted.join(" "),
            refresh_token: None,
            id_token: None,
        })
    }

    /// Checks an access token this issuer signed and that nothing revoked since;
    /// its claims.
    pub async fn validate_access_token(&self, token: &str) -> Result<Claims, OAuthError> {
        let invalid = || OAuthError::new(ErrorCode::InvalidToken, "the access token is not valid");
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid())?;
        // An ID token (typ JWT) or any other JWT of ours is not an access token.
        if header.alg != jsonwebtoken::Algorithm::ES256 || header.typ.as_deref() != Some("at+jwt") {
            return Err(invalid());
        }
        let kid = header.kid.as_deref().ok_or_else(invalid)?;
        let keys = self.keys_knowing(kid).await;
        let key = keys.verifying_key(kid).ok_or_else(invalid)?;
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
        validation.set_issuer(&[&self.settings.issuer]);
        validation.validate_aud = false;
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "iss", "sub", "jti"]);
        let claims = jsonwebtoken::decode::<Claims>(token, key, &validation).map_err(|_| invalid())?.claims;
        let jti = claims.get("jti").and_then(Value::as_str).ok_or_else(invalid)?;
        if let Some(family) = family_of_jti(jti) {
            // A family goes with its app and its person (and is revoked by a logout or a disconnect).
            let live = self.store.family(family).await?.is_some_and(|f| f.revoked_at.is_none());
            if !live {
                return Err(invalid());
            }
        } else {
            // A machine app's token has no family: it dies with its app.
            let app = claims.get("client_id").and_then(Value::as_str).ok_or_else(invalid)?;
            if self.store.client(app).await?.is_none() {
                return Err(invalid());
            }
        }
        if self.store.access_token_revoked(jti).await? {
            return Err(invalid());
        }
        Ok(claims)
    }

    /// RFC 7662: what the issuer knows of `token`, an access or refresh token,
    /// as its operator may see it. Anything not valid now is
    /// `{"active": false}` and nothing more. The endpoint answers apps with
    /// [`Issuer::introspect_for`].
    pub async fn introspect(&self, token: &str) -> Result<Value, OAuthError> {
        self.introspect_as(None, token).await
    }

    /// RFC 7662 for `asker`: as [`Issuer::introspect`], except that a refresh
    /// token is described only to its own app or a first-party one (a
    /// resource server of the operator's). To any other app it is inactive:
    /// a stranger that could watch a stolen token rotate could retry it within
    /// the rotation overlap every time.
    pub async fn introspect_for(&self, asker: &Client, token: &str) -> Result<Value, OAuthError> {
        self.introspect_as(Some(asker), token).await
    }

    async fn introspect_as(&self, asker: Option<&Client>, token: &str) -> Result<Value, OAuthError> {
        let inactive = json!({ "active": false });
        if token.contains('.') {
            return Ok(match self.validate_access_token(token).await {
                Ok(claims) => {
                    let mut answer = claims;
                    answer.insert("active".into(), Value::Bool(true));
                    answer.insert("token_type".into(), "Bearer".into());
                    Value::Object(answer)
                }
                Err(e) if e.code == ErrorCode::ServerError => return Err(e),
                Err(_) => inactive,
            });
        }
        let Some((stored, family)) = self.store.refresh_token(&hash_secret(token)).await? else {
            return Ok(inactive);
        };
        if stored.rotated_at.is_some() || family.revoked_at.is_some() || stored.expires_at <= now() {
            return Ok(inactive);
        }
        if asker.is_some_and(|asker| asker.third_party && asker.client_id != family.client_id) {
            return Ok(inactive);
        }
        let mut answer = json!({
            "active": true,
            "token_type": "refresh_token",
            "iss": self.settings.issuer,
            "sub": family.user_id,
            "client_id": family.client_id,
            "scope": family.scopes.join(" "),
            "iat": stored.created_at,
            "exp": stored.expires_at,
        });
        if !family.resource.is_empty() {
            answer["aud"] = family.resource.into();
        }
        Ok(answer)
    }

    /// RFC 7009: revokes `token` if it is `client`'s; unknown tokens are ignored.
    /// A refresh token takes its whole family with it.
    pub async fn revoke(&self, client: &Client, token: &str) -> Result<(), OAuthError> {
        let now = now();
        if let Some((_, family)) = self.store.refresh_token(&hash_secret(token)).await? {
            if family.client_id == client.client_id {
                self.revoke_family(&family.id, now).await?;
            }
            return Ok(());
        }
        if let Ok(claims) = self.validate_access_token(token).await
            && claims.get("client_id").and_then(Value::as_str) == Some(client.client_id.as_str())
        {
            let jti = claims.get("jti").and_then(Value::as_str).unwrap_or_default();
            let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(now);
            self.store.revoke_access_token(jti, exp, now).await?;
            self.spread_revocations().await;
        }
        Ok(())
    }

    /// The claims about `user` that `scopes` allow (OpenID Connect Core §5.4):
    /// what userinfo answers, and what ID and access tokens carry. Nobody here
    /// verifies email addresses, so `email_verified` is false.
    pub fn user_claims(&self, user: &User, scopes: &[String]) -> Claims {
        let mut claims = Map::new();
        claims.insert("sub".into(), user.id.clone().into());
        if has(scopes, "profile") {
            claims.insert("preferred_username".into(), user.username.clone().into());
            if let Some(name) = &user.name {
                claims.insert("name".into(), name.clone().into());
            }
            if let Some(picture) = &user.picture {
                claims.insert("picture".into(), picture.clone().into());
            }
        }
        if has(scopes, "email")
            && let Some(email) = &user.email
        {
            claims.insert("email".into(), email.clone().into());
            // Verified only when an identity provider said so.
            claims.insert("email_verified".into(), user.email_verified.into());
        }
        claims
    }

    /// A token for an MCP server behind this issuer's gateway, on behalf of
    /// the person an agent's token names: the RFC 8693 §2.2 shape of a token
    /// exchange, signed like every access token here, so that the server checks
    /// it as it would any (the issuer's JWKS, `aud`, `scope`).
    ///
    /// `aud` is `audience` alone, so the token is refused anywhere else; `sub`,
    /// `scope` and the person's claims are the agent's token's; the agent is
    /// `client_id` and the actor (`act.sub`, §4.1). Its `jti` keeps the agent
    /// token's family, so revoking that grant turns this token inactive too.
    pub fn mint_on_behalf(&self, agent: &OnBehalf<'_>) -> String {
        let now = now();
        let jti = match agent.jti.and_then(family_of_jti) {
            Some(family) => family_jti(family),
            None => random_token(16),
        };
        let mut claims = self.access_claims(
            agent.subject,
            agent.client_id,
            agent.audience,
            agent.scopes,
            &jti,
            now,
            agent.expires_at,
        );
        claims["act"] = json!({ "sub": agent.client_id });
        let person: Claims = PERSON_CLAIMS
            .iter()
            .filter_map(|name| Some(((*name).to_owned(), agent.claims.get(*name)?.clone())))
            .collect();
        let auth_time = agent.claims.get("auth_time").and_then(Value::as_i64);
        self.sign_access(claims, auth_time, Some(&person))
    }

    async fn live_user(&self, id: &str) -> Result<User, OAuthError> {
        self.store.user(id).await?.ok_or_else(|| OAuthError::invalid_grant("the person no longer exists"))
    }

    /// A refresh token goes to apps that may refresh, for OAuth requests and for
    /// OpenID requests that asked for `offline_access` (OpenID Connect Core §11).
    fn refresh_allowed(&self, client: &Client, scopes: &[String]) -> bool {
        client.grant_types.iter().any(|g| g == "refresh_token")
            && (has(scopes, "offline_access") || !has(scopes, "openid"))
    }

    /// A family's first refresh token: random.
    fn new_refresh(&self, family: &str, now: i64) -> (String, RefreshToken) {
        let token = random_token(32);
        let row = self.refresh_row(&token, family, now);
        (token, row)
    }

    /// The row that keeps `token` (hashed) for `family`.
    fn refresh_row(&self, token: &str, family: &str, now: i64) -> RefreshToken {
        RefreshToken {
            token_hash: hash_secret(token),
            family_id: family.to_owned(),
            created_at: now,
            expires_at: now + self.settings.refresh_token_ttl,
            rotated_at: None,
        }
    }

    /// The refresh token that succeeds `token`: 256 bits nobody can tell from
    /// random without the key, and the same on every instance and every try.
    fn successor_of(&self, token: &str) -> String {
        use base64::Engine;
        let tag = aws_lc_rs::hmac::sign(&self.successor_key, token.as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag.as_ref())
    }

    /// An access token. `person` holds the claims about the person the
    /// scopes allow (RFC 9068 §2.2.3.1 lets a JWT access token carry them), so
    /// the MCP server it is for knows who is calling without asking anyone.
    #[allow(clippy::too_many_arguments)]
    fn access_token(
        &self,
        sub: &str,
        client_id: &str,
        resource: &str,
        scopes: &[String],
        jti: &str,
        auth_time: Option<i64>,
        person: Option<&Claims>,
        now: i64,
    ) -> String {
        let claims = self.access_claims(
            sub,
            client_id,
            resource,
            scopes,
            jti,
            now,
            now + self.settings.access_token_ttl,
        );
        self.sign_access(claims, auth_time, person)
    }

    /// The claims every access token has (RFC 9068 §2.2).
    #[allow(clippy::too_many_arguments)]
    fn access_claims(
        &self,
        sub: &str,
        client_id: &str,
        resource: &str,
        scopes: &[String],
        jti: &str,
        now: i64,
        expires_at: i64,
    ) -> Value {
        let mut claims = json!({
            "iss": self.settings.issuer,
            "sub": sub,
            "client_id": client_id,
            "scope": scopes.join(" "),
            "iat": now,
            "exp": expires_at,
            "jti": jti,
        });
        // RFC 9068 §2.2 requires `aud`; a token for no resource is for userinfo.
        claims["aud"] =
            if resource.is_empty() { self.settings.endpoint("/userinfo") } else { resource.to_owned() }
                .into();
        claims
    }

    /// `claims` with the person's and `auth_time`, signed.
    fn sign_access(&self, mut claims: Value, auth_time: Option<i64>, person: Option<&Claims>) -> String {
        if let Some(auth_time) = auth_time {
            claims["auth_time"] = auth_time.into();
        }
        for (name, value) in person.into_iter().flatten() {
            claims[name] = value.clone();
        }
        self.keys().active().sign_jwt("at+jwt", &claims)
    }

    #[allow(clippy::too_many_arguments)]
    fn respond(
        &self,
        keys: &KeyRing,
        client: &Client,
        user: &User,
        family: &TokenFamily,
        scopes: &[String],
        nonce: Option<&str>,
        refresh_token: Option<String>,
        now: i64,
    ) -> TokenResponse {
        let person = self.user_claims(user, scopes);
        let access_token = self.access_token(
            &user.id,
            &client.client_id,
            &family.resource,
            scopes,
            &family_jti(&family.id),
            Some(family.auth_time),
            Some(&person),
            now,
        );
        let id_token = has(scopes, "openid").then(|| {
            let mut claims = person;
            claims.insert("iss".into(), self.settings.issuer.clone().into());
            claims.insert("aud".into(), client.client_id.clone().into());
            claims.insert("azp".into(), client.client_id.clone().into());
            claims.insert("iat".into(), now.into());
            claims.insert("exp".into(), (now + self.settings.id_token_ttl).into());
            claims.insert("auth_time".into(), family.auth_time.into());
            if let Some(nonce) = nonce {
                claims.insert("nonce".into(), nonce.into());
            }
            keys.active_for(id_token_alg(client))
                .expect("keys_with made sure the key exists")
                .sign_jwt("JWT", &Value::Object(claims))
        });
        TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: self.settings.access_token_ttl,
            scope: scopes.join(" "),
            refresh_token,
            id_token,
        }
    }
}

/// The algorithm `client`'s ID tokens are signed with.
fn id_token_alg(client: &Client) -> Alg {
    Alg::parse(&client.id_token_signed_response_alg).unwrap_or_default()
}

/// A token request's `resource` must be the one the grant was for (RFC 8707 §2.2).
fn check_same_resource(asked: &str, granted: &str) -> Result<(), OAuthError> {
    let same =
        !granted.is_empty() && scopes::canonical_resource(asked) == scopes::canonical_resource(granted);
    if same {
        Ok(())
    } else {
        Err(OAuthError::new(ErrorCode::InvalidTarget, format!("resource {asked:?} was not granted")))
    }
}

/// The resource URL a family or code keeps (`""` for none).
pub fn resource_uri(resource: Option<&Resource>) -> String {
    resource.map(|r| r.uri.clone()).unwrap_or_default()
}
