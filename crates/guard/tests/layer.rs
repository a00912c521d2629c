//! The tower layer over real sockets: every answer checked to the byte.

mod common;

use std::net::SocketAddr;

use agentgate_guard::{AuthInfo, Guard};
use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Extension, Router};
use common::{TestIssuer, TestKey, dead_address, now};
use serde_json::{Value, json};

struct Server {
    base: String,
    resource: String,
}

/// The protected handler echoes what it saw: the subject, the session header and
/// the body. With no session header it opens session "s1".
async fn echo(
    Extension(who): Extension<AuthInfo>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let session = headers.get("mcp-session-id").map(|v| v.to_str().unwrap().to_owned());
    let reply = json!({"sub": who.subject, "session": session, "body": String::from_utf8_lossy(&body),
                       "saw_authorization": headers.contains_key("authorization")});
    let mut response = axum::Json(reply).into_response();
    if session.is_none() {
        response.headers_mut().insert("mcp-session-id", "s1".parse().unwrap());
    }
    response
}
use axum::response::IntoResponse;

async fn serve(
    configure: impl FnOnce(agentgate_guard::GuardBuilder) -> agentgate_guard::GuardBuilder,
    issuer: &str,
) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let resource = format!("http://{addr}/mcp");
    let guard = configure(Guard::builder(issuer, &resource).scopes(["mcp:tools"])).build().unwrap();
    let app = Router::new()
        .route("/mcp", post(echo).options(|| async { "preflight ok" }).layer(guard.layer()))
        .merge(guard.metadata_router());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Server { base: format!("http://{addr}"), resource }
}

async fn setup() -> (TestIssuer, TestKey, Server) {
    let issuer = TestIssuer::start().await;
    let key = TestKey::es256("k1");
    issuer.set_keys(&[&key]);
    let server = serve(|b| b.tool_scopes("send_mail", ["mail:send"]), issuer.issuer()).await;
    (issuer, key, server)
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

fn challenge(server: &Server, tail: &str) -> String {
    format!(
        r#"Bearer resource_metadata="{}/.well-known/oauth-protected-resource/mcp", scope="mcp:tools"{tail}"#,
        server.base
    )
}

async fn post_mcp(server: &Server, auth: Option<&str>, body: &str) -> reqwest::Response {
    let mut request = client()
        .post(format!("{}/mcp", server.base))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    request.send().await.unwrap()
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response.headers().get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}

#[tokio::test]
async fn no_token_gets_the_plain_challenge() {
    let (_issuer, _key, server) = setup().await;
    for auth in [None, Some("Basic dXNlcjpwYXNz")] {
        let r = post_mcp(&server, auth, "{}").await;
        assert_eq!(r.status(), 401);
        assert_eq!(header(&r, "www-authenticate"), challenge(&server, ""));
        assert_eq!(header(&r, "content-type"), "application/json");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error_description"], "A bearer access token is required.");
        assert_eq!(
            body["resource_metadata"],
            format!("{}/.well-known/oauth-protected-resource/mcp", server.base)
        );
    }
}

#[tokio::test]
async fn invalid_tokens_get_invalid_token() {
    let (issuer, key, server) = setup().await;
    let cases = [
        ("Bearer garbage-token-0123456789".to_owned(), "The access token is malformed."),
        (
            format!(
                "Bearer {}",
                key.mint(&json!({"iss": issuer.issuer(), "sub": "alice", "aud": server.resource,
            "scope": "mcp:tools", "exp": now() - 3600}))
            ),
            "The access token has expired.",
        ),
        (
            format!("Bearer {}", key.mint(&issuer.claims("http://127.0.0.1:1/other", "alice", "mcp:tools"))),
            "The access token was not issued for this resource.",
        ),
        (
            format!(
                "bearer {}",
                TestKey::es256("stranger").mint(&issuer.claims(&server.resource, "alice", "mcp:tools"))
            ),
            "The access token is signed with an unknown key.",
        ),
    ];
    for (auth, description) in cases {
        let r = post_mcp(&server, Some(&auth), "{}").await;
        assert_eq!(r.status(), 401, "{description}");
        assert_eq!(
            header(&r, "www-authenticate"),
            challenge(&server, &format!(r#", error="invalid_token", error_description="{description}""#))
        );
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "invalid_token");
        assert_eq!(body["error_description"], description);
    }
}

#[tokio::test]
async fn malformed_requests_get_400_and_oversized_headers_431() {
    let (issuer, key, server) = setup().await;
    let token = key.mint(&issuer.claims(&server.resource, "alice", "mcp:tools"));

    let r = client()
        .post(format!("{}/mcp", server.base))
        .header("authorization", format!("Bearer {token}"))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        header(&r, "www-authenticate"),
        challenge(
            &server,
            r#", error="invalid_request", error_description="The request is malformed: more than one Authorization header.""#
        )
    );

    let r = client().post(format!("{}/mcp?access_token={token}", server.base)).send().await.unwrap();
    assert_eq!(r.status(), 400, "tokens in the query string are refused, not ignored");
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");

    for bad in ["Bearer a b", "Bearer", "Bearer ====", "Bearer tok\"en"] {
        let r = post_mcp(&server, Some(bad), "{}").await;
        assert_eq!(r.status(), 400, "{bad}");
    }

    let huge = format!("Bearer {}", "a".repeat(100 * 1024));
    let r = post_mcp(&server, Some(&huge), "{}").await;
    assert_eq!(r.status(), 431);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");
}

#[tokio::test]
async fn a_valid_token_reaches_the_service_with_its_identity() {
    let (issuer, key, server) = setup().await;
    let token = key.mint(&issuer.claims(&server.resource, "alice", "mcp:tools"));
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    let r = post_mcp(&server, Some(&format!("Bearer {token}")), body).await;
    assert_eq!(r.status(), 200);
    let seen: Value = r.json().await.unwrap();
    assert_eq!(seen["sub"], "alice");
    assert_eq!(seen["body"], body, "the body is passed on unchanged");
    assert_eq!(seen["saw_authorization"], false, "the token is never passed on to the service");
}

#[tokio::test]
async fn missing_scopes_get_403_with_every_scope_needed() {
    let (issuer, key, server) = setup().await;
    let weak = key.mint(&issuer.claims(&server.resource, "alice", "profile"));
    let r = post_mcp(&server, Some(&format!("Bearer {weak}")), "{}").await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        header(&r, "www-authenticate"),
        challenge(
            &server,
            r#", error="insufficient_scope", error_description="This operation needs the scopes: mcp:tools.""#
        )
    );

    // Per-tool scopes: enough to list tools, not to call send_mail.
    let basic = key.mint(&issuer.claims(&server.resource, "alice", "mcp:tools"));
    let call = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"send_mail","arguments":{"to":"bob"}}}"#;
    let r = post_mcp(&server, Some(&format!("Bearer {basic}")), call).await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        header(&r, "www-authenticate"),
        format!(
            r#"Bearer resource_metadata="{}/.well-known/oauth-protected-resource/mcp", scope="mcp:tools mail:send", error="insufficient_scope", error_description="This operation needs the scopes: mcp:tools mail:send.""#,
            server.base
        )
    );
    assert_eq!(r.json::<Value>().await.unwrap()["scope"], "mcp:tools mail:send");

    let other_tool = r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"whoami"}}"#;
    assert_eq!(post_mcp(&server, Some(&format!("Bearer {basic}")), other_tool).await.status(), 200);

    let strong = key.mint(&issuer.claims(&server.resource, "alice", "mcp:tools mail:send"));
    let r = post_mcp(&server, Some(&format!("Bearer {strong}")), call).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap()["body"],
        call,
        "the body read for scopes is passed on unchanged"
    );
}

