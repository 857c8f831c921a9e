-- name: index_months
-- description: How many calendar months the index spans, first to last study (bounds the cells of a query by month).
-- params: none
SELECT coalesce(date_diff('month', min(study_month), max(study_month)) + 1, 0)::BIGINT AS months
FROM study;
