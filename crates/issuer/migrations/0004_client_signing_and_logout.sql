-- The algorithm an app's ID tokens are signed with (OpenID Connect Dynamic
-- Client Registration's id_token_signed_response_alg): ES256 unless the app
-- needs RS256.
ALTER TABLE clients ADD COLUMN id_token_signed_response_alg TEXT NOT NULL DEFAULT 'ES256';

-- Where an app may send a person after signing them out (OpenID Connect
-- RP-Initiated Logout), a JSON array matched exactly.
ALTER TABLE clients ADD COLUMN post_logout_redirect_uris TEXT NOT NULL DEFAULT '[]';
