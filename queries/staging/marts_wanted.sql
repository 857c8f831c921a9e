-- name: marts_wanted
-- description: Whether the writer builds or updates the marts: the index holds at least min_studies studies, or has marts already (kept up to date from then on, whatever its size).
-- params: min_studies
SELECT
    (SELECT count(*) FROM study) >= $min_studies
    OR EXISTS (SELECT 1 FROM mart_fact WHERE name = 'layout') AS wanted;
