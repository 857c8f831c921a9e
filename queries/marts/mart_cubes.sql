-- name: mart_cubes
-- description: The cubes built at the last publish (empty for an index published before marts existed), with the facts that decide which sums over them are exact.
-- params: none
SELECT
    c.cube,
    c.dims,
    c.kind,
    c.cells,
    (SELECT list(name ORDER BY name) FROM mart_fact) AS fact_names,
    (SELECT list(value ORDER BY name) FROM mart_fact) AS fact_values
FROM mart_cube AS c
ORDER BY c.cells, c.cube;
