-- name: insert_quarantine
-- description: Record the problems of one file's quarantined rows (registered as incoming_quarantine) with the rows as submitted.
-- params: ingest_id, file
INSERT INTO quarantine BY NAME
SELECT
    $ingest_id AS ingest_id, $file AS file, "row", institution_id, study_uid, "column", value, reason,
    map_from_entries(original) AS original
FROM incoming_quarantine;
