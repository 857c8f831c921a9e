-- name: stage_studies
-- description: Stage the accepted rows of one file (registered as incoming_study) with their patient key, content hash and what they would change in the index.
-- params: now
CREATE OR REPLACE TEMP TABLE staged_study AS
WITH submitted AS (
    -- a study without its own facility type takes its institution's from the registry
    SELECT i.* REPLACE (coalesce(i.facility_type, r.facility_type) AS facility_type)
    FROM incoming_study AS i
    LEFT JOIN institution AS r USING (institution_id)
),
incoming AS (
    SELECT
        i.*,
        md5_number_lower(i.institution_id || chr(31) || i.patient_id) AS patient_key,
        date_trunc('month', i.study_date)::DATE AS study_month,
        -- every stored field, NULL kept distinct from any value
        md5_number_lower(concat_ws(chr(31),
            coalesce(i.patient_id, chr(0)), coalesce(i.study_date::VARCHAR, chr(0)),
            coalesce(i.modality, chr(0)), coalesce(i.sex, chr(0)),
            coalesce(i.age_years::VARCHAR, chr(0)), coalesce(i.state, chr(0)),
            coalesce(i.district, chr(0)), coalesce(i.area_type, chr(0)),
            coalesce(i.diagnosis_icd10::VARCHAR, chr(0)), coalesce(i.body_part, chr(0)),
            coalesce(i.facility_type, chr(0)), coalesce(i.manufacturer, chr(0)),
            coalesce(i.device_model, chr(0)), coalesce(i.n_images::VARCHAR, chr(0)),
            coalesce(i.annotation_status, chr(0)), coalesce(i.consent, chr(0)),
            coalesce(i.fitzpatrick::VARCHAR, chr(0)), i.source
        )) AS row_hash
    FROM submitted AS i
)
SELECT
    incoming.*,
    CASE
        WHEN s.study_uid IS NULL THEN 'inserted'
        WHEN s.row_hash = incoming.row_hash THEN 'unchanged'
        ELSE 'updated'
    END AS change,
    $now::TIMESTAMP AS ingested_at
FROM incoming
LEFT JOIN study AS s USING (institution_id, study_uid);
