//! Sealing secrets at rest: AES-256-GCM under a key-encryption key (KEK).
//!
//! A database dump alone must not give away the issuer's signing keys. Each
//! private key is sealed with a fresh 96-bit random nonce, and the key's id is
//! bound in as associated data, so a sealed blob moved to another row does not
//! open. The KEK comes from the configuration or the environment
//! (`AGENTGATE_KEY_ENCRYPTION_KEY`, 32 bytes in base64); in development it is
//! generated once and kept in the data directory with mode 0600.

use std::io::Write;
use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::{hmac, rand};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// The environment variable holding the key-encryption key.
pub const KEK_ENV: &str = "AGENTGATE_KEY_ENCRYPTION_KEY";

/// The file, inside the data directory, that holds a generated development KEK.
pub const DEV_KEK_FILE: &str = "key-encryption.key";

/// Why a key-encryption key could not be had or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The configured value is not 32 bytes of base64.
    #[error("the key-encryption key must be 32 random bytes in base64 (e.g. `openssl rand -base64 32`)")]
    BadKey,
    /// A sealed value does not open under this key: wrong key, or tampered data.
    #[error("a sealed secret does not open with this key-encryption key (was it changed?)")]
    WrongKey,
    /// The development key file could not be read or written.
    #[error("key-encryption key file {path}: {source}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The key file can be read by others than its owner.
    #[error("{0}: readable by others than its owner; run `chmod 600` on it")]
    FileTooOpen(String),
}

/// A key-encryption key. It also derives the other server secrets (the key that
/// binds form tokens to a browser), so every instance that can open the signing
/// keys agrees on them without storing more secrets.
pub struct KeyEncryptionKey {
    aead: LessSafeKey,
    derive: hmac::Key,
}

impl std::fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyEncryptionKey(<secret>)")
    }
}

/// The text of a file that holds a secret (a key, a client secret), which
/// must be private to its owner: a secret every local account can read
/// protects nothing.
pub fn read_private_file(path: &Path) -> Result<String, SealError> {
    let file_error = |source| SealError::File { path: path.display().to_string(), source };
    let file = std::fs::File::open(path).map_err(file_error)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file.metadata().map_err(file_error)?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(SealError::FileTooOpen(path.display().to_string()));
        }
    }
    std::io::read_to_string(file).map_err(file_error)
}

