-- name: drop_mart_source
-- description: Free the studies staged for the cube builds (at 10 million studies they hold about a gigabyte until the writer's connection closes).
-- params: none
DROP TABLE IF EXISTS mart_source;
