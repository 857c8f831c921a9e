-- name: accrual_by_institution
-- description: New patients (counted in the month the institution first saw them in the cell), studies or images per institution, cell of the chosen dimensions and study month, after the shared filters; summed over months it equals coverage by institution and the same dimensions.
-- params: dims, unit, f_states, f_institutions, f_modalities, f_sexes, f_age_min, f_age_max, f_area_types, f_facility_types, f_conditions, f_date_from, f_date_to
WITH facts AS (
    SELECT * FROM coverage_facts(
        $dims, $f_states, $f_institutions, $f_modalities, $f_sexes, $f_age_min, $f_age_max,
        $f_area_types, $f_facility_types, $f_conditions, $f_date_from, $f_date_to
    )
),
first_seen AS (
    -- one row per (institution, cell, patient): the month it first appeared there
    SELECT institution, COLUMNS(lambda c: list_contains($dims, c)), patient_key, min(month) AS month
    FROM facts
    WHERE $unit = 'patients'
    GROUP BY ALL
)
SELECT institution AS institution_id, COLUMNS(lambda c: list_contains($dims, c)), month,
       count(*)::BIGINT AS n
FROM first_seen
GROUP BY ALL
UNION ALL
SELECT institution AS institution_id, COLUMNS(lambda c: list_contains($dims, c)), month,
       (CASE WHEN $unit = 'images' THEN coalesce(sum(n_images), 0) ELSE count(*) END)::BIGINT AS n
FROM facts
WHERE $unit <> 'patients'
GROUP BY ALL
ORDER BY ALL;
