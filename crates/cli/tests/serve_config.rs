//! `agentgate serve --config agentgate.toml` as an operator runs it: the data
//! commands with the same `--config`, the issuer and `whoami` from the file,
//! the environment overriding it, and every bad setup refused before anything
//! starts.

mod support;

use reqwest::StatusCode;
use serde_json::Value;
use support::browser::Browser;
use support::setup::{PASSWORD, Setup, agentgate, stderr_of};
use support::{structured, ts_agent};

#[test]
fn serve_runs_the_issuer_and_whoami_from_the_file() {
    let setup = Setup::new(
        "flow",
        "[lifetimes]\naccess_token = 120\n[[resource]]\nurl = \"https://mail.example.com/mcp\"\nname = \"Mail\"\n\
         scopes = { \"mail:read\" = \"Read your mail\" }\n[whoami]\n",
        0o600,
    );
    let app = setup.people_and_apps();
    let (_server, line) = setup.serve(&[]);
    assert!(line.starts_with(&setup.issuer()), "{line}");

    let mcp = format!("{}/mcp", setup.issuer());
    let result = ts_agent(&mcp, Some(&app), PASSWORD, &[]);
    let claims = structured(&result);
    assert_eq!(claims["token"]["audience"], serde_json::json!([mcp]), "{result}");
    assert_eq!(claims["token"]["client_id"], app.as_str());
    assert_eq!(claims["person"]["username"], "alice", "{result}");
    let left = claims["token"]["expires_at"].as_i64().unwrap() - agentgate_issuer::now();
    assert!((100..=120).contains(&left), "the file's lifetime (120 s), {left} s left");
    assert_eq!(result["consent"], "allow");

    // Dynamic registration asks for an initial access token unless the file says
    // otherwise: a first-party machine app made with --m2m --admin gets one.
    let base = setup.issuer();
    let machine = setup.json(&["apps", "add", "Marketplace", "--m2m", "--admin", "--json"]);
    let (id, secret) = (machine["client_id"].as_str().unwrap(), machine["client_secret"].as_str().unwrap());
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let http = reqwest::Client::new();
        let metadata = support::server_metadata(&base).await;
        let endpoint = metadata["registration_endpoint"].as_str().expect("advertised").to_owned();
        let body = serde_json::json!({
            "redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none", "client_name": "Agent"
        });
        let response = http.post(&endpoint).json(&body).send().await.unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()["www-authenticate"], "Bearer");

        let api = format!("{base}/api/v1");
        let form = [("grant_type", "client_credentials"), ("scope", "agentgate:admin"), ("resource", api.as_str())];
        let tokens: Value =
            http.post(format!("{base}/token")).basic_auth(id, Some(secret)).form(&form).send().await.unwrap().json().await.unwrap();
        let token = tokens["access_token"].as_str().unwrap_or_else(|| panic!("{tokens}"));
        let response = http.post(&endpoint).bearer_auth(token).json(&body).send().await.unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::CREATED);
    });

    // The data went where the file said; no development key file was made.
    let data = setup.dir.join("data");
    assert!(data.join("agentgate.db").exists());
    assert!(!data.join("key-encryption.key").exists(), "serve never makes a development key");
    let keys = setup.json(&["keys", "list", "--json"]);
    assert_eq!(keys.as_array().unwrap().len(), 1, "{keys}");
    let people = setup.json(&["users", "list", "--json"]);
    assert_eq!(people[0]["username"], "alice");
}

#[test]
fn the_environment_overrides_the_file_and_bad_setups_are_refused() {
    let setup = Setup::new("refusals", "", 0o600);
    // AGENTGATE_ISSUER wins over the file (still checked like the file's value).
    let localhost = format!("http://localhost:{}", setup.port);
    let (server, line) = setup.serve(&[("AGENTGATE_ISSUER", &localhost)]);
    assert!(line.starts_with(&localhost), "{line}");
    drop(server);

    for (env, reason) in [
        (("AGENTGATE_ISSUER", "http://auth.example.com"), "must be https"),
        (("AGENTGATE_LISTEN", "not-an-address"), "invalid socket address"),
        (("AGENTGATE_KEY_ENCRYPTION_KEY", "c2hvcnQ="), "32 random bytes"),
    ] {
        let error = stderr_of(&setup.run(&["serve"], &[env], ""));
        assert!(error.contains(reason), "{env:?}: {error}");
    }

    let open_key = Setup::new("open-key", "", 0o644);
    assert!(stderr_of(&open_key.run(&["serve"], &[], "")).contains("chmod 600"));
    assert!(!open_key.dir.join("data/agentgate.db").exists(), "nothing is made for a refused setup");

    let no_key = Setup::new("no-key", "", 0o600);
    std::fs::write(no_key.config(), format!("issuer = \"{}\"\ndata_dir = \"data\"\n", no_key.issuer()))
        .unwrap();
    assert!(stderr_of(&no_key.run(&["serve"], &[], "")).contains("no key-encryption key"));
    assert!(stderr_of(&no_key.run(&["keys", "rotate"], &[], "")).contains("no key-encryption key"));

    std::fs::write(no_key.config(), "issuer = \"https://a.example\"\nlisten_on = \"x\"\n").unwrap();
    assert!(stderr_of(&no_key.run(&["serve"], &[], "")).contains("unknown field `listen_on`"));
    let missing = no_key.dir.join("nowhere.toml");
    let out = agentgate(&["serve", "--config"], &[]).arg(&missing).output().unwrap();
    assert!(stderr_of(&out).contains("reading the configuration file"));
    let out = agentgate(&["dev", "--config"], &[]).arg(no_key.config()).output().unwrap();
    assert!(stderr_of(&out).contains("agentgate serve --config"));
}

