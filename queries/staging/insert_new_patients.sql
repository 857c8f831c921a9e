-- name: insert_new_patients
-- description: Register the patients first seen in the staged rows under their new dense keys.
-- params: none
INSERT INTO patient BY NAME
SELECT DISTINCT patient_key, institution_id, patient_id FROM staged_study WHERE new_patient;
