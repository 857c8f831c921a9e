-- name: schema_marts
-- description: Marts brought up to date at every publish (dashboard/ingest/writer.py): coverage cubes with exact distinct patients per cell, first-study cubes, per-institution fingerprints of the studies they were built from, and what the read path needs to know to serve from them.
-- params: none
-- Everything here is derived from `study` by the writer before each publish, so a snapshot's
-- marts always match its studies: the rows of the institutions whose studies changed are rebuilt
-- (a patient belongs to one institution, so every count is additive across institutions), or
-- everything when the layout changed. A reader that finds no cube (an index published before
-- marts existed) runs the base queries instead.
-- mart_cell also holds "part:" cubes that mart_cube does not list (the reader never sees them):
-- per-institution versions of the cubes without the institution, summed into those cubes (the
-- first-study part always; the month part from the first incremental update on).
CREATE TABLE IF NOT EXISTS mart_cell (
    cube VARCHAR NOT NULL,        -- which cube the row belongs to (mart_cube.cube)
    institution VARCHAR,
    state VARCHAR,
    sex VARCHAR,
    age_band VARCHAR,
    area_type VARCHAR,
    facility_type VARCHAR,
    modality VARCHAR,
    body_part VARCHAR,
    manufacturer VARCHAR,
    device_model VARCHAR,
    month VARCHAR,                -- 'YYYY-MM'
    condition VARCHAR,
    patients BIGINT NOT NULL,     -- distinct patients in the cell
    new_patients BIGINT,          -- month cubes: patients first seen in the cell (without month) that month
    studies BIGINT NOT NULL,      -- first-study cubes: patients whose first study falls in the cell
    images BIGINT NOT NULL,
    demo_studies BIGINT NOT NULL,
    complete_studies BIGINT NOT NULL, -- sex, age, state and urban/rural all known
    -- cubes without month: studies leaving each curated field unknown (dq_missing_by_institution)
    missing_sex BIGINT,
    missing_age BIGINT,
    missing_state BIGINT,
    missing_area_type BIGINT,
    missing_diagnosis BIGINT,
    missing_body_part BIGINT,
    missing_manufacturer BIGINT,
    missing_n_images BIGINT,
    missing_facility_type BIGINT
);
CREATE TABLE IF NOT EXISTS mart_cube (
    cube VARCHAR NOT NULL,
    dims VARCHAR[] NOT NULL,      -- the columns the cube is grouped by
    kind VARCHAR NOT NULL,        -- 'cells' (every study) or 'first' (each patient's first study)
    cells BIGINT NOT NULL
);
-- Facts about the studies that decide which sums over a cube are exact.
CREATE TABLE IF NOT EXISTS mart_fact (
    name VARCHAR NOT NULL,        -- '<dimension>_per_patient', 'distinct_conditions', 'studies'
    value BIGINT NOT NULL
);
-- The studies of the last two calendar months, as study_facts has them: headline totals over a
-- recent window (the Overview's "this month so far" against the same days last month) scan
-- these instead of every study, under any filter.
CREATE TABLE IF NOT EXISTS mart_recent (
    institution VARCHAR,
    state VARCHAR,
    sex VARCHAR,
    age_band VARCHAR,
    age_years DOUBLE,
    area_type VARCHAR,
    facility_type VARCHAR,
    modality VARCHAR,
    body_part VARCHAR,
    manufacturer VARCHAR,
    device_model VARCHAR,
    study_date DATE,
    month VARCHAR,
    conditions VARCHAR[],
    patient_key UINTEGER,
    n_images BIGINT,
    source VARCHAR
);
-- Per institution, what its cubes were built from: a change in any study (added, removed or
-- altered in a column study_facts has) changes the count or the fingerprint, and only then are
-- its rows rebuilt. The fingerprint is the sum of 64-bit hashes of the study_facts rows.
CREATE TABLE IF NOT EXISTS mart_institution (
    institution VARCHAR NOT NULL,
    studies BIGINT NOT NULL,
    fingerprint HUGEINT NOT NULL,
    first_day DATE NOT NULL,
    last_day DATE NOT NULL,
    repeated_conditions BIGINT NOT NULL -- studies listing a condition twice
);
-- The same, as the studies are now: replaced whole at the start of a publish
-- (stage_mart_institutions), compared with the above.
CREATE TABLE IF NOT EXISTS mart_institution_now (
    institution VARCHAR NOT NULL,
    studies BIGINT NOT NULL,
    fingerprint HUGEINT NOT NULL,
    first_day DATE NOT NULL,
    last_day DATE NOT NULL,
    repeated_conditions BIGINT NOT NULL
);
