-- name: dq_quarantine_by_file
-- description: Open quarantine per institution and file: rows to fix, problems found, and the most frequent reason; optionally only the chosen institutions.
-- params: f_institutions
SELECT
    institution_id,
    file,
    count(DISTINCT "row")::BIGINT AS rows_to_fix,
    count(*)::BIGINT AS problems,
    mode(reason ORDER BY reason) AS top_reason
FROM quarantine
WHERE $f_institutions::VARCHAR[] IS NULL
   OR list_contains($f_institutions::VARCHAR[], institution_id)
GROUP BY institution_id, file
ORDER BY rows_to_fix DESC, institution_id, file;
