-- name: coverage_patients_distinct
-- description: Exact distinct patients per cell for many cells, where one bitmap per cell would take too much memory.
-- params: dims, f_states, f_institutions, f_modalities, f_sexes, f_age_min, f_age_max, f_area_types, f_facility_types, f_conditions, f_date_from, f_date_to
SELECT
    COLUMNS(lambda c: list_contains($dims, c)),
    count(DISTINCT patient_key)::BIGINT AS patients
FROM coverage_facts(
    $dims, $f_states, $f_institutions, $f_modalities, $f_sexes, $f_age_min, $f_age_max,
    $f_area_types, $f_facility_types, $f_conditions, $f_date_from, $f_date_to
)
GROUP BY ALL
ORDER BY ALL;
