-- name: monthly_accrual
-- description: New units per month by the chosen dimensions, after the shared filters: a patient counts once, in the month of their first study and with that study's values (so months add up to the distinct patients); studies and images count in their own month.
-- params: dims, unit, f_states, f_institutions, f_modalities, f_sexes, f_age_min, f_age_max, f_area_types, f_facility_types, f_conditions, f_date_from, f_date_to
WITH facts AS (
    SELECT
        * EXCLUDE (conditions),
        CASE $unit WHEN 'images' THEN coalesce(n_images, 0) ELSE 1 END AS weight
    FROM filtered_study(
        $f_states, $f_institutions, $f_modalities, $f_sexes, $f_age_min, $f_age_max,
        $f_area_types, $f_facility_types, $f_conditions, $f_date_from, $f_date_to
    )
    -- A patient's first study, ties broken on every dimension so the pick is deterministic.
    QUALIFY $unit <> 'patients' OR row_number() OVER (
        PARTITION BY patient_key
        ORDER BY study_date, institution, modality, state, sex, age_band, area_type,
            facility_type, body_part, manufacturer
    ) = 1
)
SELECT
    month,
    COLUMNS(lambda c: list_contains($dims, c) AND c <> 'month'),
    sum(weight)::BIGINT AS n
FROM facts
GROUP BY ALL
ORDER BY ALL;
