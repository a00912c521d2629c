-- PostgreSQL's form of 0006_client_keys.sql: BIGINT where SQLite has INTEGER,
-- which is 64 bits in SQLite but 32 in PostgreSQL (too small for times after 2038).
-- The public keys (a JWK Set, as JSON) an app proves itself with when it
-- authenticates with private_key_jwt (RFC 7523): taken from its Client ID
-- Metadata Document (`jwks`, or fetched from its `jwks_uri`).
ALTER TABLE clients ADD COLUMN jwks TEXT;

-- The single-use ids of client assertions already accepted, kept until they
-- expire, so that a captured assertion cannot be replayed.
CREATE TABLE used_assertions (
    id         TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
