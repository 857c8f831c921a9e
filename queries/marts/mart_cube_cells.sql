-- name: mart_cube_cells
-- description: The cells of one cube: the requested dimension columns and every count column.
-- params: cube, columns
SELECT
    COLUMNS(lambda c: list_contains($columns, c)),
    patients, new_patients, studies, images, demo_studies, complete_studies,
    COLUMNS('^missing_')
FROM mart_cell
WHERE cube = $cube;
