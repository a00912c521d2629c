-- A resource's name and scope descriptions in the other languages the pages
-- speak, as JSON: {"es": {"name": "…", "scopes": {"mail:read": "…"}}, …}.
-- A language or a scope left out falls back to `name` and
-- `resource_scopes.description`.
ALTER TABLE resources ADD COLUMN translations TEXT NOT NULL DEFAULT '{}';
