-- name: open_quarantine
-- description: Quarantined rows still to fix, one per submitted row, with all their reasons and the row as submitted; optionally one institution's.
-- params: institution
SELECT
    file,
    "row",
    institution_id,
    study_uid,
    string_agg(reason, '; ' ORDER BY "column") AS reasons,
    any_value(original) AS original
FROM quarantine
WHERE $institution::VARCHAR IS NULL OR institution_id = upper($institution::VARCHAR)
GROUP BY file, "row", institution_id, study_uid
ORDER BY file, "row";
