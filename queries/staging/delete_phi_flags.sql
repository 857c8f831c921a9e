-- name: delete_phi_flags
-- description: Forget the PHI audit rows of the studies just scanned (registered as incoming_keys), so a re-scan that finds a study clean clears its flags.
-- params: none
DELETE FROM phi_flag AS p
USING incoming_keys AS k
WHERE p.institution_id = k.institution_id AND p.study_uid = k.study_uid;