#[tokio::test]
async fn bodies_are_read_within_a_bound() {
    let issuer = TestIssuer::start().await;
    let key = TestKey::es256("k1");
    issuer.set_keys(&[&key]);
    let server =
        serve(|b| b.tool_scopes("send_mail", ["mail:send"]).max_body_bytes(1024), issuer.issuer()).await;
    let token = key.mint(&issuer.claims(&server.resource, "alice", "mcp:tools"));
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"x","pad":"{}"}}}}"#,
        "a".repeat(2000)
    );
    let r = post_mcp(&server, Some(&format!("Bearer {token}")), &big).await;
    assert_eq!(r.status(), 413);
}

/// Writes `request` on `stream` and reads one answer's head (the refusals
/// here have short bodies, which arrive with it).
async fn exchange(stream: &mut tokio::net::TcpStream, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = vec![0; 4096];
    let n = stream.read(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer[..n]).to_lowercase()
}

/// A request refused on its head keeps its connection when its body is small,
/// even if the body arrives after the headers (the refusal waits for it); a
/// large body closes the connection, and the refusal says so.
#[tokio::test]
async fn a_refusal_reads_a_small_body_and_closes_on_a_large_one() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (_issuer, _key, server) = setup().await;
    let address = server.base.trim_start_matches("http://");
    let head = |length: usize| {
        format!(
            "POST /mcp HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\ncontent-length: {length}\r\n\r\n"
        )
    };

    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    for _ in 0..2 {
        stream.write_all(head(2).as_bytes()).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let answer = exchange(&mut stream, "{}").await;
        assert!(answer.starts_with("http/1.1 401"), "{answer}");
        assert!(!answer.contains("connection: close"), "{answer}");
    }

    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let large = 100 * 1024;
    stream.write_all(head(large).as_bytes()).await.unwrap();
    stream.write_all(&vec![b' '; 65 * 1024]).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer).to_lowercase();
    assert!(answer.starts_with("http/1.1 401"), "{answer}");
    assert!(answer.contains("\r\nconnection: close\r\n"), "{answer}");
}

