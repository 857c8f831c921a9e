-- name: insert_staged_studies
-- description: Write the new and changed rows of incoming_study into the index with what stage_studies found for their key.
-- params: none
INSERT INTO study BY NAME
SELECT
    institution_id, study_uid, i.patient_id, g.patient_key, i.study_date,
    date_trunc('month', i.study_date)::DATE AS study_month, i.modality, i.sex, i.age_years,
    i.age_band, i.state, i.district, i.area_type, i.diagnosis_icd10, i.conditions, i.body_part,
    g.facility_type, i.manufacturer, i.device_model, i.n_images, i.annotation_status, i.consent,
    i.fitzpatrick, i.source, g.ingested_at
FROM incoming_study AS i
-- the key is unique in incoming_study (manifest._split_duplicates)
JOIN staged_study AS g USING (institution_id, study_uid)
WHERE g.change <> 'unchanged';
