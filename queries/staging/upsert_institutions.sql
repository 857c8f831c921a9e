-- name: upsert_institutions
-- description: Insert or replace registry rows by institution_id from incoming_institution.
-- params: none
INSERT OR REPLACE INTO institution BY NAME
SELECT institution_id, name, state, city, facility_type, sector, joined_date
FROM incoming_institution;
