-- name: mart_part_built
-- description: Whether the marts hold rows of the given (unlisted) part cube; a full build leaves the per-institution month part out and the first incremental update builds it for every institution.
-- params: cube
SELECT EXISTS (SELECT 1 FROM mart_cell WHERE cube = $cube) AS built;
