//! The loopback redirect URI (RFC 8252 §7.3): a socket on 127.0.0.1 at a port
//! the system picks, where the person's browser comes back with the code.
//!
//! It waits for the one `GET /callback?…` whose `state` is this sign-in's,
//! answers it with a short page telling the person they can close the tab,
//! and hands the full URL to the agent, which checks `iss` and exchanges the
//! code. Any other page is a 404; a callback with another `state` (a forged
//! one, from a page probing loopback ports) is a 400 and changes nothing.
//! Connections are read concurrently, so a silent one cannot hold the door.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::AgentError;

/// The largest request head read from the browser.
const MAX_HEAD: usize = 16 * 1024;

/// A listening loopback redirect URI.
#[derive(Debug)]
pub struct CallbackListener {
    listener: TcpListener,
    redirect_uri: String,
    state: std::sync::OnceLock<String>,
}

impl CallbackListener {
    /// Listens on `127.0.0.1` at a free port.
    pub async fn bind() -> std::io::Result<Self> {
        Self::bind_port(0).await
    }

    /// Listens on `127.0.0.1` at `port` (0: a free one), for an app whose
    /// registration names one fixed loopback port.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let listener = agentgate_agent::CallbackListener::bind_port(0).await.unwrap();
    /// assert!(listener.redirect_uri().starts_with("http://127.0.0.1:"));
    /// # }
    /// ```
    pub async fn bind_port(port: u16) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let redirect_uri = format!("http://127.0.0.1:{}/callback", listener.local_addr()?.port());
        Ok(Self { listener, redirect_uri, state: std::sync::OnceLock::new() })
    }

    /// The `state` of the authorization request whose answer to wait for; set
    /// once, before [`wait`](Self::wait). Until it is set, no callback counts.
    pub fn expect_state(&self, state: &str) {
        let _ = self.state.set(state.to_owned());
    }

    /// `http://127.0.0.1:PORT/callback`.
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// Waits up to `timeout` for the browser to come back; returns the full
    /// callback URL (with `code`, `state` and `iss`, or `error`).
    pub async fn wait(&self, timeout: Duration) -> Result<String, AgentError> {
        tokio::time::timeout(timeout, self.next_callback()).await.map_err(|_| {
            AgentError::NotBack(format!("nobody came back to {} within {timeout:?}", self.redirect_uri))
        })?
    }

    async fn next_callback(&self) -> Result<String, AgentError> {
        let (arrived, mut arrivals) = tokio::sync::mpsc::channel(16);
        let base = self.redirect_uri.trim_end_matches("/callback").to_owned();
        loop {
            tokio::select! {
                accepted = self.listener.accept() => {
                    let (mut socket, _) =
                        accepted.map_err(|e| AgentError::NotBack(format!("the listener failed: {e}")))?;
                    let arrived = arrived.clone();
                    tokio::spawn(async move {
                        if let Some(request) = read_request(&mut socket).await {
                            let _ = arrived.send((socket, request)).await;
                        }
                    });
                }
                Some((mut socket, request)) = arrivals.recv() => {
                    let url = format!("{base}{}", request.target);
                    let t = texts(request.language.as_deref());
                    if !request.target.starts_with("/callback?") {
                        respond(&mut socket, "404 Not Found", t, t.not_here).await;
                    } else if self.state.get().is_none_or(|state| query_param(&url, "state").as_deref() != Some(state)) {
                        respond(&mut socket, "400 Bad Request", t, t.not_for_us).await;
                    } else {
                        let said = if query_param(&url, "error").is_some() { t.refused } else { t.done };
                        respond(&mut socket, "200 OK", t, said).await;
                        return Ok(url);
                    }
                }
            }
        }
    }
}

/// A query parameter of `url`.
pub(crate) fn query_param(url: &str, name: &str) -> Option<String> {
    let url = url::Url::parse(url).ok()?;
    url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// What the loopback page says, in one language.
struct Texts {
    lang: &'static str,
    /// The browser came back with a code: done here.
    done: Said,
    /// The browser came back with an error (the person said no, or the issuer refused).
    refused: Said,
    /// A callback with another `state`.
    not_for_us: Said,
    /// Any other address.
    not_here: Said,
}

/// A page's heading and the sentence under it.
#[derive(Clone, Copy)]
struct Said(&'static str, &'static str);

const EN: Texts = Texts {
    lang: "en",
    done: Said("Signed in", "You can close this tab and go back to the terminal."),
    refused: Said("Not signed in", "The terminal says what happened. You can close this tab."),
    not_for_us: Said(
        "This answer is not for this agent",
        "It belongs to another sign-in. Start again from the terminal.",
    ),
    not_here: Said("Nothing here", "This address only takes the way back from signing in."),
};

const ES: Texts = Texts {
    lang: "es",
    done: Said("Sesión iniciada", "Puedes cerrar esta pestaña y volver a la terminal."),
    refused: Said("Sesión no iniciada", "La terminal dice qué pasó. Puedes cerrar esta pestaña."),
    not_for_us: Said(
        "Esta respuesta no es para este agente",
        "Pertenece a otro inicio de sesión. Empieza de nuevo desde la terminal.",
    ),
    not_here: Said("No hay nada aquí", "Esta dirección solo recibe la vuelta del inicio de sesión."),
};

const JA: Texts = Texts {
    lang: "ja",
    done: Said("サインインしました", "このタブを閉じて、ターミナルに戻ってください。"),
    refused: Said(
        "サインインしていません",
        "何が起きたかはターミナルに表示されています。このタブは閉じてかまいません。",
    ),
    not_for_us: Said(
        "このエージェント宛ての応答ではありません",
        "別のサインインのものです。ターミナルからやり直してください。",
    ),
    not_here: Said("ここには何もありません", "このアドレスはサインインからの戻りだけを受け付けます。"),
};

/// The texts for the browser's `Accept-Language`: its first language the
/// page speaks, else English.
fn texts(accept_language: Option<&str>) -> &'static Texts {
    accept_language
        .unwrap_or("")
        .split(',')
        .filter_map(|part| part.split(';').next()?.trim().split(['-', '_']).next())
        .find_map(|primary| [&EN, &ES, &JA].into_iter().find(|t| t.lang.eq_ignore_ascii_case(primary)))
        .unwrap_or(&EN)
}

