-- name: reference_digest
-- description: The digest of the shipped reference data and loading code the reference tables were last loaded from (NULL: never, or by a version without digests).
-- params: none
SELECT max(digest) AS digest FROM ref_digest;