#[tokio::test]
async fn metadata_is_public_at_both_well_known_uris() {
    let (issuer, _key, server) = setup().await;
    for path in ["/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"] {
        let r = client()
            .get(format!("{}{path}", server.base))
            .header("origin", "https://app.example")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(header(&r, "access-control-allow-origin"), "*");
        let doc: Value = r.json().await.unwrap();
        assert_eq!(
            doc,
            json!({
                "resource": server.resource,
                "authorization_servers": [issuer.issuer()],
                "scopes_supported": ["mcp:tools"],
                "bearer_methods_supported": ["header"],
            })
        );
    }
    let preflight = client()
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/.well-known/oauth-protected-resource/mcp", server.base),
        )
        .header("origin", "https://app.example")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 204);
    assert_eq!(header(&preflight, "access-control-allow-methods"), "GET, OPTIONS");
}

#[tokio::test]
async fn every_method_needs_a_token_options_included() {
    let (_issuer, _key, server) = setup().await;
    let r = client()
        .request(reqwest::Method::OPTIONS, format!("{}/mcp", server.base))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"send_mail"}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "a CORS layer belongs outside the guard");
    assert_ne!(r.text().await.unwrap(), "preflight ok");
}

#[tokio::test]
async fn tool_scopes_fail_closed_on_bodies_they_cannot_read() {
    let (issuer, key, server) = setup().await;
    let auth = format!("Bearer {}", key.mint(&issuer.claims(&server.resource, "alice", "mcp:tools")));
    for body in [
        "not json",
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","name":"send_mail"}}"#,
    ] {
        let r = post_mcp(&server, Some(&auth), body).await;
        assert_eq!(r.status(), 400, "{body}");
        assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");
    }
    let r = client()
        .post(format!("{}/mcp", server.base))
        .header("authorization", &auth)
        .header("content-encoding", "gzip")
        .body(vec![0x1f, 0x8b, 0, 0])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "an encoded body cannot be checked, so it is refused");
}

#[tokio::test]
async fn an_unreachable_issuer_is_503_not_401() {
    let dead = dead_address().await;
    let server = serve(|b| b, &format!("http://{dead}")).await;
    let key = TestKey::es256("k1");
    let token = key.mint(
        &json!({"iss": format!("http://{dead}"), "sub": "alice", "aud": server.resource, "exp": now() + 60}),
    );
    let r = post_mcp(&server, Some(&format!("Bearer {token}")), "{}").await;
    assert_eq!(r.status(), 503);
    assert_eq!(header(&r, "retry-after"), "5");
    assert!(header(&r, "www-authenticate").is_empty());
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    assert!(
        !body["error_description"].as_str().unwrap().contains(&dead.to_string()),
        "no internal detail leaks"
    );
}

#[tokio::test]
async fn sessions_answer_only_to_the_subject_that_opened_them() {
    let (issuer, key, server) = setup().await;
    let alice = format!("Bearer {}", key.mint(&issuer.claims(&server.resource, "alice", "mcp:tools")));
    let bob = format!("Bearer {}", key.mint(&issuer.claims(&server.resource, "bob", "mcp:tools")));

    let opened = post_mcp(&server, Some(&alice), "{}").await;
    let sealed = header(&opened, "mcp-session-id");
    assert!(sealed.starts_with("s1.") && sealed.len() > 10, "the client sees a sealed id: {sealed}");

    let send = |auth: String, session: String| {
        let url = format!("{}/mcp", server.base);
        async move {
            client()
                .post(url)
                .header("authorization", auth)
                .header("mcp-session-id", session)
                .body("{}")
                .send()
                .await
                .unwrap()
        }
    };
    let again = send(alice.clone(), sealed.clone()).await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<Value>().await.unwrap()["session"], "s1", "the service sees its own id");

    let other_token_same_subject =
        format!("Bearer {}", key.mint(&issuer.claims(&server.resource, "alice", "mcp:tools extra")));
    assert_eq!(
        send(other_token_same_subject, sealed.clone()).await.status(),
        200,
        "a new token of the same subject"
    );

    for (auth, session, why) in [
        (bob.clone(), sealed.clone(), "another subject"),
        (alice.clone(), "s1".to_owned(), "an unsealed id"),
        (alice.clone(), format!("s2.{}", sealed.rsplit_once('.').unwrap().1), "a tag moved to another id"),
    ] {
        let r = send(auth, session).await;
        assert_eq!(r.status(), 404, "{why}");
        assert_eq!(r.json::<Value>().await.unwrap()["error"], "session_not_found");
    }
}
