-- name: mart_state
-- description: What the writer needs to know to update the marts in place: the columns of the mart tables as they are (an older layout means a full rebuild), the layout recorded at the last build and the first day mart_recent holds.
-- params: none
SELECT
    (
        SELECT string_agg(table_name || '.' || column_name || ':' || data_type, ','
                          ORDER BY table_name, column_index)
        FROM duckdb_columns()
        WHERE database_name = current_database() AND schema_name = 'main'
          AND table_name LIKE 'mart\_%' ESCAPE '\'
    ) AS columns,
    (SELECT max(value) FROM mart_fact WHERE name = 'layout') AS layout,
    (SELECT max(value) FROM mart_fact WHERE name = 'recent_from_day') AS recent_from_day;
