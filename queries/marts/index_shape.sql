-- name: index_shape
-- description: Sizes that decide how to count: the largest patient key, and how many institutions and months the index holds.
-- params: none
SELECT
    (SELECT coalesce(max(patient_key), 0) FROM patient)::BIGINT AS max_patient_key,
    (SELECT count(*) FROM institution)::BIGINT AS institutions,
    (SELECT count(DISTINCT study_month) FROM study)::BIGINT AS months;