/// Failed sign-ins for unknown accounts (so only the per-address limit counts),
/// each claiming to come from `forwarded_for`; the status of the last one.
async fn failed_sign_ins(base: &str, forwarded_for: &str, attempts: usize) -> StatusCode {
    let mut browser = Browser::new("en");
    let mut page = browser.get(&format!("{base}/sign-in")).await;
    for n in 0..attempts {
        let login = format!("nobody{n}-{forwarded_for}");
        // Each answer is the sign-in page again, with the form token of its next try.
        let csrf = page.input("csrf");
        let request = browser
            .http
            .post(format!("{base}/sign-in"))
            .header("x-forwarded-for", forwarded_for)
            .form(&[("csrf", csrf.as_str()), ("request", ""), ("login", &login), ("password", "x")]);
        page = browser.send(request).await;
    }
    page.status
}

#[tokio::test]
async fn x_forwarded_for_counts_only_from_a_trusted_proxy() {
    let limits = "[sign_in]\nfailures_per_address = 3\nfailures_per_account = 100\n";
    // Behind a trusted proxy (here: loopback), each client has its own limit.
    let proxied = Setup::new("proxied", &format!("trusted_proxies = [\"127.0.0.1\"]\n{limits}"), 0o600);
    let (_server, _) = proxied.serve(&[]);
    let base = proxied.issuer();
    assert_eq!(failed_sign_ins(&base, "203.0.113.1", 3).await, StatusCode::UNAUTHORIZED);
    assert_eq!(failed_sign_ins(&base, "203.0.113.1", 1).await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(failed_sign_ins(&base, "203.0.113.2", 1).await, StatusCode::UNAUTHORIZED, "another client");

    // Without one, the header is the client's own word: changing it escapes nothing.
    let direct = Setup::new("direct", limits, 0o600);
    let (_server, _) = direct.serve(&[]);
    let base = direct.issuer();
    assert_eq!(failed_sign_ins(&base, "203.0.113.1", 3).await, StatusCode::UNAUTHORIZED);
    assert_eq!(failed_sign_ins(&base, "203.0.113.2", 1).await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(failed_sign_ins(&base, "198.51.100.7, 203.0.113.9", 1).await, StatusCode::TOO_MANY_REQUESTS);
}

#[test]
fn registration_turned_off_answers_404_before_reading_anything() {
    let setup = Setup::new("off", "[registration]\npolicy = \"off\"\n", 0o600);
    let (_server, _) = setup.serve(&[]);
    let base = setup.issuer();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let http = reqwest::Client::new();
        let metadata = support::server_metadata(&base).await;
        assert!(metadata.get("registration_endpoint").is_none(), "{metadata}");
        assert!(metadata.get("client_id_metadata_document_supported").is_none(), "off unless configured");
        let methods = metadata["token_endpoint_auth_methods_supported"].as_array().unwrap();
        assert!(!methods.iter().any(|m| m == "private_key_jwt"), "only document apps use it: {methods:?}");
        let body = serde_json::json!({ "redirect_uris": ["http://127.0.0.1/cb"] });
        let response = http.post(format!("{base}/register")).json(&body).send().await.unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::NOT_FOUND);
        let response = http.post(format!("{base}/register")).body("not json").send().await.unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::NOT_FOUND, "off comes before any parsing");
    });
}

/// What `agentgate serve` says of SQLite's durability before it listens,
/// with `env`; the server is stopped after.
fn durability_said(setup: &Setup, env: &[(&str, &str)]) -> String {
    use std::io::BufRead;
    let mut command = agentgate(&["serve"], env);
    command.arg("--config").arg(setup.config()).stdout(std::process::Stdio::piped());
    let mut child = command.spawn().unwrap();
    let mut said = String::new();
    for line in std::io::BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("agentgate serve: SQLite durability ") {
            said = rest.to_owned();
        }
        if line.starts_with("agentgate serve: issuer ") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    said
}

#[test]
fn the_durability_setting_reaches_sqlite_as_read_back_from_it() {
    let default = Setup::new("durability-default", "", 0o600);
    assert!(durability_said(&default, &[]).starts_with("crash (synchronous=NORMAL"));
    let power = Setup::new("durability-power", "durability = \"power\"\n", 0o600);
    assert!(durability_said(&power, &[]).starts_with("power (synchronous=FULL"));
    // The environment wins over the file, as for every setting.
    assert!(durability_said(&power, &[("AGENTGATE_DURABILITY", "crash")]).starts_with("crash ("));

    let typo = Setup::new("durability-typo", "durability = \"disk\"\n", 0o600);
    let error = stderr_of(&typo.run(&["serve"], &[], ""));
    assert!(error.contains("unknown variant `disk`") && error.contains("crash"), "{error}");
}
