-- name: dq_studies_by_source
-- description: Studies per institution and source (manifest, dicom, dicomweb, demo) after the shared filters.
-- params: f_states, f_institutions, f_modalities, f_sexes, f_age_min, f_age_max, f_area_types, f_facility_types, f_conditions, f_date_from, f_date_to
SELECT
    institution,
    source,
    count(*)::BIGINT AS studies
FROM filtered_study(
    $f_states, $f_institutions, $f_modalities, $f_sexes, $f_age_min, $f_age_max,
    $f_area_types, $f_facility_types, $f_conditions, $f_date_from, $f_date_to
)
GROUP BY institution, source
ORDER BY institution, source;
