-- What was revoked, and when: a token family (code replay, refresh-token reuse,
-- a disconnected app, /revoke), one access token, a removed app or a removed
-- person. Every instance reads what is new every few seconds and keeps it in
-- memory, so its MCP servers refuse those tokens at once, without a database
-- read per call. A row is needed only as long as an access token it covers can
-- live; expired ones are deleted with the rest.
CREATE TABLE revocations (
    kind       TEXT NOT NULL,
    id         TEXT NOT NULL,
    revoked_at BIGINT NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE INDEX revocations_by_time ON revocations (revoked_at);
