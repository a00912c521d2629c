//! Two `agentgate serve` processes on one PostgreSQL database, as behind a
//! load balancer: a person signs in on one and consents on the other, tokens
//! issued by one are refreshed, revoked and introspected on the other, racing
//! refreshes are settled by the database (one successor for both), failed
//! sign-ins count on both, and a
//! key rotated from the command line is published by both without a restart.

mod support;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use support::browser::Browser;
use support::pg_schema::PgSchema;
use support::setup::{PASSWORD, Setup, agentgate};

const MCP: &str = "https://mail.example/mcp";
const CALLBACK: &str = "http://127.0.0.1/callback";
// RFC 7636 Appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// The two instances' base URLs, the third-party app's id, and a resource
/// server's credentials for introspection.
struct Instances {
    a: String,
    b: String,
    app: String,
    resource_server: (String, String),
    http: reqwest::Client,
}

impl Instances {
    /// POSTs `form` to `base`'s token endpoint as the public app.
    async fn token(&self, base: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let mut form = form.to_vec();
        form.push(("client_id", &self.app));
        let response = self.http.post(format!("{base}/token")).form(&form).send().await.unwrap();
        (response.status(), response.json().await.unwrap())
    }

    async fn refresh(&self, base: &str, token: &str) -> (StatusCode, Value) {
        self.token(base, &[("grant_type", "refresh_token"), ("refresh_token", token)]).await
    }

    /// Whether `base` says `token` is active, asked by the resource server.
    async fn active(&self, base: &str, token: &str) -> bool {
        let (id, secret) = &self.resource_server;
        let response = self
            .http
            .post(format!("{base}/introspect"))
            .basic_auth(id, Some(secret))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json::<Value>().await.unwrap()["active"].as_bool().unwrap()
    }

    /// Alice signs in on `sign_in_at` and, if she is asked, allows on
    /// `consent_at`; the code, and whether she was asked.
    async fn authorize(&self, sign_in_at: &str, consent_at: &str) -> (String, bool) {
        self.authorize_for(MCP, sign_in_at, consent_at).await
    }

    /// [`Instances::authorize`], for `resource`.
    async fn authorize_for(&self, resource: &str, sign_in_at: &str, consent_at: &str) -> (String, bool) {
        let mut browser = Browser::new("en");
        let query = [
            ("response_type", "code"),
            ("client_id", &self.app),
            ("redirect_uri", CALLBACK),
            ("scope", "mcp:tools"),
            ("resource", resource),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
            ("state", "s1"),
        ];
        let url = reqwest::Url::parse_with_params(&format!("{sign_in_at}/authorize"), query).unwrap();
        let sign_in = browser.get(url.as_str()).await;
        assert_eq!(sign_in.status, StatusCode::OK, "{}", sign_in.body);
        let mut page = browser.sign_in(sign_in_at, &sign_in, "alice", PASSWORD).await;
        if let Some(next) = page.location.clone().filter(|next| !next.starts_with(CALLBACK)) {
            // Signed in at B: sent back to the authorization endpoint at the
            // issuer URL, which is A's here (a load balancer's in production).
            page = browser.get(&next).await;
        }
        let asked = page.status == StatusCode::OK;
        if asked {
            assert!(page.body.contains("SmartMail AI"), "the consent page: {}", page.body);
            page = browser.decide(consent_at, &page, "allow").await;
        }
        let params = page.redirect_params();
        assert_eq!(params.get("state").map(String::as_str), Some("s1"));
        (params["code"].clone(), asked)
    }

    /// Exchanges `code` at `base`: the access and refresh tokens.
    async fn exchange(&self, base: &str, code: &str) -> (String, String) {
        let (status, tokens) = self
            .token(
                base,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", code),
                    ("redirect_uri", CALLBACK),
                    ("code_verifier", VERIFIER),
                ],
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{tokens}");
        (tokens["access_token"].as_str().unwrap().into(), tokens["refresh_token"].as_str().unwrap().into())
    }

    async fn kids(&self, base: &str) -> Vec<String> {
        let jwks: Value = self.http.get(format!("{base}/jwks")).send().await.unwrap().json().await.unwrap();
        jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect()
    }
}

/// The third-party app and the resource server's credentials, registered.
fn apps(setup: &Setup) -> (String, (String, String)) {
    let app = setup.people_and_apps();
    let server = setup.json(&[
        "apps",
        "add",
        "Mail server",
        "--confidential",
        "--json",
        "--redirect-uri",
        "https://mail.example/callback",
        "--scopes",
        "mcp:tools",
    ]);
    let credentials = |field: &str| server[field].as_str().unwrap().to_owned();
    (app, (credentials("client_id"), credentials("client_secret")))
}

