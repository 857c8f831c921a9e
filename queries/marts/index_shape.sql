-- name: index_shape
-- description: Sizes that decide how to count, read from the small tables only: the largest patient key and the number of institutions.
-- params: none
SELECT
    (SELECT coalesce(max(patient_key), 0) FROM patient)::BIGINT AS max_patient_key,
    (SELECT count(*) FROM institution)::BIGINT AS institutions;
