-- name: index_totals
-- description: Headline totals after the shared filters: studies, patients (exact, from a bitmap of dense patient keys), images, institutions, states/UTs covered, synthetic share and complete-demographics share.
-- params: max_patient_key, f_states, f_institutions, f_modalities, f_sexes, f_age_min, f_age_max, f_area_types, f_facility_types, f_conditions, f_date_from, f_date_to
SELECT
    count(*)::BIGINT AS studies,
    coalesce(bit_count(bitstring_agg(patient_key, 0, $max_patient_key::UINTEGER)), 0)::BIGINT
        AS patients,
    coalesce(sum(n_images), 0)::BIGINT AS images,
    count(DISTINCT institution)::BIGINT AS institutions,
    count(DISTINCT state)::BIGINT AS states_covered,
    (SELECT count(*) FROM ref_state)::BIGINT AS states_total,
    count(*) FILTER (WHERE source = 'demo')::BIGINT AS demo_studies,
    count(*) FILTER (
        WHERE sex <> 'U' AND age_band IS NOT NULL AND state IS NOT NULL AND area_type <> 'unknown'
    )::BIGINT AS complete_demographics
FROM filtered_study(
    $f_states, $f_institutions, $f_modalities, $f_sexes, $f_age_min, $f_age_max,
    $f_area_types, $f_facility_types, $f_conditions, $f_date_from, $f_date_to
);
