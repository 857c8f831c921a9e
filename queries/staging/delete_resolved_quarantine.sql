-- name: delete_resolved_quarantine
-- description: Forget earlier quarantine entries that this file supersedes: the same file name again, or the same studies re-submitted.
-- params: file
DELETE FROM quarantine AS q
WHERE q.file = $file
   OR EXISTS (
        SELECT 1 FROM incoming_keys AS k
        WHERE k.institution_id = q.institution_id AND k.study_uid = q.study_uid
   );
