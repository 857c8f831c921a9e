-- name: schema_index
-- description: The curated study index, the institution registry, the quarantine and the ingest log.
-- params: none
CREATE TABLE IF NOT EXISTS institution (
    institution_id VARCHAR PRIMARY KEY,
    name VARCHAR NOT NULL,
    state VARCHAR,               -- ISO 3166-2:IN code
    city VARCHAR,
    facility_type VARCHAR,
    sector VARCHAR,
    joined_date DATE
);
CREATE TABLE IF NOT EXISTS study (
    institution_id VARCHAR NOT NULL,
    study_uid VARCHAR NOT NULL,
    patient_id VARCHAR NOT NULL,  -- pseudonymous, as submitted
    patient_key UINTEGER NOT NULL, -- dense id of (institution_id, patient_id), see patient
    study_date DATE NOT NULL,
    study_month DATE NOT NULL,    -- first day of the study's month
    modality VARCHAR NOT NULL,    -- DICOM code
    sex VARCHAR NOT NULL,         -- M F O U
    age_years DOUBLE,
    age_band VARCHAR,             -- census band label, NULL when age is unknown
    state VARCHAR,                -- ISO 3166-2:IN code, NULL when unknown
    district VARCHAR,
    area_type VARCHAR NOT NULL,   -- urban rural unknown
    diagnosis_icd10 VARCHAR[],    -- NULL = not given; [] = normal
    conditions VARCHAR[],         -- conditions.csv names, 'normal', 'other'; NULL = unknown
    body_part VARCHAR,
    facility_type VARCHAR,
    manufacturer VARCHAR,
    device_model VARCHAR,
    n_images BIGINT,
    annotation_status VARCHAR,
    consent VARCHAR,
    fitzpatrick TINYINT,
    source VARCHAR NOT NULL,      -- manifest | dicom | dicomweb | demo
    ingested_at TIMESTAMP NOT NULL
    -- (institution_id, study_uid) is unique: the upsert in queries/staging guarantees it, and a
    -- test checks it; an index on two text keys made ingest 15x slower than the load itself.
);
-- One row per patient: a dense integer key makes exact distinct-patient counts cheap.
CREATE TABLE IF NOT EXISTS patient (
    -- unique: stage_studies numbers only patients not yet in the table, after the highest key,
    -- and a test checks it; the primary-key index this had doubled the cost of inserting new
    -- patients (indexes made before keep it, which is harmless)
    patient_key UINTEGER NOT NULL,
    institution_id VARCHAR NOT NULL,
    patient_id VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS quarantine (
    ingest_id BIGINT NOT NULL,
    file VARCHAR NOT NULL,
    "row" BIGINT NOT NULL,        -- 1-based data row (the header is not counted)
    institution_id VARCHAR,
    study_uid VARCHAR,
    "column" VARCHAR NOT NULL,
    value VARCHAR,
    reason VARCHAR NOT NULL,
    original MAP(VARCHAR, VARCHAR) NOT NULL -- the row as submitted, to fix and resubmit
);
CREATE TABLE IF NOT EXISTS ingest_log (
    ingest_id BIGINT PRIMARY KEY,
    file VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    sha256 VARCHAR NOT NULL,
    rows_read BIGINT NOT NULL,
    inserted BIGINT NOT NULL,
    updated BIGINT NOT NULL,
    unchanged BIGINT NOT NULL,
    duplicates BIGINT NOT NULL,
    quarantined BIGINT NOT NULL,
    finished_at TIMESTAMP NOT NULL
);
