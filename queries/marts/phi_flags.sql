-- name: phi_flags
-- description: DICOM files whose headers carry identifying values, per institution and element keyword (never the values): files and studies flagged with the keyword, and the institution's files and studies flagged with any keyword; optionally only the chosen institutions.
-- params: f_institutions
WITH scoped AS (
    SELECT *
    FROM phi_flag
    WHERE $f_institutions::VARCHAR[] IS NULL
       OR list_contains($f_institutions::VARCHAR[], institution_id)
),
per_institution AS (
    -- a file carrying two keywords counts once here
    SELECT
        institution_id,
        sum(study_flagged_files)::BIGINT AS institution_flagged_files,
        count(*)::BIGINT AS institution_flagged_studies
    FROM (SELECT DISTINCT institution_id, study_uid, study_flagged_files FROM scoped)
    GROUP BY institution_id
)
SELECT
    s.institution_id,
    any_value(i.name) AS institution_name,
    s.tag,
    sum(s.files)::BIGINT AS files,
    count(*)::BIGINT AS studies,
    any_value(p.institution_flagged_files) AS institution_flagged_files,
    any_value(p.institution_flagged_studies) AS institution_flagged_studies
FROM scoped AS s
JOIN per_institution AS p USING (institution_id)
LEFT JOIN institution AS i USING (institution_id)
GROUP BY s.institution_id, s.tag
ORDER BY s.institution_id, files DESC, s.tag;
