//! The issuer's HTTP face: thin axum handlers that parse a request, call the
//! [`Issuer`], and render the answer. The rules live in the plain modules.
//!
//! | path (under the issuer's own path)            | what                              |
//! |-----------------------------------------------|-----------------------------------|
//! | `/.well-known/openid-configuration`           | discovery (also RFC 8414's path-inserted forms) |
//! | `/jwks`                                       | public signing keys               |
//! | `/authorize`                                  | authorization endpoint (pages)    |
//! | `/token`                                      | token endpoint                    |
//! | `/userinfo`                                   | OpenID Connect userinfo (GET, POST) |
//! | `/introspect`, `/revoke`                      | RFC 7662, RFC 7009                |
//! | `/end-session`                                | OpenID Connect RP-initiated logout |
//! | `/register`, `/register/{client_id}`          | RFC 7591 registration, RFC 7592 management |
//! | `/api/v1/…`                                   | the management API (JSON, `agentgate:admin`) |
//! | `/sign-in`, `/consent`, `/account`, `/sign-out` | the person's pages              |
//! | `/`                                           | what this server is, and links    |

pub mod api;
mod backchannel;
mod client_address;
mod discovery;
mod form;
mod pages;
mod registration;
mod upstream_pages;

pub use client_address::client_address;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::Issuer;
use crate::store::Store;

/// The largest request body any endpoint reads.
const MAX_BODY: usize = 64 * 1024;

/// The bearer token of a request (RFC 6750 §2.1), if any.
fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The path of the issuer URL (`""` for a root issuer), under which every
/// endpoint lives.
fn base_path(issuer: &str) -> String {
    url::Url::parse(issuer).map(|u| u.path().trim_end_matches('/').to_owned()).unwrap_or_default()
}

/// The first path segments (under the issuer's base path) that the router
/// serves: an MCP route on the same server must begin with none of them.
pub const ROOTS: [&str; 14] = [
    ".well-known",
    "account",
    "api",
    "authorize",
    "consent",
    "end-session",
    "introspect",
    "jwks",
    "register",
    "revoke",
    "sign-in",
    "sign-out",
    "token",
    "userinfo",
];

/// Every endpoint of `issuer`, mounted at the issuer URL's path.
///
/// ```no_run
/// # async fn run(issuer: agentgate_issuer::Issuer<agentgate_issuer::store::SqliteStore>) {
/// let app = agentgate_issuer::http::router(std::sync::Arc::new(issuer));
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await.unwrap();
/// axum::serve(listener, app).await.unwrap();
/// # }
/// ```
pub fn router<S: Store>(issuer: Arc<Issuer<S>>) -> Router {
    let base = base_path(&issuer.settings.issuer);
    let at = |path: &str| format!("{base}{path}");
    let mut router = Router::new()
        .route(&at("/jwks"), get(discovery::jwks::<S>).options(discovery::preflight))
        .route(&at("/token"), post(backchannel::token::<S>).options(discovery::preflight))
        .route(
            &at("/userinfo"),
            get(backchannel::userinfo::<S>).post(backchannel::userinfo::<S>).options(discovery::preflight),
        )
        .route(&at("/introspect"), post(backchannel::introspect::<S>))
        .route(&at("/revoke"), post(backchannel::revoke::<S>).options(discovery::preflight))
        .route(&at("/authorize"), get(pages::authorize::<S>))
        .route(&at("/sign-in"), get(pages::sign_in_page::<S>).post(pages::sign_in::<S>))
        .route(&at("/sign-in/{provider}"), post(upstream_pages::begin::<S>))
        .route(&at("/sign-in/{provider}/callback"), get(upstream_pages::callback::<S>))
        .route(&at("/consent"), post(pages::consent::<S>))
        .route(&at("/account"), get(pages::account::<S>))
        .route(&at("/account/disconnect"), post(pages::disconnect::<S>))
        .route(&at("/account/link/{provider}"), post(upstream_pages::link::<S>))
        .route(&at("/account/unlink"), post(upstream_pages::unlink::<S>))
        .route(&at("/sign-out"), post(pages::sign_out::<S>))
        .route(&at("/end-session"), get(pages::end_session::<S>).post(pages::end_session::<S>))
        .route(
            &at("/register"),
            post(registration::register::<S>)
                .options(discovery::preflight)
                .layer(DefaultBodyLimit::max(registration::MAX_BODY)),
        )
        .route(
            &at("/register/{client_id}"),
            get(registration::read::<S>)
                .put(registration::update::<S>)
                .delete(registration::delete::<S>)
                .options(discovery::preflight)
                .layer(DefaultBodyLimit::max(registration::MAX_BODY)),
        );
    router = router.merge(api::routes::<S>(&base));
    router = router.route(&format!("{base}/"), get(pages::home::<S>));
    if !base.is_empty() {
        router = router.route(&base, get(pages::home::<S>));
    }
    for path in discovery::paths(&base) {
        router = router.route(&path, get(discovery::metadata::<S>).options(discovery::preflight));
    }
    // Every other address gets an answer that says where to go, a page for a
    // browser (never the browser's own empty error page).
    router
        .fallback(pages::not_found::<S>)
        .method_not_allowed_fallback(pages::wrong_method::<S>)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(issuer)
}
