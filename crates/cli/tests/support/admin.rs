//! An admin machine app of `agentgate dev` and its token for the management API.

use serde_json::Value;

use super::Dev;

/// `agentgate apps add NAME --m2m ARGS --json`: the machine app's id and secret.
pub fn machine_app(dev: &Dev, name: &str, args: &[&str]) -> (String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_agentgate"))
        .args(["apps", "add", name, "--m2m"])
        .args(args)
        .args(["--json", "--data-dir"])
        .arg(&dev.data_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let app: Value = serde_json::from_slice(&out.stdout).unwrap();
    (app["client_id"].as_str().unwrap().into(), app["client_secret"].as_str().unwrap().into())
}

/// A client-credentials token for the management API.
pub async fn api_token(
    http: &reqwest::Client,
    dev: &Dev,
    (id, secret): &(String, String),
    scope: &str,
) -> String {
    let api = format!("{}/api/v1", dev.base);
    let form = [("grant_type", "client_credentials"), ("scope", scope), ("resource", api.as_str())];
    let response =
        http.post(format!("{}/token", dev.base)).basic_auth(id, Some(secret)).form(&form).send().await;
    let tokens: Value = response.unwrap().json().await.unwrap();
    tokens["access_token"].as_str().unwrap_or_else(|| panic!("{tokens}")).to_owned()
}
