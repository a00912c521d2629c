//! A folder as an operator sets one up for `agentgate serve --config`: the
//! configuration file, a key-encryption key file, the data.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use super::{Process, spawn_until};

pub const PASSWORD: &str = "wonderland";

/// A folder with a configuration file, a key-encryption key file and the data.
pub struct Setup {
    pub dir: PathBuf,
    pub port: u16,
}

impl Setup {
    /// `extra` is appended to a minimal valid file; `kek_mode` is the key file's mode.
    pub fn new(name: &str, extra: &str, kek_mode: u32) -> Self {
        let dir = std::env::temp_dir().join(format!("agentgate-serve-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let config = format!(
            "issuer = \"http://127.0.0.1:{port}\"\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"data\"\n\
             key_encryption_key_file = \"kek\"\n{extra}\n"
        );
        std::fs::write(dir.join("agentgate.toml"), config).unwrap();
        let mut random = [0u8; 32];
        std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom").unwrap(), &mut random).unwrap();
        use base64::Engine;
        std::fs::write(dir.join("kek"), base64::engine::general_purpose::STANDARD.encode(random)).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.join("kek"), std::fs::Permissions::from_mode(kek_mode)).unwrap();
        }
        Self { dir, port }
    }

    pub fn config(&self) -> PathBuf {
        self.dir.join("agentgate.toml")
    }

    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `agentgate ARGS --config FILE`, run from another folder (paths in the file
    /// are relative to the file, not to where the command runs).
    pub fn run(&self, args: &[&str], env: &[(&str, &str)], stdin: &str) -> Output {
        let mut command = agentgate(args, env);
        command.arg("--config").arg(self.config());
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let out = self.run(args, &[], "");
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// `agentgate serve`, once it says it listens; returns the process and that line.
    pub fn serve(&self, env: &[(&str, &str)]) -> (Process, String) {
        let mut command = agentgate(&["serve"], env);
        command.arg("--config").arg(self.config());
        spawn_until(command, "agentgate serve", "agentgate serve: issuer ")
    }

    /// Adds alice and the third-party app; returns the app's client id.
    pub fn people_and_apps(&self) -> String {
        let out = self.run(
            &["users", "add", "alice", "--email", "alice@example.com", "--password-stdin"],
            &[],
            PASSWORD,
        );
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let app = self.json(&[
            "apps",
            "add",
            "SmartMail AI",
            "--third-party",
            "--public",
            "--native",
            "--json",
            "--redirect-uri",
            "http://127.0.0.1/callback",
            "--scopes",
            "openid profile email mcp:tools",
        ]);
        app["client_id"].as_str().unwrap().to_owned()
    }
}

impl Setup {
    /// `agentgate users add USERNAME` with [`PASSWORD`].
    pub fn add_person(&self, username: &str) {
        let out = self.run(&["users", "add", username, "--password-stdin"], &[], PASSWORD);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }

    /// `agentgate apps add NAME --public --native FLAGS` that may ask for
    /// `scopes`, sent back to `http://127.0.0.1/callback`; its client id.
    pub fn add_app(&self, name: &str, flags: &[&str], scopes: &str) -> String {
        let mut args = vec!["apps", "add", name, "--public", "--native", "--json"];
        args.extend(flags);
        args.extend(["--redirect-uri", "http://127.0.0.1/callback", "--scopes", scopes]);
        self.json(&args)["client_id"].as_str().unwrap().to_owned()
    }

    /// The id (`sub`) of `username`.
    pub fn user_id(&self, username: &str) -> String {
        let people = self.json(&["users", "list", "--json"]);
        let person = people.as_array().unwrap().iter().find(|p| p["username"] == username).expect("added");
        person["id"].as_str().unwrap().to_owned()
    }

    /// An access token of `app` for `resource`, through the running server's
    /// real sign-in and consent pages as alice (get-token.mjs plays the browser).
    pub fn token(&self, app: &str, resource: &str, scope: &str) -> String {
        let issuer = self.issuer();
        let answer = super::node_tool(
            "tools/get-token.mjs",
            &[
                "--issuer",
                &issuer,
                "--kind",
                "user",
                "--client-id",
                app,
                "--password",
                PASSWORD,
                "--redirect-uri",
                "http://127.0.0.1/callback",
                "--resource",
                resource,
                "--scope",
                scope,
            ],
        );
        answer["access_token"].as_str().unwrap_or_else(|| panic!("no token: {answer}")).to_owned()
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn agentgate(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_agentgate"));
    command.args(args).current_dir(std::env::temp_dir()).env("AGENTGATE_LOG", "warn");
    for name in [
        "AGENTGATE_KEY_ENCRYPTION_KEY",
        "AGENTGATE_ISSUER",
        "AGENTGATE_LISTEN",
        "AGENTGATE_DATA_DIR",
        "AGENTGATE_DATABASE_URL",
        "AGENTGATE_DURABILITY",
    ] {
        command.env_remove(name);
    }
    for (k, v) in env {
        command.env(k, v);
    }
    command
}

pub fn stderr_of(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "expected a refusal, got success: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}
