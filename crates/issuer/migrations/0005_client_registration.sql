-- How an app came to be: registered by an administrator ('admin': the CLI or,
-- later, the management API) or by itself through dynamic client registration
-- ('dynamic', RFC 7591).
ALTER TABLE clients ADD COLUMN registration TEXT NOT NULL DEFAULT 'admin';

-- SHA-256 (hex) of a dynamically registered app's registration access token,
-- which lets it read, update and delete its own registration (RFC 7592).
ALTER TABLE clients ADD COLUMN registration_token_hash TEXT;

-- How the app authenticates at the token endpoint (RFC 7591
-- token_endpoint_auth_method): none for public apps.
ALTER TABLE clients ADD COLUMN token_endpoint_auth_method TEXT NOT NULL DEFAULT 'client_secret_basic';
UPDATE clients SET token_endpoint_auth_method = 'none' WHERE secret_hash IS NULL;
