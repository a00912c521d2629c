//! `agentgate keys` as a user runs it: a real process on a real data directory.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn agentgate(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_agentgate"));
    command.args(["keys"]).args(args).arg("--data-dir").arg(dir).env_remove("AGENTGATE_KEY_ENCRYPTION_KEY");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().unwrap()
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

    // Losing the development key-encryption key is an error, and changes nothing.
    std::fs::remove_file(dir.join("key-encryption.key")).unwrap();
    let out = agentgate(&dir, &["rotate"], &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("AGENTGATE_KEY_ENCRYPTION_KEY"));
    assert_eq!(keys_json(&dir, &[]).len(), 2);
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
