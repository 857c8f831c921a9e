-- name: build_mart_recent
-- description: Copy the studies from recent_from on (the last two calendar months) of the given institutions (NULL: all) into mart_recent, in date order.
-- params: institutions, recent_from
INSERT INTO mart_recent BY NAME
SELECT *
FROM filtered_study(NULL, $institutions, NULL, NULL, NULL, NULL, NULL, NULL, NULL, $recent_from, NULL)
ORDER BY study_date;
