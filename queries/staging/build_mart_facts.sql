-- name: build_mart_facts
-- description: Facts that decide which sums over the cubes are exact, read off the cubes just built: per dimension, the patients counted more than once when the institution's patients are split by it (0 = no patient has two values of it, unknown counting as a value); how many studies list a condition twice; the number of studies; the first and last study dates (days since 1970-01-01).
-- params: none
INSERT INTO mart_fact BY NAME
WITH whole AS (
    SELECT coalesce(sum(m.patients), 0) AS patients
    FROM mart_cell AS m
    JOIN mart_cube AS c USING (cube)
    WHERE c.kind = 'cells' AND c.dims = ['institution']
),
split AS (
    -- a cube by institution and one more dimension lists each patient once per value they have
    SELECT c.dims[2] AS name, coalesce(sum(m.patients), 0) AS patients
    FROM mart_cube AS c
    LEFT JOIN mart_cell AS m USING (cube)
    WHERE c.kind = 'cells' AND len(c.dims) = 2 AND c.dims[1] = 'institution'
      AND c.dims[2] NOT IN ('month', 'condition')
    GROUP BY c.dims[2]
)
SELECT split.name, (split.patients - whole.patients)::BIGINT AS value
FROM split, whole
UNION ALL
SELECT 'institution' AS name, 0::BIGINT AS value
UNION ALL
SELECT 'repeated_conditions' AS name,
       count(*) FILTER (WHERE len(conditions) <> len(list_distinct(conditions)))::BIGINT AS value
FROM study
UNION ALL
SELECT 'studies' AS name, count(*)::BIGINT AS value FROM study
UNION ALL
SELECT 'first_day' AS name, date_diff('day', DATE '1970-01-01', min(study_date))::BIGINT AS value
FROM study
HAVING count(*) > 0
UNION ALL
SELECT 'last_day' AS name, date_diff('day', DATE '1970-01-01', max(study_date))::BIGINT AS value
FROM study
HAVING count(*) > 0;
