-- name: mart_recent_from
-- description: The first day mart_recent must hold: the first of the month before the last study's month (from the fingerprints just recorded; NULL without studies).
-- params: none
SELECT (date_trunc('month', max(last_day)) - INTERVAL 1 MONTH)::DATE AS recent_from
FROM mart_institution;
