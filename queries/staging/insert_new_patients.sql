-- name: insert_new_patients
-- description: Register the patients first seen in the staged rows under their new dense keys.
-- params: none
INSERT INTO patient BY NAME
SELECT patient_key, institution_id, patient_id FROM staged_patient;
