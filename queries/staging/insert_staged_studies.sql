-- name: insert_staged_studies
-- description: Write the new and changed staged rows into the index.
-- params: none
INSERT INTO study BY NAME
SELECT
    institution_id, study_uid, patient_id, patient_key, study_date, study_month, modality, sex,
    age_years, age_band, state, district, area_type, diagnosis_icd10, conditions, body_part,
    facility_type, manufacturer, device_model, n_images, annotation_status, consent,
    fitzpatrick, source, ingested_at
FROM staged_study
WHERE change <> 'unchanged';
