-- name: schema_views
-- description: study_facts (one row per study, every coverage dimension under its public name) and filtered_study (the shared filters as one table macro).
-- params: none
CREATE OR REPLACE VIEW study_facts AS
SELECT
    institution_id AS institution,
    state,
    sex,
    age_band,
    age_years,
    area_type,
    facility_type,
    modality,
    body_part,
    manufacturer,
    device_model,
    study_date,
    strftime(study_month, '%Y-%m') AS month,
    conditions,
    patient_key,
    n_images,
    source
FROM study;

-- An empty (NULL) argument means no filter. An age range leaves out unknown ages; a condition
-- filter keeps studies with any of the chosen conditions.
CREATE OR REPLACE MACRO filtered_study(
    f_states, f_institutions, f_modalities, f_sexes, f_age_min, f_age_max,
    f_area_types, f_facility_types, f_conditions, f_date_from, f_date_to
) AS TABLE
SELECT *
FROM study_facts
WHERE (f_states IS NULL OR list_contains(f_states::VARCHAR[], state))
  AND (f_institutions IS NULL OR list_contains(f_institutions::VARCHAR[], institution))
  AND (f_modalities IS NULL OR list_contains(f_modalities::VARCHAR[], modality))
  AND (f_sexes IS NULL OR list_contains(f_sexes::VARCHAR[], sex))
  AND (f_age_min IS NULL OR age_years >= f_age_min::DOUBLE)
  AND (f_age_max IS NULL OR age_years <= f_age_max::DOUBLE)
  AND (f_area_types IS NULL OR list_contains(f_area_types::VARCHAR[], area_type))
  AND (f_facility_types IS NULL OR list_contains(f_facility_types::VARCHAR[], facility_type))
  AND (f_conditions IS NULL OR list_has_any(f_conditions::VARCHAR[], conditions))
  AND (f_date_from IS NULL OR study_date >= f_date_from::DATE)
  AND (f_date_to IS NULL OR study_date <= f_date_to::DATE);

-- The filtered studies with a `condition` column (and `diagnosis_unknown`, for the marts): when
-- condition is one of the dimensions, a study appears once per condition (NULL when its diagnosis is unknown), otherwise once. The
-- two branches are exclusive and decided by a constant, so the planner drops the other one
-- (unnesting a one-element list for every study cost a plain count 7x).
CREATE OR REPLACE MACRO coverage_facts(
    dims, f_states, f_institutions, f_modalities, f_sexes, f_age_min, f_age_max,
    f_area_types, f_facility_types, f_conditions, f_date_from, f_date_to
) AS TABLE
SELECT * EXCLUDE (conditions), conditions IS NULL AS diagnosis_unknown,
       NULL::VARCHAR AS condition
FROM filtered_study(
    f_states, f_institutions, f_modalities, f_sexes, f_age_min, f_age_max,
    f_area_types, f_facility_types, f_conditions, f_date_from, f_date_to
)
WHERE NOT list_contains(dims, 'condition')
UNION ALL
SELECT * EXCLUDE (conditions), conditions IS NULL AS diagnosis_unknown,
       unnest(coalesce(conditions, [NULL]::VARCHAR[])) AS condition
FROM filtered_study(
    f_states, f_institutions, f_modalities, f_sexes, f_age_min, f_age_max,
    f_area_types, f_facility_types, f_conditions, f_date_from, f_date_to
)
WHERE list_contains(dims, 'condition');