impl KeyEncryptionKey {
    /// A key from its base64 form (standard alphabet, padding optional).
    pub fn from_base64(text: &str) -> Result<Self, SealError> {
        let text = text.trim();
        let bytes = STANDARD
            .decode(text)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
            .map_err(|_| SealError::BadKey)?;
        if bytes.len() != 32 {
            return Err(SealError::BadKey);
        }
        let aead = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| SealError::BadKey)?);
        Ok(Self { aead, derive: hmac::Key::new(hmac::HMAC_SHA256, &bytes) })
    }

    /// A MAC key for `purpose`, derived from this key (HMAC-SHA-256 of the purpose,
    /// as in HKDF-Expand with one block): different purposes get unrelated keys.
    pub fn derive(&self, purpose: &str) -> hmac::Key {
        let tag = hmac::sign(&self.derive, purpose.as_bytes());
        hmac::Key::new(hmac::HMAC_SHA256, tag.as_ref())
    }

    /// A fresh random key and its base64 form.
    pub fn generate() -> (Self, String) {
        let mut bytes = [0u8; 32];
        rand::fill(&mut bytes).expect("the system random generator works");
        let text = STANDARD.encode(bytes);
        (Self::from_base64(&text).expect("32 bytes make a key"), text)
    }

    /// The key from `AGENTGATE_KEY_ENCRYPTION_KEY`, if set.
    pub fn from_env() -> Result<Option<Self>, SealError> {
        match std::env::var(KEK_ENV) {
            Ok(text) if !text.trim().is_empty() => Self::from_base64(&text).map(Some),
            _ => Ok(None),
        }
    }

    /// The key kept in `path` (base64, as made by `openssl rand -base64 32`).
    /// The file must be private to its owner: a key that every local account can
    /// read protects nothing.
    pub fn from_file(path: &Path) -> Result<Self, SealError> {
        let text = read_private_file(path).map_err(|error| match error {
            SealError::FileTooOpen(path) => SealError::FileTooOpen(format!("key-encryption key file {path}")),
            other => other,
        })?;
        Self::from_base64(&text)
    }

    /// The development key kept in `dir`, created (mode 0600) when `create` is set
    /// and there is none yet.
    pub fn from_dev_file(dir: &Path, create: bool) -> Result<Option<Self>, SealError> {
        let path = dir.join(DEV_KEK_FILE);
        let file_error = |source| SealError::File { path: path.display().to_string(), source };
        match std::fs::read_to_string(&path) {
            Ok(text) => return Self::from_base64(&text).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(file_error(e)),
        }
        let (key, text) = Self::generate();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&path).map_err(file_error)?;
        file.write_all(text.as_bytes()).and_then(|()| file.sync_all()).map_err(file_error)?;
        Ok(Some(key))
    }

    /// Seals `secret`, bound to `context` (e.g. the key id).
    pub fn seal(&self, secret: &[u8], context: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce).expect("the system random generator works");
        let mut data = secret.to_vec();
        self.aead
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut data,
            )
            .expect("sealing a small secret cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        STANDARD.encode(out)
    }

    /// Opens what [`seal`](Self::seal) made with the same key and context.
    pub fn open(&self, sealed: &str, context: &str) -> Result<Vec<u8>, SealError> {
        let bytes = STANDARD.decode(sealed).map_err(|_| SealError::WrongKey)?;
        if bytes.len() < NONCE_LEN {
            return Err(SealError::WrongKey);
        }
        let (nonce, data) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::WrongKey)?;
        let mut data = data.to_vec();
        let plain = self
            .aead
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut data)
            .map_err(|_| SealError::WrongKey)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_only_with_the_same_key_and_context() {
        let (key, text) = KeyEncryptionKey::generate();
        let sealed = key.seal(b"private", "kid-1");
        assert_ne!(sealed, key.seal(b"private", "kid-1"), "a fresh nonce every time");
        assert_eq!(key.open(&sealed, "kid-1").unwrap(), b"private");
        assert!(matches!(key.open(&sealed, "kid-2"), Err(SealError::WrongKey)), "bound to its context");
        let (other, _) = KeyEncryptionKey::generate();
        assert!(matches!(other.open(&sealed, "kid-1"), Err(SealError::WrongKey)));
        let same = KeyEncryptionKey::from_base64(&text).unwrap();
        assert_eq!(same.open(&sealed, "kid-1").unwrap(), b"private");
        let mut tampered = STANDARD.decode(&sealed).unwrap();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(matches!(key.open(&STANDARD.encode(tampered), "kid-1"), Err(SealError::WrongKey)));
    }

    #[test]
    fn refuses_bad_keys() {
        for bad in ["", "c2hvcnQ=", "not base64 at all!", &STANDARD.encode([0u8; 31])] {
            assert!(matches!(KeyEncryptionKey::from_base64(bad), Err(SealError::BadKey)), "{bad:?}");
        }
    }

    #[test]
    fn the_dev_key_file_is_private_and_stable() {
        let dir = std::env::temp_dir().join(format!("agentgate-seal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(KeyEncryptionKey::from_dev_file(&dir, false).unwrap().is_none(), "not created unless asked");
        let first = KeyEncryptionKey::from_dev_file(&dir, true).unwrap().unwrap();
        let sealed = first.seal(b"x", "c");
        let again = KeyEncryptionKey::from_dev_file(&dir, true).unwrap().unwrap();
        assert_eq!(again.open(&sealed, "c").unwrap(), b"x", "the same key on the next start");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(DEV_KEK_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_key_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("agentgate-kek-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("kek");
        let (key, text) = KeyEncryptionKey::generate();
        std::fs::write(&path, format!("{text}\n")).unwrap();
        for open in [0o644, 0o640, 0o604] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(open)).unwrap();
            assert!(matches!(KeyEncryptionKey::from_file(&path), Err(SealError::FileTooOpen(_))), "{open:o}");
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let sealed = key.seal(b"x", "c");
        assert_eq!(KeyEncryptionKey::from_file(&path).unwrap().open(&sealed, "c").unwrap(), b"x");
        assert!(matches!(KeyEncryptionKey::from_file(&dir.join("missing")), Err(SealError::File { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
