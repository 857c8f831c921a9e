-- name: stage_mart_institutions
-- description: Fingerprint every institution's studies as they are now (count, sum of row hashes, first and last dates, studies listing a condition twice) into mart_institution_now: one pass over the studies, compared with mart_institution to find the institutions whose marts must be rebuilt.
-- params: none
CREATE OR REPLACE TABLE mart_institution_now AS
SELECT
    f.institution,
    count(*)::BIGINT AS studies,
    sum(hash(f)::HUGEINT) AS fingerprint,
    min(f.study_date) AS first_day,
    max(f.study_date) AS last_day,
    count(*) FILTER (
        WHERE len(f.conditions) <> len(list_distinct(f.conditions))
    )::BIGINT AS repeated_conditions
FROM study_facts AS f
GROUP BY f.institution;
