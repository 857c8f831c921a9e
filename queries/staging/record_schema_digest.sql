-- name: record_schema_digest
-- description: Record the digest of the schema files just run on the index.
-- params: digest
DELETE FROM schema_digest;
INSERT INTO schema_digest VALUES ($digest);
