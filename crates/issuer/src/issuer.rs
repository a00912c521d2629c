//! [`Issuer`]: the authorization server's state — store, settings, keys — and the
//! protocol operations on it. Everything here is plain Rust that tests call
//! without HTTP; the handlers in [`crate::http`] only parse, call and render.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::keys::{self, Alg, KeyError, KeyRing};
use crate::revocations::Revocations;
use crate::seal::KeyEncryptionKey;
use crate::settings::Settings;
use crate::store::Store;

/// How long after an access token's `exp` a resource server may still accept
/// it: the guard's default leeway (60 s), and as much again for clocks.
const REVOCATION_LEEWAY_SECS: i64 = 120;

/// The authorization server.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use agentgate_issuer::{Issuer, Settings, seal::KeyEncryptionKey, store::SqliteStore};
/// let store = SqliteStore::open("sqlite://agentgate.db").await?;
/// let (kek, _) = KeyEncryptionKey::generate();
/// let issuer = Issuer::open(store, kek, Settings::new("http://127.0.0.1:8080")).await?;
/// let app = agentgate_issuer::http::router(std::sync::Arc::new(issuer));
/// # let _ = app; Ok(()) }
/// ```
pub struct Issuer<S> {
    pub(crate) store: S,
    pub(crate) settings: Settings,
    pub(crate) kek: KeyEncryptionKey,
    keys: RwLock<Arc<KeyRing>>,
    /// When the keys were last read from the store.
    keys_read_at: Mutex<Instant>,
    /// Held while the first key of an algorithm is made, so it is made once.
    key_creation: tokio::sync::Mutex<()>,
    /// Binds form tokens (CSRF) to a browser.
    pub(crate) form_key: aws_lc_rs::hmac::Key,
    /// Signs known-browser cookies.
    pub(crate) known_key: aws_lc_rs::hmac::Key,
    /// Derives each refresh token's successor from it (see `tokens`).
    pub(crate) successor_key: aws_lc_rs::hmac::Key,
    /// Derives a sign-in's nonce and PKCE verifier from its state (see `upstream`).
    pub(crate) upstream_key: aws_lc_rs::hmac::Key,
    /// The identity providers people may sign in with.
    pub(crate) upstream: crate::upstream::Providers,
    /// Fetched client metadata documents.
    pub(crate) documents: crate::client_documents::ClientDocuments,
    /// The codes this instance issued lately, for one-trip exchanges.
    pub(crate) recent_codes: crate::recent_codes::RecentCodes,
    /// What was revoked lately, for this issuer's MCP servers.
    revocations: Arc<Revocations>,
}

impl<S> std::fmt::Debug for Issuer<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer").field("issuer", &self.settings.issuer).finish_non_exhaustive()
    }
}

impl<S: Store> Issuer<S> {
    /// Opens the issuer: loads the signing keys, making the first one if needed.
    pub async fn open(store: S, kek: KeyEncryptionKey, settings: Settings) -> Result<Self, KeyError> {
        let keys = KeyRing::load(&store, &kek, crate::now()).await?;
        crate::management::declare_api(&store, &settings).await?;
        let form_key = kek.derive("agentgate form token v1");
        let known_key = kek.derive("agentgate known browser v1");
        let successor_key = kek.derive("agentgate refresh successor v1");
        let upstream_key = kek.derive("agentgate upstream sign-in v1");
        let upstream = crate::upstream::Providers::new(&settings.identity_providers);
        let documents =
            crate::client_documents::ClientDocuments::new(settings.client_documents_allow_loopback);
        // As long as a token issued just before a revocation can be accepted:
        // its lifetime, and the leeway resource servers give `exp`.
        let revocations = Arc::new(Revocations::new(settings.access_token_ttl + REVOCATION_LEEWAY_SECS));
        let issuer = Self {
            revocations,
            documents,
            store,
            settings,
            kek,
            keys: RwLock::new(Arc::new(keys)),
            keys_read_at: Mutex::new(Instant::now()),
            key_creation: tokio::sync::Mutex::new(()),
            form_key,
            known_key,
            successor_key,
            upstream_key,
            upstream,
            recent_codes: Default::default(),
        };
        issuer.read_revocations().await?;
        Ok(issuer)
    }

