-- People who sign in at an identity provider they already have (Logto, an
-- OpenID Connect provider, GitHub). A person is found by their account there,
-- (issuer, subject) — a subject is unique within its issuer only — never by
-- an email address: `user_links` ties each such account to one person, under
-- the provider's id in the configuration. Their profile, refreshed from the
-- provider at each sign-in, gains whether a provider verified the address, and
-- a picture.
ALTER TABLE users ADD COLUMN email_verified BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE users ADD COLUMN picture TEXT;

CREATE TABLE user_links (
    issuer          TEXT NOT NULL,
    subject         TEXT NOT NULL,
    provider        TEXT NOT NULL,
    user_id         TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Made by a first sign-in under the provider's admission rule (which is
    -- then checked again at each sign-in), not by the person or the operator.
    made_at_sign_in BOOLEAN NOT NULL DEFAULT FALSE,
    created_at      BIGINT NOT NULL,
    signed_in_at    BIGINT,
    PRIMARY KEY (issuer, subject)
);
CREATE INDEX user_links_by_user ON user_links (user_id);

-- A sign-in at a provider in progress: begun by one browser, for one
-- authorization request, taken once by the provider's answer. Only the hash of
-- its `state` is kept; its nonce and PKCE verifier are derived from the state
-- with a key of the issuer's, so the database alone cannot finish it. Rows live
-- minutes; the purge removes what nobody finished.
CREATE TABLE upstream_sign_ins (
    state_hash   TEXT PRIMARY KEY,
    provider     TEXT NOT NULL,
    browser_hash TEXT NOT NULL,
    request      TEXT NOT NULL,
    link_user    TEXT,
    expires_at   BIGINT NOT NULL
);
