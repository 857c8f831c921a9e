-- name: replace_mart_institutions
-- description: Record the fingerprints the marts are now built from (mart_institution_now becomes mart_institution).
-- params: none
DELETE FROM mart_institution;
INSERT INTO mart_institution BY NAME SELECT * FROM mart_institution_now;
DELETE FROM mart_institution_now;