    /// What was revoked lately: give it to the guard of every MCP server of
    /// this issuer ([`agentgate_guard::GuardBuilder::revocation_check`]), so
    /// revoked tokens are refused at once.
    pub fn revocations(&self) -> Arc<Revocations> {
        self.revocations.clone()
    }

    /// Reads the revocations recorded since the last read (a little before
    /// it), by this instance, another one, or a command of the CLI.
    pub async fn read_revocations(&self) -> Result<(), crate::store::StoreError> {
        let now = crate::now();
        let found = self.store.revocations_since(self.revocations.read_from(now)).await?;
        self.revocations.add(found, now);
        self.revocations.read_done(now);
        Ok(())
    }

    /// After this instance revoked something: its MCP servers refuse the
    /// tokens from now on. Should the read fail, the next regular one, in
    /// two seconds, brings it.
    pub(crate) async fn spread_revocations(&self) {
        if let Err(error) = self.read_revocations().await {
            tracing::error!(%error, "could not read revocations");
        }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The current keys.
    pub fn keys(&self) -> Arc<KeyRing> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Reloads the keys from the store, so a rotation made by another process
    /// (`agentgate keys rotate`, another instance) is picked up.
    pub async fn reload_keys(&self) -> Result<(), KeyError> {
        *self.keys_read_at.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        let keys = Arc::new(KeyRing::load(&self.store, &self.kek, crate::now()).await?);
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = keys;
        Ok(())
    }

    /// The current keys, read again from the store first when they do not
    /// know `kid`: a token signed by another instance's new key verifies at
    /// once, not at the next reload. Read again at most once a second, so a
    /// stream of made-up key ids is not a stream of reads.
    pub(crate) async fn keys_knowing(&self, kid: &str) -> Arc<KeyRing> {
        let current = self.keys();
        if current.verifying_key(kid).is_some() {
            return current;
        }
        let read_lately =
            self.keys_read_at.lock().unwrap_or_else(|e| e.into_inner()).elapsed() < Duration::from_secs(1);
        if read_lately {
            return current;
        }
        if let Err(error) = self.reload_keys().await {
            tracing::error!(%error, "could not reload signing keys");
        }
        self.keys()
    }

    /// The current keys, with an active key of `alg` in them: the first RS256
    /// key is made the first time an app registered for RS256 needs one (by this
    /// instance, or found made by another one).
    pub async fn keys_with(&self, alg: Alg) -> Result<Arc<KeyRing>, KeyError> {
        let current = self.keys();
        if current.active_for(alg).is_some() {
            return Ok(current);
        }
        let _one_at_a_time = self.key_creation.lock().await;
        self.reload_keys().await?;
        if self.keys().active_for(alg).is_none() {
            keys::rotate(&self.store, &self.kek, crate::now(), keys::DEFAULT_KEEP_PUBLISHED_SECS, alg)
                .await?;
            self.reload_keys().await?;
        }
        Ok(self.keys())
    }

    /// Background upkeep, forever: reads what was revoked every two seconds
    /// (by another instance, or by the CLI), reads the keys again every five
    /// (so a rotation by another instance or by `agentgate keys rotate` is
    /// published and used everywhere without a restart), forgets expired codes
    /// kept in memory, and deletes expired rows every ten minutes. Spawn it once per process.
    pub async fn maintain(self: Arc<Self>) {
        const REVOCATIONS_EVERY: u64 = 2;
        const KEYS_EVERY: u64 = 5;
        const PURGE_EVERY: u64 = 600;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        for second in 0u64.. {
            tick.tick().await;
            if second > 0 && second % REVOCATIONS_EVERY == 0 {
                self.spread_revocations().await;
            }
            if second > 0
                && second % KEYS_EVERY == 0
                && let Err(error) = self.reload_keys().await
            {
                tracing::error!(%error, "could not reload signing keys");
            }
            if second % KEYS_EVERY == 0 {
                self.recent_codes.forget_expired(crate::now());
            }
            // Revocations are kept at least as long as a token they cover lives.
            let keep = (24 * 3600).max(self.settings.access_token_ttl + REVOCATION_LEEWAY_SECS);
            if second % PURGE_EVERY == 0
                && let Err(error) = self.store.purge_expired(crate::now(), keep).await
            {
                tracing::error!(%error, "could not delete expired rows");
            }
        }
    }
}
