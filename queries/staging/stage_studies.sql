-- name: stage_studies
-- description: Stage the accepted rows of one file (registered as incoming_study, one row per key) as their key, patient key, facility type and what each would change in the index (inserted, updated or unchanged); and the patients first seen in them, with their new dense keys.
-- params: now
-- The patients not in the index yet, keyed on after the highest key in order of (institution,
-- patient id).
CREATE OR REPLACE TEMP TABLE staged_patient AS
SELECT
    institution_id,
    patient_id,
    ((SELECT coalesce(max(patient_key) + 1, 0) FROM patient)
        + row_number() OVER (ORDER BY institution_id, patient_id) - 1)::UINTEGER AS patient_key
FROM (SELECT DISTINCT institution_id, patient_id FROM incoming_study) AS d
ANTI JOIN patient AS p USING (institution_id, patient_id);

-- Only the key, the patient key, the facility type (perhaps the registry's) and the change are
-- kept: insert_staged_studies reads the rest from incoming_study again, which costs less than
-- copying every column of every row into this table.
CREATE OR REPLACE TEMP TABLE staged_study AS
WITH keyed AS (
    -- a study without its own facility type takes its institution's from the registry
    SELECT
        i.* REPLACE (coalesce(i.facility_type, r.facility_type) AS facility_type),
        coalesce(p.patient_key, n.patient_key) AS patient_key,
        p.patient_key IS NULL AS new_patient
    FROM incoming_study AS i
    LEFT JOIN institution AS r USING (institution_id)
    LEFT JOIN patient AS p USING (institution_id, patient_id)
    LEFT JOIN staged_patient AS n USING (institution_id, patient_id)
)
SELECT
    k.institution_id,
    k.study_uid,
    k.patient_key,
    k.new_patient,
    k.facility_type,
    CASE
        WHEN s.study_uid IS NULL THEN 'inserted'
        -- every stored field compared, NULLs equal: an identical re-submission changes nothing
        WHEN (k.patient_id, k.study_date, k.modality, k.sex, k.age_years, k.age_band, k.state,
              k.district, k.area_type, k.diagnosis_icd10, k.conditions, k.body_part,
              k.facility_type, k.manufacturer, k.device_model, k.n_images, k.annotation_status,
              k.consent, k.fitzpatrick)
            IS NOT DISTINCT FROM
             (s.patient_id, s.study_date, s.modality, s.sex, s.age_years, s.age_band, s.state,
              s.district, s.area_type, s.diagnosis_icd10, s.conditions, s.body_part,
              s.facility_type, s.manufacturer, s.device_model, s.n_images, s.annotation_status,
              s.consent, s.fitzpatrick)
            THEN 'unchanged'
        ELSE 'updated'
    END AS change,
    $now::TIMESTAMP AS ingested_at
FROM keyed AS k
LEFT JOIN study AS s USING (institution_id, study_uid);
