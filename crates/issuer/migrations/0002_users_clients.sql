-- People and apps. Lists (redirect URIs, grant types) are JSON text and scopes a
-- space-separated string, so the schema is the same on SQLite and PostgreSQL.
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    email         TEXT UNIQUE,
    name          TEXT,
    password_hash TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);

CREATE TABLE clients (
    client_id        TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    third_party      BOOLEAN NOT NULL,
    application_type TEXT NOT NULL,
    secret_hash      TEXT,
    redirect_uris    TEXT NOT NULL,
    scopes           TEXT NOT NULL,
    grant_types      TEXT NOT NULL,
    logo_uri         TEXT,
    client_uri       TEXT,
    policy_uri       TEXT,
    tos_uri          TEXT,
    created_at       BIGINT NOT NULL
);
