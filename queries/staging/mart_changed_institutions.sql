-- name: mart_changed_institutions
-- description: The institutions whose studies differ from those their marts were built from (new, gone, or a different count or fingerprint), and how many institutions have studies now.
-- params: none
SELECT
    coalesce(list(coalesce(n.institution, m.institution) ORDER BY coalesce(n.institution, m.institution))
        FILTER (
            WHERE (n.studies, n.fingerprint) IS DISTINCT FROM (m.studies, m.fingerprint)
        ), []) AS changed,
    count(n.institution)::BIGINT AS institutions
FROM mart_institution_now AS n
FULL OUTER JOIN mart_institution AS m USING (institution);
