-- name: open_quarantine
-- description: Quarantined rows still to fix, one per submitted row, with all their reasons and the row as submitted; optionally one institution's.
-- params: institution
-- The reasons are gathered per row first and the row as submitted is fetched once per row (all
-- of a row's problems carry the same one): carrying each MAP through the aggregation was 3x
-- slower at 30,000 rows.
WITH reasons AS (
    SELECT file, "row", institution_id, study_uid,
           string_agg(reason, '; ' ORDER BY "column") AS reasons, min(rowid) AS first_rowid
    FROM quarantine
    WHERE $institution::VARCHAR IS NULL OR institution_id = upper($institution::VARCHAR)
    GROUP BY file, "row", institution_id, study_uid
)
SELECT r.file, r."row", r.institution_id, r.study_uid, r.reasons, q.original
FROM reasons AS r
JOIN quarantine AS q ON q.rowid = r.first_rowid
ORDER BY r.file, r."row";
