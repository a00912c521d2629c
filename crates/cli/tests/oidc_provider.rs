//! `agentgate whoami` against an issuer nobody here wrote (node oidc-provider),
//! called by clients nobody here wrote (the TypeScript SDK) and by rmcp's client,
//! in each verification mode. Tokens come from the issuer's real login and consent
//! forms, or from client credentials.

mod support;

use serde_json::Value;
use support::flow::whoami;
use support::{Idp, Whoami, structured, ts_client};

/// No token: 401 with the exact challenge, and the metadata it names is right.
async fn challenge_and_metadata(server: &Whoami, issuer: &str, scope: &str) {
    let http = reqwest::Client::new();
    let r =
        http.post(&server.url).header("content-type", "application/json").body("{}").send().await.unwrap();
    assert_eq!(r.status(), 401);
    let metadata_url = format!("{}/.well-known/oauth-protected-resource/mcp", server.base());
    let scope_part = if scope.is_empty() { String::new() } else { format!(r#", scope="{scope}""#) };
    assert_eq!(
        r.headers()["www-authenticate"].to_str().unwrap(),
        format!(r#"Bearer resource_metadata="{metadata_url}"{scope_part}"#)
    );
    let doc: Value = http.get(&metadata_url).send().await.unwrap().json().await.unwrap();
    assert_eq!(doc["resource"], server.url);
    assert_eq!(doc["authorization_servers"], serde_json::json!([issuer]));
    assert_eq!(doc["bearer_methods_supported"], serde_json::json!(["header"]));

    let ts = ts_client(&server.url, None, &[]);
    assert_eq!((ts["ok"].as_bool(), ts["status"].as_u64()), (Some(false), Some(401)), "{ts}");
}

/// A client_credentials token is accepted, with the client as its subject.
fn machine_token_is_accepted(idp: &Idp, server: &Whoami) {
    let machine =
        idp.access_token(&["--kind", "client", "--resource", &server.url, "--scope", "whoami tools:admin"]);
    let answer = structured(&ts_client(&server.url, Some(&machine), &[])).clone();
    assert_eq!(answer["person"]["sub"], "agentgate-test-m2m", "{answer}");
    assert_eq!(answer["person"].as_object().unwrap().len(), 1, "a machine has no profile: {answer}");
}

/// Bob's token for this server, to try on alice's session.
fn bobs_token(idp: &Idp, resource: &str) -> String {
    idp.access_token(&[
        "--kind",
        "user",
        "--user",
        "bob",
        "--resource",
        resource,
        "--scope",
        "openid whoami tools:admin",
    ])
}

/// Alice's token, issued by the same issuer for another MCP server.
fn token_for_another_resource(idp: &Idp) -> String {
    let args =
        ["--kind", "user", "--resource", "http://127.0.0.1:9/mcp", "--scope", "openid whoami tools:admin"];
    idp.access_token(&args)
}

/// whoami's answer names alice, with the profile oidc-provider shares.
fn assert_alice(answer: &Value) {
    let person = &answer["person"];
    assert_eq!(person["sub"], "alice", "{answer}");
    assert_eq!(person["username"], "alice", "{answer}");
    assert_eq!(person["name"], "Alice Liddell", "{answer}");
    assert_eq!(person["email"], "alice@example.com", "{answer}");
    assert_eq!(answer["note"], Value::Null, "{answer}");
}

#[tokio::test]
async fn jwt_mode() {
    let idp = Idp::start(&[]);
    let server = Whoami::start(&idp.issuer, &["--scopes", "whoami", "--tool-scope", "whoami=tools:admin"]);
    challenge_and_metadata(&server, &idp.issuer, "whoami").await;

    let user =
        |scope: &str| idp.access_token(&["--kind", "user", "--resource", &server.url, "--scope", scope]);
    let alice = user("openid profile email whoami tools:admin");
    assert_alice(structured(&ts_client(&server.url, Some(&alice), &[])));
    assert_alice(&whoami(&server.url, &alice).await.unwrap());

    // Scope missing for the tool: listing works, calling whoami is 403 with every scope needed.
    let narrow = user("openid whoami");
    let r = ts_client(&server.url, Some(&narrow), &[]);
    assert_eq!(r["status"], 403, "{r}");
    let challenge = r["wwwAuthenticate"].as_str().unwrap();
    assert!(
        challenge.contains(r#"scope="whoami tools:admin""#)
            && challenge.contains(r#"error="insufficient_scope""#),
        "{challenge}"
    );
    let err = whoami(&server.url, &narrow).await.unwrap_err();
    assert!(err.contains("Insufficient scope"), "{err}");

    // A machine token (client credentials) is accepted, with its own subject.
    machine_token_is_accepted(&idp, &server);

    // A token for another resource, an opaque token, garbage: 401 invalid_token.
    let elsewhere = token_for_another_resource(&idp);
    let opaque = idp.access_token(&["--kind", "user", "--scope", "openid profile email"]);
    for (name, token) in [
        ("other resource", elsewhere.as_str()),
        ("opaque", opaque.as_str()),
        ("garbage", "garbage-token-0123456789"),
    ] {
        let r = ts_client(&server.url, Some(token), &[]);
        assert_eq!(r["status"], 401, "{name}: {r}");
        assert!(r["wwwAuthenticate"].as_str().unwrap().contains(r#"error="invalid_token""#), "{name}: {r}");
        assert!(whoami(&server.url, token).await.unwrap_err().contains("Auth required"), "{name}");
    }

    // Bob's valid token on alice's session is refused.
    let bob = bobs_token(&idp, &server.url);
    let r = ts_client(&server.url, Some(&alice), &["--session-token", &bob]);
    assert_alice(structured(&r));
    assert_eq!(r["second"]["status"], 404, "{r}");
    assert!(!r["second"]["body"].as_str().unwrap_or_default().contains("Bob"), "{r}");

    // Told to ask userinfo, as for Logto: oidc-provider's userinfo refuses a
    // resource's token, and whoami says so beside what the token itself says.
    let asking = Whoami::start(&idp.issuer, &["--scopes", "whoami", "--person-claims", "userinfo"]);
    let token = idp.access_token(&[
        "--kind",
        "user",
        "--resource",
        &asking.url,
        "--scope",
        "openid profile email whoami",
    ]);
    let answer = structured(&ts_client(&asking.url, Some(&token), &[])).clone();
    assert_eq!(answer["person"]["name"], "Alice Liddell", "{answer}");
    assert!(answer["note"].as_str().unwrap_or_default().contains("refused this token"), "{answer}");
}

#[tokio::test]
async fn userinfo_mode() {
    let idp = Idp::start(&[]);
    let server = Whoami::start(&idp.issuer, &["--verify", "userinfo"]);
    challenge_and_metadata(&server, &idp.issuer, "openid profile email").await;

    // The tutorial's token: opaque, for the userinfo endpoint.
    let alice = idp.access_token(&["--kind", "user", "--scope", "openid profile email"]);
    let r = ts_client(&server.url, Some(&alice), &[]);
    assert_alice(structured(&r));
    assert_alice(&whoami(&server.url, &alice).await.unwrap());

    // A JWT for a resource is not accepted by the issuer's userinfo endpoint.
    let resource_jwt =
        idp.access_token(&["--kind", "user", "--resource", &server.url, "--scope", "openid whoami"]);
    assert_eq!(ts_client(&server.url, Some(&resource_jwt), &[])["status"], 401);
    assert_eq!(ts_client(&server.url, Some("garbage-token-0123456789"), &[])["status"], 401);

    let bob = idp.access_token(&["--kind", "user", "--user", "bob", "--scope", "openid profile email"]);
    assert_eq!(ts_client(&server.url, Some(&alice), &["--session-token", &bob])["second"]["status"], 404);
}

#[tokio::test]
async fn userinfo_mode_refuses_scopes_it_cannot_enforce() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_agentgate"))
        .args([
            "whoami",
            "--issuer",
            "http://127.0.0.1:9",
            "--listen",
            "127.0.0.1:0",
            "--verify",
            "userinfo",
            "--tool-scope",
            "whoami=admin",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("userinfo verification cannot see a token's scopes"), "{stderr}");
}

#[tokio::test]
async fn introspection_mode() {
    // oidc-provider introspects only opaque tokens: ask it for opaque resource tokens.
    let idp = Idp::start(&[("IDP_ACCESS_TOKEN_FORMAT", "opaque")]);
    let server = Whoami::start_with_env(
        &idp.issuer,
        &[
            "--verify",
            "introspection",
            "--introspection-client-id",
            "agentgate-test-introspector",
            "--scopes",
            "whoami",
            "--tool-scope",
            "whoami=tools:admin",
        ],
        // Secrets come from the environment, as in a real deployment.
        &[("AGENTGATE_INTROSPECTION_CLIENT_SECRET", "agentgate-test-introspector-secret")],
    );
    challenge_and_metadata(&server, &idp.issuer, "whoami").await;

    let alice = idp.access_token(&[
        "--kind",
        "user",
        "--resource",
        &server.url,
        "--scope",
        "openid profile email whoami tools:admin",
    ]);
    assert!(!alice.contains('.'), "the issuer gave an opaque token");
    let r = ts_client(&server.url, Some(&alice), &[]);
    let answer = structured(&r);
    assert_alice(answer);
    assert_eq!(answer["token"]["audience"], serde_json::json!([server.url]), "{answer}");
    assert_eq!(answer["token"]["client_id"], "agentgate-test-spa", "{answer}");
    assert_alice(&whoami(&server.url, &alice).await.unwrap());

    let narrow = idp.access_token(&["--kind", "user", "--resource", &server.url, "--scope", "openid whoami"]);
    assert_eq!(ts_client(&server.url, Some(&narrow), &[])["status"], 403);

    machine_token_is_accepted(&idp, &server);

    let elsewhere = token_for_another_resource(&idp);
    let r = ts_client(&server.url, Some(&elsewhere), &[]);
    assert_eq!(r["status"], 401, "a token for another resource: {r}");

    let bob = bobs_token(&idp, &server.url);
    assert_eq!(ts_client(&server.url, Some(&alice), &["--session-token", &bob])["second"]["status"], 404);
}
