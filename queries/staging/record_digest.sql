-- name: record_digest
-- description: Record the digest of what a derived part of the index was just made from.
-- params: subject, digest
INSERT OR REPLACE INTO index_digest VALUES ($subject, $digest);
