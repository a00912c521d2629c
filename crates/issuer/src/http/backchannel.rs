//! The endpoints clients and resource servers call directly: token,
//! userinfo, introspection, revocation. Each parses, calls the [`Issuer`], and
//! renders; answers are never cached (`Cache-Control: no-store`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};

use super::form::Params;
use crate::Issuer;
use crate::error::{ErrorCode, OAuthError};
use crate::scopes::has;
use crate::store::{Client, Store};
use crate::tokens::{ClientCredentials, CodeExchange};

/// A JSON answer that must not be cached.
fn no_store(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    response
}

/// An RFC 6749 §5.2 error answer. `invalid_client` is 401, with a Basic
/// challenge when the client tried Basic (§5.2).
fn error_response(error: &OAuthError, tried_basic: bool) -> Response {
    let status = match error.code {
        ErrorCode::InvalidClient => StatusCode::UNAUTHORIZED,
        ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    let body = json!({ "error": error.code.as_str(), "error_description": error.description });
    let mut response = no_store(status, &body);
    if status == StatusCode::UNAUTHORIZED && tried_basic {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"agentgate\""));
    }
    response
}

/// Reads a form body, refusing any other content type.
fn form_body(headers: &HeaderMap, body: &[u8]) -> Result<Params, OAuthError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(OAuthError::invalid_request("the body must be application/x-www-form-urlencoded"));
    }
    Params::parse(body)
}

/// `Authorization: Basic` credentials, form-decoded as RFC 6749 §2.3.1 asks.
/// `Ok(None)` when the header is absent or another scheme.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else { return Ok(None) };
    let bad = || OAuthError::invalid_client("malformed Basic credentials");
    let value = value.to_str().map_err(|_| bad())?;
    let Some((scheme, encoded)) = value.split_once(' ') else { return Ok(None) };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).map_err(|_| bad())?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
    let form_decode = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned())
    };
    Ok(Some((form_decode(id).ok_or_else(bad)?, form_decode(secret).unwrap_or_default())))
}

/// How the client of this request presents itself.
fn credentials(headers: &HeaderMap, params: &Params) -> Result<ClientCredentials, OAuthError> {
    Ok(ClientCredentials {
        basic: basic_credentials(headers)?,
        client_id: params.get("client_id").map(str::to_owned),
        client_secret: params.get("client_secret").map(str::to_owned),
        client_assertion_type: params.get("client_assertion_type").map(str::to_owned),
        client_assertion: params.get("client_assertion").map(str::to_owned),
    })
}

/// Parses the form and authenticates the client.
async fn authenticated<S: Store>(
    issuer: &Issuer<S>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Params, Client), OAuthError> {
    let params = form_body(headers, body)?;
    let client = issuer.authenticate_client(&credentials(headers, &params)?).await?;
    Ok((params, client))
}

/// A back-channel answer: 200 with the JSON, or the error as RFC 6749 §5.2 says.
fn answer(result: Result<Value, OAuthError>, headers: &HeaderMap) -> Response {
    match result {
        Ok(body) => no_store(StatusCode::OK, &body),
        Err(error) => error_response(&error, tried_basic(headers)),
    }
}

fn tried_basic(headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.len() > 6 && v[..6].eq_ignore_ascii_case("basic "))
}

pub(super) async fn token<S: Store>(
    State(issuer): State<Arc<Issuer<S>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        let params = form_body(&headers, &body)?;
        let credentials = credentials(&headers, &params)?;
        // The code grant authenticates the client itself, reading the client
        // and the code together; the others authenticate it first.
        if params.get("grant_type") == Some("authorization_code") {
            let request = CodeExchange {
                code: params.get("code"),
                redirect_uri: params.get("redirect_uri"),
                code_verifier: params.get("code_verifier"),
                resource: params.get("resource"),
            };
            return issuer.exchange_code(&credentials, request).await;
        }
        let client = issuer.authenticate_client(&credentials).await?;
        match params.get("grant_type") {
            Some("refresh_token") => {
                issuer
                    .refresh(
                        &client,
                        params.get("refresh_token"),
                        params.get("scope"),
                        params.get("resource"),
                    )
                    .await
            }
            Some("client_credentials") => {
                issuer.client_credentials(&client, params.get("scope"), params.get("resource")).await
            }
            Some(other) => Err(OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                format!("grant_type {other:?} is not supported"),
            )),
            None => Err(OAuthError::invalid_request("grant_type is required")),
        }
    }
    .await;
    answer(result.map(|tokens| serde_json::to_value(tokens).expect("tokens serialize")), &headers)
}

pub(super) async fn introspect<S: Store>(
    State(issuer): State<Arc<Issuer<S>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        let (params, client) = authenticated(&issuer, &headers, &body).await?;
        // Only a resource server with a secret may ask what a token means.
        if client.secret_hash.is_none() {
            return Err(OAuthError::invalid_client(
                "introspection is for resource servers that authenticate with a client secret",
            ));
        }
        let token = params.get("token").ok_or_else(|| OAuthError::invalid_request("token is required"))?;
        issuer.introspect_for(&client, token).await
    }
    .await;
    answer(result, &headers)
}

pub(super) async fn revoke<S: Store>(
    State(issuer): State<Arc<Issuer<S>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        let (params, client) = authenticated(&issuer, &headers, &body).await?;
        let token = params.get("token").ok_or_else(|| OAuthError::invalid_request("token is required"))?;
        issuer.revoke(&client, token).await
    }
    .await;
    // RFC 7009 §2.2: 200 whether or not the token was known.
    answer(result.map(|()| json!({})), &headers)
}

/// OpenID Connect userinfo: the claims the access token's scopes allow. Any
/// access token of ours carrying `openid` is accepted, whatever its audience:
/// that is what lets the tutorial's "userinfo" mode verify tokens here.
pub(super) async fn userinfo<S: Store>(State(issuer): State<Arc<Issuer<S>>>, headers: HeaderMap) -> Response {
    let challenge = |error: &OAuthError, status: StatusCode| {
        let value =
            format!("Bearer error=\"{}\", error_description=\"{}\"", error.code.as_str(), error.description);
        let mut response = no_store(
            status,
            &json!({ "error": error.code.as_str(), "error_description": error.description }),
        );
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
        }
        response
    };
    let Some(token) = super::bearer(&headers) else {
        let mut response = no_store(StatusCode::UNAUTHORIZED, &json!({ "error": "invalid_request" }));
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    };
    let claims = match issuer.validate_access_token(token).await {
        Ok(claims) => claims,
        Err(error) if error.code == ErrorCode::ServerError => return error_response(&error, false),
        Err(error) => return challenge(&error, StatusCode::UNAUTHORIZED),
    };
    let scopes: Vec<String> =
        claims.get("scope").and_then(Value::as_str).unwrap_or("").split(' ').map(str::to_owned).collect();
    if !has(&scopes, "openid") {
        let error = OAuthError::new(ErrorCode::InsufficientScope, "the access token lacks the openid scope");
        return challenge(&error, StatusCode::FORBIDDEN);
    }
    let sub = claims.get("sub").and_then(Value::as_str).unwrap_or("");
    match issuer.store.user(sub).await {
        Ok(Some(user)) => no_store(StatusCode::OK, &Value::Object(issuer.user_claims(&user, &scopes))),
        Ok(None) => challenge(
            &OAuthError::new(ErrorCode::InvalidToken, "the person no longer exists"),
            StatusCode::UNAUTHORIZED,
        ),
        Err(error) => error_response(&OAuthError::from(error), false),
    }
}
