-- The public keys (a JWK Set, as JSON) an app proves itself with when it
-- authenticates with private_key_jwt (RFC 7523): taken from its Client ID
-- Metadata Document (`jwks`, or fetched from its `jwks_uri`).
ALTER TABLE clients ADD COLUMN jwks TEXT;

-- The single-use ids of client assertions already accepted, kept until they
-- expire, so that a captured assertion cannot be replayed.
CREATE TABLE used_assertions (
    id         TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
);
