-- name: count_staged_changes
-- description: How many staged rows would be inserted, updated or left unchanged.
-- params: none
SELECT change, count(*)::BIGINT AS n FROM staged_study GROUP BY change;
