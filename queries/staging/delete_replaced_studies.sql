-- name: delete_replaced_studies
-- description: Remove the index rows that a staged row replaces with changed content.
-- params: none
DELETE FROM study AS s
USING staged_study AS g
WHERE g.change = 'updated' AND s.institution_id = g.institution_id AND s.study_uid = g.study_uid;
