-- name: coverage
-- description: Studies and images per cell of the chosen dimensions, after the shared filters; a study counts once in each of its conditions.
-- params: dims, f_states, f_institutions, f_modalities, f_sexes, f_age_min, f_age_max, f_area_types, f_facility_types, f_conditions, f_date_from, f_date_to
SELECT
    COLUMNS(lambda c: list_contains($dims, c)),
    count(*)::BIGINT AS studies,
    coalesce(sum(n_images), 0)::BIGINT AS images
FROM coverage_facts(
    $dims, $f_states, $f_institutions, $f_modalities, $f_sexes, $f_age_min, $f_age_max,
    $f_area_types, $f_facility_types, $f_conditions, $f_date_from, $f_date_to
)
GROUP BY ALL
ORDER BY ALL;
