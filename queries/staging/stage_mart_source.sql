-- name: stage_mart_source
-- description: The studies of the given institutions (NULL: all) as the cubes read them, into the temp table mart_source: every dimension and condition as its mart_value code, each condition-free count a 0/1 column, what the first-study cubes order by, and whether the study is its patient's only one. Built once per publish; every cube is then grouped on integers instead of text.
-- params: institutions
CREATE OR REPLACE TEMP MACRO mart_code(d, v) AS (
    SELECT code FROM mart_value WHERE dim = d AND value IS NOT DISTINCT FROM v
);
CREATE OR REPLACE TEMP TABLE mart_source AS
WITH condition_codes AS (
    -- a lambda cannot run a subquery: the condition list is coded through a map
    SELECT
        map_from_entries(list((value, code)) FILTER (WHERE value IS NOT NULL)) AS code_of,
        any_value(code) FILTER (WHERE value IS NULL) AS unknown
    FROM mart_value
    WHERE dim = 'condition'
)
SELECT
    mart_code('institution', institution) AS institution,
    mart_code('state', state) AS state,
    mart_code('sex', sex) AS sex,
    mart_code('age_band', age_band) AS age_band,
    mart_code('area_type', area_type) AS area_type,
    mart_code('facility_type', facility_type) AS facility_type,
    mart_code('modality', modality) AS modality,
    mart_code('body_part', body_part) AS body_part,
    mart_code('manufacturer', manufacturer) AS manufacturer,
    mart_code('device_model', device_model) AS device_model,
    mart_code('month', month) AS month,
    -- one code per condition, [the code of NULL] when the diagnosis is unknown
    list_transform(
        coalesce(conditions, [NULL]::VARCHAR[]), lambda c: coalesce(cc.code_of[c], cc.unknown)
    ) AS conditions,
    patient_key,
    study_date,
    n_images,
    source,
    (source = 'demo')::UTINYINT AS is_demo,
    (sex <> 'U' AND age_band IS NOT NULL AND state IS NOT NULL AND area_type <> 'unknown')::UTINYINT
        AS is_complete,
    -- studies leaving each curated field unknown (dq_missing_by_institution)
    (sex = 'U')::UTINYINT AS no_sex,
    (age_years IS NULL)::UTINYINT AS no_age,
    (state IS NULL)::UTINYINT AS no_state,
    (area_type = 'unknown')::UTINYINT AS no_area_type,
    (conditions IS NULL)::UTINYINT AS no_diagnosis,
    (body_part IS NULL)::UTINYINT AS no_body_part,
    (manufacturer IS NULL)::UTINYINT AS no_manufacturer,
    (n_images IS NULL)::UTINYINT AS no_n_images,
    (facility_type IS NULL)::UTINYINT AS no_facility_type,
    -- the patient's only study, listing no condition twice: the patient is in one cell of any
    -- cube (of one row per condition too), so counting its rows counts distinct patients
    patient_key NOT IN (
        SELECT patient_key
        FROM filtered_study(NULL, $institutions, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)
        GROUP BY patient_key
        HAVING count(*) > 1
    )
        AND coalesce(len(list_distinct(conditions)) = len(conditions), true) AS single
FROM filtered_study(NULL, $institutions, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
    condition_codes AS cc;
