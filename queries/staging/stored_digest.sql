-- name: stored_digest
-- description: The digest recorded for a subject in index_digest (NULL: none recorded).
-- params: subject
SELECT max(digest) AS digest FROM index_digest WHERE subject = $subject;
