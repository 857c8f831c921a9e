-- name: partner_registry
-- description: The institution registry (id, name, state, city, facility type, sector, joined date), in id order.
-- params: none
SELECT institution_id, name, state, city, facility_type, sector, joined_date
FROM institution
ORDER BY institution_id;
