-- name: dq_quarantine_reasons
-- description: Open quarantine reasons with the rows they hold back, per institution, file and column; optionally only the chosen institutions.
-- params: f_institutions
SELECT
    institution_id,
    file,
    "column",
    reason,
    count(DISTINCT "row")::BIGINT AS rows_to_fix
FROM quarantine
WHERE $f_institutions::VARCHAR[] IS NULL
   OR list_contains($f_institutions::VARCHAR[], institution_id)
GROUP BY institution_id, file, "column", reason
ORDER BY rows_to_fix DESC, institution_id, file, "column", reason;
