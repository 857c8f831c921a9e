-- name: index_totals_recent
-- description: index_totals over the last two calendar months only (mart_recent), for date windows that start inside them; the same filters, written out as filtered_study has them: studies, patients (exact, from a bitmap of dense patient keys), images, institutions, states/UTs covered, synthetic share and complete-demographics share.
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
FROM mart_recent
WHERE ($f_states IS NULL OR list_contains($f_states::VARCHAR[], state))
  AND ($f_institutions IS NULL OR list_contains($f_institutions::VARCHAR[], institution))
  AND ($f_modalities IS NULL OR list_contains($f_modalities::VARCHAR[], modality))
  AND ($f_sexes IS NULL OR list_contains($f_sexes::VARCHAR[], sex))
  AND ($f_age_min IS NULL OR age_years >= $f_age_min::DOUBLE)
  AND ($f_age_max IS NULL OR age_years <= $f_age_max::DOUBLE)
  AND ($f_area_types IS NULL OR list_contains($f_area_types::VARCHAR[], area_type))
  AND ($f_facility_types IS NULL OR list_contains($f_facility_types::VARCHAR[], facility_type))
  AND ($f_conditions IS NULL OR list_has_any($f_conditions::VARCHAR[], conditions))
  AND ($f_date_from IS NULL OR study_date >= $f_date_from::DATE)
  AND ($f_date_to IS NULL OR study_date <= $f_date_to::DATE);
