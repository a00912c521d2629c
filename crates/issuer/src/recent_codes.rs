//! The authorization codes this instance issued lately, with the app as it was
//! read when the code was issued: the token endpoint redeems such a code in one
//! trip to the store instead of two (read, then redeem), since the code's
//! contents never change after it is issued.
//!
//! Apps known by their Client ID Metadata Document are not kept: they are
//! checked against their document at each exchange anyway.
//!
//! Nothing here decides anything the store would not: the store's redemption
//! still settles who uses a code (once), and it redeems only while the app is
//! at the version read here and the person still exists. When it does not
//! (the app was changed or removed, by this process or another one, or the
//! code was already used), the exchange takes the usual path, which reads
//! everything afresh. Codes issued by another instance are simply not here.
//!
//! An entry is taken when it is used, whatever the outcome; expired ones are
//! dropped by [`RecentCodes::forget_expired`] (every few seconds, from
//! `Issuer::maintain`) and whenever the map is full; at most [`CAPACITY`] are
//! kept, so memory stays bounded whatever the load.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::store::{AuthCode, Client};

/// The most codes kept.
pub const CAPACITY: usize = 4096;

/// A code and the app it was issued to, as read then.
#[derive(Debug, Clone)]
pub struct RecentCode {
    /// The code as stored.
    pub code: AuthCode,
    /// The app, with its version.
    pub client: Client,
}

/// Recently issued codes, by their hash.
#[derive(Debug, Default)]
pub struct RecentCodes {
    codes: Mutex<HashMap<String, RecentCode>>,
}

impl RecentCodes {
    /// Keeps `code` (issued to `client`) until it is taken or expires.
    pub fn keep(&self, code: AuthCode, client: Client, now: i64) {
        let mut codes = self.codes.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if codes.len() >= CAPACITY {
            codes.retain(|_, recent| recent.code.expires_at > now);
        }
        if codes.len() < CAPACITY {
            codes.insert(code.code_hash.clone(), RecentCode { code, client });
        }
    }

    /// Drops the codes that have expired, so codes nobody exchanges do not
    /// stay in memory until the map fills up.
    pub fn forget_expired(&self, now: i64) {
        let mut codes = self.codes.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        codes.retain(|_, recent| recent.code.expires_at > now);
    }

    /// The code with this hash, if this instance issued it lately and it has
    /// not expired; it is no longer kept.
    pub fn take(&self, code_hash: &str, now: i64) -> Option<RecentCode> {
        let mut codes = self.codes.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        codes.remove(code_hash).filter(|recent| recent.code.expires_at > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(hash: &str, expires_at: i64) -> AuthCode {
        AuthCode { code_hash: hash.into(), expires_at, ..AuthCode::default() }
    }

    #[test]
    fn a_code_is_taken_once_and_not_after_it_expires() {
        let recent = RecentCodes::default();
        recent.keep(code("a", 100), Client::default(), 0);
        recent.keep(code("b", 100), Client::default(), 0);
        assert_eq!(recent.take("a", 50).unwrap().code.code_hash, "a");
        assert!(recent.take("a", 50).is_none());
        assert!(recent.take("b", 100).is_none(), "expired");
        assert!(recent.take("b", 50).is_none(), "gone once looked at");
    }

    #[test]
    fn memory_stays_bounded_and_expired_codes_make_room() {
        let recent = RecentCodes::default();
        for n in 0..CAPACITY + 10 {
            recent.keep(code(&n.to_string(), 100), Client::default(), 0);
        }
        assert_eq!(recent.codes.lock().unwrap().len(), CAPACITY);
        assert!(recent.take(&(CAPACITY + 1).to_string(), 0).is_none(), "not kept when full");
        // Later, when the kept ones have expired, a new one pushes them out.
        recent.keep(code("late", 300), Client::default(), 200);
        assert_eq!(recent.codes.lock().unwrap().len(), 1);
        assert!(recent.take("late", 200).is_some());
    }

    #[test]
    fn expired_codes_are_forgotten_without_waiting_for_the_map_to_fill() {
        let recent = RecentCodes::default();
        recent.keep(code("old", 100), Client::default(), 0);
        recent.keep(code("new", 300), Client::default(), 0);
        recent.forget_expired(100);
        let kept: Vec<String> = recent.codes.lock().unwrap().keys().cloned().collect();
        assert_eq!(kept, ["new"]);
    }
}
