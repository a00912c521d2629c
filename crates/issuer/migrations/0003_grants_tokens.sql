-- Resources, consent grants, and everything tokens hang on. Secrets (codes,
-- refresh tokens, session ids) are stored only as SHA-256 hashes (base64url),
-- so a copy of the database cannot be replayed. Times are BIGINT seconds.

-- An API resource (an MCP server) tokens can be issued for, named by its URL.
-- `canonical` is the form requests are matched on; `uri` is what `aud` carries.
CREATE TABLE resources (
    uri        TEXT PRIMARY KEY,
    canonical  TEXT NOT NULL UNIQUE,
    name       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- The permissions a resource defines, each explained in plain words.
CREATE TABLE resource_scopes (
    resource_uri TEXT NOT NULL REFERENCES resources (uri) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL,
    PRIMARY KEY (resource_uri, name)
);

-- What a person allowed an app: the scopes for one resource ('' for none).
CREATE TABLE grants (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    resource   TEXT NOT NULL,
    scopes     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id, resource)
);

-- Everything issued from one authorization: the code's tokens and every refresh
-- token rotated out of them. Revoking the family revokes them all at once.
CREATE TABLE token_families (
    id         TEXT PRIMARY KEY,
    client_id  TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    resource   TEXT NOT NULL,
    scopes     TEXT NOT NULL,
    auth_time  BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX token_families_by_user_client ON token_families (user_id, client_id);

-- Authorization codes: single use. redeemed_at and family_id are set, in one
-- statement, by the one exchange that wins.
CREATE TABLE auth_codes (
    code_hash      TEXT PRIMARY KEY,
    client_id      TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    user_id        TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    redirect_uri   TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    resource       TEXT NOT NULL,
    scopes         TEXT NOT NULL,
    nonce          TEXT,
    auth_time      BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    redeemed_at    BIGINT,
    family_id      TEXT
);

CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    family_id  TEXT NOT NULL REFERENCES token_families (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    rotated_at BIGINT
);
CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family_id);

-- Access tokens revoked one by one (RFC 7009), kept until they expire.
CREATE TABLE revoked_tokens (
    jti        TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);

-- Signed-in browsers.
CREATE TABLE sessions (
    id_hash    TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    auth_time  BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- Failed sign-ins per account and per address, in fixed windows.
CREATE TABLE sign_in_failures (
    bucket       TEXT PRIMARY KEY,
    window_start BIGINT NOT NULL,
    failures     BIGINT NOT NULL
);
