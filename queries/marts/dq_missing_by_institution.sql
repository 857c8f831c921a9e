-- name: dq_missing_by_institution
-- description: Per institution, after the shared filters: studies, and how many of them leave each curated field unknown (sex U, age, state, urban/rural, diagnosis, body part, manufacturer, number of images, facility type).
-- params: f_states, f_institutions, f_modalities, f_sexes, f_age_min, f_age_max, f_area_types, f_facility_types, f_conditions, f_date_from, f_date_to
SELECT
    institution,
    count(*)::BIGINT AS studies,
    count(*) FILTER (WHERE sex = 'U')::BIGINT AS sex,
    count(*) FILTER (WHERE age_years IS NULL)::BIGINT AS age,
    count(*) FILTER (WHERE state IS NULL)::BIGINT AS state,
    count(*) FILTER (WHERE area_type = 'unknown')::BIGINT AS area_type,
    -- conditions is NULL exactly when no diagnosis was given ([] and 'normal' are known values)
    count(*) FILTER (WHERE conditions IS NULL)::BIGINT AS diagnosis,
    count(*) FILTER (WHERE body_part IS NULL)::BIGINT AS body_part,
    count(*) FILTER (WHERE manufacturer IS NULL)::BIGINT AS manufacturer,
    count(*) FILTER (WHERE n_images IS NULL)::BIGINT AS n_images,
    count(*) FILTER (WHERE facility_type IS NULL)::BIGINT AS facility_type
FROM filtered_study(
    $f_states, $f_institutions, $f_modalities, $f_sexes, $f_age_min, $f_age_max,
    $f_area_types, $f_facility_types, $f_conditions, $f_date_from, $f_date_to
)
GROUP BY institution
ORDER BY institution;
