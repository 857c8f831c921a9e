-- name: dq_dicom_studies
-- description: Studies read from DICOM headers (source dicom or dicomweb) after the shared filters. A count over one column, not a GROUP BY: DuckDB's column statistics and zone maps skip the row groups that hold no DICOM study, so an index without any answers at once.
-- params: f_states, f_institutions, f_modalities, f_sexes, f_age_min, f_age_max, f_area_types, f_facility_types, f_conditions, f_date_from, f_date_to
SELECT count(*)::BIGINT AS studies
FROM filtered_study(
    $f_states, $f_institutions, $f_modalities, $f_sexes, $f_age_min, $f_age_max,
    $f_area_types, $f_facility_types, $f_conditions, $f_date_from, $f_date_to
)
WHERE source IN ('dicom', 'dicomweb');
