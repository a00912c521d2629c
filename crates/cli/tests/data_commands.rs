//! `agentgate keys|users|apps` as a user runs them: a real process on a real data
//! directory.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn agentgate(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    run(dir, &[&["keys"], args].concat(), env, None)
}

/// Runs `agentgate ARGS --data-dir DIR`, with `stdin` as standard input.
fn run(dir: &Path, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut command = Command::new(env!("CARGO_BIN_EXE_agentgate"));
    command.args(args).arg("--data-dir").arg(dir).env_remove("AGENTGATE_KEY_ENCRYPTION_KEY");
    for (k, v) in env {
        command.env(k, v);
    }
    command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn json_of(out: &Output) -> Value {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn keys_json(dir: &Path, env: &[(&str, &str)]) -> Vec<Value> {
    let out = agentgate(dir, &["list", "--json"], env);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("agentgate-keys-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn rotate_list_and_a_lost_key_encryption_key() {
    let dir = temp_dir("dev");
    assert!(keys_json(&dir, &[]).is_empty(), "listing makes no key");
    assert!(agentgate(&dir, &["rotate"], &[]).status.success());
    assert!(agentgate(&dir, &["rotate", "--keep-published", "600"], &[]).status.success());
    let keys = keys_json(&dir, &[]);
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0]["status"], "active");
    assert_eq!(keys[1]["status"], "published");

    // An RS256 key on request; then a plain rotate renews every algorithm in use.
    assert!(agentgate(&dir, &["rotate", "--alg", "RS256"], &[]).status.success());
    assert!(agentgate(&dir, &["rotate"], &[]).status.success());
    let keys = keys_json(&dir, &[]);
    let active: Vec<_> = keys.iter().filter(|k| k["status"] == "active").map(|k| k["alg"].clone()).collect();
    assert_eq!(active.len(), 2, "{keys:?}");
    assert!(active.contains(&"ES256".into()) && active.contains(&"RS256".into()));
    assert_eq!(keys.len(), 5, "every retired key stays listed");
    let out = agentgate(&dir, &["rotate", "--alg", "HS256"], &[]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected ES256 or RS256"));
    assert_eq!(keys_json(&dir, &[]).len(), 5, "a refused algorithm changes nothing");

    // Losing the development key-encryption key is an error, and changes nothing.
    std::fs::remove_file(dir.join("key-encryption.key")).unwrap();
    let out = agentgate(&dir, &["rotate"], &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("AGENTGATE_KEY_ENCRYPTION_KEY"));
    assert_eq!(keys_json(&dir, &[]).len(), 5);
    assert!(!dir.join("key-encryption.key").exists(), "no silent new key");

    let out = agentgate(&dir, &["rotate", "--keep-published", "-1"], &[]);
    assert!(!out.status.success(), "a negative duration is refused");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_configured_key_encryption_key_leaves_no_file_behind() {
    let dir = temp_dir("env");
    let env = [("AGENTGATE_KEY_ENCRYPTION_KEY", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")];
    assert!(agentgate(&dir, &["rotate"], &env).status.success());
    assert!(!dir.join("key-encryption.key").exists());
    assert_eq!(keys_json(&dir, &env).len(), 1);
    let bad = [("AGENTGATE_KEY_ENCRYPTION_KEY", "too-short")];
    let out = agentgate(&dir, &["rotate"], &bad);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("32 random bytes"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn users_and_apps() {
    let dir = temp_dir("people");
    let added = json_of(&run(
        &dir,
        &["users", "add", "Alice", "--email", "alice@example.com", "--name", "Alice Liddell", "--json"],
        &[],
        None,
    ));
    assert_eq!(added["username"], "alice");
    let generated = added["password"].as_str().unwrap();
    assert!(generated.len() >= 16, "a generated password is printed once");
    let bob = json_of(&run(
        &dir,
        &["users", "add", "bob", "--password-stdin", "--json"],
        &[],
        Some("wonderland\n"),
    ));
    assert!(bob["password"].is_null(), "a password given on stdin is not echoed");

    // Refusals exit non-zero and store nothing.
    for (args, stdin, why) in [
        (vec!["users", "add", "ALICE"], None, "already taken"),
        (vec!["users", "add", "carol", "--password-stdin"], Some("short\n"), "at least 8"),
        (vec!["apps", "add", "Evil", "--redirect-uri", "http://evil.example/cb"], None, "loopback"),
        (vec!["apps", "add", "NoWhere"], None, "redirect URI"),
        (vec!["users", "remove", "nobody"], None, "no user"),
    ] {
        let out = run(&dir, &args, &[], stdin);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(why),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(json_of(&run(&dir, &["users", "list", "--json"], &[], None)).as_array().unwrap().len(), 2);
    assert!(json_of(&run(&dir, &["apps", "list", "--json"], &[], None)).as_array().unwrap().is_empty());

    let app = json_of(&run(
        &dir,
        &[
            "apps",
            "add",
            "SmartMail AI",
            "--third-party",
            "--public",
            "--native",
            "--redirect-uri",
            "http://127.0.0.1/callback",
            "--json",
        ],
        &[],
        None,
    ));
    assert_eq!((app["third_party"].as_bool(), app["public"].as_bool()), (Some(true), Some(true)));
    assert!(app["client_secret"].is_null());
    let id = app["client_id"].as_str().unwrap();
    let shown = json_of(&run(&dir, &["apps", "show", id, "--json"], &[], None));
    assert_eq!(shown["redirect_uris"], serde_json::json!(["http://127.0.0.1/callback"]));
    let own = json_of(&run(
        &dir,
        &["apps", "add", "Own", "--redirect-uri", "https://mail.example/cb", "--json"],
        &[],
        None,
    ));
    assert!(own["client_secret"].as_str().unwrap().len() >= 43);
    assert!(run(&dir, &["apps", "remove", id], &[], None).status.success());
    assert_eq!(json_of(&run(&dir, &["apps", "list", "--json"], &[], None)).as_array().unwrap().len(), 1);
    assert!(run(&dir, &["users", "remove", "bob"], &[], None).status.success());
    std::fs::remove_dir_all(&dir).unwrap();
}
