-- name: coverage
-- description: Count patients (distinct institution + patient id), studies or images per cell of the chosen dimensions; a study counts once in each of its conditions.
-- params: dims, unit
WITH facts AS (
    SELECT
        * EXCLUDE (conditions),
        unnest(
            CASE WHEN list_contains($dims, 'condition')
                THEN coalesce(conditions, [NULL]::VARCHAR[])
                ELSE [NULL]::VARCHAR[]
            END
        ) AS condition
    FROM study_facts
)
SELECT
    COLUMNS(lambda c: list_contains($dims, c)),
    (CASE $unit
        WHEN 'patients' THEN count(DISTINCT patient_key)
        WHEN 'studies' THEN count(*)
        WHEN 'images' THEN coalesce(sum(n_images), 0)
    END)::BIGINT AS n
FROM facts
GROUP BY ALL
ORDER BY ALL;
