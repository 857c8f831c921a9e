-- name: registered_institutions
-- description: The institution ids of the registry, to check submitted rows against.
-- params: none
SELECT institution_id, facility_type FROM institution ORDER BY institution_id;
