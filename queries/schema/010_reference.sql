-- name: schema_reference
-- description: Reference tables loaded from data/reference and data/geo by the writer (population, aliases, burden, conditions, outlines).
-- params: none
CREATE TABLE IF NOT EXISTS ref_state (
    iso_code VARCHAR PRIMARY KEY,
    name VARCHAR NOT NULL,
    type VARCHAR NOT NULL,
    census2011_total BIGINT, census2011_male BIGINT, census2011_female BIGINT,
    census2011_rural BIGINT, census2011_urban BIGINT,
    proj2026_total BIGINT, proj2026_male BIGINT, proj2026_female BIGINT
);
CREATE TABLE IF NOT EXISTS ref_state_alias (alias_key VARCHAR PRIMARY KEY, iso_code VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS ref_age_sex (
    iso_code VARCHAR NOT NULL, age_band VARCHAR NOT NULL, sex VARCHAR NOT NULL, population BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS ref_disease_burden (
    iso_code VARCHAR, state_name VARCHAR, condition VARCHAR, icd10 VARCHAR, metric VARCHAR,
    year VARCHAR, value DOUBLE, source_id VARCHAR
);
CREATE TABLE IF NOT EXISTS ref_condition (
    condition VARCHAR PRIMARY KEY, icd10_range VARCHAR, typical_modalities VARCHAR, note VARCHAR
);
-- The official state/UT outlines (data/geo/india_states.geojson, MIT; see its SOURCES.md), one
-- GeoJSON geometry per state; the spatial extension is not used (it would download at run time).
CREATE TABLE IF NOT EXISTS ref_state_boundary (
    iso_code VARCHAR PRIMARY KEY, name VARCHAR NOT NULL, type VARCHAR, geometry_geojson VARCHAR NOT NULL
);
