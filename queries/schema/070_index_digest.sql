-- name: schema_index_digest
-- description: What derived parts of the index were last made from, by subject ('schema': the schema files; 'reference': the shipped reference data and the code loading it): a writer redoes a part only when its digest differs.
-- params: none
CREATE TABLE IF NOT EXISTS index_digest (subject VARCHAR PRIMARY KEY, digest VARCHAR NOT NULL);
