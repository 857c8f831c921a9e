-- name: reference_age_sex
-- description: Census 2011 population by age band and sex (M/F) for the chosen states, or for India when none are chosen; stated ages only.
-- params: states
SELECT
    age_band,
    CASE sex WHEN 'male' THEN 'M' WHEN 'female' THEN 'F' END AS sex,
    sum(population)::BIGINT AS population
FROM ref_age_sex
WHERE age_band <> 'age_not_stated'
  AND CASE
        WHEN len(coalesce($states::VARCHAR[], [])) = 0 THEN iso_code = 'IN'
        ELSE list_contains($states::VARCHAR[], iso_code)
      END
GROUP BY ALL
ORDER BY ALL;
