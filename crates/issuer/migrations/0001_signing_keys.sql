-- Signing keys. The private part is sealed (AES-256-GCM under the key-encryption
-- key) and stored as base64 text, so the schema is the same on SQLite and
-- PostgreSQL. A key is active while retired_at is NULL; a retired key stays in
-- the JWKS until publish_until.
CREATE TABLE signing_keys (
    kid            TEXT PRIMARY KEY,
    alg            TEXT NOT NULL,
    public_jwk     TEXT NOT NULL,
    sealed_private TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    retired_at     BIGINT,
    publish_until  BIGINT
);
