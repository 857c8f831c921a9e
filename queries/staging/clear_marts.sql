-- name: clear_marts
-- description: Drop the marts before they are rebuilt from the studies being published (schema_marts then creates them as the current code has them, so an older layout never lingers). mart_institution_now, the fingerprints of the studies being published, is replaced whole by stage_mart_institutions and kept.
-- params: none
DROP TABLE IF EXISTS mart_cell;
DROP TABLE IF EXISTS mart_cube;
DROP TABLE IF EXISTS mart_fact;
DROP TABLE IF EXISTS mart_recent;
DROP TABLE IF EXISTS mart_institution;
