-- name: insert_phi_flags
-- description: Record the PHI audit rows of the studies just scanned (registered as incoming_phi: keyword and file counts per study, never values).
-- params: source, now
INSERT INTO phi_flag BY NAME
SELECT
    institution_id, study_uid, tag, files, study_flagged_files,
    $source AS source, $now::TIMESTAMP AS scanned_at
FROM incoming_phi;
