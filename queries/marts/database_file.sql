-- name: database_file
-- description: The file the connection reads (NULL for an in-memory database), so that what is read once per published snapshot can be cached by the file's identity.
-- params: none
SELECT path FROM duckdb_databases() WHERE database_name = current_database();
