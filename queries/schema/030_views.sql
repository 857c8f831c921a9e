-- name: schema_views
-- description: study_facts: one row per study with every coverage dimension under its public name.
-- params: none
CREATE OR REPLACE VIEW study_facts AS
SELECT
    institution_id AS institution,
    state,
    sex,
    age_band,
    area_type,
    facility_type,
    modality,
    body_part,
    manufacturer,
    strftime(study_month, '%Y-%m') AS month,
    conditions,
    patient_key,
    n_images
FROM study;
