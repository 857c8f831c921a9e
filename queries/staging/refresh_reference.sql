-- name: refresh_reference
-- description: Replace the reference tables with the shipped data/reference CSVs and state outlines (registered as frame_* views).
-- params: none
DELETE FROM ref_state;
INSERT INTO ref_state BY NAME
SELECT iso_code, name, type, census2011_total, census2011_male, census2011_female,
       census2011_rural, census2011_urban, proj2026_total, proj2026_male, proj2026_female
FROM frame_state;
DELETE FROM ref_state_alias;
INSERT INTO ref_state_alias BY NAME SELECT alias_key, iso_code FROM frame_alias;
DELETE FROM ref_age_sex;
INSERT INTO ref_age_sex BY NAME SELECT iso_code, age_band, sex, population FROM frame_age_sex;
DELETE FROM ref_disease_burden;
INSERT INTO ref_disease_burden BY NAME
SELECT iso_code, state_name, condition, icd10, metric, year, value, source_id FROM frame_burden;
DELETE FROM ref_condition;
INSERT INTO ref_condition BY NAME
SELECT condition, icd10_range, typical_modalities, note FROM frame_condition;
DELETE FROM ref_state_boundary;
INSERT INTO ref_state_boundary BY NAME
SELECT iso_code, name, type, geometry_geojson FROM frame_boundary;
