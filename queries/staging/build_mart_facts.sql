-- name: build_mart_facts
-- description: Facts that decide which sums over the cubes are exact, read off the cubes and fingerprints just built: per dimension, the patients counted more than once when the institution's patients are split by it (0 = no patient has two values of it, unknown counting as a value); how many studies list a condition twice; the number of studies; the first and last study dates and the first day of mart_recent (days since 1970-01-01); the layout the marts were built with.
-- params: layout
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
SELECT 'repeated_conditions' AS name, coalesce(sum(repeated_conditions), 0)::BIGINT AS value
FROM mart_institution
UNION ALL
SELECT 'studies' AS name, coalesce(sum(studies), 0)::BIGINT AS value FROM mart_institution
UNION ALL
SELECT 'first_day' AS name, date_diff('day', DATE '1970-01-01', min(first_day))::BIGINT AS value
FROM mart_institution
HAVING count(*) > 0
UNION ALL
SELECT 'last_day' AS name, date_diff('day', DATE '1970-01-01', max(last_day))::BIGINT AS value
FROM mart_institution
HAVING count(*) > 0
UNION ALL
SELECT 'recent_from_day' AS name,
       date_diff('day', DATE '1970-01-01',
                 (date_trunc('month', max(last_day)) - INTERVAL 1 MONTH)::DATE)::BIGINT AS value
FROM mart_institution
HAVING count(*) > 0
UNION ALL
SELECT 'layout' AS name, $layout::BIGINT AS value;
