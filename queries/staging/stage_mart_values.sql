-- name: stage_mart_values
-- description: Number every value of every cube dimension (NULL included) among the studies of the given institutions (NULL: all) into the temp table mart_value, in value order within each dimension (NULL last), so the cubes are grouped on small integers and ordering by a code orders by its value as the base queries do.
-- params: institutions
CREATE OR REPLACE TEMP TABLE mart_value AS
WITH studies AS NOT MATERIALIZED (
    SELECT *
    FROM filtered_study(NULL, $institutions, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)
),
dim_values AS (
    SELECT DISTINCT 'institution' AS dim, institution AS value FROM studies
    UNION ALL SELECT DISTINCT 'state', state FROM studies
    UNION ALL SELECT DISTINCT 'sex', sex FROM studies
    UNION ALL SELECT DISTINCT 'age_band', age_band FROM studies
    UNION ALL SELECT DISTINCT 'area_type', area_type FROM studies
    UNION ALL SELECT DISTINCT 'facility_type', facility_type FROM studies
    UNION ALL SELECT DISTINCT 'modality', modality FROM studies
    UNION ALL SELECT DISTINCT 'body_part', body_part FROM studies
    UNION ALL SELECT DISTINCT 'manufacturer', manufacturer FROM studies
    UNION ALL SELECT DISTINCT 'device_model', device_model FROM studies
    UNION ALL SELECT DISTINCT 'month', month FROM studies
    UNION ALL
    SELECT DISTINCT 'condition', unnest(coalesce(conditions, [NULL]::VARCHAR[])) FROM studies
)
-- codes start at 1, so a code is also its value's position in list(value ORDER BY code)
SELECT (row_number() OVER (ORDER BY dim, value NULLS LAST))::UINTEGER AS code, dim, value
FROM dim_values;
