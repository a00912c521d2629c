//! A small, bounded memory of tokens that were accepted recently.
//!
//! Keys are SHA-256 hashes of tokens: a memory dump of the cache reveals no token.
//! Every entry carries its own deadline, never later than the token's `exp`, and is
//! checked again on every hit. When the cache is full, expired entries are swept
//! out, and if that frees nothing an arbitrary entry makes room: the worst case is
//! one extra verification, never a wrong answer.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use aws_lc_rs::digest;

use crate::verify::MAX_TOKEN_BYTES;
use crate::{AuthError, AuthInfo, InvalidToken};

/// How many accepted tokens are remembered by default.
pub(crate) const DEFAULT_CAPACITY: usize = 10_000;

pub(crate) type TokenHash = [u8; 32];

pub(crate) fn hash(token: &str) -> TokenHash {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, token.as_bytes()).as_ref());
    out
}

#[derive(Debug, Default)]
struct Entries {
    map: HashMap<TokenHash, (Instant, AuthInfo)>,
    last_sweep: Option<Instant>,
}

/// A full cache sweeps out expired entries at most this often; in between, an
/// arbitrary entry makes room, so a cache full of live entries costs O(1) per insert.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub(crate) struct TokenCache {
    entries: Mutex<Entries>,
    capacity: usize,
    max_ttl: Duration,
}

impl TokenCache {
    /// A cache holding at most `capacity` entries, each for at most `max_ttl`.
    /// A zero capacity or TTL disables it.
    pub fn new(capacity: usize, max_ttl: Duration) -> Self {
        Self { entries: Mutex::new(Entries::default()), capacity, max_ttl }
    }

    fn enabled(&self) -> bool {
        self.capacity > 0 && !self.max_ttl.is_zero()
    }

    /// What every verifier does around its own check: refuse an oversized token
    /// before anything else, answer from memory when it can, and remember what
    /// `check` accepts.
    pub async fn get_or_verify(
        &self,
        token: &str,
        check: impl Future<Output = Result<AuthInfo, AuthError>>,
    ) -> Result<AuthInfo, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(InvalidToken::TooLong.into());
        }
        let key = hash(token);
        if let Some(info) = self.get(&key) {
            return Ok(info);
        }
        let info = check.await?;
        self.insert(key, &info);
        Ok(info)
    }

    pub fn get(&self, key: &TokenHash) -> Option<AuthInfo> {
        if !self.enabled() {
            return None;
        }
        let mut entries = self.entries.lock().expect("not poisoned");
        match entries.map.get(key) {
            Some((deadline, info)) if *deadline > Instant::now() => Some(info.clone()),
            Some(_) => {
                entries.map.remove(key);
                None
            }
            None => None,
        }
    }

    /// Remembers `info` until the earlier of `max_ttl` from now and its expiry.
    pub fn insert(&self, key: TokenHash, info: &AuthInfo) {
        if !self.enabled() {
            return;
        }
        let mut ttl = self.max_ttl;
        if let Some(exp) = info.expires_at {
            match exp.duration_since(SystemTime::now()) {
                Ok(left) => ttl = ttl.min(left),
                Err(_) => return,
            }
        }
        let now = Instant::now();
        let mut entries = self.entries.lock().expect("not poisoned");
        if entries.map.len() >= self.capacity && !entries.map.contains_key(&key) {
            if entries.last_sweep.is_none_or(|at| now.duration_since(at) >= SWEEP_INTERVAL) {
                entries.map.retain(|_, (deadline, _)| *deadline > now);
                entries.last_sweep = Some(now);
            }
            if entries.map.len() >= self.capacity
                && let Some(victim) = entries.map.keys().next().copied()
            {
                entries.map.remove(&victim);
            }
        }
        entries.map.insert(key, (now + ttl, info.clone()));
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap().map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(exp_in: Option<i64>) -> AuthInfo {
        AuthInfo {
            issuer: "i".into(),
            subject: "s".into(),
            client_id: None,
            audience: vec![],
            scopes: vec![],
            expires_at: exp_in.map(|s| {
                if s >= 0 {
                    SystemTime::now() + Duration::from_secs(s as u64)
                } else {
                    SystemTime::now() - Duration::from_secs((-s) as u64)
                }
            }),
            claims: Default::default(),
        }
    }

    #[test]
    fn remembers_by_hash_and_bounds_size() {
        let cache = TokenCache::new(2, Duration::from_secs(60));
        cache.insert(hash("a"), &info(Some(600)));
        assert!(cache.get(&hash("a")).is_some());
        assert!(cache.get(&hash("b")).is_none());
        cache.insert(hash("b"), &info(None));
        cache.insert(hash("c"), &info(None));
        assert_eq!(cache.len(), 2, "capacity is a hard bound");
    }

    #[test]
    fn never_outlives_the_token() {
        let cache = TokenCache::new(10, Duration::from_secs(60));
        cache.insert(hash("expired"), &info(Some(-1)));
        assert!(cache.get(&hash("expired")).is_none());
        cache.insert(hash("soon"), &info(Some(0)));
        assert!(cache.get(&hash("soon")).is_none());
    }

    #[test]
    fn zero_ttl_disables() {
        let cache = TokenCache::new(10, Duration::ZERO);
        cache.insert(hash("a"), &info(None));
        assert!(cache.get(&hash("a")).is_none());
    }
}
