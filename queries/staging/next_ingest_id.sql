-- name: next_ingest_id
-- description: The id for the next entry of the ingest log.
-- params: none
SELECT coalesce(max(ingest_id), 0)::BIGINT + 1 AS ingest_id FROM ingest_log;
