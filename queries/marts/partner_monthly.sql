-- name: partner_monthly
-- description: Per institution and month, after the shared filters: studies, images, and new patients (first study in that month), so running sums give exact distinct patients to date.
-- params: f_states, f_institutions, f_modalities, f_sexes, f_age_min, f_age_max, f_area_types, f_facility_types, f_conditions, f_date_from, f_date_to
WITH facts AS (
    SELECT
        institution,
        month,
        patient_key,
        n_images,
        min(month) OVER (PARTITION BY patient_key) AS first_month
    FROM filtered_study(
        $f_states, $f_institutions, $f_modalities, $f_sexes, $f_age_min, $f_age_max,
        $f_area_types, $f_facility_types, $f_conditions, $f_date_from, $f_date_to
    )
)
SELECT
    institution,
    month,
    count(*)::BIGINT AS studies,
    count(DISTINCT patient_key) FILTER (WHERE month = first_month)::BIGINT AS patients,
    coalesce(sum(n_images), 0)::BIGINT AS images
FROM facts
GROUP BY institution, month
ORDER BY institution, month;