/// A small page in the issuer pages' look, then the connection closes.
async fn respond(socket: &mut tokio::net::TcpStream, status: &str, t: &Texts, Said(heading, sentence): Said) {
    let page = format!(
        "<!doctype html><html lang=\"{lang}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{heading}</title><style>{STYLE}</style></head>\
         <body><main><h1>{heading}</h1><p>{sentence}</p><p class=\"note\">agentgate agent</p></main></body></html>",
        lang = t.lang,
    );
    let answer = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/html; charset=utf-8\r\ncache-control: no-store\r\n\
         content-security-policy: default-src 'none'; style-src 'unsafe-inline'\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{page}",
        page.len()
    );
    let _ = socket.write_all(answer.as_bytes()).await;
}

/// The issuer pages' type, width and colours, for the one page the agent shows.
const STYLE: &str = ":root{color-scheme:light dark;--muted:#5d6572}\
@media (prefers-color-scheme:dark){:root{--muted:#a3abb8}}\
body{margin:0;font:16px/1.5 system-ui,-apple-system,\"Segoe UI\",\"Hiragino Sans\",\"Noto Sans JP\",sans-serif}\
main{max-width:26rem;margin:3rem auto;padding:0 1.25rem}h1{font-size:1.5rem;margin:0 0 1rem}\
.note{color:var(--muted);font-size:.9rem}";

/// What the browser asked for: the target of a `GET`, and its languages.
struct Request {
    target: String,
    language: Option<String>,
}

/// The request head of a `GET`, if it is one.
async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<Request> {
    let mut head = Vec::new();
    let mut chunk = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut chunk)).await.ok()?.ok()?;
        if n == 0 || head.len() + n > MAX_HEAD {
            return None;
        }
        head.extend_from_slice(&chunk[..n]);
    }
    let mut lines = std::str::from_utf8(&head).ok()?.lines();
    let mut parts = lines.next()?.split(' ');
    (parts.next()? == "GET").then_some(())?;
    let target = parts.next()?.to_owned();
    let language = lines.find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("accept-language").then(|| value.trim().to_owned())
    });
    Some(Request { target, language })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_browser_comes_back_with_the_code() {
        let listener = CallbackListener::bind().await.unwrap();
        listener.expect_state("s");
        let uri = listener.redirect_uri().to_owned();
        assert!(uri.starts_with("http://127.0.0.1:") && uri.ends_with("/callback"), "{uri}");
        let browser = tokio::spawn(async move {
            // A connection that never speaks does not hold the door.
            let _silent = tokio::net::TcpStream::connect(
                uri.trim_start_matches("http://").trim_end_matches("/callback"),
            )
            .await
            .unwrap();
            let http = reqwest::Client::new();
            let base = uri.trim_end_matches("/callback");
            let stray = http.get(format!("{base}/favicon.ico")).send().await.unwrap();
            assert_eq!(stray.status(), 404);
            // A forged answer (another state, an error included) is turned away.
            for forged in ["code=evil&state=other", "error=access_denied&state=other", "code=evil"] {
                let refused = http.get(format!("{uri}?{forged}")).send().await.unwrap();
                assert_eq!(refused.status(), 400, "{forged}");
            }
            let back = http
                .get(format!("{uri}?code=c&state=s&iss=https%3A%2F%2Fauth.example"))
                .header("accept-language", "fr-CH, ja;q=0.9, en;q=0.8")
                .send()
                .await
                .unwrap();
            (back.status(), back.text().await.unwrap())
        });
        let url = listener.wait(Duration::from_secs(10)).await.unwrap();
        assert!(url.ends_with("/callback?code=c&state=s&iss=https%3A%2F%2Fauth.example"), "{url}");
        let (status, page) = browser.await.unwrap();
        assert_eq!(status, 200);
        assert!(page.contains("<html lang=\"ja\">") && page.contains("このタブを閉じて"), "{page}");
    }

    #[test]
    fn the_page_speaks_the_browsers_first_language_it_knows() {
        assert_eq!(texts(Some("es-MX,es;q=0.9")).lang, "es");
        assert_eq!(texts(Some("de, EN-gb;q=0.5")).lang, "en");
        assert_eq!(texts(Some("de")).lang, "en");
        assert_eq!(texts(None).lang, "en");
    }

    #[tokio::test]
    async fn nobody_coming_back_is_a_clear_error() {
        let listener = CallbackListener::bind().await.unwrap();
        listener.expect_state("s");
        let error = listener.wait(Duration::from_millis(50)).await.unwrap_err();
        assert!(error.to_string().contains("nobody came back"), "{error}");
    }
}
