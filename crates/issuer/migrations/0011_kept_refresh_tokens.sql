-- A provider's refresh token, kept when its configuration asks
-- (`keep_refresh_token`), so that an MCP server behind the gateway can call the
-- provider's APIs for the person. It is sealed with the key-encryption key, as
-- signing keys are, bound to its account (issuer and subject): the database
-- alone does not give it away, nor can a sealed token be moved to another row.
-- Unlinking the account drops it with the row.
ALTER TABLE user_links ADD COLUMN refresh_token TEXT;
