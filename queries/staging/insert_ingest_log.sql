-- name: insert_ingest_log
-- description: Log one ingested file with its counts.
-- params: ingest_id, file, kind, sha256, rows_read, inserted, updated, unchanged, duplicates, quarantined, now
INSERT INTO ingest_log VALUES (
    $ingest_id, $file, $kind, $sha256, $rows_read, $inserted, $updated, $unchanged, $duplicates,
    $quarantined, $now::TIMESTAMP
);
