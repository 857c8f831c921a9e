-- name: coverage_patients_bitmap
-- description: Exact distinct patients per cell for few cells: one bitmap of dense patient keys per cell, several times faster than count(DISTINCT) at ten million studies.
-- params: dims, max_patient_key, f_states, f_institutions, f_modalities, f_sexes, f_age_min, f_age_max, f_area_types, f_facility_types, f_conditions, f_date_from, f_date_to
SELECT
    COLUMNS(lambda c: list_contains($dims, c)),
    bit_count(bitstring_agg(patient_key, 0, $max_patient_key::UINTEGER))::BIGINT AS patients
FROM coverage_facts(
    $dims, $f_states, $f_institutions, $f_modalities, $f_sexes, $f_age_min, $f_age_max,
    $f_area_types, $f_facility_types, $f_conditions, $f_date_from, $f_date_to
)
GROUP BY ALL
ORDER BY ALL;
