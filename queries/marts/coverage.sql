-- name: coverage
-- description: Count patients (distinct institution + patient id), studies or images per cell of the chosen dimensions, after the shared filters; a study counts once in each of its conditions.
-- params: dims, unit, f_states, f_institutions, f_modalities, f_sexes, f_age_min, f_age_max, f_area_types, f_facility_types, f_conditions, f_date_from, f_date_to
WITH facts AS (
    SELECT
        * EXCLUDE (conditions),
        unnest(
            CASE WHEN list_contains($dims, 'condition')
                THEN coalesce(conditions, [NULL]::VARCHAR[])
                ELSE [NULL]::VARCHAR[]
            END
        ) AS condition
    FROM filtered_study(
        $f_states, $f_institutions, $f_modalities, $f_sexes, $f_age_min, $f_age_max,
        $f_area_types, $f_facility_types, $f_conditions, $f_date_from, $f_date_to
    )
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
