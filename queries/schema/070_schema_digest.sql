-- name: schema_digest_table
-- description: The digest of the schema files this index was last brought up to date with: a writer runs them again only when it differs (they cost ~40 ms per publish, a good part of a small ingest's).
-- params: none
CREATE TABLE IF NOT EXISTS schema_digest (digest VARCHAR NOT NULL);
