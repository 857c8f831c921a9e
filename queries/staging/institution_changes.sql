-- name: institution_changes
-- description: For each submitted registry row (registered as incoming_institution), whether it is new, changed or unchanged.
-- params: none
SELECT
    CASE
        WHEN r.institution_id IS NULL THEN 'inserted'
        WHEN (i.name, i.state, i.city, i.facility_type, i.sector, i.joined_date)
             IS NOT DISTINCT FROM (r.name, r.state, r.city, r.facility_type, r.sector, r.joined_date)
            THEN 'unchanged'
        ELSE 'updated'
    END AS change,
    count(*)::BIGINT AS n
FROM incoming_institution AS i
LEFT JOIN institution AS r USING (institution_id)
GROUP BY ALL;