/// The configuration's resource (and more).
fn config_with(extra: &str) -> String {
    format!(
        "{extra}\n[[resource]]\nurl = \"{MCP}\"\nname = \"Mail\"\nscopes = {{ \"mcp:tools\" = \"Use the mail tools\" }}\n"
    )
}

use support::free_port;

#[tokio::test(flavor = "multi_thread")]
async fn a_sign_in_at_a_provider_begun_on_one_instance_ends_on_the_other() {
    use support::provider::{at_the_provider, begin, provider};
    let idp = support::Idp::start(&[]);
    let schema = PgSchema::new().await;
    let extra = format!(
        "database_url = \"{}\"\n[whoami]\n{}",
        schema.url(),
        provider("outside", "Outside ID", &idp.issuer, "anyone")
    );
    let setup = Setup::new("provider-instances", &extra, 0o600);
    let app = setup.add_app("Outside agent", &["--third-party"], "openid profile email mcp:tools");
    let (_a, _) = setup.serve(&[]);
    let b_port = free_port();
    let (_b, _) = setup.serve(&[("AGENTGATE_LISTEN", &format!("127.0.0.1:{b_port}"))]);
    let (a, b) = (setup.issuer(), format!("http://127.0.0.1:{b_port}"));

    // Begun on A; the provider's answer reaches B (a load balancer's choice).
    let mut browser = Browser::new("en");
    let started = begin(&mut browser, &a, &app, "outside").await.location.unwrap();
    let answer = at_the_provider(&started, "alice").await.replacen(&a, &b, 1);
    assert!(answer.starts_with(&b), "{answer}");
    let back = browser.get(&answer).await;
    assert_eq!(back.status, StatusCode::SEE_OTHER, "B finished it: {}", back.body);
    assert!(browser.cookies.contains_key("agentgate_session"));
    // The session B made is good on A: the consent page, then the code.
    let consent = browser.get(back.location.as_deref().unwrap()).await;
    assert!(consent.body.contains("Allow access?"), "{}", consent.body);
    let allowed = browser.decide(&a, &consent, "allow").await;
    assert!(allowed.redirect_params().contains_key("code"), "{:?}", allowed.location);
    // And the answer cannot be used again, on either.
    for base in [&a, &b] {
        let again = browser.get(&answer.replacen(&b, base, 1)).await;
        assert_eq!(again.status, StatusCode::BAD_REQUEST);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_says_when_the_database_stops_answering_and_healthz_does_not() {
    let schema = PgSchema::new().await;
    let setup = Setup::new("readyz", &config_with(&format!("database_url = \"{}\"\n", schema.url())), 0o600);
    let (_serve, _) = setup.serve(&[]);
    let get = |path: &str| reqwest::get(format!("{}/{path}", setup.issuer()));
    assert_eq!(get("readyz").await.unwrap().status(), 200);
    // The database loses everything agentgate keeps there.
    schema.wipe().await;
    let answer = get("readyz").await.unwrap();
    assert_eq!(answer.status(), 503);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["status"], "not ready", "{body}");
    assert!(body["detail"].as_str().unwrap().contains("see the server's log"), "{body}");
    assert_eq!(get("healthz").await.unwrap().status(), 200, "the process itself still answers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_database_behave_as_one() {
    let schema = PgSchema::new().await;
    let extra =
        config_with(&format!("database_url = \"{}\"\n\n[sign_in]\nfailures_per_account = 3\n", schema.url()));
    let setup = Setup::new("instances", &extra, 0o600);
    let (app, resource_server) = apps(&setup);
    assert!(!setup.dir.join("data").exists(), "with a database URL, nothing is kept in the data directory");

    let (_a, _) = setup.serve(&[]);
    let b_port = free_port();
    let (_b, _) = setup.serve(&[("AGENTGATE_LISTEN", &format!("127.0.0.1:{b_port}"))]);
    let instances = Instances {
        a: setup.issuer(),
        b: format!("http://127.0.0.1:{b_port}"),
        app,
        resource_server,
        http: reqwest::Client::new(),
    };
    let (a, b) = (instances.a.as_str(), instances.b.as_str());

    // Sign in on A, consent on B, token from A, refresh on B, revoke on A.
    let (code, asked) = instances.authorize(a, b).await;
    assert!(asked, "a third-party app's first authorization asks for consent");
    let (access, first_refresh) = instances.exchange(a, &code).await;
    assert!(instances.active(b, &access).await, "B knows A's access token");
    let (status, refreshed) = instances.refresh(b, &first_refresh).await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    let refresh = refreshed["refresh_token"].as_str().unwrap();
    assert!(instances.active(b, refresh).await);
    let revoked = instances
        .http
        .post(format!("{a}/revoke"))
        .form(&[("token", refresh), ("client_id", &instances.app)])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::OK);
    assert!(!instances.active(b, refresh).await, "B's introspection sees A's revocation at once");
    let (status, refused) = instances.refresh(b, refresh).await;
    assert_eq!((status, refused["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));

    // A code is used once, whichever instance it is presented to.
    let (code, asked) = instances.authorize(b, a).await;
    assert!(!asked, "the consent given on B is remembered on A");
    let (_, racing_refresh) = instances.exchange(b, &code).await;
    let (status, replayed) = instances
        .token(
            a,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", CALLBACK),
                ("code_verifier", VERIFIER),
            ],
        )
        .await;
    assert_eq!((status, replayed["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    assert!(!instances.active(b, &racing_refresh).await, "the replay revoked what the code gave");

    // Two instances racing with one refresh token (one app's two processes,
    // or a retry after a lost answer): the database settles it, both get the
    // one successor, and the family lives on with it.
    let (code, _) = instances.authorize(a, a).await;
    let (_, raced) = instances.exchange(a, &code).await;
    let racers = (0..8).map(|n| instances.refresh(if n % 2 == 0 { a } else { b }, &raced));
    let answers = futures_util::future::join_all(racers).await;
    assert!(answers.iter().all(|(status, _)| *status == StatusCode::OK), "{answers:?}");
    let successor = answers[0].1["refresh_token"].as_str().unwrap();
    assert!(
        answers.iter().all(|(_, answer)| answer["refresh_token"] == successor),
        "one successor: the family does not fork: {answers:?}"
    );
    assert!(instances.active(b, successor).await);
    let (status, next) = instances.refresh(b, successor).await;
    assert_eq!(status, StatusCode::OK, "{next}");
    // Once the successor is used, the first token is reuse on either instance.
    let (status, _) = instances.refresh(a, &raced).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(!instances.active(b, next["refresh_token"].as_str().unwrap()).await, "reuse revoked the family");

    // Failed sign-ins count on both: two on A and one on B reach the limit of 3.
    for (base, attempts) in [(a, 2), (b, 1)] {
        for _ in 0..attempts {
            assert_eq!(wrong_password(base).await, StatusCode::UNAUTHORIZED);
        }
    }
    assert_eq!(wrong_password(a).await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(wrong_password(b).await, StatusCode::TOO_MANY_REQUESTS);

    // A key rotated from the command line appears in both JWKS, no restart.
    let before = instances.kids(a).await;
    let rotated = setup.run(&["keys", "rotate"], &[], "");
    assert!(rotated.status.success(), "{}", String::from_utf8_lossy(&rotated.stderr));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (on_a, on_b) = (instances.kids(a).await, instances.kids(b).await);
        let new_on = |kids: &Vec<String>| kids.iter().any(|kid| !before.contains(kid));
        if new_on(&on_a) && new_on(&on_b) {
            break;
        }
        assert!(Instant::now() < deadline, "the new key is not published by both: A {on_a:?}, B {on_b:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Each instance serves `whoami` at `/mcp` (the issuer URL's, A's): a refresh
/// token revoked on A stops its access token at A's MCP server on the next call,
/// and at B's within seconds, with no database read per call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_on_one_instance_stops_the_token_at_the_other_s_mcp_within_seconds() {
    use support::flow::mcp_answer;
    let schema = PgSchema::new().await;
    let setup = Setup::new(
        "revocations",
        &config_with(&format!("database_url = \"{}\"\n[whoami]\n", schema.url())),
        0o600,
    );
    let (app, resource_server) = apps(&setup);
    let (_a, _) = setup.serve(&[]);
    let b_port = free_port();
    let (_b, _) = setup.serve(&[("AGENTGATE_LISTEN", &format!("127.0.0.1:{b_port}"))]);
    let instances = Instances {
        a: setup.issuer(),
        b: format!("http://127.0.0.1:{b_port}"),
        app,
        resource_server,
        http: reqwest::Client::new(),
    };
    let (a, b) = (instances.a.as_str(), instances.b.as_str());
    let whoami = format!("{a}/mcp");
    let (code, _) = instances.authorize_for(&whoami, a, a).await;
    let (access, refresh) = instances.exchange(a, &code).await;
    let (at_a, at_b) = (format!("{a}/mcp"), format!("{b}/mcp"));
    assert_eq!(mcp_answer(&at_a, &access).await.0, 200);
    assert_eq!(mcp_answer(&at_b, &access).await.0, 200, "B's whoami takes A's token");

    let revoked = instances
        .http
        .post(format!("{a}/revoke"))
        .form(&[("token", refresh.as_str()), ("client_id", instances.app.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::OK);
    let refused = (401, "The access token was revoked; get a new one (sign in again).".to_owned());
    assert_eq!(mcp_answer(&at_a, &access).await, refused, "at once where it was revoked");
    let start = Instant::now();
    while mcp_answer(&at_b, &access).await != refused {
        assert!(start.elapsed() < Duration::from_secs(5), "B still takes the revoked token");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("the revocation reached B's /mcp after {:?}", start.elapsed());
}

/// One sign-in as alice with a wrong password; its status.
async fn wrong_password(base: &str) -> StatusCode {
    let mut browser = Browser::new("en");
    let page = browser.get(&format!("{base}/sign-in")).await;
    let form = [
        ("csrf", page.input("csrf")),
        ("request", String::new()),
        ("login", "alice".into()),
        ("password", "nope".into()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    browser.post(&format!("{base}/sign-in"), &form).await.status
}

/// `agentgate db copy` moves a single SQLite instance to PostgreSQL: the
/// refresh token issued before the copy works against the copy, the consent
/// given before it is remembered, and a copy never lands on a database that
/// holds anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_issuer_copied_to_postgres_keeps_its_tokens_and_grants() {
    let setup = Setup::new("copy", &config_with(""), 0o600);
    let (app, resource_server) = apps(&setup);
    let (sqlite_server, _) = setup.serve(&[]);
    let before = Instances {
        a: setup.issuer(),
        b: setup.issuer(),
        app,
        resource_server,
        http: reqwest::Client::new(),
    };
    let (code, asked) = before.authorize(&before.a, &before.a).await;
    assert!(asked);
    let (access, refresh) = before.exchange(&before.a, &code).await;
    drop(sqlite_server);

    let schema = PgSchema::new().await;
    let source = format!("sqlite://{}", setup.dir.join("data/agentgate.db").display());
    let copy =
        |from: &str, to: &str| agentgate(&["db", "copy", "--from", from, "--to", to], &[]).output().unwrap();
    let copied = copy(&source, &schema.url());
    assert!(copied.status.success(), "{}", String::from_utf8_lossy(&copied.stderr));
    let report = String::from_utf8_lossy(&copied.stdout);
    assert!(report.contains("refresh_tokens") && report.contains("signing_keys"), "{report}");
    // Attacks on the copy: nothing is written, and the reason is given.
    let again = copy(&source, &schema.url());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"), "{again:?}");
    let missing = format!("sqlite://{}", setup.dir.join("nowhere.db").display());
    let from_nothing = copy(&missing, &schema.url());
    assert!(String::from_utf8_lossy(&from_nothing.stderr).contains("no database at"), "{from_nothing:?}");
    assert!(!setup.dir.join("nowhere.db").exists(), "a missing source is not created");
    let onto_itself = copy(&source, &source);
    assert!(String::from_utf8_lossy(&onto_itself.stderr).contains("same database"));

    // The same issuer URL and address, now on PostgreSQL.
    let (_postgres_server, _) = setup.serve(&[("AGENTGATE_DATABASE_URL", &schema.url())]);
    let after = before;
    assert!(after.active(&after.a, &access).await, "the copy's keys verify a token issued before it");
    let (status, refreshed) = after.refresh(&after.a, &refresh).await;
    assert_eq!(status, StatusCode::OK, "a refresh token issued before the copy: {refreshed}");
    let (code, asked) = after.authorize(&after.a, &after.a).await;
    assert!(!asked, "the consent given before the copy is remembered");
    let (access, _) = after.exchange(&after.a, &code).await;
    assert!(after.active(&after.a, &access).await);
}

/// A database that cannot be used stops every command with the reason, and
/// the URL's password is never shown, whichever command failed.
#[test]
fn a_bad_database_url_is_refused_without_showing_its_password() {
    let unreachable = "postgres://agentgate:hunter2@127.0.0.1:1/agentgate";
    let setup = Setup::new("bad-url", "", 0o600);
    for (args, url, says) in [
        (vec!["users", "list"], unreachable, "opening postgres://agentgate:"),
        (vec!["users", "list"], "mysql://agentgate:hunter2@db/agentgate", "unsupported database URL"),
        (vec!["serve"], unreachable, "opening postgres://agentgate:"),
    ] {
        let out = setup.run(&args, &[("AGENTGATE_DATABASE_URL", url)], "");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(says), "{args:?} {url}: {stderr}");
        assert!(!stderr.contains("hunter2"), "{args:?} printed the password: {stderr}");
    }
    let never = format!("sqlite://{}", setup.dir.join("never.db").display());
    let out = agentgate(&["db", "copy", "--from", unreachable, "--to", &never], &[]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && !stderr.contains("hunter2"), "{stderr}");
    assert!(!setup.dir.join("never.db").exists(), "the destination is not made when the source fails");
    assert!(!setup.dir.join("data").exists(), "nothing was made for a database that cannot be used");
}
