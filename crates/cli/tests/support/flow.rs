//! An authorization by hand against `agentgate dev`: the request's URL, the
//! code's exchange, a JWT's claims, and what the guarded `/mcp` answers a token.

use base64::Engine;
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};

use super::Dev;

pub const REDIRECT: &str = "http://127.0.0.1:7777/callback";
// RFC 7636 Appendix B.
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// An authorization request URL; `extra` adds parameters or replaces defaults.
pub fn authorize_url(dev: &Dev, client_id: &str, extra: &[(&str, &str)]) -> String {
    authorize_url_on(&dev.base, client_id, extra)
}

/// The same at the issuer `base` (its `/mcp` the default resource).
pub fn authorize_url_on(base: &str, client_id: &str, extra: &[(&str, &str)]) -> String {
    let resource = format!("{base}/mcp");
    let defaults = [
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT),
        ("scope", "openid profile mcp:tools"),
        ("state", "xyz"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
        ("resource", resource.as_str()),
    ];
    let mut url = url::Url::parse(&format!("{base}/authorize")).unwrap();
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in defaults {
            let v = extra.iter().find(|(ek, _)| *ek == k).map_or(v, |(_, ev)| ev);
            q.append_pair(k, v);
        }
        for (k, v) in extra.iter().filter(|(k, _)| !defaults.iter().any(|(d, _)| d == k)) {
            q.append_pair(k, v);
        }
    }
    url.into()
}

/// A form POSTed to the token endpoint: its JSON answer.
pub async fn token_request(dev: &Dev, form: &[(&str, &str)]) -> Value {
    let response =
        reqwest::Client::new().post(format!("{}/token", dev.base)).form(form).send().await.unwrap();
    assert_eq!(response.headers()["cache-control"], "no-store");
    response.json().await.unwrap()
}

/// Exchanges `code` as the public app `client_id`.
pub async fn exchange(dev: &Dev, client_id: &str, code: &str) -> Value {
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", client_id),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ];
    token_request(dev, &form).await
}

pub fn jwt_claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap())
        .unwrap()
}

/// What the MCP server at `url` answers an `initialize` with `token`: the
/// status, and the `error_description` of a refusal.
pub async fn mcp_answer(url: &str, token: &str) -> (u16, String) {
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"}}});
    let response = reqwest::Client::new()
        .post(url)
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(&initialize)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: Value = if status == 200 { Value::Null } else { response.json().await.unwrap_or_default() };
    (status, body["error_description"].as_str().unwrap_or_default().to_owned())
}

/// rmcp's client: connects to `url` with `token` and calls whoami; the claims
/// it returns, or why the call failed.
pub async fn whoami(url: &str, token: &str) -> Result<Value, String> {
    let config = StreamableHttpClientTransportConfig::with_uri(url.to_owned()).auth_header(token.to_owned());
    let client =
        ().serve(StreamableHttpClientTransport::from_config(config)).await.map_err(|e| e.to_string())?;
    let result = client.call_tool(CallToolRequestParams::new("whoami")).await.map_err(|e| e.to_string())?;
    client.cancel().await.ok();
    Ok(result.structured_content.unwrap_or_default())
}
