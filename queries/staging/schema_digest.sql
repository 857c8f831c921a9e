-- name: schema_digest
-- description: The digest of the schema files the index was last brought up to date with (NULL: none recorded).
-- params: none
SELECT max(digest) AS digest FROM schema_digest;
