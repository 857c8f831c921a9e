-- name: dq_ingest_files
-- description: The latest ingest of each file: rows read, accepted and quarantined at that ingest, and how many of its rows are still open in the quarantine now.
-- params: none
WITH latest AS (
    SELECT * FROM ingest_log
    QUALIFY row_number() OVER (PARTITION BY file ORDER BY ingest_id DESC) = 1
),
still_open AS (
    SELECT file, count(DISTINCT "row")::BIGINT AS still_open
    FROM quarantine
    GROUP BY file
)
SELECT
    l.file,
    l.kind,
    l.finished_at,
    l.rows_read,
    (l.inserted + l.updated + l.unchanged + l.duplicates)::BIGINT AS accepted,
    l.quarantined,
    coalesce(o.still_open, 0)::BIGINT AS still_open
FROM latest AS l
LEFT JOIN still_open AS o USING (file)
ORDER BY l.finished_at DESC, l.file;
