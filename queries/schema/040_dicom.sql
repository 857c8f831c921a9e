-- name: schema_dicom
-- description: The DICOM privacy audit: per scanned study, which identifying header elements (by DICOM keyword, never their values) how many files carried.
-- params: none
CREATE TABLE IF NOT EXISTS phi_flag (
    institution_id VARCHAR NOT NULL,     -- upper-case, as the study's
    study_uid VARCHAR NOT NULL,
    tag VARCHAR NOT NULL,                -- DICOM keyword (PatientName, PatientAddress, ...); never a value
    files BIGINT NOT NULL,               -- files of the study whose header carries this element
    study_flagged_files BIGINT NOT NULL, -- files of the study carrying any flagged element
    source VARCHAR NOT NULL,             -- dicom | dicomweb
    scanned_at TIMESTAMP NOT NULL,
    PRIMARY KEY (institution_id, study_uid, tag)
);
