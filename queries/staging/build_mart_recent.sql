-- name: build_mart_recent
-- description: Copy the studies of the last two calendar months into mart_recent, in date order, and record the first day it holds.
-- params: none
INSERT INTO mart_recent BY NAME
SELECT * FROM study_facts
WHERE study_date >= (SELECT date_trunc('month', max(study_date)) - INTERVAL 1 MONTH FROM study)
ORDER BY study_date;
INSERT INTO mart_fact BY NAME
SELECT 'recent_from_day' AS name,
       date_diff('day', DATE '1970-01-01',
                 (date_trunc('month', max(study_date)) - INTERVAL 1 MONTH)::DATE)::BIGINT AS value
FROM study
HAVING count(*) > 0;
